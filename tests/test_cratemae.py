"""CRATE-MAE: the official key layout and forward (written out functionally from Ma-Lab-Berkeley/CRATE
``model/crate_ae/*``), and the white-box mechanism: MSSA with one projection, non-negative ISTA codes, a decoder that
subtracts attention, mask tokens inside the encoder, the loss on masked patches only."""

import pytest
import torch
import torch.nn.functional as F

import hf_mim
from hf_mim.layers import patchify
from hf_mim.models.cratemae.convert_cratemae import from_official, to_official
from hf_mim.models.cratemae.modeling_cratemae import SubspaceAttention
from tests.conftest import tiny_config

DIM, HEADS, DEPTH, PATCH, IMAGE = 32, 2, 2, 8, 32


def official_state_dict(seed: int = 0) -> dict:
    """Random weights in the official ``MaskedAutoencoderViT`` (CRATE blocks) layout, dead parameters included."""
    generator = torch.Generator().manual_seed(seed)
    length = (IMAGE // PATCH) ** 2 + 1
    shapes = {
        "patch_embed.proj.weight": (DIM, 3, PATCH, PATCH), "patch_embed.proj.bias": (DIM,), "cls_token": (1, 1, DIM),
        "mask_token": (1, 1, DIM), "pos_embed": (1, length, DIM), "decoder_pos_embed": (1, length, DIM),
        "decoder_embed.weight": (DIM, DIM), "decoder_embed.bias": (DIM,), "norm.weight": (DIM,), "norm.bias": (DIM,),
        "decoder_norm.weight": (DIM,), "decoder_norm.bias": (DIM,), "decoder_pred.weight": (PATCH * PATCH * 3, DIM),
        "decoder_pred.bias": (PATCH * PATCH * 3,),
    }
    for i in range(DEPTH):
        for side, (first, second) in (("blocks", ("fn.qkv", "fn.weight")), ("decoder_blocks", ("fn.weight", "fn.qkv"))):
            for sub in ("0", "1"):
                shapes[f"{side}.{i}.layers.0.{sub}.norm.weight"] = (DIM,)
                shapes[f"{side}.{i}.layers.0.{sub}.norm.bias"] = (DIM,)
            attn_sub = "0" if side == "blocks" else "1"
            dict_sub = "1" if side == "blocks" else "0"
            shapes[f"{side}.{i}.layers.0.{attn_sub}.fn.qkv.weight"] = (DIM, DIM)
            shapes[f"{side}.{i}.layers.0.{attn_sub}.fn.to_out.0.weight"] = (DIM, DIM)
            shapes[f"{side}.{i}.layers.0.{attn_sub}.fn.to_out.0.bias"] = (DIM,)
            shapes[f"{side}.{i}.layers.0.{dict_sub}.fn.weight"] = (DIM, DIM)
    state = {key: 0.2 * torch.randn(shape, generator=generator, dtype=torch.float64) for key, shape in shapes.items()}
    for key in state:
        if key.endswith("norm.weight"):
            state[key] += 1.0
    return state


def official_forward(sd: dict, images: torch.Tensor, noise: torch.Tensor, lambd: float = 0.5, eta: float = 0.1):
    """The official CRATE-MAE forward on its own keys: returns (pred [B, L, p*p*3], mask [B, L], loss)."""
    x = F.conv2d(images, sd["patch_embed.proj.weight"], sd["patch_embed.proj.bias"], stride=PATCH).flatten(2).transpose(1, 2)
    batch, length, dim = x.shape
    keep = int(length * 0.25)
    shuffle = noise.argsort(1)
    restore = shuffle.argsort(1)
    visible = x.gather(1, shuffle[:, :keep, None].expand(-1, -1, dim))
    sequence = torch.cat([visible, sd["mask_token"].expand(batch, length - keep, dim)], 1)
    sequence = sequence.gather(1, restore[..., None].expand(-1, -1, dim))
    x = torch.cat([sd["cls_token"].expand(batch, -1, -1), sequence], 1) + sd["decoder_pos_embed"]

    def norm(t, name, eps=1e-5):
        return F.layer_norm(t, (dim,), sd[f"{name}.weight"], sd[f"{name}.bias"], eps)

    def mssa(t, name):
        w = F.linear(t, sd[f"{name}.qkv.weight"]).unflatten(-1, (HEADS, -1)).transpose(1, 2)
        attention = (w @ w.transpose(-1, -2) * w.shape[-1] ** -0.5).softmax(-1)
        out = (attention @ w).transpose(1, 2).flatten(2)
        return F.linear(out, sd[f"{name}.to_out.0.weight"], sd[f"{name}.to_out.0.bias"])

    for i in range(DEPTH):
        block = f"blocks.{i}.layers.0"
        x = x + mssa(norm(x, f"{block}.0.norm"), f"{block}.0.fn")
        u, dictionary = norm(x, f"{block}.1.norm"), sd[f"{block}.1.fn.weight"]
        x = F.relu(u + eta * (u @ dictionary - u @ dictionary.T @ dictionary) - eta * lambd)
    x = norm(x, "norm", 1e-6)
    for i in range(DEPTH):
        block = f"decoder_blocks.{i}.layers.0"
        y = F.linear(norm(x, f"{block}.0.norm"), sd[f"{block}.0.fn.weight"])
        x = y - mssa(norm(y, f"{block}.1.norm"), f"{block}.1.fn")
    pred = F.linear(norm(x, "decoder_norm", 1e-6), sd["decoder_pred.weight"], sd["decoder_pred.bias"])[:, 1:]
    mask = restore >= keep
    loss = ((pred - patchify(images, PATCH)) ** 2).mean(-1)[mask].mean()
    return pred, mask, loss


def pretraining_model(**overrides):
    config = tiny_config("cratemae", attn_implementation="eager", **overrides)
    return hf_mim.CRATEMAEForPreTraining(config).eval()


def test_official_layout_converts_and_matches_the_official_forward(images_rgb32):
    official = official_state_dict()
    model = pretraining_model().double()
    model.load_state_dict(from_official(official), strict=True)
    images, noise = images_rgb32[:4].double(), torch.rand(4, 16, generator=torch.Generator().manual_seed(1))
    pred, mask, loss = official_forward(official, images, noise)
    with torch.no_grad():
        out = model(images, noise=noise.double())
    assert torch.equal(out.mask, mask)
    assert (out.logits - pred).abs().max() < 1e-5  # eager softmax runs in float32
    assert abs(out.loss.item() - loss.item()) < 1e-5
    # back to the official layout: everything but the two parameters the official forward never uses
    back = to_official(model.state_dict())
    assert set(official) - set(back) == {"pos_embed", "decoder_embed.weight", "decoder_embed.bias"}
    assert all(torch.equal(back[key], official[key]) for key in back)
    with pytest.raises(KeyError, match="no mapping for"):
        from_official({**official, "blocks.0.mlp.fc1.weight": torch.zeros(1)})


def test_ista_codes_are_non_negative_and_sparse(images_rgb32):
    model = hf_mim.CRATEMAEModel(tiny_config("cratemae")).eval()
    with torch.no_grad():
        hidden = model(images_rgb32, output_hidden_states=True).hidden_states
    for codes in hidden[1:]:  # every block ends with the ISTA ReLU
        assert codes.min() >= 0
        assert (codes == 0).float().mean() > 0.2  # the -eta*lambda shift zeroes a good part of the code
    assert hidden[0].min() < 0  # (the embeddings themselves are not)


def test_mssa_uses_one_bias_free_projection_as_query_key_and_value():
    model = pretraining_model()
    attentions = [m for m in model.modules() if isinstance(m, SubspaceAttention)]
    assert len(attentions) == 2 * DEPTH
    for attention in attentions:
        linears = [name for name, m in attention.named_modules() if isinstance(m, torch.nn.Linear)]
        assert linears == ["qkv", "proj"] and attention.qkv.bias is None
        assert attention.qkv.weight.shape == (DIM, DIM)  # one projection, not three
    attention = attentions[0]
    tokens = torch.randn(2, 5, DIM)
    w = attention.qkv(tokens).unflatten(-1, (HEADS, -1)).transpose(1, 2)
    expected = attention.proj(((w @ w.transpose(-1, -2)) * (DIM // HEADS) ** -0.5).softmax(-1).matmul(w).transpose(1, 2).flatten(2))
    torch.testing.assert_close(attention(tokens)[0], expected)


def test_far_fewer_parameters_than_vit_mae_of_the_same_size():
    def count(model):
        return sum(p.numel() for p in model.parameters())

    sizes = dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, decoder_hidden_size=768,
                 decoder_num_hidden_layers=12, decoder_num_attention_heads=12)
    with torch.device("meta"):
        crate = count(hf_mim.CRATEMAEForPreTraining(hf_mim.CRATEMAEConfig.official("base")))
        mae = count(hf_mim.MAEForPreTraining(hf_mim.MAEConfig(**sizes, decoder_intermediate_size=3072)))
    assert crate < 0.3 * mae  # the paper: about 30% of ViT-MAE's parameters at the same configuration
    tiny_crate, tiny_mae = count(pretraining_model()), count(hf_mim.MAEForPreTraining(tiny_config("mae", num_attention_heads=2, decoder_num_hidden_layers=2, decoder_num_attention_heads=2, intermediate_size=128, decoder_intermediate_size=128)))
    assert tiny_crate < tiny_mae


def test_decoder_block_subtracts_attention_from_the_dictionary_step():
    block = pretraining_model().decoder.blocks[0]
    x = torch.randn(2, 5, DIM)
    y = F.linear(F.layer_norm(x, (DIM,), block.norm1.weight, block.norm1.bias, 1e-5), block.dictionary.weight)
    attention = block.attn(F.layer_norm(y, (DIM,), block.norm2.weight, block.norm2.bias, 1e-5))[0]
    torch.testing.assert_close(block(x)[0], y - attention)


def test_mask_tokens_enter_the_encoder(images_rgb32):
    model = pretraining_model()
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(images_rgb32, noise=noise, output_hidden_states=True)
        embedded = out.hidden_states[0][:, 1:]
        expected = model.encoder.mask_token + model.encoder.pos_embed[:, 1:]
        assert out.hidden_states[-1].shape[1] == 1 + 16  # nothing dropped: cls + every patch
        assert torch.allclose(embedded[out.mask], expected.expand(8, -1, -1)[out.mask])
        # what hides under a mask token cannot change the prediction
        pixel_mask = out.mask.reshape(8, 4, 4).repeat_interleave(PATCH, 1).repeat_interleave(PATCH, 2)[:, None]
        changed = torch.where(pixel_mask, torch.randn_like(images_rgb32), images_rgb32)
        torch.testing.assert_close(model(changed, noise=noise).logits, out.logits)


@pytest.mark.parametrize("norm_pix_loss", [False, True])
def test_loss_is_the_mse_on_masked_patches_only(images_rgb32, norm_pix_loss):
    model = pretraining_model(norm_pix_loss=norm_pix_loss)
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(images_rgb32, noise=noise)
    per_patch = ((out.logits - model.target(images_rgb32)) ** 2).mean(-1)
    assert out.mask.sum() == 8 * 12
    torch.testing.assert_close(out.loss, per_patch[out.mask].mean())


def test_masks_explicit_and_refused(images_rgb32):
    model = pretraining_model()
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        by_noise = model(images_rgb32, noise=noise)
        by_mask = model(images_rgb32, bool_masked_pos=by_noise.mask)
        torch.testing.assert_close(by_mask.logits, by_noise.logits)
        uneven = by_noise.mask.clone()
        uneven[0, :] = False
        uneven[0, 0] = True  # rows may hide different counts: masked patches are replaced, never dropped
        assert model(images_rgb32, bool_masked_pos=uneven).logits.shape == (8, 16, PATCH * PATCH * 3)
    for mask in (torch.zeros(8, 16, dtype=torch.bool), torch.ones(8, 16, dtype=torch.bool)):
        with pytest.raises(ValueError, match="mask"):
            model(images_rgb32, bool_masked_pos=mask)
    with pytest.raises(ValueError, match="needs a mask"):
        model(images_rgb32, mask_ratio=0.0)
    with pytest.raises(ValueError, match="either noise or bool_masked_pos"):
        model(images_rgb32, noise=noise, bool_masked_pos=by_noise.mask)


def test_config_sizes_and_width_check():
    assert hf_mim.CRATEMAEConfig.official("large").decoder_num_hidden_layers == 24
    assert hf_mim.CRATEMAEConfig.official("small", image_size=32).hidden_size == 576
    with pytest.raises(ValueError, match="decoder_hidden_size == hidden_size"):
        hf_mim.CRATEMAEConfig(hidden_size=64, decoder_hidden_size=32, num_attention_heads=2, decoder_num_attention_heads=2)
    with pytest.raises(ValueError, match="size must be one of"):
        hf_mim.CRATEMAEConfig.official("huge")
