"""TGM: text-guided masks (top relevance per slice), the CLIP relevance, the frozen unsaved CLIP, the InfoNCE
negatives, explicit masks and bad inputs, save/load and remote code, the CLI on a captioned video folder."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoModel, AutoModelForPreTraining, AutoModelForVideoClassification, CLIPModel

import hf_mim
from hf_mim.data import DataError
from hf_mim.masking import top_relevance_mask
from hf_mim.models.tgm import CaptionCollator, tiny_clip
from hf_mim.models.tgm.modeling_tgm import byte_level_clip_tokenizer, video_text_info_nce

SPEC = hf_mim.get_method("tgm")
CAPTIONS = ["a video of a moving bag", "a video of a moving boot"]


def tiny(**overrides):
    torch.manual_seed(0)
    return SPEC.pretraining_class(SPEC.make_config("tiny", **overrides)).eval()


def clips(count=2, seed=0):
    return torch.randn(count, 4, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    """A tiny random transformers CLIPModel and its tokenizer saved like a Hub checkpoint."""
    folder = tmp_path_factory.mktemp("tiny_clip")
    config = dict(tiny_clip())
    config.pop("model_type")
    torch.manual_seed(1)
    CLIPModel(AutoConfig.for_model("clip", **config)).save_pretrained(folder)
    byte_level_clip_tokenizer().save_pretrained(folder)
    return folder


def test_masked_patches_are_exactly_the_most_relevant_per_slice(monkeypatch):
    relevance = torch.rand(2, 2, 16, generator=torch.Generator().manual_seed(0))
    mask = top_relevance_mask(relevance, 0.6)
    count = int(0.6 * 16)
    expected = torch.zeros(2, 2, 16, dtype=torch.bool).scatter_(2, relevance.topk(count, dim=2).indices, True)
    assert torch.equal(mask, expected.flatten(1)) and (mask.reshape(2, 2, 16).sum(-1) == count).all()
    least = top_relevance_mask(relevance, 0.6, most_relevant=False)
    assert torch.equal(least.reshape(2, 2, 16), torch.zeros(2, 2, 16, dtype=torch.bool).scatter_(2, (-relevance).topk(count, dim=2).indices, True))
    # ties (a flat background) are broken at random by the generator, not in raster order
    flat = torch.zeros(1, 1, 16)
    draws = {tuple(top_relevance_mask(flat, 0.5, generator=torch.Generator().manual_seed(s)).flatten().tolist()) for s in range(5)}
    assert len(draws) > 1

    # inside the model: the mask comes from the relevance it computes, at the config ratio
    model = tiny()
    hand_built = torch.arange(32.0).flip(0).reshape(1, 2, 16).expand(2, -1, -1)  # raster-first patches most relevant
    monkeypatch.setattr(model, "patch_relevance", lambda pixel_values, text: hand_built)
    out = model(clips(), **model.tokenize(CAPTIONS))
    assert torch.equal(out.mask, (torch.arange(16) < count).repeat(2).expand(2, -1))
    assert torch.equal(out.relevance, hand_built.flatten(1))


def test_relevance_is_the_clip_similarity_of_patches_and_caption_on_the_tubelet_grid():
    model = tiny()
    pixel_values, tokens = clips(), model.tokenize(CAPTIONS)
    clip = model.clip.model
    with torch.no_grad():  # independent: CLIP image/text embeddings of every frame's patches and of the caption
        text = clip.text_projection(clip.text_model(**tokens).pooler_output)
        text = text / text.norm(dim=-1, keepdim=True)
        frames = pixel_values.flatten(0, 1)  # tiny CLIP: no re-normalisation, same 32 px
        patches = clip.vision_model(pixel_values=frames).last_hidden_state[:, 1:]
        patches = clip.visual_projection(clip.vision_model.post_layernorm(patches))
        patches = patches / patches.norm(dim=-1, keepdim=True)
        per_frame = (patches.reshape(2, 4, 16, -1) * text[:, None, None]).sum(-1)  # CLIP grid 4x4 = tubelet grid
        expected = per_frame.reshape(2, 2, 2, 16).mean(2)  # the 2 frames of a tubelet
        got = model.patch_relevance(pixel_values, model.caption_embeddings(**tokens))
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # a CLIP grid that differs from the tubelet grid is resized to it
    coarse = tiny(clip_model_name_or_path=tiny_clip(patch_size=16))
    assert coarse.patch_relevance(pixel_values, coarse.caption_embeddings(**tokens)).shape == (2, 2, 16)


def test_clip_is_frozen_gets_no_gradient_and_is_not_saved(tmp_path, clip_folder):
    model = tiny(contrastive_weight=1.0, clip_model_name_or_path=str(clip_folder)).train()
    clip_parameters = list(model.clip.model.parameters())
    assert not any(p.requires_grad for p in clip_parameters)
    assert not any("clip" in key for key in model.state_dict()) and len(list(model.parameters())) < 60
    inputs = {"pixel_values": clips(), **model.tokenize(CAPTIONS)}
    out = model(**inputs)
    out.loss.backward()
    assert all(p.grad is None for p in clip_parameters)
    assert model.video_projection.weight.grad.abs().sum() > 0 and model.encoder.blocks[0].attn.qkv.weight.grad is not None
    model.save_pretrained(tmp_path)
    assert not any("clip" in key for key in load_file(tmp_path / "model.safetensors"))
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path).train()
    reference = CLIPModel.from_pretrained(clip_folder)
    assert all(torch.equal(a, b) for a, b in zip(loaded.clip.model.state_dict().values(), reference.state_dict().values()))
    model.mask_rng = torch.Generator().manual_seed(0)
    loaded.mask_rng = torch.Generator().manual_seed(0)
    assert torch.equal(model(**inputs).loss, loaded(**inputs).loss)  # bit-exact, CLIP reloaded from its path
    classifier = AutoModelForVideoClassification.from_pretrained(tmp_path, num_labels=3)
    assert type(classifier).__name__ == "TGMForVideoClassification" and classifier(clips()).logits.shape == (2, 3)


def test_info_nce_negatives_come_from_the_batch():
    video = torch.nn.functional.normalize(torch.randn(3, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    text = torch.nn.functional.normalize(torch.randn(3, 8, generator=torch.Generator().manual_seed(1)), dim=-1)
    different = torch.eye(3, dtype=torch.bool)
    logits = video @ text.T / 0.07
    manual = (torch.nn.functional.cross_entropy(logits, torch.arange(3)) + torch.nn.functional.cross_entropy(logits.T, torch.arange(3))) / 2
    torch.testing.assert_close(video_text_info_nce(video, text, different, 0.07), manual)
    # clips 0 and 1 share a caption: each is neither the other's negative nor positive
    same = different.clone()
    same[0, 1] = same[1, 0] = True
    candidates = [[0, 2], [1, 2], [0, 1, 2]]

    def direction(scores):
        return torch.stack([torch.logsumexp(scores[i, c], 0) - scores[i, i] for i, c in enumerate(candidates)]).mean()

    torch.testing.assert_close(video_text_info_nce(video, text, same, 0.07), (direction(logits) + direction(logits.T)) / 2)
    # in the model: the contrastive term of clip 0 depends on the other clip's caption (its negative)
    model = tiny(contrastive_weight=1.0)
    pixel_values = clips()

    def contrastive(captions):
        model.mask_rng = torch.Generator().manual_seed(0)
        with torch.no_grad():
            return model(pixel_values, **model.tokenize(captions), bool_masked_pos=top_relevance_mask(torch.rand(2, 2, 16, generator=torch.Generator().manual_seed(0)), 0.6)).loss_terms["contrastive"]

    assert not torch.equal(contrastive(CAPTIONS), contrastive([CAPTIONS[0], "a video of a moving dress"]))
    assert torch.equal(contrastive([CAPTIONS[0], CAPTIONS[0]]), torch.zeros(()))  # the only other clip is no negative


def test_explicit_mask_overrides_the_text_guided_one_and_bad_inputs_get_clear_errors(tmp_path):
    model = tiny()
    mask = top_relevance_mask(torch.rand(2, 2, 16, generator=torch.Generator().manual_seed(3)), 0.25)
    out = model(clips(), **model.tokenize(CAPTIONS), bool_masked_pos=mask)
    assert torch.equal(out.mask, mask) and out.relevance is None
    assert torch.equal(model(clips(), bool_masked_pos=mask).loss, out.loss)  # no captions needed then
    with pytest.raises(ValueError, match="needs the captions to choose the text-guided mask: pass input_ids"):
        model(clips())
    with pytest.raises(ValueError, match="needs the captions for the video-text contrastive term"):
        tiny(contrastive_weight=1.0)(clips(), bool_masked_pos=mask)
    with pytest.raises(ValueError, match="hides no patch"):
        model(clips(), bool_masked_pos=torch.zeros(2, 32, dtype=torch.bool))
    long_caption = "a video of " + "a very long caption " * 5
    with pytest.raises(ValueError, match=r"caption 1 \('a video of a very long.*is 90 tokens long but the CLIP text model takes at most 77"):
        model.tokenize([CAPTIONS[0], long_caption])
    collator = CaptionCollator(model.config)
    with pytest.raises(ValueError, match="tokens long but the CLIP text model takes at most 77"):
        collator([{"pixel_values": torch.zeros(4, 3, 32, 32), "caption": c} for c in (CAPTIONS[0], long_caption)])
    batch = collator([{"pixel_values": torch.zeros(4, 3, 32, 32), "caption": c} for c in CAPTIONS])
    assert set(batch) == {"pixel_values", "input_ids", "attention_mask"}
    assert torch.equal(batch["input_ids"], model.tokenize(CAPTIONS)["input_ids"])
    other = SPEC.pretraining_class(SPEC.make_config("tiny", contrastive_weight=1.0), clip_model=tiny_clip(projection_dim=8))
    with pytest.raises(ValueError, match="CLIP embeds into 8 dimensions but clip_projection_dim is 16: set clip_projection_dim=8"):
        other.tokenize(CAPTIONS)
    with pytest.raises(ValueError, match="tgm has no config field"):
        SPEC.make_config("tiny", mask_ration=0.5)


def test_captions_come_from_a_column_or_from_class_names():
    from datasets import ClassLabel, Dataset, Features, Value

    from hf_mim.data.video import add_captions

    labelled = Dataset.from_dict(
        {"video": ["a.mp4", "b.mp4"], "label": [1, 0]},
        features=Features({"video": Value("string"), "label": ClassLabel(names=["t-shirt", "ankle_boot"])}),
    )
    derived, column = add_captions(labelled)
    assert column == "caption" and derived["caption"] == ["a video of a moving ankle boot", "a video of a moving t-shirt"]
    given = labelled.add_column("text", ["a person folds a shirt", "a boot walks"])
    assert add_captions(given, "text")[0]["text"] == ["a person folds a shirt", "a boot walks"]
    with pytest.raises(DataError, match="no caption column 'text' in the data .*pass --caption_column NAME"):
        add_captions(labelled, "text")
    with pytest.raises(DataError, match="no caption column 'caption'"):
        add_captions(Dataset.from_dict({"video": ["a.mp4"]}))


@pytest.fixture(scope="module")
def video_folder(tmp_path_factory):
    pytest.importorskip("av")
    from hf_mim.data.video import make_demo_videos

    return make_demo_videos(tmp_path_factory.mktemp("videos"), clips_per_class=(3, 2), num_frames=8)


def test_cli_pretrain_on_a_video_folder_with_derived_captions(video_folder, tmp_path):
    from hf_mim.cli import main

    out = tmp_path / "run"
    main([
        "pretrain", "--method", "tgm", "--data", str(video_folder), "--size", "tiny", "--max_steps", "30",
        "--per_device_train_batch_size", "10", "--learning_rate", "3e-3", "--warmup_steps", "3", "--logging_steps", "1",
        "--save_strategy", "no", "--output_dir", str(out), "--processor_overrides", '{"frame_stride": 2}',
        "--crop_scale_min", "0.6", "--seed", "0", "--disable_tqdm", "true", "--dataloader_num_workers", "0",
        "--config_overrides", '{"contrastive_weight": 1.0}',
    ])
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    losses = [e["loss"] for e in history if "loss" in e]
    assert len(losses) == 30 and sum(losses[-5:]) / 5 < 0.95 * sum(losses[:5]) / 5, losses
    assert all("loss_contrastive" in e for e in history if "loss" in e)
    encoder = AutoModel.from_pretrained(out)
    assert type(encoder).__name__ == "TGMModel" and encoder(clips()).last_hidden_state.shape == (2, 32, 32)
    assert main(["pretrain", "--method", "tgm", "--data", str(video_folder), "--caption_column", "text",
                 "--size", "tiny", "--output_dir", str(tmp_path / "bad")]) == 1
    assert main(["pretrain", "--method", "videomae2", "--data", str(video_folder), "--caption_column", "caption",
                 "--output_dir", str(tmp_path / "bad2")]) == 1


def test_card(tmp_path):
    from hf_mim.hub.cards import build_model_card

    model = tiny()
    processor = SPEC.make_processor(model.config)
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    card = str(build_model_card(AutoConfig.from_pretrained(checkpoint), "me/tgm-tiny", results={"knn_top1_k20": 0.5}))
    assert "pipeline_tag: video-classification" in card.split("---")[1] and "{{" not in card
    assert "60% of the patches most related to the caption are masked" in " ".join(card.split())
