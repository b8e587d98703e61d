"""CAE mechanism tests: encoder on visible patches only, regressor (mask queries cross-attending to visible
latents), stop-gradient alignment to the encoder's own latents of the masked patches, decoder on predicted
latents only, loss terms recomputed by hand, row-first positions and the block-wise mask generator."""

import math

import pytest
import torch
from torch.nn import functional as F

import hf_mim
from hf_mim.layers.patch_embed import normalize_patches, patchify
from hf_mim.masking.core import mask_from_noise
from hf_mim.models.cae.masking_cae import BlockMaskGenerator
from tests.conftest import tiny_config

SPEC = hf_mim.get_method("cae")


def build(**overrides):
    torch.manual_seed(0)
    config = tiny_config("cae", **overrides)
    model = SPEC.pretraining_class(config).eval()
    with torch.no_grad():  # non-trivial layer norms / layer scales / biases so every term is exercised
        for name, param in model.named_parameters():
            if name.endswith(("gamma", "q_bias", "v_bias")) or "norm" in name:
                param.add_(0.3 * torch.randn_like(param))
    return model


def fixed_mask(batch=2):
    """4x4 grid, 8 masked per row, different per row."""
    mask = torch.zeros(batch, 16, dtype=torch.bool)
    mask[0, [0, 1, 4, 5, 10, 11, 14, 15]] = True
    mask[1, [2, 3, 6, 7, 8, 9, 12, 13]] = True
    return mask[:batch]


def layer_norm(x, norm):
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def hand_regressor_block(block, queries, visible, pos_q, pos_v):
    """The official RegressorBlock written out: q = LN_q(x_q + pos_q); k = LN_k([vis, x_q] + [pos_v, pos_q]);
    v = LN_v([vis, x_q]) (no positions); x = x_q + g1 * attn; x = LN(x); x = x + g2 * mlp(x)."""
    attn = block.cross_attn
    kv = torch.cat([visible, queries], dim=1)
    q_in = layer_norm(queries + pos_q, block.norm1_q)
    k_in = layer_norm(kv + torch.cat([pos_v, pos_q], dim=1), block.norm1_k)
    v_in = layer_norm(kv, block.norm1_v)
    q = q_in @ attn.q.weight.T + attn.q_bias
    k = k_in @ attn.k.weight.T  # the key bias is fixed at zero
    v = v_in @ attn.v.weight.T + attn.v_bias
    b, heads, d = q.shape[0], attn.num_heads, attn.head_dim
    q, k, v = (t.reshape(b, t.shape[1], heads, d).transpose(1, 2) for t in (q, k, v))
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)
    out = (weights @ v).transpose(1, 2).reshape(b, -1, heads * d) @ attn.proj.weight.T + attn.proj.bias
    x = layer_norm(queries + block.ls1.gamma * out, block.norm2_cross)
    mlp = F.gelu(x @ block.mlp_cross.fc1.weight.T + block.mlp_cross.fc1.bias) @ block.mlp_cross.fc2.weight.T
    return x + block.ls2.gamma * (mlp + block.mlp_cross.fc2.bias)


def test_loss_terms_equal_a_hand_computation(images_rgb32):
    model = build()
    x, mask = images_rgb32[:2], fixed_mask()
    with torch.no_grad():
        out = model(x, bool_masked_pos=mask)
        enc = model.encoder
        # encoder on the visible patches only (raster order), then on the masked patches only (target)
        visible = enc(x, bool_masked_pos=mask).last_hidden_state[:, 1:]
        target = enc(x, bool_masked_pos=~mask).last_hidden_state[:, 1:]
        ids_vis = [torch.nonzero(~m).flatten() for m in mask]
        ids_msk = [torch.nonzero(m).flatten() for m in mask]
        pos = model.rd_pos_embed[0, 1:]
        pos_v = torch.stack([pos[i] for i in ids_vis])
        pos_m = torch.stack([pos[i] for i in ids_msk])
        queries = model.mask_token.expand(2, 8, -1)
        for block in model.regressor.blocks:
            queries = hand_regressor_block(block, queries, visible, pos_m, pos_v)
        predict = layer_norm(queries, model.regressor.norm)
        # decoder: predicted masked latents (+ positions) only, no visible tokens
        h = predict + pos_m
        for block in model.decoder.blocks:
            h = block(h)[0]
        logits = model.decoder.head(layer_norm(h, model.decoder.norm))
        pix = normalize_patches(patchify(x, 8))[0]
        pix_m = torch.stack([pix[b, ids_msk[b]] for b in range(2)])
        recon = ((logits - pix_m) ** 2).mean()
        align = ((predict - target) ** 2).mean()
    torch.testing.assert_close(out.latent_predict, predict, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.latent_target, target, rtol=0, atol=0)
    torch.testing.assert_close(out.loss_terms["reconstruction"], recon, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss_terms["alignment"], align, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss, recon + 2.0 * align, rtol=1e-5, atol=1e-6)
    assert align > 0 and recon > 0
    # logits are scattered back to the full grid: masked rows = decoder output, visible rows = 0
    for b in range(2):
        torch.testing.assert_close(out.logits[b, ids_msk[b]], logits[b], rtol=1e-5, atol=1e-5)
        assert torch.all(out.logits[b, ids_vis[b]] == 0)


def test_token_target_is_cross_entropy_over_masked_patches_in_raster_order(images_rgb32):
    model = build(reconstruction_target="tokens", vocab_size=11)
    x, mask = images_rgb32[:2], fixed_mask()
    ids = torch.randint(0, 11, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(x, bool_masked_pos=mask, visual_token_ids=ids)
        # official: labels = input_ids[bool_masked_pos]; logits flattened over the batch
        expected = F.cross_entropy(out.logits[mask], ids[mask])
    torch.testing.assert_close(out.loss_terms["reconstruction"], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss, expected + 2.0 * out.loss_terms["alignment"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="visual_token_ids"):
        model(x, bool_masked_pos=mask)


def test_alignment_target_has_no_gradient(images_rgb32):
    model = build()
    x = images_rgb32[:2].clone().requires_grad_(True)
    mask = fixed_mask()
    out = model(x, bool_masked_pos=mask)
    assert out.latent_target.grad_fn is None and not out.latent_target.requires_grad
    assert out.latent_predict.requires_grad
    # the masked pixels reach the alignment loss only through the target: with stop-gradient they get none
    F.mse_loss(out.latent_predict, out.latent_target).backward()
    pixel_mask = mask.reshape(2, 4, 4).repeat_interleave(8, 1).repeat_interleave(8, 2)[:, None].expand_as(x)
    assert torch.all(x.grad[pixel_mask] == 0)
    assert x.grad[~pixel_mask].abs().sum() > 0
    # and the encoder still learns from the alignment loss through the visible branch
    assert model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0


def test_mask_semantics_visible_and_masked_branches_are_separated(images_rgb32):
    """Predictions depend only on visible patches; alignment targets only on masked patches."""
    model = build()
    x, mask = images_rgb32[:2], fixed_mask()
    pixel_mask = mask.reshape(2, 4, 4).repeat_interleave(8, 1).repeat_interleave(8, 2)[:, None].float()
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        ref = model(x, bool_masked_pos=mask)
        masked_changed = model(x + noise * pixel_mask, bool_masked_pos=mask)
        visible_changed = model(x + noise * (1 - pixel_mask), bool_masked_pos=mask)
    torch.testing.assert_close(masked_changed.latent_predict, ref.latent_predict, rtol=0, atol=0)
    assert not torch.allclose(masked_changed.latent_target, ref.latent_target)
    torch.testing.assert_close(visible_changed.latent_target, ref.latent_target, rtol=0, atol=0)
    assert not torch.allclose(visible_changed.latent_predict, ref.latent_predict)
    assert torch.equal(ref.mask, mask)
    assert ref.latent_predict.shape == ref.latent_target.shape == (2, 8, 32)


def test_noise_input_uses_mae_semantics_and_bad_masks_fail(images_rgb32):
    model = build()
    x = images_rgb32[:2]
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model(x, noise=noise)
        again = model(x, bool_masked_pos=mask_from_noise(noise, 0.5).mask)
    assert torch.equal(out.mask, mask_from_noise(noise, 0.5).mask)
    assert torch.equal(out.loss, again.loss)
    uneven = fixed_mask()
    uneven[0, 2] = True
    with pytest.raises(ValueError, match="same number"):
        model(x, bool_masked_pos=uneven)
    with pytest.raises(ValueError, match="hides no patch"):
        model(x, bool_masked_pos=torch.zeros(2, 16, dtype=torch.bool))


def test_projection_is_applied_to_prediction_context_and_target(images_rgb32):
    model = build(decoder_hidden_size=16, decoder_num_attention_heads=2, decoder_intermediate_size=32)
    x, mask = images_rgb32[:2], fixed_mask()
    with torch.no_grad():
        out = model(x, bool_masked_pos=mask)
        latent = model.encoder(x, bool_masked_pos=~mask).last_hidden_state[:, 1:]
        expected = layer_norm(model.encoder_to_regressor(latent), model.encoder_to_regressor_norm)
    torch.testing.assert_close(out.latent_target, expected, rtol=1e-6, atol=1e-6)
    assert out.latent_predict.shape == (2, 8, 16)


def test_positions_are_row_first_sincos_with_zero_cls():
    model = build()
    table = model.rd_pos_embed[0]
    dim, grid = 32, 4
    omega = 1.0 / 10000 ** (torch.arange(dim // 4) / (dim // 4))
    assert torch.all(table[0] == 0)
    for k in (1, 6, 13):
        row, col = k // grid, k % grid
        expected = torch.cat([torch.sin(row * omega), torch.cos(row * omega), torch.sin(col * omega), torch.cos(col * omega)])
        torch.testing.assert_close(table[1 + k], expected)
    torch.testing.assert_close(model.encoder.pos_embed[0], table)  # encoder uses the same (row-first) layout
    assert not model.rd_pos_embed.requires_grad and not model.encoder.pos_embed.requires_grad


def test_block_mask_generator_follows_the_official_sampler():
    generator = BlockMaskGenerator((14, 14), 98, min_num_patches=16)
    masks = generator(16, torch.Generator().manual_seed(0))
    assert masks.shape == (16, 196) and masks.dtype == torch.bool
    assert torch.all(masks.sum(1) == 98)  # exactly 98 of 196, every sample
    assert torch.equal(masks, generator(16, torch.Generator().manual_seed(0)))  # seedable
    assert not torch.equal(masks, generator(16, torch.Generator().manual_seed(1)))
    # block-wise: masked patches have far more masked 4-neighbours than a random 50% mask (about 2 of 4 there)
    grids = masks.reshape(16, 14, 14).float()
    padded = F.pad(grids, (1, 1, 1, 1))
    neighbours = padded[:, :-2, 1:-1] + padded[:, 2:, 1:-1] + padded[:, 1:-1, :-2] + padded[:, 1:-1, 2:]
    assert (neighbours * grids).sum() / grids.sum() > 2.8
    # a first rectangle never touches a whole row/column: official sides are strictly smaller than the grid
    first = BlockMaskGenerator((14, 14), 98, min_num_patches=16)
    mask = torch.zeros(14, 14, dtype=torch.bool)
    added = first._add_block(mask, 98, torch.Generator().manual_seed(5))
    rows, cols = mask.any(1).sum(), mask.any(0).sum()
    assert added == int(mask.sum()) == int(rows * cols) and rows < 14 and cols < 14 and added >= 1


def test_default_forward_draws_block_masks_from_mask_rng(images_rgb32):
    model = build()
    model.mask_rng = torch.Generator().manual_seed(7)
    with torch.no_grad():
        first = model(images_rgb32[:4])
    model.mask_rng = torch.Generator().manual_seed(7)
    with torch.no_grad():
        second = model(images_rgb32[:4])
    assert torch.equal(first.mask, second.mask) and torch.equal(first.loss, second.loss)
    assert model.config.num_masking_patches == 8 and torch.all(first.mask.sum(1) == 8)


def test_pretraining_forward_exports_with_the_mask_checks_as_runtime_assertions(images_rgb32):
    model = build()
    x = images_rgb32[:2]
    generator = torch.Generator().manual_seed(0)
    first, second = model.mask_generator(2, generator), model.mask_generator(2, generator)
    exported = torch.export.export(model, (), {"pixel_values": x, "bool_masked_pos": first}, strict=False).module()
    with torch.no_grad():
        assert torch.equal(exported(pixel_values=x, bool_masked_pos=second).loss, model(x, bool_masked_pos=second).loss)
    uneven = second.clone()
    uneven[0] = False
    uneven[0, :3] = True
    with pytest.raises(RuntimeError, match="Runtime assertion failed"):  # the eager ValueError, kept in the program
        exported(pixel_values=x, bool_masked_pos=uneven)
