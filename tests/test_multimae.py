"""MultiMAE mechanism: Dirichlet split of a fixed visible-token budget over modalities, exact per-modality masks,
per-modality input adapters with row-first sin-cos positions, one cross-attention decoder per task, per-task
losses equal to hand computations, RGB-only batches on a multi-modal config."""

import math

import pytest
import torch

import hf_mim
from hf_mim.layers.pos_embed import sincos_2d
from hf_mim.models.multimae import MultiMAEConfig, MultiMAEForPreTraining, MultiMAEModel
from hf_mim.models.multimae.modeling_multimae import (
    generate_random_masks,
    sample_task_proportions,
    standardize_depth,
)
from tests.conftest import tiny_config

ALL = ["rgb", "depth", "semseg"]


def multimodal_config(**overrides):
    return tiny_config("multimae", input_modalities=ALL, output_tasks=ALL, **overrides)


def synthetic_batch(batch=4, seed=0, classes=5):
    g = torch.Generator().manual_seed(seed)
    return dict(
        pixel_values=torch.randn(batch, 3, 32, 32, generator=g),
        depth=torch.rand(batch, 1, 32, 32, generator=g) * 10,
        semseg=torch.randint(0, classes, (batch, 8, 8), generator=g),
    )


def fixed_task_masks(batch, visible_per_task, length=16, seed=0):
    """Per-modality masks with the given visible counts per modality (same total in every row)."""
    g = torch.Generator().manual_seed(seed)
    masks = {}
    for name, counts in visible_per_task.items():
        rows = []
        for count in counts:
            row = torch.ones(length, dtype=torch.bool)
            row[torch.randperm(length, generator=g)[:count]] = False
            rows.append(row)
        masks[name] = torch.stack(rows)
    return masks


# ------------------------------------------------------------------------------------------------ masking
def test_dirichlet_split_keeps_exactly_the_visible_budget():
    counts, budget, batch = [16, 16, 16], 8, 256
    info, requested = generate_random_masks(counts, batch, budget, generator=torch.Generator().manual_seed(0))
    assert info.mask.shape == (batch, 48)
    assert ((~info.mask).sum(1) == budget).all()
    assert requested.shape == (batch, 3) and (requested >= 0).all()
    # per modality: what was requested, up to the one-token rounding fix-up, never more than the modality has
    visible = torch.stack([(~m).sum(1) for m in info.mask.split(counts, dim=1)], dim=1)
    assert (visible - requested).abs().max() <= 1
    assert (visible <= 16).all()
    exact = requested.sum(1) == budget
    assert exact.any() and (visible[exact] == requested[exact]).all()
    # ids_keep are the visible tokens, ids_restore inverts the shuffle
    assert not torch.gather(info.mask, 1, info.ids_keep).any()
    shuffle = torch.argsort(info.ids_restore, dim=1)
    assert torch.equal(shuffle[:, :budget], info.ids_keep)


def test_requested_counts_are_rounded_dirichlet_shares():
    shares = sample_task_proportions(64, 3, 1.0, generator=torch.Generator().manual_seed(5))
    _, requested = generate_random_masks([16] * 3, 64, 98 // 12, generator=torch.Generator().manual_seed(5))
    assert torch.allclose(shares.sum(1), torch.ones(64))
    assert torch.equal(requested, (shares * 8).round().long())


def test_dirichlet_one_gives_uniform_marginals_and_varied_splits():
    shares = sample_task_proportions(8000, 3, 1.0, generator=torch.Generator().manual_seed(1))
    assert torch.allclose(shares.mean(0), torch.full((3,), 1 / 3), atol=0.02)
    # Dirichlet(1,1,1) marginal is Beta(1, 2): variance 1/18
    assert shares[:, 0].var().item() == pytest.approx(1 / 18, rel=0.1)
    peaked = sample_task_proportions(8000, 3, [8.0, 1.0, 1.0], generator=torch.Generator().manual_seed(1))
    assert peaked[:, 0].mean().item() == pytest.approx(0.8, abs=0.02)


def test_sample_tasks_uniformly_drops_modalities_but_keeps_the_budget():
    info, requested = generate_random_masks(
        [16] * 3, 512, 8, sample_tasks_uniformly=True, generator=torch.Generator().manual_seed(2)
    )
    assert ((~info.mask).sum(1) == 8).all()
    assert (requested == 0).any(dim=1).float().mean() > 0.3  # subsets of 1 or 2 modalities are common


def test_masks_are_reproducible_from_mask_rng():
    model = MultiMAEForPreTraining(multimodal_config()).eval()
    batch = synthetic_batch()
    outs = []
    for _ in range(2):
        model.mask_rng = torch.Generator().manual_seed(7)
        with torch.no_grad():
            outs.append(model(**batch))
    assert torch.equal(torch.cat(list(outs[0].task_masks.values()), 1), torch.cat(list(outs[1].task_masks.values()), 1))
    assert torch.equal(outs[0].loss, outs[1].loss)


def test_forward_masks_split_budget_over_the_given_modalities():
    config = multimodal_config()
    model = MultiMAEForPreTraining(config).eval()
    with torch.no_grad():
        out = model(**synthetic_batch(16))
    assert list(out.task_masks) == ALL
    visible = sum((~m).sum(1) for m in out.task_masks.values())
    assert (visible == config.num_encoded_tokens).all()
    per_task = torch.stack([(~m).sum(1) for m in out.task_masks.values()], 1)
    assert (per_task.max(1).values < config.num_encoded_tokens).any()  # split over modalities, not all from one


def test_injected_per_modality_masks_are_used_exactly():
    config = multimodal_config()
    torch.manual_seed(0)
    model = MultiMAEForPreTraining(config).eval()
    batch = synthetic_batch(3)
    masks = fixed_task_masks(3, {"rgb": [5, 0, 2], "depth": [3, 4, 2], "semseg": [0, 4, 4]})
    batch["depth"] = standardize_depth(batch["depth"])
    model.config.standardize_depth = False  # so model and encoder see the same depth
    with torch.no_grad():
        out = model(**batch, task_masks=masks)
        encoded = model.encoder(**batch, task_masks=masks)
        # hand: adapter tokens of every modality, keep the visible ones (config order), append the global token
        tokens = torch.cat(
            [model.encoder.input_adapters[m](batch[k], k)[0] for m, k in zip(ALL, ["pixel_values", "depth", "semseg"])], 1
        )
        concatenated = torch.cat([masks[m] for m in ALL], 1)
        visible = torch.stack([tokens[b][~concatenated[b]] for b in range(3)])
        hidden = torch.cat([visible, model.encoder.global_tokens.expand(3, -1, -1)], 1)
        for block in model.encoder.blocks:
            hidden = block(hidden)[0]
    for name in ALL:
        assert torch.equal(out.task_masks[name], masks[name])
    assert encoded.last_hidden_state.shape == (3, 8 + 1, config.hidden_size)
    torch.testing.assert_close(encoded.last_hidden_state, hidden)
    # bool_masked_pos (the concatenated masks) is the same input
    with torch.no_grad():
        again = model(**batch, bool_masked_pos=concatenated)
    assert torch.equal(again.loss, out.loss)


# ------------------------------------------------------------------------------------------------ adapters
def test_input_adapters_use_row_first_sincos_and_separate_projections():
    config = multimodal_config()
    model = MultiMAEModel(config)
    table = sincos_2d(config.grid_size, config.hidden_size, "mocov3")
    quarter = config.hidden_size // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float64) / quarter)
    for name in ALL:
        adapter = model.input_adapters[name]
        assert torch.equal(adapter.pos_embed[0], table) and not adapter.pos_embed.requires_grad
    # token (row 1, col 3) of a 4x4 grid: first quarter is sin(row * omega)
    assert torch.allclose(table[1 * 4 + 3, :quarter].double(), torch.sin(1 * omega), atol=1e-6)
    assert model.input_adapters["rgb"].proj.in_channels == 3 and model.input_adapters["depth"].proj.in_channels == 1
    semseg = model.input_adapters["semseg"]
    assert semseg.class_embed.num_embeddings == config.semseg_num_classes
    assert semseg.proj.kernel_size == (config.patch_size // config.semseg_stride,) * 2
    # the semseg adapter: embedding of ids, then the strided conv, then positions
    ids = torch.randint(0, 5, (2, 8, 8))
    expected = semseg.proj(semseg.class_embed(ids).permute(0, 3, 1, 2)).flatten(2).transpose(1, 2) + semseg.pos_embed
    torch.testing.assert_close(semseg(ids)[0], expected)
    # no cls token in front: the global token is appended at the end
    out = model(pixel_values=torch.randn(2, 3, 32, 32))
    assert out.last_hidden_state.shape == (2, 16 + 1, config.hidden_size)


def test_one_decoder_per_task_with_cross_attention_and_no_residual():
    config = multimodal_config()
    torch.manual_seed(0)
    model = MultiMAEForPreTraining(config).eval()
    assert list(model.decoders) == ["rgb", "depth", "semseg", "norm_rgb"]
    ids = {name: {id(p) for p in decoder.parameters()} for name, decoder in model.decoders.items()}
    assert all(ids[a].isdisjoint(ids[b]) for a in ids for b in ids if a != b)
    batch = synthetic_batch(2)
    masks = fixed_task_masks(2, {"rgb": [3, 1], "depth": [2, 4], "semseg": [3, 3]})
    with torch.no_grad():
        out = model(**batch, task_masks=masks)
        # the pre-training model standardises depth before encoding it
        encoded = model.encoder(**{**batch, "depth": standardize_depth(batch["depth"])}, task_masks=masks)
    shapes = {t: tuple(p.shape) for t, p in out.predictions.items()}
    assert shapes == {"rgb": (2, 3, 32, 32), "depth": (2, 1, 32, 32), "semseg": (2, 5, 8, 8), "norm_rgb": (2, 3, 32, 32)}

    # hand computation of the depth decoder (official SpatialOutputAdapter)
    dec = model.decoders["depth"]
    with torch.no_grad():
        x = dec.proj_context(encoded.last_hidden_state)
        visible, glob = x[:, :8], x[:, 8:]
        full = torch.cat([visible, dec.mask_token.expand(2, 48 - 8, -1)], 1)
        full = torch.gather(full, 1, encoded.ids_restore[..., None].expand(-1, -1, full.shape[-1]))
        full = full + torch.cat([dec.task_embeddings[m] + dec.pos_embed for m in ALL], 1)
        queries = full[:, 16:32]  # the depth slice: encoded tokens where visible, mask tokens elsewhere
        context = torch.cat([torch.stack([full[b][~torch.cat([masks[m] for m in ALL], 1)[b]] for b in range(2)]), glob], 1)
        h = dec.cross_attn(dec.query_norm(queries), dec.context_norm(context))[0]  # no residual from the queries
        h = h + dec.mlp(dec.out_norm(h))
        for block in dec.blocks:
            h = block(h)[0]
        h = dec.out_proj(h).reshape(2, 4, 4, 1, 8, 8).permute(0, 3, 1, 4, 2, 5).reshape(2, 1, 32, 32)
    torch.testing.assert_close(out.predictions["depth"], h)


def test_decoders_are_task_specific():
    config = multimodal_config()
    torch.manual_seed(0)
    model = MultiMAEForPreTraining(config).eval()
    batch = synthetic_batch(2)
    masks = fixed_task_masks(2, {"rgb": [3, 1], "depth": [2, 4], "semseg": [3, 3]})
    with torch.no_grad():
        before = model(**batch, task_masks=masks)
        model.decoders["depth"].out_proj.bias.add_(1.0)
        after = model(**batch, task_masks=masks)
    assert torch.allclose(after.predictions["depth"], before.predictions["depth"] + 1.0, atol=1e-5)
    for task in ("rgb", "semseg", "norm_rgb"):
        assert torch.equal(after.predictions[task], before.predictions[task])
    assert not torch.equal(before.predictions["rgb"], before.predictions["norm_rgb"])


# ------------------------------------------------------------------------------------------------ losses
def hand_masked_mean(per_pixel, token_mask, patch):
    """Per image: mean over the pixels of masked tokens; then mean over images that have masked tokens."""
    values = []
    for b in range(per_pixel.shape[0]):
        grid = token_mask[b].reshape(4, 4)
        pixels = grid.repeat_interleave(patch, 0).repeat_interleave(patch, 1)
        if pixels.any():
            values.append(per_pixel[b][pixels].mean())
    return torch.stack(values).mean()


def test_task_losses_equal_hand_computation():
    config = multimodal_config()
    torch.manual_seed(0)
    model = MultiMAEForPreTraining(config).eval()
    batch = synthetic_batch(3)
    # rgb of image 1 fully visible: that image drops out of the rgb means (official nanmean)
    masks = fixed_task_masks(3, {"rgb": [2, 16, 3], "depth": [4, 0, 3], "semseg": [10, 0, 10]})
    with torch.no_grad():
        out = model(**batch, task_masks=masks)
    pred = out.predictions
    rgb = batch["pixel_values"]
    rgb_loss = hand_masked_mean((pred["rgb"] - rgb).pow(2).mean(1), masks["rgb"], 8)

    # per-patch normalised target (unbiased variance, eps inside the sqrt), built patch by patch
    norm_target = torch.empty_like(rgb)
    for b in range(3):
        for r in range(4):
            for c in range(4):
                patch = rgb[b, :, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8]
                norm_target[b, :, r * 8 : (r + 1) * 8, c * 8 : (c + 1) * 8] = (patch - patch.mean()) / math.sqrt(
                    patch.var().item() + 1e-6
                )
    norm_loss = hand_masked_mean((pred["norm_rgb"] - norm_target).pow(2).mean(1), masks["rgb"], 8)

    depth = batch["depth"]
    std_depth = torch.empty_like(depth)
    for b in range(3):
        values = depth[b].flatten().sort().values[int(0.1 * 1024) : int(0.9 * 1024)]
        std_depth[b] = (depth[b] - values.mean()) / math.sqrt(values.var().item() + 1e-6)
    depth_loss = hand_masked_mean((pred["depth"] - std_depth).abs().mean(1), masks["depth"], 8)

    log_probs = torch.log_softmax(pred["semseg"], dim=1)
    ce = -log_probs.gather(1, batch["semseg"][:, None]).squeeze(1)
    semseg_loss = hand_masked_mean(ce, masks["semseg"], 2)

    expected = {"rgb_loss": rgb_loss, "norm_rgb_loss": norm_loss, "depth_loss": depth_loss, "semseg_loss": semseg_loss}
    assert set(out.loss_terms) == set(expected)
    for name, value in expected.items():
        torch.testing.assert_close(out.loss_terms[name], value, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss, sum(expected.values()), rtol=1e-5, atol=1e-6)


def test_fully_visible_modality_gives_finite_gradients():
    """An image whose rgb is fully visible drops out of the rgb means (official nanmean) without 0/0 reaching the
    gradients: every gradient is finite and that image's rgb pixels get none from the rgb losses."""
    config = multimodal_config()
    torch.manual_seed(0)
    model = MultiMAEForPreTraining(config).eval()
    batch = synthetic_batch(2)
    masks = fixed_task_masks(2, {"rgb": [16, 2], "depth": [0, 3], "semseg": [0, 11]})
    pixels = batch["pixel_values"].requires_grad_(True)
    out = model(**batch, task_masks=masks)
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert torch.isfinite(pixels.grad).all()
    # the rgb loss is image 1's alone
    rgb_only = MultiMAEForPreTraining(config).eval()
    rgb_only.load_state_dict(model.state_dict())
    with torch.no_grad():
        out_1 = rgb_only(**{k: v[1:].detach() for k, v in batch.items()}, task_masks={k: v[1:] for k, v in masks.items()})
    torch.testing.assert_close(out.loss_terms["rgb_loss"], out_1.loss_terms["rgb_loss"], rtol=1e-5, atol=1e-6)


def test_standardize_depth_uses_the_truncated_statistics():
    depth = torch.arange(100, dtype=torch.float).reshape(1, 1, 10, 10)
    kept = torch.arange(10, 90, dtype=torch.float)
    expected = (depth - kept.mean()) / torch.sqrt(kept.var() + 1e-6)
    torch.testing.assert_close(standardize_depth(depth), expected)


def test_loss_on_unmasked_uses_every_pixel():
    config = multimodal_config(loss_on_unmasked=True, extra_norm_pix_loss=False)
    torch.manual_seed(0)
    model = MultiMAEForPreTraining(config).eval()
    batch = synthetic_batch(2)
    with torch.no_grad():
        out = model(**batch)
    torch.testing.assert_close(out.loss_terms["rgb_loss"], (out.predictions["rgb"] - batch["pixel_values"]).pow(2).mean())


# ------------------------------------------------------------------------------------------------ data
def test_rgb_only_batch_on_the_multimodal_config():
    config = multimodal_config()
    model = MultiMAEForPreTraining(config)
    out = model(pixel_values=torch.randn(4, 3, 32, 32))
    assert list(out.task_masks) == ["rgb"]
    assert ((~out.task_masks["rgb"]).sum(1) == config.num_encoded_tokens).all()
    assert set(out.loss_terms) == {"rgb_loss", "norm_rgb_loss"}
    out.loss.backward()
    # cross-modal prediction from RGB alone on request
    with torch.no_grad():
        out = model(pixel_values=torch.randn(2, 3, 32, 32), output_tasks=["depth", "semseg"])
    assert out.loss is None and out.predictions["depth"].shape == (2, 1, 32, 32)


def test_default_config_is_the_paper_setting():
    config = MultiMAEConfig()
    assert config.input_modalities == ALL and config.output_tasks == ALL
    assert config.decoder_tasks == ALL + ["norm_rgb"]
    assert (config.num_encoded_tokens, config.num_global_tokens, config.dirichlet_alphas) == (98, 1, 1.0)
    assert (config.decoder_hidden_size, config.decoder_num_hidden_layers, config.decoder_num_attention_heads) == (256, 2, 8)
    assert (config.semseg_num_classes, config.semseg_stride, config.pos_embed_layout) == (133, 4, "mocov3")
    assert hf_mim.get_method("multimae").training_defaults["base_learning_rate"] == 1e-4


def test_config_and_input_errors_name_the_fix():
    with pytest.raises(ValueError, match="input_modalities"):
        MultiMAEConfig(input_modalities=["rgb", "normals"])
    with pytest.raises(ValueError, match="extra_norm_pix_loss"):
        MultiMAEConfig(output_tasks=["depth"])
    with pytest.raises(ValueError, match="semseg_stride"):
        MultiMAEConfig(patch_size=14, image_size=224)
    with pytest.raises(ValueError, match="num_encoded_tokens"):
        tiny_config("multimae", num_encoded_tokens=17)
    model = MultiMAEForPreTraining(tiny_config("multimae"))
    with pytest.raises(ValueError, match="input_modalities"):
        model.encoder(pixel_values=torch.randn(1, 3, 32, 32), depth=torch.rand(1, 1, 32, 32))
    multi = MultiMAEForPreTraining(multimodal_config())
    with pytest.raises(ValueError, match="integer class ids"):
        multi(pixel_values=torch.randn(1, 3, 32, 32), semseg=torch.rand(1, 8, 8))
