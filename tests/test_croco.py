"""CroCo: cross-view completion (mask count, the reference view acting through cross-attention, the loss against
an independent re-implementation of naver/croco's forward, the pair transform and the CLI path)."""

import math

import pytest
import torch
import torch.nn.functional as F

import hf_mim
from hf_mim.data import MIMCollator, load_image_dataset, open_image, prepare_dataset
from hf_mim.models.croco.modeling_croco import croco_mask_from_noise, official_mask_from_noise
from tests.conftest import real_images, tiny_config


def perturbed_model(seed=0, **overrides):
    """A tiny eval-mode CroCo with every trainable tensor (LayerNorms included) moved off its initial value, so
    no term of the forward is trivially zero or one."""
    torch.manual_seed(seed)
    model = hf_mim.CroCoForPreTraining(tiny_config("croco", **overrides)).eval()
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.05 * torch.randn_like(param))
    return model


# ---------------------------------------------------------------- masking
def test_mask_count_is_int_ratio_times_patches():
    noise = torch.rand(4, 196, generator=torch.Generator().manual_seed(0))
    info = croco_mask_from_noise(noise, 0.9)
    assert info.mask.sum(dim=1).tolist() == [176] * 4  # int(0.9 * 196); MAE's rounding would mask 177
    assert info.ids_keep.shape == (4, 20)
    # lowest noise stays visible (hf_mim noise convention)
    expected = torch.ones(4, 196, dtype=torch.bool).scatter_(1, noise.argsort(dim=1)[:, :20], False)
    assert torch.equal(info.mask, expected)
    assert torch.equal(info.ids_restore.argsort(dim=1)[:, :20], info.ids_keep)
    # the official RandomMask formula gives the same count (and is what a parity harness passes as bool_masked_pos)
    official = official_mask_from_noise(noise, 0.9)
    assert official.sum(dim=1).tolist() == [176] * 4
    assert torch.equal(official, noise.argsort(dim=1) < 176)
    assert croco_mask_from_noise(noise, 0.75).mask.sum(dim=1).tolist() == [147] * 4  # int(0.75 * 196)


def test_model_masks_exactly_ninety_percent_of_view_one_only():
    model = perturbed_model(image_size=224, patch_size=16)
    images = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    out = model(pixel_values=images, pixel_values_ref=images.flip(-1))  # random mask drawn inside forward
    assert out.mask.shape == (3, 196) and out.mask.sum(dim=1).tolist() == [176] * 3
    assert len({tuple(row.tolist()) for row in out.mask}) == 3  # a different mask per sample
    encoded = model.encoder(images, noise=torch.rand(3, 196))
    assert encoded.last_hidden_state.shape[1] == 20  # 20 visible view-1 tokens, no cls token
    assert model.encoder(images).last_hidden_state.shape[1] == 196  # the reference view is encoded fully
    assert model(pixel_values=images, pixel_values_ref=images, mask_ratio=0.75).mask.sum(dim=1).tolist() == [147] * 3


# ---------------------------------------------------------------- the defining mechanism
def test_reference_view_changes_the_prediction_through_cross_attention():
    model = perturbed_model()
    images = real_images(4, 32, 3)
    other = images.roll(1, dims=0)  # a different image as reference
    noise = torch.rand(4, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = model(pixel_values=images, pixel_values_ref=images.roll(3, dims=-1), noise=noise)
        b = model(pixel_values=images, pixel_values_ref=other, noise=noise)
    masked = a.mask
    assert (a.logits[masked] - b.logits[masked]).abs().max() > 1e-3
    assert not torch.isclose(a.loss, b.loss)

    # the masked pixels of view 1 never reach the model: changing them changes nothing
    pixel_mask = a.mask.reshape(4, 1, 4, 4).repeat_interleave(8, -1).repeat_interleave(8, -2).float()
    scrambled = images * (1 - pixel_mask) + torch.randn_like(images) * pixel_mask
    with torch.no_grad():
        c = model(pixel_values=scrambled, pixel_values_ref=other, noise=noise)
    assert torch.allclose(b.logits, c.logits, atol=1e-6)

    # with the cross-attention output projections zeroed, view 2 has no path left to the prediction
    with torch.no_grad():
        for block in model.decoder.blocks:
            block.cross_attn.proj.weight.zero_()
            block.cross_attn.proj.bias.zero_()
        d = model(pixel_values=images, pixel_values_ref=images, noise=noise)
        e = model(pixel_values=images, pixel_values_ref=other, noise=noise)
    assert torch.allclose(d.logits, e.logits, atol=1e-6)


def _ln(x, norm):
    return F.layer_norm(x, (x.shape[-1],), norm.weight, norm.bias, norm.eps)


def _attend(q_in, kv_in, wq, bq, wk, bk, wv, bv, proj, heads):
    batch, n_q, dim = q_in.shape
    d = dim // heads
    q = (q_in @ wq.T + bq).reshape(batch, n_q, heads, d).transpose(1, 2)
    k = (kv_in @ wk.T + bk).reshape(batch, kv_in.shape[1], heads, d).transpose(1, 2)
    v = (kv_in @ wv.T + bv).reshape(batch, kv_in.shape[1], heads, d).transpose(1, 2)
    weights = (q @ k.transpose(-2, -1) * d**-0.5).softmax(dim=-1)
    return (weights @ v).transpose(1, 2).reshape(batch, n_q, dim) @ proj.weight.T + proj.bias


def _self_attend(x, attn):
    w, b, dim = attn.qkv.weight, attn.qkv.bias, x.shape[-1]
    wq, wk, wv = (w[i * dim : (i + 1) * dim] for i in range(3))
    bq, bk, bv = (b[i * dim : (i + 1) * dim] for i in range(3))
    return _attend(x, x, wq, bq, wk, bk, wv, bv, attn.proj, attn.num_heads)


def _mlp(x, mlp):
    return F.gelu(x @ mlp.fc1.weight.T + mlp.fc1.bias) @ mlp.fc2.weight.T + mlp.fc2.bias


def official_forward(model, img1, img2, mask):
    """naver/croco CroCoNet.forward + MaskedMSE(norm_pix_loss=True), written out with plain tensor operations."""
    enc, dec, p = model.encoder, model.decoder, model.config.patch_size
    batch = img1.shape[0]

    def encode(img, mask=None):
        x = F.conv2d(img, enc.patch_embed.proj.weight, enc.patch_embed.proj.bias, stride=p).flatten(2).transpose(1, 2)
        x = x + enc.pos_embed  # cosine pos-embed, no cls token, added before masking
        if mask is not None:
            x = x[~mask].view(batch, -1, x.shape[-1])
        for blk in enc.blocks:
            x = x + _self_attend(_ln(x, blk.norm1), blk.attn)
            x = x + _mlp(_ln(x, blk.norm2), blk.mlp)
        return _ln(x, enc.norm)

    f1, f2 = encode(img1, mask), encode(img2)
    vis = f1 @ dec.embed.weight.T + dec.embed.bias
    y = f2 @ dec.embed.weight.T + dec.embed.bias
    x = dec.mask_token.repeat(batch, mask.shape[1], 1).clone()
    x[~mask] = vis.reshape(-1, vis.shape[-1])
    x, y = x + dec.pos_embed, y + dec.pos_embed
    for blk in dec.blocks:
        x = x + _self_attend(_ln(x, blk.norm0), blk.self_attn)
        y_ = _ln(y, blk.norm_kv)  # norm_im2_in_dec; y itself is never updated
        ca = blk.cross_attn
        x = x + _attend(
            _ln(x, blk.norm_q), y_, ca.q.weight, ca.q.bias, ca.k.weight, ca.k.bias, ca.v.weight, ca.v.bias,
            ca.proj, ca.num_heads,
        )
        x = x + _mlp(_ln(x, blk.norm2), blk.mlp)
    pred = _ln(x, dec.norm) @ dec.pred.weight.T + dec.pred.bias
    h = img1.shape[2] // p
    target = torch.einsum("nchpwq->nhwpqc", img1.reshape(batch, img1.shape[1], h, p, h, p)).reshape(batch, h * h, -1)
    mean, var = target.mean(dim=-1, keepdim=True), target.var(dim=-1, keepdim=True)
    target = (target - mean) / (var + 1.0e-6) ** 0.5
    per_patch = ((pred - target) ** 2).mean(dim=-1)
    return pred, (per_patch * mask).sum() / mask.sum()


def test_loss_and_predictions_equal_the_official_forward_by_hand():
    model = perturbed_model(seed=3)
    images = real_images(4, 32, 3)
    reference = images.roll((5, 3), dims=(-2, -1))
    mask = official_mask_from_noise(torch.rand(4, 16, generator=torch.Generator().manual_seed(2)), 0.9)
    with torch.no_grad():
        out = model(pixel_values=images, pixel_values_ref=reference, bool_masked_pos=mask)
        pred, loss = official_forward(model, images, reference, mask)
    assert torch.equal(out.mask, mask) and mask.sum().item() == 4 * 14
    assert torch.allclose(out.logits, pred, atol=1e-5)
    assert torch.allclose(out.loss, loss, atol=1e-6)
    # noise input gives the same result when it selects the same visible patches
    noise = (~mask).float() * -1 + torch.rand(4, 16) * 0.1
    with torch.no_grad():
        assert torch.allclose(model(pixel_values=images, pixel_values_ref=reference, noise=noise).loss, loss, atol=1e-6)


def test_loss_closed_form_when_predicting_zero():
    """With a zero head the loss is mean over masked patches of mean(norm_pix target^2) = (D-1)/D * var/(var+eps)."""
    model = perturbed_model(seed=4)
    with torch.no_grad():
        model.decoder.pred.weight.zero_()
        model.decoder.pred.bias.zero_()
        images = real_images(2, 32, 3)
        mask = official_mask_from_noise(torch.rand(2, 16, generator=torch.Generator().manual_seed(5)), 0.9)
        out = model(pixel_values=images, pixel_values_ref=images.flip(-2), bool_masked_pos=mask)
    patches = images.reshape(2, 3, 4, 8, 4, 8).permute(0, 2, 4, 3, 5, 1).reshape(2, 16, 192).double()
    var = patches.var(dim=-1)
    per_patch = (191 / 192) * var / (var + 1e-6)
    expected = per_patch[mask].mean()
    assert math.isclose(out.loss.item(), expected.item(), rel_tol=1e-5)


def test_position_embeddings_are_fixed_2d_sincos_without_cls():
    model = perturbed_model()
    grid, dim = 4, model.config.hidden_size
    k = torch.arange(16)
    enc = model.encoder.pos_embed[0]
    assert enc.shape == (16, dim) and not model.encoder.pos_embed.requires_grad
    # MAE layout: the first quarter is sin(column * omega_0 = column), the third quarter sin(row)
    assert torch.allclose(enc[:, 0], torch.sin((k % grid).float()), atol=1e-6)
    assert torch.allclose(enc[:, dim // 2], torch.sin((k // grid).float()), atol=1e-6)
    dec = model.decoder.pos_embed[0]
    assert dec.shape == (16, model.config.decoder_hidden_size) and not model.decoder.pos_embed.requires_grad
    assert torch.allclose(dec[:, 0], torch.sin((k % grid).float()), atol=1e-6)


def test_missing_or_mismatched_reference_view_is_explained():
    model = perturbed_model()
    images = real_images(2, 32, 3)
    with pytest.raises(ValueError, match="pixel_values_ref"):
        model(pixel_values=images)
    with pytest.raises(ValueError, match="shape of pixel_values"):
        model(pixel_values=images, pixel_values_ref=images[:1])
    with pytest.raises(ValueError, match="mask_ratio"):
        hf_mim.CroCoConfig(mask_ratio=0.0)
    with pytest.raises(ValueError, match="RoPE"):
        hf_mim.CroCoConfig(position_embedding_type="learned")


# ---------------------------------------------------------------- data
def test_pair_transform_makes_two_overlapping_views():
    spec = hf_mim.get_method("croco")
    config = tiny_config("croco", num_channels=1)
    processor = spec.make_processor(config, image_mean=[0.286], image_std=[0.353])
    image = open_image(load_image_dataset(None, "test")[0]["image"])

    views = spec.make_transform(processor, train=False)(image)
    assert set(views) == {"pixel_values", "pixel_values_ref"}
    first, second = views["pixel_values"], views["pixel_values_ref"]
    assert first.shape == second.shape == (1, 32, 32)
    # evaluation: top-left and bottom-right crops of one 40x40 canvas, shifted by 8 pixels along each axis
    assert torch.equal(first[:, 8:, 8:], second[:, :24, :24]) and not torch.equal(first, second)

    torch.manual_seed(0)
    train = spec.make_transform(processor, train=True)
    pairs = [train(image) for _ in range(4)]
    assert all(p["pixel_values"].shape == (1, 32, 32) for p in pairs)
    assert any(not torch.equal(p["pixel_values"], p["pixel_values_ref"]) for p in pairs)

    # the default collator stacks both views
    dataset = prepare_dataset(load_image_dataset(None, "train").select(range(6)), processor, transform=train)
    batch = MIMCollator()([dataset[i] for i in range(6)])
    assert batch["pixel_values"].shape == batch["pixel_values_ref"].shape == (6, 1, 32, 32)
    model = spec.pretraining_class(config)
    assert torch.isfinite(model(**batch).loss)


def test_cli_pretrain_runs_with_the_default_collator(tmp_path):
    from hf_mim.cli import main

    out = tmp_path / "run"
    main([
        "pretrain", "--method", "croco", "--size", "tiny", "--output_dir", str(out), "--max_steps", "2",
        "--per_device_train_batch_size", "8", "--max_train_samples", "64", "--image_mean", "0.286",
        "--image_std", "0.353", "--reconstruction_steps", "2", "--save_strategy", "no", "--disable_tqdm", "true",
        "--report_to", "none",
    ])
    assert (out / "model.safetensors").exists()
    assert list((out / "reconstructions").glob("*.png"))
    assert isinstance(hf_mim.get_method("croco").pretraining_class.from_pretrained(out), hf_mim.CroCoForPreTraining)
