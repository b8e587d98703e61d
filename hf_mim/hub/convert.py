"""Checkpoint converters: official / third-party key layouts <-> hf_mim.

Each format is a :class:`KeyMapping`: ordered ``(regex, replacement)`` rules applied to every source key (first
match wins), keys to drop on purpose, and whether attention comes as separate q/k/v projections (fused into
hf_mim's single ``qkv``). Any source key that no rule covers, and any hf_mim key left without a value, raises
:class:`ConversionError` listing them: never a silent partial load.
"""

import re
from dataclasses import dataclass, field

import torch


class ConversionError(ValueError):
    pass


@dataclass(frozen=True)
class KeyMapping:
    name: str
    rules: tuple[tuple[str, str], ...]
    ignore: tuple[str, ...] = ()
    separate_qkv: bool = False
    description: str = ""
    notes: dict = field(default_factory=dict)


def _block_rules(src_block: str, dst_block: str, names: dict[str, str]) -> list[tuple[str, str]]:
    """Rules for one family of transformer blocks: ``names`` maps source sub-keys to hf_mim sub-keys."""
    return [(rf"^{src_block}\.(\d+)\.{re.escape(src)}$", rf"{dst_block}.\1.{dst}") for src, dst in names.items()]


# transformers 5.x ViT layer names (in memory) and the 4.x names (also what 5.x writes to disk for the encoder)
_HF5_LAYER = {
    "attention.q_proj.weight": "attn.qkv.q.weight",
    "attention.q_proj.bias": "attn.qkv.q.bias",
    "attention.k_proj.weight": "attn.qkv.k.weight",
    "attention.k_proj.bias": "attn.qkv.k.bias",
    "attention.v_proj.weight": "attn.qkv.v.weight",
    "attention.v_proj.bias": "attn.qkv.v.bias",
    "attention.o_proj.weight": "attn.proj.weight",
    "attention.o_proj.bias": "attn.proj.bias",
    "layernorm_before.weight": "norm1.weight",
    "layernorm_before.bias": "norm1.bias",
    "layernorm_after.weight": "norm2.weight",
    "layernorm_after.bias": "norm2.bias",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
}
_HF4_LAYER = {
    "attention.attention.query.weight": "attn.qkv.q.weight",
    "attention.attention.query.bias": "attn.qkv.q.bias",
    "attention.attention.key.weight": "attn.qkv.k.weight",
    "attention.attention.key.bias": "attn.qkv.k.bias",
    "attention.attention.value.weight": "attn.qkv.v.weight",
    "attention.attention.value.bias": "attn.qkv.v.bias",
    "attention.output.dense.weight": "attn.proj.weight",
    "attention.output.dense.bias": "attn.proj.bias",
    "layernorm_before.weight": "norm1.weight",
    "layernorm_before.bias": "norm1.bias",
    "layernorm_after.weight": "norm2.weight",
    "layernorm_after.bias": "norm2.bias",
    "intermediate.dense.weight": "mlp.fc1.weight",
    "intermediate.dense.bias": "mlp.fc1.bias",
    "output.dense.weight": "mlp.fc2.weight",
    "output.dense.bias": "mlp.fc2.bias",
}

_HF_VIT_EMBEDDINGS = [
    (r"^vit\.embeddings\.cls_token$", "encoder.cls_token"),
    (r"^vit\.embeddings\.position_embeddings$", "encoder.pos_embed"),
    (r"^vit\.embeddings\.patch_embeddings\.projection\.(weight|bias)$", r"encoder.patch_embed.proj.\1"),
    (r"^vit\.(?:layernorm|encoder\.layernorm)\.(weight|bias)$", r"encoder.norm.\1"),
]

TRANSFORMERS_VITMAE = KeyMapping(
    name="transformers-vitmae",
    description="transformers ViTMAEForPreTraining / ViTMAEModel, 5.x (vit.layers.N.attention.q_proj) or 4.x "
    "(vit.encoder.layer.N.attention.attention.query) names, decoder as decoder.decoder_layers.N or the "
    "decoder.decoder_encoder.layer.N names that transformers 5.x writes to disk",
    rules=tuple(
        _HF_VIT_EMBEDDINGS
        + _block_rules(r"vit\.layers", "encoder.blocks", _HF5_LAYER)
        + _block_rules(r"vit\.encoder\.layer", "encoder.blocks", _HF4_LAYER)
        + _block_rules(r"decoder\.decoder_layers", "decoder.blocks", _HF5_LAYER)
        + _block_rules(r"decoder\.decoder_layers", "decoder.blocks", _HF4_LAYER)
        + _block_rules(r"decoder\.decoder_encoder\.layer", "decoder.blocks", _HF4_LAYER)
        + [
            (r"^decoder\.mask_token$", "decoder.mask_token"),
            (r"^decoder\.decoder_pos_embed$", "decoder.pos_embed"),
            (r"^decoder\.decoder_embed\.(weight|bias)$", r"decoder.embed.\1"),
            (r"^decoder\.decoder_norm\.(weight|bias)$", r"decoder.norm.\1"),
            (r"^decoder\.decoder_pred\.(weight|bias)$", r"decoder.pred.\1"),
        ]
    ),
    separate_qkv=True,
)

TRANSFORMERS_VIT_MIM = KeyMapping(
    name="transformers-vit-mim",
    description="transformers ViTForMaskedImageModeling (SimMIM head on a vanilla ViT), 5.x or 4.x names",
    rules=tuple(
        _HF_VIT_EMBEDDINGS
        + [(r"^vit\.embeddings\.mask_token$", "encoder.mask_token")]
        + _block_rules(r"vit\.layers", "encoder.blocks", _HF5_LAYER)
        + _block_rules(r"vit\.encoder\.layer", "encoder.blocks", _HF4_LAYER)
        + [(r"^decoder\.0\.(weight|bias)$", r"decoder.0.\1")]
    ),
    separate_qkv=True,
)


def rename_keys(state_dict: dict, mapping: KeyMapping) -> tuple[dict, list[str]]:
    """Apply ``mapping.rules``; returns the renamed dict and the source keys no rule (or ignore) covered."""
    compiled = [(re.compile(pattern), replacement) for pattern, replacement in mapping.rules]
    ignored = [re.compile(pattern) for pattern in mapping.ignore]
    renamed, unmatched = {}, []
    for key, value in state_dict.items():
        for pattern, replacement in compiled:
            if pattern.match(key):
                renamed[pattern.sub(replacement, key)] = value
                break
        else:
            if not any(pattern.match(key) for pattern in ignored):
                unmatched.append(key)
    return renamed, unmatched


def fuse_qkv(state_dict: dict) -> dict:
    """``X.qkv.{q,k,v}.{weight,bias}`` -> ``X.qkv.{weight,bias}`` (concatenated q, k, v)."""
    fused, parts = {}, {}
    for key, value in state_dict.items():
        match = re.match(r"^(.*\.qkv)\.([qkv])\.(weight|bias)$", key)
        if match:
            parts.setdefault((match.group(1), match.group(3)), {})[match.group(2)] = value
        else:
            fused[key] = value
    for (prefix, kind), tensors in parts.items():
        if set(tensors) != {"q", "k", "v"}:
            raise ConversionError(f"{prefix}.{kind}: found only {sorted(tensors)} of q/k/v")
        fused[f"{prefix}.{kind}"] = torch.cat([tensors["q"], tensors["k"], tensors["v"]], dim=0)
    return fused


def split_qkv(state_dict: dict, names=("q", "k", "v")) -> dict:
    """Inverse of :func:`fuse_qkv`: ``X.qkv.weight`` -> ``X.qkv.q.weight`` etc. (``names`` renames the parts)."""
    result = {}
    for key, value in state_dict.items():
        match = re.match(r"^(.*\.qkv)\.(weight|bias)$", key)
        if match:
            for name, chunk in zip(names, value.chunk(3, dim=0)):
                result[f"{match.group(1)}.{name}.{match.group(2)}"] = chunk.clone()
        else:
            result[key] = value
    return result


def convert_state_dict(state_dict: dict, mapping: KeyMapping, model=None, strict: bool = True) -> dict:
    """Convert ``state_dict`` from ``mapping``'s layout to hf_mim names; with ``model`` also check that every key
    and shape lines up (``strict``: no hf_mim key may be left without a value)."""
    renamed, unmatched = rename_keys(state_dict, mapping)
    if unmatched:
        raise ConversionError(
            f"{len(unmatched)} key(s) are not part of the {mapping.name} layout: {sorted(unmatched)[:20]}"
        )
    converted = fuse_qkv(renamed) if mapping.separate_qkv else renamed
    if model is not None:
        check_against_model(converted, model, strict=strict, source=mapping.name)
    return converted


def check_against_model(state_dict: dict, model, strict: bool = True, source: str = "checkpoint") -> None:
    expected = model.state_dict()
    unexpected = sorted(set(state_dict) - set(expected))
    missing = sorted(set(expected) - set(state_dict)) if strict else []
    mismatched = sorted(
        f"{key}: {tuple(state_dict[key].shape)} vs {tuple(expected[key].shape)}"
        for key in set(state_dict) & set(expected)
        if state_dict[key].shape != expected[key].shape
    )
    if unexpected or missing or mismatched:
        raise ConversionError(
            f"{source} does not fit {type(model).__name__}: "
            f"unexpected {unexpected[:20]}, missing {missing[:20]}, shape mismatches {mismatched[:20]}"
        )
