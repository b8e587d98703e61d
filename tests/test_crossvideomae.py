"""CrossVideoMAE: the paper's terms checked directly (no official code exists), branches, save/load, CLI."""

import json
import math

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForVideoClassification,
    AutoVideoProcessor,
)

import hf_mim
from hf_mim.layers.contrastive import nt_xent
from hf_mim.models.crossvideomae import CrossVideoViews

SPEC = hf_mim.get_method("crossvideomae")


def tiny(**overrides):
    torch.manual_seed(0)
    return SPEC.pretraining_class(SPEC.make_config("tiny", **overrides)).eval()


def clips(count=3, seed=0):
    return torch.randn(count, 4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_nt_xent_equals_the_formula_with_in_batch_negatives():
    first, second = torch.randn(3, 5, generator=torch.Generator().manual_seed(0)), torch.randn(3, 5)
    z = torch.nn.functional.normalize(torch.cat([first, second]), dim=-1)
    total = 0.0
    for i in range(6):  # anchor i, positive its pair, negatives the 4 other embeddings of the batch
        positive = (i + 3) % 6
        others = [j for j in range(6) if j != i]
        total += -(z[i] @ z[positive] / 0.5) + torch.logsumexp(torch.stack([z[i] @ z[j] / 0.5 for j in others]), 0)
    torch.testing.assert_close(nt_xent(first, second, 0.5), total / 6)
    # the other samples are the negatives: moving one of them changes sample 0's pair's loss
    moved = second.clone()
    moved[2] = first[0]
    assert not torch.allclose(nt_xent(first, moved, 0.5), nt_xent(first, second, 0.5))
    with pytest.raises(ValueError, match="batch of at least 2"):
        nt_xent(first[:1], second[:1], 0.5)


def test_masks_terms_and_total_match_hand_computed_values():
    model = tiny()
    inputs = SPEC.make_inputs(model, clips(), torch.Generator().manual_seed(1))
    # tube masks (75% of a 4x4 grid = 12 per slice, 2 slices), independent per view; image mask 12 of 16
    for key in ("bool_masked_pos", "augmented_bool_masked_pos"):
        assert (inputs[key].sum(1) == 24).all() and torch.equal(inputs[key][:, :16], inputs[key][:, 16:])
    assert not torch.equal(inputs["bool_masked_pos"], inputs["augmented_bool_masked_pos"])
    assert (inputs["image_bool_masked_pos"].sum(1) == 12).all()
    out = model(**inputs)
    pixels, mask, frames = inputs["pixel_values"], inputs["bool_masked_pos"], inputs["frame_index"]

    # reconstruction: MSE on normalised pixels of the encoder-masked cubes only, averaged over the two views
    target = model.target(pixels)[mask].reshape(3, 24, -1)
    original = (out.logits - target).square().mean()
    augmented = model.reconstruct(inputs["augmented_pixel_values"], inputs["augmented_bool_masked_pos"])[0].loss
    torch.testing.assert_close(out.loss_terms["reconstruction"], (original + augmented) / 2)

    # embeddings: mean of the visible tokens, projected; the frame-level video embedding pools only the visible
    # cubes of the time slice (tubelet) holding the sampled frame; the image branch sees exactly that frame
    encoded = model.encoder(pixels, bool_masked_pos=mask)
    torch.testing.assert_close(out.video_embeds, model.video_projection(encoded.last_hidden_state.mean(1)))
    visible = (~mask).nonzero()[:, 1].reshape(3, 8)
    in_slice = visible // 16 == (frames // 2)[:, None]
    assert (in_slice.sum(1) == 4).all()
    slice_tokens = encoded.last_hidden_state[in_slice].reshape(3, 4, -1).mean(1)
    torch.testing.assert_close(out.frame_video_embeds, model.video_projection(slice_tokens))
    images = torch.stack([pixels[b, frames[b]] for b in range(3)])
    image_tokens = model.image_encoder(images, bool_masked_pos=inputs["image_bool_masked_pos"]).last_hidden_state
    assert image_tokens.shape[1] == 4
    torch.testing.assert_close(out.image_embeds, model.image_projection(image_tokens.mean(1)))

    # contrastive terms and the total
    tau = model.config.temperature
    terms = out.loss_terms
    torch.testing.assert_close(terms["intra_video"], nt_xent(out.video_embeds, out.augmented_video_embeds, tau))
    mean_video = (out.video_embeds + out.augmented_video_embeds) / 2
    torch.testing.assert_close(terms["cross_video"], nt_xent(out.image_embeds, mean_video, tau))
    torch.testing.assert_close(terms["cross_frame"], nt_xent(out.image_embeds, out.frame_video_embeds, tau))
    torch.testing.assert_close(out.loss, sum(terms.values()))

    # the switches: original-clip-only reconstruction and cross-modal target, weights
    switched = tiny(reconstruct_augmented_view=False, cross_video_target="original", cross_frame_weight=0.5)(**inputs)
    torch.testing.assert_close(switched.loss_terms["reconstruction"], original)
    torch.testing.assert_close(switched.loss_terms["cross_video"], nt_xent(out.image_embeds, out.video_embeds, tau))
    t = switched.loss_terms
    torch.testing.assert_close(switched.loss, t["reconstruction"] + t["intra_video"] + t["cross_video"] + 0.5 * t["cross_frame"])


def test_only_the_sampled_frame_reaches_the_image_branch():
    model = tiny()
    inputs = SPEC.make_inputs(model, clips(), torch.Generator().manual_seed(2))
    inputs["frame_index"] = torch.tensor([0, 3, 1])
    out = model(**inputs)
    other, sampled = inputs["pixel_values"].clone(), inputs["pixel_values"].clone()
    other[1, 2] += 1.0  # frame 2 of clip 1 is not the one sampled
    sampled[1, 3] += 1.0
    with torch.no_grad():
        assert torch.equal(model(**{**inputs, "pixel_values": other}).image_embeds, out.image_embeds)
        changed = model(**{**inputs, "pixel_values": sampled}).image_embeds
    assert torch.equal(changed[[0, 2]], out.image_embeds[[0, 2]]) and not torch.equal(changed[1], out.image_embeds[1])


def grads_of(model, prefix):
    return [p.grad for name, p in model.named_parameters() if name.startswith(prefix)]


@pytest.mark.parametrize(
    "weights, gets_grad, no_grad",
    [
        (dict(intra_video_weight=0, cross_video_weight=0, cross_frame_weight=0), ["encoder.", "decoder."],
         ["image_encoder.", "image_projection.", "video_projection."]),
        (dict(reconstruction_weight=0, intra_video_weight=0, cross_video_weight=0),
         ["encoder.blocks", "image_encoder.blocks", "image_projection.", "video_projection."], ["decoder."]),
        (dict(freeze_image_encoder=True), ["encoder.", "decoder.", "image_projection."], ["image_encoder."]),
    ],
)
def test_which_branch_gets_gradients(weights, gets_grad, no_grad):
    model = tiny(**weights).train()
    model(**SPEC.make_inputs(model, clips())).loss.backward()
    for prefix in gets_grad:
        assert any(g is not None and g.abs().sum() > 0 for g in grads_of(model, prefix)), prefix
    for prefix in no_grad:
        assert all(g is None or not g.any() for g in grads_of(model, prefix)), prefix


def test_bad_inputs_get_clear_errors():
    model = tiny()
    inputs = SPEC.make_inputs(model, clips())
    with pytest.raises(ValueError, match="augmented_pixel_values is required"):
        model(clips())
    with pytest.raises(ValueError, match="must have the shape of pixel_values"):
        model(**{**inputs, "augmented_pixel_values": clips()[:, :2]})
    with pytest.raises(ValueError, match="hides every patch"):
        model(**{**inputs, "augmented_bool_masked_pos": torch.ones(3, 32, dtype=torch.bool)})
    with pytest.raises(ValueError, match="hides no patch"):
        model(**{**inputs, "image_bool_masked_pos": torch.zeros(3, 16, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"frame_index must hold one frame in \[0, 4\)"):
        model(**{**inputs, "frame_index": torch.tensor([0, 4, 1])})
    slice_zero_only = torch.ones(3, 32, dtype=torch.bool)
    slice_zero_only[:, :4] = False  # visible cubes only in the first time slice
    with pytest.raises(ValueError, match="no cube visible in the time slice of the sampled frame"):
        model(**{**inputs, "bool_masked_pos": slice_zero_only, "frame_index": torch.tensor([3, 3, 3])})
    with pytest.raises(ValueError, match="cross_video_target must be one of"):
        SPEC.make_config("tiny", cross_video_target="both")
    with pytest.raises(ValueError, match="image_mask_ratio must be in"):
        SPEC.make_config("tiny", image_mask_ratio=1.0)


def test_masks_and_frames_drawn_inside_follow_the_rng():
    model = tiny()
    pixels = clips()
    augmented = pixels.flip(-1)
    outs = []
    for _ in range(2):
        model.mask_rng = torch.Generator().manual_seed(3)
        outs.append(model(pixels, augmented))
    assert torch.equal(outs[0].loss, outs[1].loss) and torch.equal(outs[0].frame_index, outs[1].frame_index)
    assert torch.equal(outs[0].image_mask, outs[1].image_mask) and torch.equal(outs[0].mask, outs[1].mask)


def test_views_are_cut_from_the_same_frames():
    processor = SPEC.make_processor(SPEC.make_config("tiny"))
    frames = torch.randint(0, 256, (4, 3, 40, 40), dtype=torch.uint8)
    torch.manual_seed(0)
    train = CrossVideoViews(processor, train=True)(frames)
    assert train["pixel_values"].shape == train["augmented_pixel_values"].shape == (4, 3, 32, 32)
    assert not torch.equal(train["pixel_values"], train["augmented_pixel_values"])
    evaluation = CrossVideoViews(processor, train=False)(frames)
    assert torch.equal(evaluation["pixel_values"], evaluation["augmented_pixel_values"])


def test_save_load_bit_exact_auto_classes_and_card(tmp_path):
    from hf_mim.hub.cards import build_model_card

    model = tiny()
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint)
    SPEC.make_processor(model.config).save_pretrained(checkpoint)
    assert type(AutoConfig.from_pretrained(checkpoint)) is hf_mim.CrossVideoMAEConfig
    inputs = SPEC.make_inputs(model, clips())
    loaded = AutoModelForPreTraining.from_pretrained(checkpoint).eval()
    with torch.no_grad():
        reference = model(**inputs).loss
        assert torch.equal(loaded(**inputs).loss, reference)
    encoder = AutoModel.from_pretrained(checkpoint)
    assert type(encoder) is hf_mim.CrossVideoMAEModel and encoder(clips()).last_hidden_state.shape == (3, 32, 32)
    trained = model.encoder.state_dict()  # the video encoder, not the image branch, is what AutoModel loads
    assert all(torch.equal(value, trained[key]) for key, value in encoder.state_dict().items())
    classifier, info = AutoModelForVideoClassification.from_pretrained(checkpoint, num_labels=3, output_loading_info=True)
    assert info["unexpected_keys"] == set() and {k.split(".")[0] for k in info["missing_keys"]} <= {"classifier", "fc_norm"}
    assert classifier(clips(), labels=torch.tensor([0, 2, 1])).logits.shape == (3, 3)

    card = str(build_model_card(AutoConfig.from_pretrained(checkpoint), "me/crossvideomae-tiny", results={"knn_top1_k20": 0.5}))
    assert "pipeline_tag: video-classification" in card.split("---")[1] and "{{" not in card
    assert "NT-Xent" in card and "cross_video_target" in card


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory):
    pytest.importorskip("av")
    from hf_mim.data.video import make_demo_videos

    return make_demo_videos(tmp_path_factory.mktemp("videos"), clips_per_class=(3, 2), num_frames=8)


def test_cli_pretrain_on_a_video_folder_lowers_the_loss(video_folder, tmp_path):
    from hf_mim.cli import main

    out = tmp_path / "run"
    main([
        "pretrain", "--method", "crossvideomae", "--data", str(video_folder), "--size", "tiny", "--max_steps", "16",
        "--per_device_train_batch_size", "10", "--learning_rate", "3e-3", "--warmup_steps", "4", "--logging_steps", "1",
        "--save_strategy", "no", "--output_dir", str(out), "--processor_overrides", '{"frame_stride": 2}',
        "--crop_scale_min", "0.6", "--seed", "0", "--disable_tqdm", "true", "--dataloader_num_workers", "0",
    ])
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    losses = [e["loss"] for e in history if "loss" in e]
    assert len(losses) == 16 and sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5, losses
    # every term is logged; the contrastive ones stay near or below chance, ln(2 * batch - 1)
    last = [e for e in history if "loss_cross_frame" in e][-1]
    assert all(key in last for key in ("loss_reconstruction", "loss_intra_video", "loss_cross_video"))
    assert last["loss_cross_frame"] < math.log(19) + 0.5
    assert AutoVideoProcessor.from_pretrained(out).frame_stride == 2
