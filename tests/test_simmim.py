import math

import pytest
import torch
from transformers import ViTConfig, ViTForMaskedImageModeling

import hf_mim
from hf_mim.hub.convert import TRANSFORMERS_VIT_MIM, convert_state_dict
from hf_mim.layers import LayerScale, RelativePositionBias
from tests.conftest import tiny_config


def test_official_defaults():
    config = hf_mim.SimMIMConfig()
    assert (config.qkv_bias, config.layer_scale_init_value, config.position_embedding_type) == ("qv", 0.1, "none")
    assert config.use_shared_relative_position_bias and config.drop_path_rate == 0.1
    assert (config.mask_patch_size, config.mask_ratio) == (32, 0.6)
    model = hf_mim.SimMIMForPreTraining(tiny_config("simmim"))
    encoder = model.encoder
    assert encoder.pos_embed is None and isinstance(encoder.rel_pos_bias, RelativePositionBias)
    assert isinstance(encoder.blocks[0].ls1, LayerScale) and encoder.blocks[0].attn.q_bias is not None
    assert encoder.blocks[0].attn.qkv.bias is None  # k bias is fixed at zero
    # BEiT fix_init_weight: deeper blocks start with smaller output projections; SimMIM truncates at +-std
    std0, std1 = encoder.blocks[0].attn.proj.weight.std(), encoder.blocks[1].attn.proj.weight.std()
    assert std1 < std0 * 0.85
    assert encoder.blocks[0].mlp.fc1.weight.abs().max() <= 0.02 + 1e-6


def test_equals_transformers_vit_for_masked_image_modeling(images_rgb32):
    torch.manual_seed(0)
    hf_config = ViTConfig(
        image_size=32, patch_size=4, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
        intermediate_size=128, encoder_stride=4, qkv_bias=True,
    )
    theirs = ViTForMaskedImageModeling(hf_config).eval()
    ours = hf_mim.SimMIMForPreTraining(
        hf_mim.SimMIMConfig(
            image_size=32, patch_size=4, mask_patch_size=8, hidden_size=64, num_hidden_layers=2,
            num_attention_heads=4, intermediate_size=128, qkv_bias=True, layer_scale_init_value=None,
            position_embedding_type="learned", use_shared_relative_position_bias=False, drop_path_rate=0.0,
            layer_norm_eps=1e-12,
        )
    ).eval()
    ours.load_state_dict(convert_state_dict(theirs.state_dict(), TRANSFORMERS_VIT_MIM, model=ours))
    mask = ours.mask_generator(8, torch.Generator().manual_seed(0))
    with torch.no_grad():
        expected, actual = theirs(images_rgb32, bool_masked_pos=mask), ours(images_rgb32, bool_masked_pos=mask)
    assert (expected.reconstruction - actual.reconstruction).abs().max() < 1e-5
    assert abs(expected.loss.item() - actual.loss.item()) < 1e-6


def test_head_on_tokens_equals_conv_and_pixel_shuffle_modules():
    model = hf_mim.SimMIMForPreTraining(tiny_config("simmim")).eval()
    tokens = torch.randn(2, 16, model.config.hidden_size)
    expected = model.decoder(tokens.transpose(1, 2).reshape(2, -1, 4, 4))
    assert expected.shape == (2, 3, 32, 32)
    assert torch.allclose(model.reconstruct(tokens, (4, 4)), expected, atol=1e-6)
    # a hooked head runs as modules, so the hook sees the feature map
    seen = []
    model.decoder[0].register_forward_hook(lambda module, args, output: seen.append(args[0].shape))
    assert torch.allclose(model.reconstruct(tokens, (4, 4)), expected, atol=1e-6)
    assert seen == [(2, model.config.hidden_size, 4, 4)]


def test_l1_loss_on_masked_pixels_only(images_rgb32):
    model = hf_mim.SimMIMForPreTraining(tiny_config("simmim")).eval()
    mask = model.mask_generator(8, torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = model(images_rgb32, bool_masked_pos=mask)
    pixel_mask = mask.reshape(8, 4, 4).repeat_interleave(8, 1).repeat_interleave(8, 2).unsqueeze(1).float()
    expected = ((out.reconstruction - images_rgb32).abs() * pixel_mask).sum() / (pixel_mask.sum() + 1e-5) / 3
    assert torch.allclose(out.loss, expected, atol=1e-6)
    # tiny config: 32 px images in 16 px cells -> 2x2 cells, ceil(4 * 0.6) = 3 masked
    assert math.isclose(mask.float().mean().item(), 0.75, abs_tol=1e-6)
    # masked patch embeddings are replaced before the encoder: changing masked pixels changes nothing upstream
    edited = images_rgb32.clone()
    edited[pixel_mask.expand_as(edited).bool()] = 5.0
    with torch.no_grad():
        hidden_a = model.encoder(images_rgb32, bool_masked_pos=mask, replace_masked=True).last_hidden_state
        hidden_b = model.encoder(edited, bool_masked_pos=mask, replace_masked=True).last_hidden_state
    assert torch.allclose(hidden_a, hidden_b, atol=1e-6)


def test_mask_drawn_in_model_when_not_given(images_rgb32):
    model = hf_mim.SimMIMForPreTraining(tiny_config("simmim"))
    out = model(images_rgb32)
    assert out.mask.shape == (8, 16) and torch.isfinite(out.loss)
    with pytest.raises(ValueError, match="bool_masked_pos must have shape"):
        model(images_rgb32, bool_masked_pos=torch.zeros(8, 15, dtype=torch.bool))
