"""VideoMAE V2: dual-masking rules, parity with transformers' VideoMAE, converters, save/load, Trainer, CLI."""

import json

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForVideoClassification,
    AutoVideoProcessor,
    VideoMAEConfig,
    VideoMAEForPreTraining,
)

import hf_mim
from hf_mim.models.videomae2 import convert_videomae2 as convert
from hf_mim.models.videomae2.modeling_videomae2 import Videomae2ForPreTraining

SPEC = hf_mim.get_method("videomae2")


def tiny(**overrides):
    torch.manual_seed(0)
    return SPEC.pretraining_class(SPEC.make_config("tiny", **overrides)).eval()


def clips(count=2, seed=0):
    return torch.randn(count, 4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def test_loss_counts_only_encoder_masked_and_decoder_visible_cubes():
    model = tiny()
    inputs = SPEC.make_inputs(model, clips(), torch.Generator().manual_seed(1))
    encoder_mask, decoder_mask = inputs["bool_masked_pos"], inputs["decoder_mask"]
    assert (encoder_mask.sum(1) == 2 * 12).all() and (decoder_mask.sum(1) == 16).all()
    out = model(**inputs)
    visible = ~decoder_mask
    # the decoder predicts every decoder-visible cube (also those the encoder saw), nothing else
    assert out.logits.shape[1] == 16 and torch.equal(out.decoder_positions, visible.nonzero()[:, 1].reshape(2, 16))
    assert torch.equal(out.loss_mask, torch.gather(encoder_mask, 1, out.decoder_positions))
    target = torch.gather(model.target(inputs["pixel_values"]), 1, out.decoder_positions[..., None].expand(-1, -1, 384))
    per_cube = (out.logits - target).square().mean(-1)
    torch.testing.assert_close(out.loss, per_cube[out.loss_mask].mean())
    # pixels of a cube hidden from the encoder and not decoded cannot change the loss; a counted cube's can
    ignored = (encoder_mask & decoder_mask)[0].nonzero()[0, 0]
    counted = (encoder_mask & visible)[0].nonzero()[0, 0]

    def loss_with_cube_changed(index):
        pixels = inputs["pixel_values"].clone()
        t, rest = divmod(int(index), 16)
        row, col = divmod(rest, 4)
        pixels[0, 2 * t : 2 * t + 2, :, 8 * row : 8 * row + 8, 8 * col : 8 * col + 8] += torch.randn(2, 3, 8, 8)
        return model(**{**inputs, "pixel_values": pixels}).loss

    with torch.no_grad():
        assert torch.equal(loss_with_cube_changed(ignored), out.loss)
        assert not torch.equal(loss_with_cube_changed(counted), out.loss)


def test_without_decoder_masking_equals_transformers_videomae():
    theirs_config = VideoMAEConfig(
        image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32, num_hidden_layers=2,
        num_attention_heads=4, intermediate_size=64, decoder_hidden_size=32, decoder_num_hidden_layers=1,
        decoder_num_attention_heads=4, decoder_intermediate_size=64, use_mean_pooling=False, norm_pix_loss=True,
        layer_norm_eps=1e-6,
    )
    torch.manual_seed(0)
    theirs = VideoMAEForPreTraining(theirs_config).eval()
    ours = Videomae2ForPreTraining(hf_mim.Videomae2Config(**convert.config_from_transformers(theirs_config))).eval()
    missing, unexpected = ours.load_state_dict(convert.from_transformers(theirs.state_dict()), strict=False)
    assert set(missing) == {"encoder.pos_embed", "decoder.pos_embed"} and not unexpected
    ours.decoder.norm.eps = theirs.decoder.norm.eps  # transformers' decoder norm keeps torch's default 1e-5
    pixel_values = clips(3).requires_grad_(True)
    mask = SPEC.make_inputs(ours, pixel_values, torch.Generator().manual_seed(2))["bool_masked_pos"]
    mine = ours(pixel_values, bool_masked_pos=mask)
    reference = theirs(pixel_values, bool_masked_pos=mask)
    torch.testing.assert_close(mine.logits, reference.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mine.loss, reference.loss, atol=1e-5, rtol=1e-5)
    grad_mine = torch.autograd.grad(mine.loss, ours.encoder.blocks[0].attn.qkv.weight)[0]
    grad_ref = torch.autograd.grad(reference.loss, [theirs.videomae.encoder.layer[0].attention.attention.query.weight])[0]
    torch.testing.assert_close(grad_mine[:32], grad_ref, atol=1e-5, rtol=1e-4)
    # and back: our weights load strictly into transformers and give the same loss
    again = VideoMAEForPreTraining(theirs_config).eval()
    again.load_state_dict(convert.to_transformers(ours.state_dict()), strict=True)
    torch.testing.assert_close(again(pixel_values, bool_masked_pos=mask).loss, reference.loss, atol=0, rtol=0)


def test_converters_round_trip_random_state_dicts():
    model = tiny(qkv_bias="qv")
    state = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    official = convert.to_official(state)
    assert "encoder_to_decoder.weight" in official and "decoder.head.weight" in official and "mask_token" in official
    assert "encoder.blocks.1.attn.q_bias" in official and not any("pos_embed" in k for k in official)
    back = convert.from_official({"model": {**official, "encoder.pos_embed": torch.zeros(1)}})
    assert set(back) == set(state) - set(convert.POSITION_TABLES)
    assert all(torch.equal(back[k], state[k]) for k in back)
    hf = convert.to_transformers(state)
    assert "videomae.encoder.layer.0.attention.attention.key.weight" in hf
    assert "videomae.encoder.layer.0.attention.attention.key.bias" not in hf
    back = convert.from_transformers(hf)
    assert set(back) == set(state) - set(convert.POSITION_TABLES) and all(torch.equal(back[k], state[k]) for k in back)


def test_bad_inputs_get_clear_errors():
    model = tiny()
    pixel_values = clips()
    with pytest.raises(ValueError, match="hides no patch"):
        model(pixel_values, bool_masked_pos=torch.zeros(2, 32, dtype=torch.bool))
    with pytest.raises(ValueError, match="hides every patch"):
        model(pixel_values, bool_masked_pos=torch.ones(2, 32, dtype=torch.bool))
    with pytest.raises(ValueError, match="must be a bool tensor"):
        model(pixel_values, bool_masked_pos=torch.rand(2, 32))
    with pytest.raises(ValueError, match="5 frames are not divisible by the tubelet size 2"):
        model(torch.randn(1, 5, 3, 32, 32))
    with pytest.raises(ValueError, match="num_frames 5 is not divisible by tubelet_size 2"):
        SPEC.make_config("tiny", num_frames=5)
    with pytest.raises(ValueError, match="patch grid is 3x3"):
        SPEC.make_config("tiny", image_size=24)
    assert SPEC.make_config("tiny", image_size=24, decoder_mask_ratio=0.0).grid_size == (2, 3, 3)


def test_masks_drawn_inside_follow_the_rng_and_build_on_meta():
    model = tiny()
    model.mask_rng = torch.Generator().manual_seed(3)
    first = model(clips())
    model.mask_rng = torch.Generator().manual_seed(3)
    second = model(clips())
    assert torch.equal(first.loss, second.loss) and torch.equal(first.mask, second.mask)
    from accelerate import init_empty_weights

    with init_empty_weights():
        meta = SPEC.pretraining_class(SPEC.make_config("tiny"))
    assert meta.encoder.blocks[0].attn.qkv.weight.is_meta


def test_save_load_bit_exact_with_auto_classes_and_video_head(tmp_path):
    model = tiny()
    processor = SPEC.make_processor(model.config)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert type(AutoConfig.from_pretrained(tmp_path)) is hf_mim.Videomae2Config
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
    inputs = SPEC.make_inputs(model, clips())
    with torch.no_grad():
        assert torch.equal(model(**inputs).loss, loaded(**inputs).loss)
    assert type(AutoVideoProcessor.from_pretrained(tmp_path)) is type(processor)
    encoder = AutoModel.from_pretrained(tmp_path)
    assert encoder(clips()).last_hidden_state.shape == (2, 32, 32)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert auto_map["AutoModelForVideoClassification"].endswith("Videomae2ForVideoClassification")
    classifier, info = AutoModelForVideoClassification.from_pretrained(tmp_path, num_labels=3, output_loading_info=True)
    assert info["unexpected_keys"] == set() and {k.split(".")[0] for k in info["missing_keys"]} <= {"classifier", "fc_norm"}
    out = classifier(clips(), labels=torch.tensor([0, 2]))
    assert out.logits.shape == (2, 3) and out.loss.requires_grad


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory):
    pytest.importorskip("av")
    from hf_mim.data.video import make_demo_videos

    return make_demo_videos(tmp_path_factory.mktemp("videos"), clips_per_class=(3, 2), num_frames=8)


def test_cli_pretrain_on_a_video_folder_then_knn_and_probe(video_folder, tmp_path):
    from hf_mim.cli import main

    out = tmp_path / "run"
    main([
        "pretrain", "--method", "videomae2", "--data", str(video_folder), "--size", "tiny", "--max_steps", "40",
        "--per_device_train_batch_size", "10", "--learning_rate", "3e-3", "--warmup_steps", "4", "--logging_steps", "1",
        "--save_strategy", "no", "--output_dir", str(out), "--processor_overrides", '{"frame_stride": 2}',
        "--crop_scale_min", "0.6", "--seed", "0", "--disable_tqdm", "true", "--dataloader_num_workers", "0",
    ])
    losses = [e["loss"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert len(losses) == 40 and sum(losses[-5:]) / 5 < 0.9 * sum(losses[:5]) / 5, losses
    processor = AutoVideoProcessor.from_pretrained(out)
    assert (processor.frame_stride, processor.num_frames) == (2, 4)
    main(["knn", str(out), "--data", str(video_folder), "--k", "3", "--output", str(tmp_path / "knn.json")])
    main(["probe", str(out), "--data", str(video_folder), "--epochs", "2", "--output", str(tmp_path / "probe.json")])
    knn, probe = json.loads((tmp_path / "knn.json").read_text()), json.loads((tmp_path / "probe.json").read_text())
    assert 0.0 <= knn["knn_top1_k3"] <= 1.0 and 0.0 <= probe["linear_probe_top1"] <= 1.0


def test_card_for_a_video_checkpoint(tmp_path):
    from hf_mim.hub.cards import build_model_card

    model = tiny()
    processor = SPEC.make_processor(model.config)
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    card = build_model_card(AutoConfig.from_pretrained(checkpoint), "me/videomae2-tiny", results={"knn_top1_k20": 0.5})
    meta = str(card).split("---")[1]
    assert "pipeline_tag: video-classification" in meta and "masked-video-modeling" in meta
    assert "AutoVideoProcessor" in str(card) and "{{" not in str(card) and "*tube* mask" in str(card)
