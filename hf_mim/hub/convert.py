"""Checkpoint converters: official / third-party key layouts <-> hf_mim.

Each format is a :class:`KeyMapping`: ordered ``(regex, replacement)`` rules applied to every source key (first
match wins), keys to drop on purpose, and whether attention comes as separate q/k/v projections (fused into
hf_mim's single ``qkv``). Any source key that no rule covers, and any hf_mim key left without a value, raises
:class:`ConversionError` listing them: never a silent partial load.
"""

import os
import re
import warnings
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


_TIMM_BLOCK = r"(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias)"

MAE_OFFICIAL = KeyMapping(
    name="mae-official",
    description="facebookresearch/mae models_mae.py state dict (checkpoint['model']): full pre-training model with "
    "decoder_* keys, or the encoder-only mae_pretrain_vit_*.pth files",
    rules=(
        (r"^(cls_token|pos_embed)$", r"encoder.\1"),
        (r"^patch_embed\.proj\.(weight|bias)$", r"encoder.patch_embed.proj.\1"),
        (rf"^blocks\.(\d+)\.{_TIMM_BLOCK}$", r"encoder.blocks.\1.\2.\3"),
        (r"^norm\.(weight|bias)$", r"encoder.norm.\1"),
        (r"^decoder_embed\.(weight|bias)$", r"decoder.embed.\1"),
        (r"^mask_token$", "decoder.mask_token"),
        (r"^decoder_pos_embed$", "decoder.pos_embed"),
        (rf"^decoder_blocks\.(\d+)\.{_TIMM_BLOCK}$", r"decoder.blocks.\1.\2.\3"),
        (r"^decoder_norm\.(weight|bias)$", r"decoder.norm.\1"),
        (r"^decoder_pred\.(weight|bias)$", r"decoder.pred.\1"),
    ),
)

TIMM_MAE = KeyMapping(
    name="timm-mae",
    description="timm VisionTransformer weights of the *.mae tags (e.g. vit_base_patch16_224.mae): encoder only, "
    "classifier head absent or empty",
    rules=MAE_OFFICIAL.rules[:4],
    ignore=(r"^head\.(weight|bias)$", r"^fc_norm\.(weight|bias)$"),
)

SIMMIM_OFFICIAL = KeyMapping(
    name="simmim-official",
    description="microsoft/SimMIM ViT pre-training checkpoint (checkpoint['model']): BEiT-style encoder with "
    "gamma_1/gamma_2 layer scale, q_bias/v_bias, shared relative position bias; decoder.0 = 1x1 conv",
    rules=(
        (r"^encoder\.(cls_token|mask_token|pos_embed)$", r"encoder.\1"),
        (r"^encoder\.patch_embed\.proj\.(weight|bias)$", r"encoder.patch_embed.proj.\1"),
        (r"^encoder\.rel_pos_bias\.relative_position_bias_table$", "encoder.rel_pos_bias.relative_position_bias_table"),
        (r"^encoder\.blocks\.(\d+)\.gamma_1$", r"encoder.blocks.\1.ls1.gamma"),
        (r"^encoder\.blocks\.(\d+)\.gamma_2$", r"encoder.blocks.\1.ls2.gamma"),
        (r"^encoder\.blocks\.(\d+)\.attn\.(q_bias|v_bias)$", r"encoder.blocks.\1.attn.\2"),
        (rf"^encoder\.blocks\.(\d+)\.{_TIMM_BLOCK}$", r"encoder.blocks.\1.\2.\3"),
        (r"^encoder\.norm\.(weight|bias)$", r"encoder.norm.\1"),
        (r"^decoder\.0\.(weight|bias)$", r"decoder.0.\1"),
    ),
    ignore=(r".*\.relative_position_index$",),
)

FORMATS = {m.name: m for m in (MAE_OFFICIAL, TIMM_MAE, SIMMIM_OFFICIAL, TRANSFORMERS_VITMAE, TRANSFORMERS_VIT_MIM)}
TARGET_METHOD = {
    "mae-official": "mae", "timm-mae": "mae", "transformers-vitmae": "mae",
    "simmim-official": "simmim", "transformers-vit-mim": "simmim",
}
HEADS_FOR_WIDTH = {192: 3, 384: 6, 512: 16, 768: 12, 1024: 16, 1280: 16, 1408: 16}
MIN_MASK_CELLS_PER_SIDE = 4


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


# --------------------------------------------------------------------------- loading, detection, config inference


def load_torch_file(path) -> dict:
    """``torch.load`` that never runs code from the file (``weights_only=True``). Official training checkpoints
    (facebookresearch/mae's ``checkpoint-*.pth``) also store their ``argparse.Namespace`` of settings, which is
    allow-listed: a namespace of plain values cannot execute anything."""
    import argparse
    import pickle

    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(error))
        reason = f"it refers to {found.group(1)}" if found else "it is not a plain tensor file"
        raise ConversionError(
            f"{path} holds Python objects besides tensors and is not unpickled for safety ({reason}); "
            "save its state dict alone (torch.save(model.state_dict(), ...)) or as .safetensors"
        ) from error


def load_source_state_dict(source) -> tuple[dict, dict | None]:
    """State dict of ``source`` (a .pth/.pt/.bin/.safetensors file or a transformers checkpoint folder) and, for
    folders, their config.json. Wrapped checkpoints (``{"model": ...}``, ``{"state_dict": ...}``) are unwrapped."""
    import json
    from pathlib import Path

    from safetensors.torch import load_file

    path = Path(source)
    config = None
    if path.is_dir():
        if (path / "config.json").exists():
            config = json.loads((path / "config.json").read_text())
        candidates = [path / "model.safetensors", path / "pytorch_model.bin"]
        found = [c for c in candidates if c.exists()]
        if not found:
            raise ConversionError(f"{path} has no model.safetensors or pytorch_model.bin")
        path = found[0]
    if not path.exists():
        raise ConversionError(f"checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        state = load_file(str(path))
    else:
        state = load_torch_file(path)
    for key in ("model", "state_dict", "module"):
        if isinstance(state, dict) and key in state and isinstance(state[key], dict):
            state = state[key]
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise ConversionError(f"{source} does not contain a flat state dict of tensors")
    if any(k.startswith("embeddings.patch_embeddings.") for k in state):
        # a transformers base model (ViTMAEModel, ViTModel) saves without the ``vit.`` prefix of its heads
        state = {f"vit.{k}": v for k, v in state.items()}
    return state, config


def detect_format(state_dict: dict) -> str:
    keys = set(state_dict)
    if any(k.startswith(("vit.layers.", "vit.encoder.layer.", "vit.embeddings.")) for k in keys):
        return "transformers-vit-mim" if "decoder.0.weight" in keys else "transformers-vitmae"
    if any(k.startswith("encoder.blocks.") for k in keys) and "decoder.0.weight" in keys:
        return "simmim-official"
    if any(k.startswith("decoder_") for k in keys) or "mask_token" in keys:
        return "mae-official"
    if any(k.startswith("blocks.") for k in keys):
        return "timm-mae" if any(k.startswith(("head.", "fc_norm.")) for k in keys) else "mae-official"
    raise ConversionError(f"cannot tell the checkpoint format from keys such as {sorted(keys)[:8]}; pass --from")


def _count_blocks(state: dict, prefix: str) -> int:
    ids = {int(k[len(prefix):].split(".")[0]) for k in state if k.startswith(prefix)}
    return max(ids) + 1 if ids else 0


def simmim_mask_patch_size(image_size: int, patch_size: int) -> int:
    """SimMIM's 32 px mask cells (6 per side at 192 px), or the largest multiple of the patch size below that
    still leaves ``MIN_MASK_CELLS_PER_SIDE`` cells per side (at 32 px one 32 px cell would hide the whole image)."""
    for cell in range(32 // patch_size * patch_size, patch_size - 1, -patch_size):
        if cell and image_size % cell == 0 and image_size // cell >= MIN_MASK_CELLS_PER_SIDE:
            return cell
    return patch_size


def infer_config_kwargs(
    state: dict, method: str, source_config: dict | None = None, overrides: dict | None = None
) -> dict:
    """hf_mim config fields from tensor shapes of a converted state dict. Head counts, which weights do not
    determine, come from ``overrides``, ``source_config`` or a relative-position table (one column per head);
    otherwise they are guessed from the standard ViT widths, with a warning naming the guess."""
    import math

    weight = state["encoder.patch_embed.proj.weight"]
    hidden, channels, patch = weight.shape[0], weight.shape[1], weight.shape[2]
    known = {**(source_config or {}), **(overrides or {})}
    guessed = {}
    kwargs = dict(
        hidden_size=hidden, num_channels=channels, patch_size=patch,
        num_hidden_layers=_count_blocks(state, "encoder.blocks."),
        intermediate_size=state["encoder.blocks.0.mlp.fc1.weight"].shape[0],
    )
    table = state.get("encoder.rel_pos_bias.relative_position_bias_table")
    if table is not None:
        kwargs["num_attention_heads"] = table.shape[1]
    else:
        kwargs["num_attention_heads"] = guessed["num_attention_heads"] = HEADS_FOR_WIDTH.get(hidden, max(1, hidden // 64))
    if "encoder.pos_embed" in state:
        grid = int(math.isqrt(state["encoder.pos_embed"].shape[1] - 1))
        kwargs["image_size"] = grid * patch
    elif "encoder.rel_pos_bias.relative_position_bias_table" in state:
        entries = state["encoder.rel_pos_bias.relative_position_bias_table"].shape[0] - 3
        kwargs["image_size"] = (int(math.isqrt(entries)) + 1) // 2 * patch
    if "encoder.blocks.0.attn.q_bias" in state:
        kwargs["qkv_bias"] = "qv"
    else:
        kwargs["qkv_bias"] = "encoder.blocks.0.attn.qkv.bias" in state
    if "decoder.embed.weight" in state:
        decoder_dim = state["decoder.embed.weight"].shape[0]
        kwargs.update(
            decoder_hidden_size=decoder_dim,
            decoder_num_hidden_layers=_count_blocks(state, "decoder.blocks."),
            decoder_intermediate_size=state["decoder.blocks.0.mlp.fc1.weight"].shape[0],
        )
        kwargs["decoder_num_attention_heads"] = guessed["decoder_num_attention_heads"] = (
            16 if decoder_dim == 512 else max(1, decoder_dim // 32)
        )
    if method == "simmim":
        kwargs.update(
            layer_scale_init_value=0.1 if "encoder.blocks.0.ls1.gamma" in state else None,
            use_shared_relative_position_bias="encoder.rel_pos_bias.relative_position_bias_table" in state,
            position_embedding_type="learned" if "encoder.pos_embed" in state else "none",
        )
        kwargs.setdefault("image_size", 224)
        kwargs["mask_patch_size"] = simmim_mask_patch_size(known.get("image_size", kwargs["image_size"]), patch)
    if source_config:  # transformers configs know the exact values
        for name in ("num_attention_heads", "decoder_num_attention_heads", "layer_norm_eps", "hidden_act",
                     "image_size", "mask_ratio", "norm_pix_loss", "initializer_range"):
            if name in source_config:
                kwargs[name] = source_config[name]
        if source_config.get("model_type") == "vit":  # transformers ViTForMaskedImageModeling: a vanilla ViT
            kwargs.update(layer_scale_init_value=None, use_shared_relative_position_bias=False, drop_path_rate=0.0)
    for name, guess in guessed.items():
        if name not in known:
            warnings.warn(
                f"the checkpoint does not say {name}: guessed {guess} from the width (the standard ViT of that "
                f"width); if it differs, pass it, e.g. hf-mim convert ... --config '{{\"{name}\": N}}' "
                "(config_overrides in Python)",
                stacklevel=2,
            )
    return kwargs


def convert_checkpoint(source, output_dir=None, source_format: str = "auto", config_overrides: dict | None = None):
    """Convert an official / third-party checkpoint into an hf_mim model (and save it with its processor and
    remote code when ``output_dir`` is given). Returns the model: the pre-training model when the checkpoint
    has its decoder, else the encoder (``XxxModel``)."""
    from hf_mim.registry import check_config_fields, get_method

    state, source_config = load_source_state_dict(source)
    source_format = detect_format(state) if source_format == "auto" else source_format
    if source_format not in FORMATS:
        raise ConversionError(f"unknown format {source_format!r}; choose from {sorted(FORMATS)}")
    mapping = FORMATS[source_format]
    converted = convert_state_dict(state, mapping)
    spec = get_method(TARGET_METHOD[source_format])
    check_config_fields(spec.config_class, config_overrides or {})
    inferred = infer_config_kwargs(converted, spec.name, source_config, config_overrides)
    config = spec.config_class(**{**inferred, **(config_overrides or {})})
    has_head = any(not k.startswith("encoder.") for k in converted)
    if has_head:
        model = spec.pretraining_class(config)
    else:
        model = spec.model_class(config)
        converted = {k[len("encoder."):]: v for k, v in converted.items()}
    check_against_model(converted, model, strict=True, source=f"{source} ({mapping.name})")
    model.load_state_dict(converted, strict=False)  # non-persistent buffers are rebuilt at construction
    model.eval()
    if output_dir is not None:
        model.save_pretrained(output_dir)
        statistics = processor_statistics(source) if isinstance(source, (str, os.PathLike)) else {}
        spec.make_processor(config, **statistics).save_pretrained(output_dir)
    return model


# --------------------------------------------------------------------------- hf_mim -> transformers


def _reverse_rules() -> list[tuple[str, str]]:
    """hf_mim block keys (after :func:`split_qkv`) -> transformers 5.x ViTMAE names: the inverse of ``_HF5_LAYER``."""
    rules = []
    for prefix, target in (("encoder.blocks", "vit.layers"), ("decoder.blocks", "decoder.decoder_layers")):
        for hf_name, ours in _HF5_LAYER.items():
            rules.append((rf"^{re.escape(prefix)}\.(\d+)\.{re.escape(ours)}$", rf"{target}.\1.{hf_name}"))
    return rules


def to_transformers_vitmae(model):
    """hf_mim MAE (pre-training model) -> transformers ``ViTMAEForPreTraining`` with identical outputs."""
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    config = model.config
    if config.model_type != "mim_mae":
        raise ConversionError(f"only MAE models convert to ViTMAE, got {config.model_type}")
    if config.qkv_bias not in (True, "qkv") or not config.use_cls_token or config.position_embedding_type != "sincos":
        raise ConversionError("ViTMAE needs full qkv bias, a cls token and sin-cos position embeddings")
    hf_config = ViTMAEConfig(
        image_size=config.image_hw[0], patch_size=config.patch_size, num_channels=config.num_channels,
        hidden_size=config.hidden_size, num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads, intermediate_size=config.intermediate_size,
        hidden_act=config.hidden_act, layer_norm_eps=config.layer_norm_eps, qkv_bias=True,
        decoder_hidden_size=config.decoder_hidden_size, decoder_num_hidden_layers=config.decoder_num_hidden_layers,
        decoder_num_attention_heads=config.decoder_num_attention_heads,
        decoder_intermediate_size=config.decoder_intermediate_size, mask_ratio=config.mask_ratio,
        norm_pix_loss=config.norm_pix_loss, initializer_range=config.initializer_range,
    )
    state = split_qkv(model.state_dict())
    fixed = {
        "encoder.cls_token": "vit.embeddings.cls_token",
        "encoder.pos_embed": "vit.embeddings.position_embeddings",
        "encoder.patch_embed.proj.weight": "vit.embeddings.patch_embeddings.projection.weight",
        "encoder.patch_embed.proj.bias": "vit.embeddings.patch_embeddings.projection.bias",
        "encoder.norm.weight": "vit.layernorm.weight", "encoder.norm.bias": "vit.layernorm.bias",
        "decoder.mask_token": "decoder.mask_token", "decoder.pos_embed": "decoder.decoder_pos_embed",
        "decoder.embed.weight": "decoder.decoder_embed.weight", "decoder.embed.bias": "decoder.decoder_embed.bias",
        "decoder.norm.weight": "decoder.decoder_norm.weight", "decoder.norm.bias": "decoder.decoder_norm.bias",
        "decoder.pred.weight": "decoder.decoder_pred.weight", "decoder.pred.bias": "decoder.decoder_pred.bias",
    }
    rules = [(re.compile(p), r) for p, r in _reverse_rules()]
    renamed = {}
    for key, value in state.items():
        if key in fixed:
            renamed[fixed[key]] = value
            continue
        for pattern, replacement in rules:
            if pattern.match(key):
                renamed[pattern.sub(replacement, key)] = value
                break
        else:
            raise ConversionError(f"no transformers ViTMAE name for {key}")
    target = ViTMAEForPreTraining(hf_config)
    check_against_model(renamed, target, strict=True, source="hf_mim MAE")
    target.load_state_dict(renamed)
    return target.eval()


def processor_statistics(folder) -> dict:
    """``image_mean`` / ``image_std`` of the image processor saved in ``folder`` (read as JSON: the conversion
    works the same with or without hf_mim), or ``{}`` when it has none."""
    import json
    from pathlib import Path

    path = Path(folder) / "preprocessor_config.json"
    if not path.is_file():
        return {}
    saved = json.loads(path.read_text())
    return {name: saved[name] for name in ("image_mean", "image_std") if name in saved}


def to_transformers_processor(config, statistics: dict):
    """A transformers ``ViTImageProcessor`` for a converted ViTMAE (the image size of ``config``, the source's
    statistics), so ``AutoImageProcessor`` loads the converted folder on machines without hf_mim."""
    from transformers import ViTImageProcessor
    from transformers.image_utils import PILImageResampling

    height, width = config.image_hw
    return ViTImageProcessor(size={"height": height, "width": width}, resample=PILImageResampling.BICUBIC, **statistics)
