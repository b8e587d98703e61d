import pytest
import torch
from transformers import ViTMAEConfig, ViTMAEForPreTraining

import hf_mim
from hf_mim.hub.convert import TRANSFORMERS_VITMAE, convert_state_dict
from hf_mim.layers import sincos_2d
from tests.conftest import tiny_config

SHARED = [
    "image_size", "patch_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "decoder_hidden_size", "decoder_num_hidden_layers", "decoder_num_attention_heads", "decoder_intermediate_size",
    "norm_pix_loss", "layer_norm_eps", "mask_ratio",
]


def vitmae_pair(norm_pix_loss: bool, attn: str = "eager"):
    """transformers ViTMAE with proper sin-cos position embeddings (from a config it builds them as zeros) and an
    hf_mim MAE carrying the same weights."""
    torch.manual_seed(0)
    hf_config = ViTMAEConfig(
        image_size=32, patch_size=4, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, decoder_hidden_size=32, decoder_num_hidden_layers=2, decoder_num_attention_heads=4,
        decoder_intermediate_size=64, norm_pix_loss=norm_pix_loss, layer_norm_eps=1e-12, attn_implementation=attn,
    )
    theirs = ViTMAEForPreTraining(hf_config).eval()
    assert theirs.vit.embeddings.position_embeddings.abs().sum() == 0  # the transformers init pitfall we avoid
    embeddings = theirs.vit.embeddings
    embeddings.patch_embeddings.projection._is_hf_initialized = False
    embeddings.initialize_weights()
    theirs.decoder.initialize_weights(embeddings.patch_embeddings.num_patches)
    ours = hf_mim.MAEForPreTraining(
        hf_mim.MAEConfig(**{k: getattr(hf_config, k) for k in SHARED}, attn_implementation=attn)
    ).eval()
    converted = convert_state_dict(theirs.state_dict(), TRANSFORMERS_VITMAE, model=ours)
    # our construction-time sin-cos tables equal the ones transformers fills in
    assert torch.allclose(converted["encoder.pos_embed"], ours.encoder.pos_embed, atol=1e-6)
    assert torch.allclose(converted["decoder.pos_embed"], ours.decoder.pos_embed, atol=1e-6)
    ours.load_state_dict(converted)
    return theirs, ours


@pytest.mark.parametrize("norm_pix_loss", [False, True])
@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_equals_transformers_vitmae(norm_pix_loss, attn, images_rgb32):
    theirs, ours = vitmae_pair(norm_pix_loss, attn)
    noise = torch.rand(images_rgb32.shape[0], 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, actual = theirs(images_rgb32, noise=noise), ours(images_rgb32, noise=noise)
    assert torch.equal(expected.mask.bool(), actual.mask)
    assert torch.equal(expected.ids_restore, actual.ids_restore)
    assert (expected.logits - actual.logits).abs().max() < 1e-5
    assert abs(expected.loss.item() - actual.loss.item()) < 1e-5


def test_loss_is_batch_mean_over_masked_patches_only(images_rgb32):
    model = hf_mim.MAEForPreTraining(tiny_config("mae", norm_pix_loss=True)).eval()
    noise = torch.rand(8, 16)
    with torch.no_grad():
        out = model(images_rgb32, noise=noise)
    target = hf_mim.layers.patchify(images_rgb32, 8)
    mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)  # unbiased variance, eps inside sqrt
    target = (target - mean) / (var + 1e-6) ** 0.5
    per_patch = ((out.logits - target) ** 2).mean(-1)
    expected = per_patch[out.mask].sum() / out.mask.sum()
    assert torch.allclose(out.loss, expected, atol=1e-6)
    # predictions at visible patches do not matter
    logits = out.logits.clone()
    logits[~out.mask] = 100.0
    assert torch.allclose(hf_mim.models.mae.modeling_mae.masked_mse(logits, target, out.mask), out.loss, atol=1e-6)


def test_position_embeddings_are_fixed_sincos_at_construction():
    model = hf_mim.MAEForPreTraining(tiny_config("mae"))
    assert torch.allclose(model.encoder.pos_embed[0], sincos_2d(4, 32, "mae", cls_token=True))
    assert torch.allclose(model.decoder.pos_embed[0], sincos_2d(4, 32, "mae", cls_token=True))
    assert not model.encoder.pos_embed.requires_grad and not model.decoder.pos_embed.requires_grad
    assert model.encoder.cls_token.abs().sum() > 0 and model.decoder.mask_token.abs().sum() > 0


def test_patch_projection_gets_the_official_xavier_init():
    # facebookresearch/mae initialize_weights: xavier-uniform on the kernel viewed as [D, C*p*p]; transformers skips
    # modules without parameters of their own for custom code, which left PatchEmbed at PyTorch's default before
    torch.manual_seed(0)
    model = hf_mim.MAEForPreTraining(tiny_config("mae"))
    weight = model.encoder.patch_embed.proj.weight
    fan_out, fan_in = weight.shape[0], weight[0].numel()
    expected = (2.0 / (fan_in + fan_out)) ** 0.5
    assert abs(float(weight.std()) - expected) < 0.1 * expected


def test_encoder_without_masking_returns_patches_in_order(images_rgb32):
    encoder = hf_mim.MAEModel(tiny_config("mae")).eval()
    with torch.no_grad():
        plain = encoder(images_rgb32)
        again = encoder(images_rgb32)
        # visible patches of a random mask are the same features, in ids_keep order (attention is permutation
        # equivariant, so only order and subset differ)
        ordered = encoder(images_rgb32, noise=torch.arange(16.0).expand(8, -1), mask_ratio=0.0)
        shuffled = encoder(images_rgb32, noise=torch.rand(8, 16), mask_ratio=0.0)
    assert plain.mask is None and plain.last_hidden_state.shape == (8, 17, 32)
    assert torch.equal(plain.last_hidden_state, again.last_hidden_state)
    assert torch.allclose(plain.last_hidden_state, ordered.last_hidden_state, atol=1e-5)
    restored = torch.gather(shuffled.last_hidden_state[:, 1:], 1, shuffled.ids_restore[..., None].expand(-1, -1, 32))
    assert torch.allclose(restored, plain.last_hidden_state[:, 1:], atol=1e-5)


def test_bool_masked_pos_and_noise_give_the_same_loss(images_rgb32):
    model = hf_mim.MAEForPreTraining(tiny_config("mae")).eval()
    noise = torch.rand(8, 16)
    with torch.no_grad():
        by_noise = model(images_rgb32, noise=noise)
        by_mask = model(images_rgb32, bool_masked_pos=by_noise.mask)
    assert torch.equal(by_noise.mask, by_mask.mask)
    assert torch.allclose(by_noise.loss, by_mask.loss, atol=1e-5)


def test_other_resolutions_with_interpolation(images_rgb32):
    model = hf_mim.MAEForPreTraining(tiny_config("mae")).eval()
    big = torch.nn.functional.interpolate(images_rgb32, size=(48, 64), mode="bilinear")
    with pytest.raises(ValueError, match="interpolate_pos_encoding"):
        model(big)
    with torch.no_grad():
        out = model(big, interpolate_pos_encoding=True)
    assert out.logits.shape == (8, 6 * 8, 192) and out.mask.shape == (8, 48)
    # at other sizes sin-cos tables are regenerated exactly, not interpolated
    assert torch.allclose(model.encoder.position_embeddings((6, 8))[0], sincos_2d((6, 8), 32, "mae", cls_token=True))


def test_clear_errors_for_wrong_input(images_rgb32, images_gray32):
    model = hf_mim.MAEForPreTraining(tiny_config("mae"))
    with pytest.raises(ValueError, match="1 channel.*expects 3"):
        model(images_gray32)
    with pytest.raises(ValueError, match="does not match the model"):
        model(images_rgb32[:, :, :24, :24])
    with pytest.raises(ValueError, match="noise must have shape"):
        model(images_rgb32, noise=torch.rand(8, 15))
    with pytest.raises(ValueError, match="needs a mask"):
        model(images_rgb32, mask_ratio=0.0)
    with pytest.raises(ValueError, match="mask_ratio"):
        hf_mim.MAEConfig(mask_ratio=1.0)
    with pytest.raises(ValueError, match="divisible"):
        hf_mim.MAEConfig(image_size=30, patch_size=16)


def test_grayscale_model(images_gray32):
    model = hf_mim.MAEForPreTraining(tiny_config("mae", num_channels=1))
    out = model(images_gray32)
    assert out.logits.shape == (8, 16, 64) and torch.isfinite(out.loss)
