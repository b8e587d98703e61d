"""State-dict converter between the official CRATE-MAE checkpoint (Ma-Lab-Berkeley/CRATE
``model/crate_ae/crate_ae.py`` ``MaskedAutoencoderViT`` with CRATE blocks) and hf_mim's ``CRATEMAEForPreTraining``.

| hf_mim | official |
|---|---|
| encoder.patch_embed.proj / cls_token / mask_token | patch_embed.proj / cls_token / mask_token |
| encoder.pos_embed (fixed sin-cos) | decoder_pos_embed (the table the official encoder adds) |
| encoder.blocks.N.norm1 / attn.qkv / attn.proj | blocks.N.layers.0.0.norm / .fn.qkv / .fn.to_out.0 |
| encoder.blocks.N.norm2 / ista.weight | blocks.N.layers.0.1.norm / .fn.weight |
| encoder.norm | norm |
| decoder.blocks.N.norm1 / dictionary.weight | decoder_blocks.N.layers.0.0.norm / .fn.weight |
| decoder.blocks.N.norm2 / attn.qkv / attn.proj | decoder_blocks.N.layers.0.1.norm / .fn.qkv / .fn.to_out.0 |
| decoder.norm / decoder.pred | decoder_norm / decoder_pred |

The official ``pos_embed`` and ``decoder_embed`` are never used by its forward and are dropped; :func:`to_official`
does not create them, so load its result with ``strict=False`` into the official model.
"""

import re

import torch

# (official, hf_mim) key patterns; ``{n}`` is a block index
RULES = [
    ("patch_embed.proj.{leaf}", "encoder.patch_embed.proj.{leaf}"),
    ("cls_token", "encoder.cls_token"),
    ("mask_token", "encoder.mask_token"),
    ("decoder_pos_embed", "encoder.pos_embed"),
    ("blocks.{n}.layers.0.0.norm.{leaf}", "encoder.blocks.{n}.norm1.{leaf}"),
    ("blocks.{n}.layers.0.0.fn.qkv.weight", "encoder.blocks.{n}.attn.qkv.weight"),
    ("blocks.{n}.layers.0.0.fn.to_out.0.{leaf}", "encoder.blocks.{n}.attn.proj.{leaf}"),
    ("blocks.{n}.layers.0.1.norm.{leaf}", "encoder.blocks.{n}.norm2.{leaf}"),
    ("blocks.{n}.layers.0.1.fn.weight", "encoder.blocks.{n}.ista.weight"),
    ("norm.{leaf}", "encoder.norm.{leaf}"),
    ("decoder_blocks.{n}.layers.0.0.norm.{leaf}", "decoder.blocks.{n}.norm1.{leaf}"),
    ("decoder_blocks.{n}.layers.0.0.fn.weight", "decoder.blocks.{n}.dictionary.weight"),
    ("decoder_blocks.{n}.layers.0.1.norm.{leaf}", "decoder.blocks.{n}.norm2.{leaf}"),
    ("decoder_blocks.{n}.layers.0.1.fn.qkv.weight", "decoder.blocks.{n}.attn.qkv.weight"),
    ("decoder_blocks.{n}.layers.0.1.fn.to_out.0.{leaf}", "decoder.blocks.{n}.attn.proj.{leaf}"),
    ("decoder_norm.{leaf}", "decoder.norm.{leaf}"),
    ("decoder_pred.{leaf}", "decoder.pred.{leaf}"),
]
UNUSED_OFFICIAL = re.compile(r"^(pos_embed|decoder_embed\.(weight|bias))$")


def _pattern(template: str) -> re.Pattern:
    escaped = re.escape(template).replace(r"\{n\}", r"(?P<n>\d+)").replace(r"\{leaf\}", r"(?P<leaf>weight|bias)")
    return re.compile(f"^{escaped}$")


def _rename(key: str, rules: list[tuple[str, str]]) -> str | None:
    for source, target in rules:
        match = _pattern(source).match(key)
        if match:
            return target.format(**match.groupdict())
    return None


def _convert(state_dict: dict, rules: list[tuple[str, str]], skip: re.Pattern | None, layout: str) -> dict:
    out, unknown = {}, []
    for key, value in state_dict.items():
        if skip is not None and skip.match(key):
            continue
        renamed = _rename(key, rules)
        if renamed is None:
            unknown.append(key)
        else:
            out[renamed] = value
    if unknown:
        raise KeyError(f"not a {layout} CRATE-MAE state dict: no mapping for {unknown[:4]}{' ...' if len(unknown) > 4 else ''}")
    return out


def unwrap(state_dict: dict) -> dict:
    """The model's state dict inside an official training checkpoint (``{"model": ...}``, as MAE's trainer saves)."""
    for key in ("model", "module", "state_dict"):
        if key in state_dict and isinstance(state_dict[key], dict):
            return state_dict[key]
    return state_dict


def from_official(state_dict: dict) -> dict:
    """Official ``MaskedAutoencoderViT`` (CRATE blocks) keys -> hf_mim ``CRATEMAEForPreTraining`` keys."""
    return _convert(unwrap(state_dict), RULES, UNUSED_OFFICIAL, "official")


def to_official(state_dict: dict) -> dict:
    """hf_mim ``CRATEMAEForPreTraining`` keys -> official keys (without the unused ``pos_embed`` / ``decoder_embed``)."""
    return _convert(state_dict, [(ours, theirs) for theirs, ours in RULES], None, "hf_mim")


def load_official(path, config) -> "torch.nn.Module":
    """An hf_mim ``CRATEMAEForPreTraining`` for ``config`` (e.g. ``CRATEMAEConfig.official("base")``) carrying the
    weights of an official checkpoint file (read with ``weights_only=True``); every weight must match."""
    from hf_mim.hub.convert import load_torch_file
    from hf_mim.models.cratemae.modeling_cratemae import CRATEMAEForPreTraining

    model = CRATEMAEForPreTraining(config)
    model.load_state_dict(from_official(load_torch_file(path)), strict=True)
    return model
