"""Shared neural-network building blocks of hf_mim."""

from hf_mim.layers.attention import (
    Attention,
    CrossAttention,
    RelativePositionBias,
    eager_attention_forward,
    normalize_qkv_bias,
)
from hf_mim.layers.block import (
    CrossAttentionBlock,
    DropPath,
    LayerScale,
    Mlp,
    TransformerBlock,
    drop_path,
    drop_path_rates,
)
from hf_mim.layers.decoder import MAEDecoder
from hf_mim.layers.patch_embed import (
    PatchEmbed,
    TubeletEmbed,
    is_plain_module,
    normalize_patches,
    patchify,
    to_2tuple,
    tubelet_patchify,
    unpatchify,
)
from hf_mim.layers.pos_embed import POS_EMBED_LAYOUTS, sincos_1d, sincos_2d, sincos_3d, sinusoid_table

__all__ = [
    "Attention",
    "CrossAttention",
    "CrossAttentionBlock",
    "DropPath",
    "LayerScale",
    "MAEDecoder",
    "Mlp",
    "POS_EMBED_LAYOUTS",
    "PatchEmbed",
    "is_plain_module",
    "RelativePositionBias",
    "TransformerBlock",
    "TubeletEmbed",
    "drop_path",
    "drop_path_rates",
    "eager_attention_forward",
    "normalize_patches",
    "normalize_qkv_bias",
    "patchify",
    "sincos_1d",
    "sincos_2d",
    "sincos_3d",
    "sinusoid_table",
    "to_2tuple",
    "tubelet_patchify",
    "unpatchify",
]
