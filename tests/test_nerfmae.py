"""NeRF-MAE mechanism: 3-D block masks shared by the batch, which voxels each loss sees (RGB: every occupied voxel;
alpha: valid voxels of masked tokens, never the padding), the feature extractor (padding, validity mask, density
normalisation, clear errors), grid sources (.npz folder, parquet), save/load, remote code, card, CLI + Trainer."""

import json

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForPreTraining

import hf_mim
from hf_mim.data.grids import load_grid_dataset, make_primitive_grids, prepare_grid_dataset
from hf_mim.processing.grid_processing_mim import NeRFMAEFeatureExtractor, density_to_alpha
from tests.conftest import demo_grid_batch

SPEC = hf_mim.get_method("nerfmae")


def tiny(**overrides):
    torch.manual_seed(0)
    return SPEC.pretraining_class(SPEC.make_config("tiny", **overrides)).eval()


def test_block_mask_is_one_mask_of_whole_blocks_shared_by_the_batch():
    model = tiny()
    grid, block = model.config.token_grid, model.config.mask_block_size
    masks = [model.mask_generator(3, torch.Generator().manual_seed(seed)) for seed in range(20)]
    for mask in masks:
        assert mask.shape == (3, grid**3) and mask.dtype == torch.bool
        assert (mask == mask[0]).all()  # one mask per batch, as the official window_masking_3d
        cubes = mask[0].view(grid // block, block, grid // block, block, grid // block, block)
        assert (cubes == cubes[:, :1, :, :1, :, :1]).all()  # constant inside each block of tokens
        assert 0 < int(mask[0].sum()) < grid**3
    ratio = torch.stack([m[0].float().mean() for m in masks]).mean()
    assert abs(ratio - 0.75) < 0.05  # Bernoulli(0.75) per block
    assert not torch.equal(masks[0], masks[1])
    # forward draws from mask_rng: same seed, same mask
    grids = demo_grid_batch(2, 32)
    outs = []
    for _ in range(2):
        model.mask_rng = torch.Generator().manual_seed(4)
        with torch.no_grad():
            outs.append(model(**grids).mask)
    assert torch.equal(*outs)


def test_rgb_loss_sees_every_occupied_voxel_alpha_loss_only_valid_voxels_of_masked_tokens():
    """Gradients of each loss term w.r.t. the prediction show exactly which voxels it reads."""
    model = tiny()
    grids = demo_grid_batch(2, 32)
    grids["valid_mask"][:, 28:] = False  # a padded slab (its values are zero, as the extractor pads)
    grids["grid_values"][:, :, 28:] = 0
    mask = model.mask_generator(2, torch.Generator().manual_seed(1))
    logits = torch.randn(2, 4, 32, 32, 32, requires_grad=True)
    rgb_loss, alpha_loss = model.reconstruction_loss(logits, grids["grid_values"], grids["valid_mask"], mask)
    rgb_grad, alpha_grad = torch.autograd.grad(rgb_loss, logits, retain_graph=True)[0], torch.autograd.grad(alpha_loss, logits)[0]
    occupied = grids["grid_values"][:, 3] > 0.01
    masked = model.voxel_mask(mask)
    assert occupied.any() and (occupied & ~masked).any()
    assert torch.equal(rgb_grad[:, :3].ne(0).any(1), occupied)  # masked or not
    assert not rgb_grad[:, 3].any()
    assert torch.equal(alpha_grad[:, 3].ne(0), grids["valid_mask"] & masked)
    assert not alpha_grad[:, :3].any() and not alpha_grad[:, 3, 28:].any()  # padding never scored
    # the official normalisation: RGB sums its 3 channels per occupied voxel, alpha goes through a sigmoid
    expected_rgb = ((logits[:, :3] - grids["grid_values"][:, :3]) ** 2).sum(1)[occupied].sum() / occupied.sum()
    scored = grids["valid_mask"] & masked
    expected_alpha = ((logits[:, 3].sigmoid() - grids["grid_values"][:, 3]) ** 2)[scored].mean()
    torch.testing.assert_close(rgb_loss, expected_rgb)
    torch.testing.assert_close(alpha_loss, expected_alpha)


def test_mask_token_replaces_masked_tokens_after_the_position_embedding():
    model = SPEC.model_class(SPEC.make_config("tiny")).eval()
    grids = demo_grid_batch(2, 32)
    mask = SPEC.pretraining_class(model.config).mask_generator(2, torch.Generator().manual_seed(0))
    with torch.no_grad():
        embedded = model(grids["grid_values"], bool_masked_pos=mask, output_hidden_states=True).hidden_states[0]
    tokens = embedded.permute(0, 2, 3, 4, 1).flatten(1, 3)
    assert torch.equal(tokens[mask], model.mask_token.expand(int(mask.sum()), -1))  # no position added
    assert not torch.equal(tokens[~mask][:1], model.mask_token[None])
    maps = model(grids["grid_values"]).feature_maps
    assert [m.shape[1:] for m in maps] == [(12 * 2**i, *(8 // 2**i,) * 3) for i in range(4)]


def test_feature_extractor_pads_builds_the_validity_mask_and_normalises_density():
    raw = np.random.default_rng(0).normal(size=(20, 32, 30, 4)).astype(np.float32)
    out = NeRFMAEFeatureExtractor(32)(raw)
    values, valid = out["grid_values"][0], out["valid_mask"][0]
    assert values.shape == (4, 32, 32, 32) and valid.sum() == 20 * 32 * 30
    assert valid[:20, :, :30].all() and not valid[20:].any() and not valid[:, :, 30:].any()
    assert not values[:, 20:].any() and not values[:, :, :, 30:].any()
    torch.testing.assert_close(values[:3, :20, :, :30], torch.from_numpy(raw[..., :3]).permute(3, 0, 1, 2))
    expected = np.clip(1.0 - np.exp(-np.exp(raw[..., 3]) / 100.0), 0.0, 1.0)  # official density_to_alpha
    torch.testing.assert_close(values[3, :20, :, :30], torch.from_numpy(expected))
    plain = NeRFMAEFeatureExtractor(32, normalize_density=False)(raw)["grid_values"][0]
    torch.testing.assert_close(plain[3, :20, :, :30], torch.from_numpy(raw[..., 3]))
    as_bytes = NeRFMAEFeatureExtractor(32, normalize_density=False)(np.full((32, 32, 32, 4), 255, np.uint8))
    assert torch.equal(as_bytes["grid_values"], torch.ones(1, 4, 32, 32, 32))
    big = NeRFMAEFeatureExtractor(32)(np.zeros((40, 32, 32, 4), np.float32))
    assert big["grid_values"].shape == (1, 4, 32, 32, 32) and big["valid_mask"].all()
    assert density_to_alpha(torch.tensor([-50.0, 50.0])).tolist() == [0.0, 1.0]


def test_bad_grids_masks_and_settings_are_refused_with_clear_errors():
    extractor = NeRFMAEFeatureExtractor(32)
    nan = np.zeros((32, 32, 32, 4), np.float32)
    nan[1, 2, 3, 0] = np.nan
    with pytest.raises(ValueError, match="1 NaN or infinite values"):
        extractor(nan)
    with pytest.raises(ValueError, match=r"needs 4 channels .* got shape \(32, 32, 32, 3\)"):
        extractor(np.zeros((32, 32, 32, 3), np.float32))
    with pytest.raises(ValueError, match="must have 4 dimensions"):
        extractor.process_grid(np.zeros((32, 32, 4), np.float32))
    with pytest.raises(ValueError, match="grid_size 40 is not divisible by 32"):
        NeRFMAEFeatureExtractor(40)
    with pytest.raises(ValueError, match=r"grid_size 40 must be divisible by patch_size \* 8 = 32"):
        SPEC.make_config("tiny", grid_size=40)
    with pytest.raises(ValueError, match="embed_dim must be divisible by 6"):
        SPEC.make_config("tiny", embed_dim=16)
    model = tiny()
    grids = demo_grid_batch(2, 32)
    with pytest.raises(ValueError, match=r"grid_values must have shape \[batch, 4, 32, 32, 32\]"):
        model(grid_values=torch.zeros(2, 4, 24, 32, 32))
    with pytest.raises(ValueError, match="valid_mask must be a bool tensor"):
        model(grid_values=grids["grid_values"], valid_mask=grids["valid_mask"].float())
    for mask, problem in ((torch.zeros(2, 512, dtype=torch.bool), "hides no patch"),
                          (torch.ones(2, 512, dtype=torch.bool), "hides every patch")):
        with pytest.raises(ValueError, match=problem):
            model(**grids, bool_masked_pos=mask)


def test_npz_folder_and_parquet_sources(tmp_path):
    demo = make_primitive_grids(3, size=32, seed=5).with_format("numpy")
    folder = tmp_path / "grids"
    folder.mkdir()
    for i in range(3):
        np.savez(folder / f"scene{i}.npz", rgbsigma=demo[i]["rgbsigma"])
    np.savez(tmp_path / "pickled.npz", rgbsigma=np.array([{"a": 1}], dtype=object))
    extractor = NeRFMAEFeatureExtractor(32)
    samples = prepare_grid_dataset(load_grid_dataset(str(folder)), extractor)
    assert len(samples) == 3
    assert torch.equal(samples[1]["grid_values"], extractor.process_grid(demo[1]["rgbsigma"])["grid_values"])
    with pytest.raises(Exception, match="no 'validation'|not 'validation'"):
        load_grid_dataset(str(folder), split="validation")
    from hf_mim.data.grids import read_npz_grid

    with pytest.raises(ValueError, match="allow_pickle"):  # object arrays are never unpickled
        read_npz_grid(str(tmp_path / "pickled.npz"))
    make_primitive_grids(4, size=32, seed=6).to_parquet(str(tmp_path / "train.parquet"))
    from_parquet = prepare_grid_dataset(load_grid_dataset(str(tmp_path / "train.parquet")), extractor, with_labels=True)
    reference = make_primitive_grids(4, size=32, seed=6).with_format("numpy")
    assert torch.equal(from_parquet[2]["grid_values"], extractor.process_grid(reference[2]["rgbsigma"])["grid_values"])
    assert int(from_parquet[2]["labels"]) == int(reference[2]["label"])
    assert torch.equal(torch.from_numpy(make_primitive_grids(2, size=32, seed=6).with_format("numpy")[1]["rgbsigma"]),
                       torch.from_numpy(reference[1]["rgbsigma"]))  # generated deterministically


def test_save_load_auto_classes_and_card(tmp_path):
    from hf_mim.hub.cards import build_model_card

    model = tiny()
    processor = SPEC.make_processor(model.config, normalize_density=False)
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    loaded = AutoModelForPreTraining.from_pretrained(checkpoint).eval()
    assert type(loaded) is hf_mim.NeRFMAEForPreTraining
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    inputs = SPEC.make_inputs(model, demo_grid_batch(2, 32))
    with torch.no_grad():
        assert torch.equal(model(**inputs).loss, loaded(**inputs).loss)
    reloaded = AutoFeatureExtractor.from_pretrained(checkpoint)
    assert type(reloaded) is NeRFMAEFeatureExtractor and reloaded.normalize_density is False
    assert type(AutoModel.from_pretrained(checkpoint)) is hf_mim.NeRFMAEModel

    with torch.no_grad():  # the extractor's output goes straight into the encoder
        features = AutoModel.from_pretrained(checkpoint).eval()(**processor(torch.rand(30, 32, 32, 4)))
    assert features.last_hidden_state.shape == (1, 1, 96) and len(features.feature_maps) == 4

    card = str(build_model_card(AutoConfig.from_pretrained(checkpoint), "me/nerfmae-tiny"))
    meta = card.split("---")[1]
    assert "masked-volume-modeling" in meta and "nerfmae" in meta
    assert "AutoFeatureExtractor" in card and "{{" not in card and "blocks of 2³ tokens" in card


def test_meta_build_and_cli_pretrain_loss_falls_under_trainer(tmp_path):
    """`hf-mim pretrain --method nerfmae` on the generated grids: the loss falls under Trainer; resume-free run."""
    from hf_mim.cli import main

    with torch.device("meta"):
        meta = SPEC.pretraining_class(SPEC.make_config("base"))
    assert sum(p.numel() for p in meta.parameters()) > 40_000_000  # Swin-S + decoder at 160³
    out = tmp_path / "run"
    main([
        "pretrain", "--method", "nerfmae", "--size", "tiny", "--data", "demo", "--max_steps", "12",
        "--max_train_samples", "2", "--per_device_train_batch_size", "2", "--learning_rate", "3e-3",
        "--warmup_steps", "0", "--logging_steps", "1", "--save_strategy", "no", "--output_dir", str(out),
        "--seed", "0", "--disable_tqdm", "true", "--config_overrides", '{"drop_path_rate": 0.0}',
    ])
    losses = [e["loss"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert len(losses) == 12 and sum(losses[-4:]) / 4 < 0.7 * sum(losses[:4]) / 4, losses
    assert AutoFeatureExtractor.from_pretrained(out).grid_size == 32 == AutoConfig.from_pretrained(out).grid_size
