import pytest
import torch
from transformers.models.vit_mae.modeling_vit_mae import build_2d_sinusoidal_position_embedding

import hf_mim
from hf_mim.layers import (
    Attention,
    CrossAttention,
    PatchEmbed,
    RelativePositionBias,
    drop_path,
    normalize_patches,
    patchify,
    sincos_2d,
    unpatchify,
)
from hf_mim.masking.core import gather_tokens
from tests.conftest import tiny_config


def test_sincos_mae_layout_matches_transformers_vitmae_table():
    # transformers builds [sin_h, cos_h, sin_w, cos_w] and rotates the halves to reproduce the official MAE table
    table = build_2d_sinusoidal_position_embedding(7, 7, 64, cls_token=True)
    official = torch.cat([table[..., 32:], table[..., :32]], dim=-1)
    assert torch.allclose(sincos_2d(7, 64, "mae", cls_token=True), official, atol=1e-6)


def test_sincos_layouts_swap_row_and_column():
    mae, moco = sincos_2d((3, 5), 32, "mae"), sincos_2d((3, 5), 32, "mocov3")
    assert torch.equal(mae[:, :16], moco[:, 16:]) and torch.equal(mae[:, 16:], moco[:, :16])
    # token 1 is (row 0, col 1): the MAE layout encodes the column in its first half
    assert mae[1, :16].abs().sum() > 0 and torch.allclose(mae[1, 16:], mae[0, 16:])
    with pytest.raises(ValueError, match="divisible by 4"):
        sincos_2d(4, 30)


def test_patchify_roundtrip_and_official_order():
    x = torch.arange(2 * 3 * 8 * 8, dtype=torch.float32).reshape(2, 3, 8, 8)
    patches = patchify(x, 4)
    assert patches.shape == (2, 4, 48)
    # within a patch: (row, col, channel) with channel fastest, patches in raster order
    assert patches[0, 1, :3].tolist() == [x[0, c, 0, 4].item() for c in range(3)]
    assert patches[0, 2, 3 * 4 * 1 : 3 * 4 * 1 + 3].tolist() == [x[0, c, 5, 0].item() for c in range(3)]
    assert torch.equal(unpatchify(patches, 4, (2, 2), 3), x)


def test_normalize_patches_is_mae_norm_pix_target():
    """Per-patch mean and unbiased variance with eps inside the root (official ``norm_pix_loss``)."""
    patches = 3 + 2 * torch.randn(2, 5, 48, generator=torch.Generator().manual_seed(0))
    normalized, mean, var = normalize_patches(patches)
    assert torch.allclose(mean, patches.mean(-1, keepdim=True), atol=1e-6)
    assert torch.allclose(var, patches.var(-1, keepdim=True), atol=1e-5)
    expected = (patches - patches.mean(-1, keepdim=True)) / (patches.var(-1, keepdim=True) + 1e-6) ** 0.5
    assert torch.allclose(normalized, expected, atol=1e-5)


class DoubledConv(torch.nn.Conv2d):
    """Stands in for a wrapper such as a LoRA layer: its own forward must not be bypassed."""

    def forward(self, x):
        return 2 * super().forward(x)


def test_patch_embed_of_kept_patches_equals_embedding_all_then_gathering():
    torch.manual_seed(0)
    embed = PatchEmbed(image_size=(8, 12), patch_size=4, num_channels=3, hidden_size=16)
    x = torch.randn(2, 3, 8, 12)
    ids_keep = torch.tensor([[5, 0, 3], [1, 2, 4]])
    expected = gather_tokens(embed(x), ids_keep)
    kept = embed(x, ids_keep)
    assert kept.shape == (2, 3, 16) and torch.allclose(kept, expected, atol=1e-6)
    grad_kept = torch.autograd.grad(kept.square().sum(), embed.proj.weight)[0]
    grad_all = torch.autograd.grad(expected.square().sum(), embed.proj.weight)[0]
    assert torch.allclose(grad_kept, grad_all, atol=1e-5)
    # a wrapped or hooked projection runs as a module
    calls = []
    handle = embed.proj.register_forward_hook(lambda *args: calls.append(args[2].shape))
    assert torch.allclose(embed(x, ids_keep), expected, atol=1e-6) and calls == [(2, 16, 2, 3)]
    handle.remove()
    wrapped = DoubledConv(3, 16, kernel_size=4, stride=4)
    wrapped.load_state_dict(embed.proj.state_dict())
    embed.proj = wrapped
    assert torch.allclose(embed(x, ids_keep), 2 * expected, atol=1e-6)


def test_relative_position_bias_index_structure():
    rpb = RelativePositionBias((3, 4), num_heads=2)
    index = rpb.relative_position_index
    num_relative = (2 * 3 - 1) * (2 * 4 - 1)
    assert index.shape == (13, 13)
    assert index[0, 0] == num_relative + 2 and (index[0, 1:] == num_relative).all() and (index[1:, 0] == num_relative + 1).all()
    # same relative offset -> same entry; tokens 1->2 and 5->6 are both (0, +1)
    assert index[1, 2] == index[5, 6] and index[1, 2] != index[2, 1]
    assert int(index[1:, 1:].max()) == num_relative - 1
    with torch.no_grad():
        rpb.relative_position_bias_table.copy_(torch.randn_like(rpb.relative_position_bias_table))
    bias = rpb()
    assert bias.shape == (1, 2, 13, 13)
    assert torch.equal(bias[0, :, 1, 2], rpb.relative_position_bias_table[index[1, 2]])


def test_drop_path_keeps_expectation_and_is_identity_in_eval():
    torch.manual_seed(0)
    x = torch.ones(4000, 3)
    dropped = drop_path(x, 0.25, training=True)
    assert set(dropped[:, 0].unique().tolist()) <= {0.0, torch.tensor(1 / 0.75).item()}
    assert abs(dropped.mean().item() - 1.0) < 0.05
    assert torch.equal(drop_path(x, 0.25, training=False), x)


def test_fused_attention_falls_back_to_eager_when_weights_are_asked_for():
    config = tiny_config("mae")
    torch.manual_seed(0)
    attention, cross = Attention(config, 32, 4), CrossAttention(config, 32, 4)
    x, context = torch.randn(2, 5, 32), torch.randn(2, 7, 32)
    config._attn_implementation = "eager"
    reference = attention(x, output_attentions=True), cross(x, context, output_attentions=True)
    config._attn_implementation = "sdpa"
    for module, args, (out_e, weights_e) in zip((attention, cross), ((x,), (x, context)), reference):
        with pytest.warns(UserWarning, match="sdpa attention cannot return attention weights"):
            out, weights = module(*args, output_attentions=True)
        assert torch.equal(weights, weights_e) and torch.equal(out, out_e)
        torch.testing.assert_close(module(*args)[0], out_e, atol=1e-6, rtol=1e-5)  # sdpa again otherwise
        assert module(*args)[1] is None


def test_clear_errors_for_uint8_empty_and_zero_sized_inputs():
    model = hf_mim.MAEModel(tiny_config("mae"))
    with pytest.raises(ValueError, match="must be a float tensor of normalised images, got torch.uint8; run the image processor"):
        model(torch.zeros(2, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="empty batch"):
        model(torch.zeros(0, 3, 32, 32))
    for method, field in (("mae", "patch_size"), ("mae", "num_channels"), ("spark", "num_channels")):
        with pytest.raises(ValueError, match=f"{field} must be a positive integer, got 0"):
            tiny_config(method, **{field: 0})
