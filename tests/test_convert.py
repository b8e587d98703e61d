"""Converters: random state dicts written in each official key layout, converted, and checked numerically
against an independent functional forward that reads the official keys directly."""

import argparse
import warnings

import pytest
import torch
import torch.nn.functional as F
from transformers import ViTMAEConfig, ViTMAEForPreTraining, ViTMAEModel

import hf_mim
from hf_mim.hub.convert import (
    MIN_MASK_CELLS_PER_SIDE,
    ConversionError,
    convert_checkpoint,
    detect_format,
    simmim_mask_patch_size,
    to_transformers_vitmae,
)

D, DEPTH, HEADS, MLP, P, IMG = 32, 2, 4, 64, 8, 32
DD, DDEPTH, DHEADS, DMLP = 16, 1, 16, 32  # decoder (16 heads for a 512-wide decoder; 16 -> head dim 1 here)


def rand(*shape, generator):
    return torch.randn(*shape, generator=generator) * 0.1


def official_block(prefix, dim, mlp, g, qv_bias=False, layer_scale=False):
    state = {
        f"{prefix}.norm1.weight": 1 + rand(dim, generator=g), f"{prefix}.norm1.bias": rand(dim, generator=g),
        f"{prefix}.attn.qkv.weight": rand(3 * dim, dim, generator=g),
        f"{prefix}.attn.proj.weight": rand(dim, dim, generator=g), f"{prefix}.attn.proj.bias": rand(dim, generator=g),
        f"{prefix}.norm2.weight": 1 + rand(dim, generator=g), f"{prefix}.norm2.bias": rand(dim, generator=g),
        f"{prefix}.mlp.fc1.weight": rand(mlp, dim, generator=g), f"{prefix}.mlp.fc1.bias": rand(mlp, generator=g),
        f"{prefix}.mlp.fc2.weight": rand(dim, mlp, generator=g), f"{prefix}.mlp.fc2.bias": rand(dim, generator=g),
    }
    if qv_bias:
        state[f"{prefix}.attn.q_bias"] = rand(dim, generator=g)
        state[f"{prefix}.attn.v_bias"] = rand(dim, generator=g)
    else:
        state[f"{prefix}.attn.qkv.bias"] = rand(3 * dim, generator=g)
    if layer_scale:
        state[f"{prefix}.gamma_1"] = 0.1 + rand(dim, generator=g)
        state[f"{prefix}.gamma_2"] = 0.1 + rand(dim, generator=g)
    return state


def official_mae_state(with_decoder=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    grid = IMG // P
    state = {
        "cls_token": rand(1, 1, D, generator=g), "pos_embed": rand(1, grid * grid + 1, D, generator=g),
        "patch_embed.proj.weight": rand(D, 3, P, P, generator=g), "patch_embed.proj.bias": rand(D, generator=g),
        "norm.weight": 1 + rand(D, generator=g), "norm.bias": rand(D, generator=g),
    }
    for i in range(DEPTH):
        state.update(official_block(f"blocks.{i}", D, MLP, g))
    if with_decoder:
        state.update({
            "decoder_embed.weight": rand(DD, D, generator=g), "decoder_embed.bias": rand(DD, generator=g),
            "mask_token": rand(1, 1, DD, generator=g), "decoder_pos_embed": rand(1, grid * grid + 1, DD, generator=g),
            "decoder_norm.weight": 1 + rand(DD, generator=g), "decoder_norm.bias": rand(DD, generator=g),
            "decoder_pred.weight": rand(P * P * 3, DD, generator=g), "decoder_pred.bias": rand(P * P * 3, generator=g),
        })
        for i in range(DDEPTH):
            state.update(official_block(f"decoder_blocks.{i}", DD, DMLP, g))
    return state


def ref_block(s, prefix, x, heads, eps=1e-6, bias=None, qv_bias=False, layer_scale=False):
    batch, tokens, dim = x.shape
    h = F.layer_norm(x, (dim,), s[f"{prefix}.norm1.weight"], s[f"{prefix}.norm1.bias"], eps)
    qkv_bias = (
        torch.cat([s[f"{prefix}.attn.q_bias"], torch.zeros(dim), s[f"{prefix}.attn.v_bias"]]) if qv_bias else s[f"{prefix}.attn.qkv.bias"]
    )
    qkv = F.linear(h, s[f"{prefix}.attn.qkv.weight"], qkv_bias).reshape(batch, tokens, 3, heads, dim // heads).permute(2, 0, 3, 1, 4)
    q, k, v = qkv[0] * (dim // heads) ** -0.5, qkv[1], qkv[2]
    attn = q @ k.transpose(-2, -1)
    if bias is not None:
        attn = attn + bias
    out = (attn.softmax(-1) @ v).transpose(1, 2).reshape(batch, tokens, dim)
    out = F.linear(out, s[f"{prefix}.attn.proj.weight"], s[f"{prefix}.attn.proj.bias"])
    x = x + (s[f"{prefix}.gamma_1"] * out if layer_scale else out)
    h = F.layer_norm(x, (dim,), s[f"{prefix}.norm2.weight"], s[f"{prefix}.norm2.bias"], eps)
    h = F.linear(F.gelu(F.linear(h, s[f"{prefix}.mlp.fc1.weight"], s[f"{prefix}.mlp.fc1.bias"])), s[f"{prefix}.mlp.fc2.weight"], s[f"{prefix}.mlp.fc2.bias"])
    return x + (s[f"{prefix}.gamma_2"] * h if layer_scale else h)


def ref_mae_encoder(s, imgs, noise=None, mask_ratio=0.75):
    """models_mae.forward_encoder, from the official key layout."""
    x = F.conv2d(imgs, s["patch_embed.proj.weight"], s["patch_embed.proj.bias"], stride=P).flatten(2).transpose(1, 2)
    x = x + s["pos_embed"][:, 1:]
    n, length, dim = x.shape
    ids_restore = mask = None
    if noise is not None:
        keep = int(length * (1 - mask_ratio))
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        x = torch.gather(x, 1, ids_shuffle[:, :keep, None].repeat(1, 1, dim))
        mask = torch.ones(n, length)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
    x = torch.cat([(s["cls_token"] + s["pos_embed"][:, :1]).expand(n, -1, -1), x], dim=1)
    for i in range(DEPTH):
        x = ref_block(s, f"blocks.{i}", x, HEADS)
    return F.layer_norm(x, (dim,), s["norm.weight"], s["norm.bias"], 1e-6), mask, ids_restore


def ref_mae_loss(s, imgs, noise, norm_pix=True):
    """models_mae forward_decoder + forward_loss."""
    latent, mask, ids_restore = ref_mae_encoder(s, imgs, noise)
    x = F.linear(latent, s["decoder_embed.weight"], s["decoder_embed.bias"])
    n = x.shape[0]
    mask_tokens = s["mask_token"].repeat(n, ids_restore.shape[1] + 1 - x.shape[1], 1)
    x_ = torch.gather(torch.cat([x[:, 1:], mask_tokens], 1), 1, ids_restore[..., None].repeat(1, 1, x.shape[2]))
    x = torch.cat([x[:, :1], x_], 1) + s["decoder_pos_embed"]
    for i in range(DDEPTH):
        x = ref_block(s, f"decoder_blocks.{i}", x, DHEADS)
    x = F.layer_norm(x, (DD,), s["decoder_norm.weight"], s["decoder_norm.bias"], 1e-6)
    pred = F.linear(x, s["decoder_pred.weight"], s["decoder_pred.bias"])[:, 1:]
    h = w = IMG // P
    target = torch.einsum("nchpwq->nhwpqc", imgs.reshape(n, 3, h, P, w, P)).reshape(n, h * w, P * P * 3)
    if norm_pix:
        target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    loss = ((pred - target) ** 2).mean(-1)
    return (loss * mask).sum() / mask.sum(), pred


@pytest.fixture
def images():
    return torch.randn(3, 3, IMG, IMG, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("container", ["pth", "safetensors"])
def test_official_mae_full_checkpoint(container, tmp_path, images):
    state = official_mae_state()
    path = tmp_path / f"mae.{container}"
    if container == "pth":  # as facebookresearch/mae's misc.save_model writes it, argparse settings included
        optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(2))]).state_dict()
        args = argparse.Namespace(model="mae_vit_base_patch16", norm_pix_loss=True, mask_ratio=0.75, blr=1.5e-4)
        torch.save({"model": state, "optimizer": optimizer, "epoch": 799, "scaler": {"scale": 65536.0}, "args": args}, path)
    else:
        from safetensors.torch import save_file

        save_file(state, str(path))
    assert detect_format(state) == "mae-official"
    model = convert_checkpoint(path, tmp_path / "out", config_overrides={"num_attention_heads": HEADS, "decoder_num_attention_heads": DHEADS})
    assert isinstance(model, hf_mim.MAEForPreTraining)
    noise = torch.rand(3, 16, generator=torch.Generator().manual_seed(2))
    expected, expected_pred = ref_mae_loss(state, images, noise)
    with torch.no_grad():
        actual = model(images, noise=noise)
    assert (actual.logits - expected_pred).abs().max() < 1e-5
    assert abs(actual.loss.item() - expected.item()) < 1e-5
    reloaded = hf_mim.MAEForPreTraining.from_pretrained(tmp_path / "out")
    assert torch.equal(reloaded.encoder.pos_embed, state["pos_embed"])  # copied, never regenerated


@pytest.mark.parametrize("extra", [{}, {"head.weight": torch.zeros(10, D), "head.bias": torch.zeros(10)}])
def test_encoder_only_official_and_timm_checkpoints(extra, tmp_path, images):
    state = {**official_mae_state(with_decoder=False), **extra}
    torch.save(state, tmp_path / "enc.pth")
    assert detect_format(state) == ("timm-mae" if extra else "mae-official")
    encoder = convert_checkpoint(tmp_path / "enc.pth", tmp_path / "out", config_overrides={"num_attention_heads": HEADS})
    assert isinstance(encoder, hf_mim.MAEModel)
    with torch.no_grad():
        ours = encoder(images).last_hidden_state
    assert (ours - ref_mae_encoder(state, images)[0]).abs().max() < 1e-5


def test_unknown_and_mismatched_keys_are_errors(tmp_path):
    state = official_mae_state()
    torch.save({**state, "blocks.0.attn.relative_bias": torch.zeros(3)}, tmp_path / "extra.pth")
    with pytest.raises(ConversionError, match="blocks.0.attn.relative_bias"):
        convert_checkpoint(tmp_path / "extra.pth")
    broken = dict(state)
    broken["blocks.1.mlp.fc1.weight"] = torch.zeros(MLP + 1, D)
    broken["blocks.1.mlp.fc1.bias"] = torch.zeros(MLP + 1)
    torch.save(broken, tmp_path / "broken.pth")
    with pytest.raises(ConversionError, match="shape mismatches.*blocks.1.mlp.fc1"):
        convert_checkpoint(tmp_path / "broken.pth")
    del broken["norm.weight"]
    torch.save(broken, tmp_path / "missing.pth")
    with pytest.raises(ConversionError, match="missing.*encoder.norm.weight"):
        convert_checkpoint(tmp_path / "missing.pth")


class RunsCode:
    def __reduce__(self):
        return (open, ("ran_code_from_pickle", "w"))


def test_checkpoints_with_code_are_refused_without_running_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"model": official_mae_state(), "payload": RunsCode()}, tmp_path / "crafted.pth")
    with pytest.raises(ConversionError, match="not unpickled for safety.*open"):
        convert_checkpoint(tmp_path / "crafted.pth", tmp_path / "out")
    assert not (tmp_path / "ran_code_from_pickle").exists()


def official_simmim_state(seed=0):
    g = torch.Generator().manual_seed(seed)
    grid = IMG // P
    state = {
        "encoder.cls_token": rand(1, 1, D, generator=g), "encoder.mask_token": rand(1, 1, D, generator=g),
        "encoder.patch_embed.proj.weight": rand(D, 3, P, P, generator=g), "encoder.patch_embed.proj.bias": rand(D, generator=g),
        "encoder.rel_pos_bias.relative_position_bias_table": rand((2 * grid - 1) ** 2 + 3, HEADS, generator=g),
        "encoder.rel_pos_bias.relative_position_index": torch.zeros(grid * grid + 1, grid * grid + 1, dtype=torch.long),
        "encoder.norm.weight": 1 + rand(D, generator=g), "encoder.norm.bias": rand(D, generator=g),
        "decoder.0.weight": rand(P * P * 3, D, 1, 1, generator=g), "decoder.0.bias": rand(P * P * 3, generator=g),
    }
    for i in range(DEPTH):
        state.update(official_block(f"encoder.blocks.{i}", D, MLP, g, qv_bias=True, layer_scale=True))
    return state


def official_relative_index(size):
    """The index as BEiT / SimMIM build it (meshgrid of coordinates, shifted and flattened)."""
    coords = torch.stack(torch.meshgrid([torch.arange(size), torch.arange(size)], indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += size - 1
    rel[:, :, 1] += size - 1
    rel[:, :, 0] *= 2 * size - 1
    num = (2 * size - 1) ** 2 + 3
    index = torch.zeros(size * size + 1, size * size + 1, dtype=torch.long)
    index[1:, 1:] = rel.sum(-1)
    index[0, 0:], index[0:, 0], index[0, 0] = num - 3, num - 2, num - 1
    return index


def ref_simmim_loss(s, imgs, mask):
    grid = IMG // P
    x = F.conv2d(imgs, s["encoder.patch_embed.proj.weight"], s["encoder.patch_embed.proj.bias"], stride=P).flatten(2).transpose(1, 2)
    w = mask.flatten(1).unsqueeze(-1).float()
    x = x * (1 - w) + s["encoder.mask_token"] * w
    x = torch.cat([s["encoder.cls_token"].expand(x.shape[0], -1, -1), x], 1)
    index = official_relative_index(grid)
    bias = s["encoder.rel_pos_bias.relative_position_bias_table"][index.view(-1)].view(grid * grid + 1, grid * grid + 1, -1).permute(2, 0, 1)
    for i in range(DEPTH):
        x = ref_block(s, f"encoder.blocks.{i}", x, HEADS, bias=bias[None], qv_bias=True, layer_scale=True)
    x = F.layer_norm(x, (D,), s["encoder.norm.weight"], s["encoder.norm.bias"], 1e-6)[:, 1:]
    z = x.permute(0, 2, 1).reshape(x.shape[0], D, grid, grid)
    rec = F.pixel_shuffle(F.conv2d(z, s["decoder.0.weight"], s["decoder.0.bias"]), P)
    pixel_mask = mask.reshape(-1, grid, grid).repeat_interleave(P, 1).repeat_interleave(P, 2).unsqueeze(1).float()
    loss = (F.l1_loss(imgs, rec, reduction="none") * pixel_mask).sum() / (pixel_mask.sum() + 1e-5) / 3
    return loss, rec


def test_official_simmim_checkpoint(tmp_path, images):
    state = official_simmim_state()
    torch.save({"model": state}, tmp_path / "simmim.pth")
    assert detect_format(state) == "simmim-official"
    model = convert_checkpoint(tmp_path / "simmim.pth", tmp_path / "out", config_overrides={"mask_patch_size": 16, "num_attention_heads": HEADS})
    assert isinstance(model, hf_mim.SimMIMForPreTraining)
    assert model.config.qkv_bias == "qv" and model.config.use_shared_relative_position_bias
    mask = model.mask_generator(3, torch.Generator().manual_seed(0))
    expected_loss, expected_rec = ref_simmim_loss(state, images, mask)
    with torch.no_grad():
        out = model(images, bool_masked_pos=mask)
    assert (out.reconstruction - expected_rec).abs().max() < 1e-5
    assert abs(out.loss.item() - expected_loss.item()) < 1e-6


def test_simmim_heads_come_from_the_relative_position_table_and_mask_cells_fit_small_images(tmp_path, images):
    state = official_simmim_state()  # width 32 with 4 heads: a width-based guess would say 1
    torch.save({"model": state}, tmp_path / "simmim.pth")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing is guessed
        model = convert_checkpoint(tmp_path / "simmim.pth")
    config = model.config
    assert config.num_attention_heads == HEADS
    assert config.mask_patch_size == P and IMG // config.mask_patch_size >= MIN_MASK_CELLS_PER_SIDE
    mask = model.mask_generator(3, torch.Generator().manual_seed(0))
    assert 0 < mask.sum() < mask.numel() and mask.float().mean(1).tolist() != [1.0] * 3
    expected_loss, _ = ref_simmim_loss(state, images, mask)
    with torch.no_grad():
        assert abs(model(images, bool_masked_pos=mask).loss.item() - expected_loss.item()) < 1e-6
    assert simmim_mask_patch_size(192, 16) == simmim_mask_patch_size(224, 16) == 32  # the official cell
    assert simmim_mask_patch_size(32, 4) == 8 and simmim_mask_patch_size(32, 16) == 16


def test_guessed_head_counts_warn_and_name_the_override(tmp_path):
    torch.save(official_mae_state(), tmp_path / "mae.pth")
    with pytest.warns(UserWarning, match="num_attention_heads: guessed 1 .*--config") as record:
        model = convert_checkpoint(tmp_path / "mae.pth")
    assert any("decoder_num_attention_heads: guessed" in str(w.message) for w in record)
    assert model.config.num_attention_heads == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = convert_checkpoint(
            tmp_path / "mae.pth", config_overrides={"num_attention_heads": HEADS, "decoder_num_attention_heads": DHEADS}
        )
    assert model.config.num_attention_heads == HEADS


@pytest.mark.parametrize("layout", ["memory", "disk"])
def test_encoder_only_transformers_vitmae_model_checkpoints(layout, tmp_path, images):
    theirs = ViTMAEModel(transformers_vitmae().config).eval()
    with torch.no_grad():  # weights large enough that the head count shows in the output
        for param in theirs.parameters():
            param.normal_(std=0.3)
    if layout == "disk":  # save_pretrained: config.json (head count) + legacy 4.x names without "vit."
        theirs.save_pretrained(tmp_path / "hf")
        source, overrides = tmp_path / "hf", None
    else:  # the 5.x in-memory names without "vit."
        torch.save(theirs.state_dict(), tmp_path / "hf.bin")
        source, overrides = tmp_path / "hf.bin", {"num_attention_heads": HEADS, "layer_norm_eps": 1e-12}
    ours = convert_checkpoint(source, config_overrides=overrides)
    assert isinstance(ours, hf_mim.MAEModel)
    noise = torch.rand(3, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected, actual = theirs(images, noise=noise), ours(images, noise=noise)
    assert torch.equal(expected.ids_restore, actual.ids_restore)
    assert (expected.last_hidden_state - actual.last_hidden_state).abs().max() < 1e-5


def transformers_vitmae(seed=0):
    torch.manual_seed(seed)
    config = ViTMAEConfig(
        image_size=IMG, patch_size=P, hidden_size=D, num_hidden_layers=DEPTH, num_attention_heads=HEADS,
        intermediate_size=MLP, decoder_hidden_size=DD, decoder_num_hidden_layers=DDEPTH,
        decoder_num_attention_heads=4, decoder_intermediate_size=DMLP, norm_pix_loss=True,
    )
    model = ViTMAEForPreTraining(config).eval()
    with torch.no_grad():  # give it non-zero position tables (transformers leaves them zero from a config)
        model.vit.embeddings.position_embeddings.normal_()
        model.decoder.decoder_pos_embed.normal_()
    return model


def to_4x_names(state):
    """Rename transformers 5.x ViT keys to the 4.x layout (vit.encoder.layer.N.attention.attention.query ...)."""
    table = {
        "attention.q_proj": "attention.attention.query", "attention.k_proj": "attention.attention.key",
        "attention.v_proj": "attention.attention.value", "attention.o_proj": "attention.output.dense",
        "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense",
    }
    out = {}
    for key, value in state.items():
        for new, old in table.items():
            key = key.replace(new, old)
        key = key.replace("vit.layers.", "vit.encoder.layer.")
        out[key] = value
    return out


@pytest.mark.parametrize("layout", ["memory-5x", "disk-5x", "4x"])
def test_transformers_vitmae_checkpoints(layout, tmp_path, images):
    theirs = transformers_vitmae()
    if layout == "disk-5x":  # what transformers 5.x writes to disk (legacy encoder names, decoder_encoder.layer)
        theirs.save_pretrained(tmp_path / "hf")
        source = tmp_path / "hf"
    else:
        state = theirs.state_dict() if layout == "memory-5x" else to_4x_names(theirs.state_dict())
        torch.save(state, tmp_path / "hf.bin")
        source = tmp_path / "hf.bin"
    overrides = {} if layout == "disk-5x" else {"layer_norm_eps": 1e-12, "num_attention_heads": HEADS, "decoder_num_attention_heads": 4}
    ours = convert_checkpoint(source, config_overrides=overrides)
    noise = torch.rand(3, 16)
    with torch.no_grad():
        expected, actual = theirs(images, noise=noise), ours(images, noise=noise)
    assert (expected.logits - actual.logits).abs().max() < 1e-5
    assert abs(expected.loss.item() - actual.loss.item()) < 1e-5


def test_hf_mim_mae_converts_back_to_transformers(images):
    ours = hf_mim.MAEForPreTraining(hf_mim.get_method("mae").make_config("tiny")).eval()
    theirs = to_transformers_vitmae(ours)
    assert isinstance(theirs, ViTMAEForPreTraining)
    noise = torch.rand(3, 16)
    with torch.no_grad():
        a, b = ours(images, noise=noise), theirs(images, noise=noise)
    assert torch.allclose(a.logits, b.logits, atol=1e-6) and torch.allclose(a.loss, b.loss, atol=1e-6)
    with pytest.raises(ConversionError, match="only MAE"):
        to_transformers_vitmae(hf_mim.SimMIMForPreTraining(hf_mim.get_method("simmim").make_config("tiny")))
