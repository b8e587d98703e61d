"""State-dict converter between the official sunlicai/HiCMAE checkpoints and hf_mim, both ways.

Covers the pre-training layout (``PretrainAudioVisionTransformer``) and the fine-tuning one
(``AudioVisionTransformer``), optionally wrapped as ``{"model": ...}`` / ``{"module": ...}``. Block parameter names
are the official ones; the renames are:

| hf_mim | official |
|---|---|
| encoder.video.* / encoder.audio.* / encoder.fusion.* | encoder.* / encoder_audio.* / encoder_fusion.* |
| decoder.* / audio_decoder.* | decoder.* / decoder_audio.* |
| decoder.embed.weight / audio_decoder.embed.weight | encoder_to_decoder.weight / encoder_to_decoder_audio.weight |
| decoder.mask_token / audio_decoder.mask_token | mask_token / mask_token_audio |
| decoder.pred / audio_decoder.pred | decoder.head / decoder_audio.head |
| *.cross_attn.q.weight, .k.weight + .v.weight | *.cross_attn.q.weight, .kv.weight (k and v stacked) |
| *.cross_attn.q.bias / .v.bias (.k.bias = 0) | *.cross_attn.q_bias / .v_bias (no k bias) |
| blocks.N.ls1.gamma / ls2.gamma (layer scale) | blocks.N.gamma_1 / gamma_2 |
| classifier | head (fine-tuning) |

Fixed sinusoid tables are not stored by either side (hf_mim rebuilds them).
"""

import re

import torch

TOWERS = (("encoder.video.", "encoder."), ("encoder.audio.", "encoder_audio."), ("encoder.fusion.", "encoder_fusion."),
          ("audio_decoder.", "decoder_audio."), ("decoder.", "decoder."))
TOP = {
    "decoder.embed.weight": "encoder_to_decoder.weight", "audio_decoder.embed.weight": "encoder_to_decoder_audio.weight",
    "decoder.mask_token": "mask_token", "audio_decoder.mask_token": "mask_token_audio",
    "classifier.weight": "head.weight", "classifier.bias": "head.bias",
}
LEAVES = (("ls1.gamma", "gamma_1"), ("ls2.gamma", "gamma_2"), ("pred.", "head."))


def unwrap(state_dict: dict) -> dict:
    for key in ("model", "module", "state_dict"):
        if key in state_dict and isinstance(state_dict[key], dict):
            return state_dict[key]
    return state_dict


def _rename(key: str, table) -> str:
    for ours, theirs in table:
        if key.startswith(ours):
            return theirs + key[len(ours):]
    return key


def to_official(state_dict: dict) -> dict:
    """hf_mim HiCMAE keys -> official keys."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith("pos_embed"):
            continue
        if key in TOP:
            out[TOP[key]] = value
            continue
        cross = re.match(r"^(.*\.cross_attn)\.(q|k|v)\.(weight|bias)$", key)
        if cross:
            prefix, part, leaf = cross.groups()
            prefix = _rename(prefix, TOWERS)
            if leaf == "bias":
                if part != "k":  # the key bias has no effect on attention (and no gradient): the official code has none
                    out[f"{prefix}.{part}_bias"] = value
            elif part == "q":
                out[f"{prefix}.q.weight"] = value
            elif part == "k":
                out[f"{prefix}.kv.weight"] = torch.cat([value, state_dict[key[: -len("k.weight")] + "v.weight"]], dim=0)
            continue
        key = _rename(key, TOWERS)
        for ours, theirs in LEAVES:
            key = re.sub(rf"\.{re.escape(ours)}", f".{theirs}", key)
        out[key] = value
    return out


def from_official(state_dict: dict) -> dict:
    """Official pre-training or fine-tuning checkpoint -> hf_mim keys (position tables and empty heads dropped)."""
    inverse_top = {v: k for k, v in TOP.items()}
    inverse_towers = tuple((theirs, ours) for ours, theirs in TOWERS)
    # "decoder." maps to itself; "decoder_audio." must be tried before it
    inverse_towers = tuple(sorted(inverse_towers, key=lambda pair: -len(pair[0])))
    out = {}
    for key, value in unwrap(state_dict).items():
        if key.endswith("pos_embed") or re.match(r"^encoder(_audio)?\.head\.", key):
            continue
        if key in inverse_top:
            out[inverse_top[key]] = value
            continue
        key = _rename(key, inverse_towers)
        cross = re.match(r"^(.*\.cross_attn)\.(q_bias|v_bias|kv\.weight)$", key)
        if cross:
            prefix, name = cross.groups()
            if name == "kv.weight":
                key_weight, value_weight = value.chunk(2, dim=0)
                out[f"{prefix}.k.weight"], out[f"{prefix}.v.weight"] = key_weight, value_weight
                out[f"{prefix}.k.bias"] = value.new_zeros(key_weight.shape[0])
            else:
                out[f"{prefix}.{name[0]}.bias"] = value
            continue
        for ours, theirs in LEAVES:
            key = re.sub(rf"\.{re.escape(theirs)}", f".{ours}", key)
        out[key] = value
    return out
