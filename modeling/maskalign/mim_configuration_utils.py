# Generated from hf_mim.configuration_utils by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Shared configuration of every ViT-based hf_mim encoder.

Each method's config subclasses :class:`MIMViTConfig`, sets its own ``model_type`` and adds its own fields
(decoder size, mask ratio, loss switches...). Defaults here are ViT-B/16 as used by MAE.
"""

import math

from transformers import PreTrainedConfig

POSITION_EMBEDDING_TYPES = ("sincos", "learned", "none")
POOLING_TYPES = ("mean", "cls")


def check_positive(config, *names: str) -> None:
    """Sizes and counts must be positive integers: 0 otherwise fails deep inside the model (division by zero)."""
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


class MIMViTConfig(PreTrainedConfig):
    r"""
    Args:
        image_size (`int`, defaults to 224): input resolution (square).
        patch_size (`int`, defaults to 16): side of a square patch.
        num_channels (`int`, defaults to 3): input channels (1 for grayscale, N for multispectral).
        hidden_size (`int`, defaults to 768), num_hidden_layers (`int`, defaults to 12),
        num_attention_heads (`int`, defaults to 12), intermediate_size (`int`, defaults to 3072): encoder size.
        hidden_act (`str`, defaults to "gelu"): MLP activation.
        qkv_bias (`bool` or `str`, defaults to True): `True`/"qkv" full bias, "qv" BEiT-style q/v bias, `False`.
        layer_norm_eps (`float`, defaults to 1e-6): LayerNorm epsilon (timm/official MAE value).
        layer_scale_init_value (`float`, *optional*): enables per-channel layer scale with this initial value.
        drop_path_rate (`float`, defaults to 0.0): stochastic depth, linearly increasing over the blocks.
        hidden_dropout_prob (`float`), attention_probs_dropout_prob (`float`): dropout (0 in all MIM recipes).
        use_cls_token (`bool`, defaults to True): prepend a learnable cls token.
        position_embedding_type (`str`, defaults to "sincos"): "sincos" (fixed), "learned" or "none".
        pos_embed_layout (`str`, defaults to "mae"): sin-cos layout, "mae" (column first) or "mocov3" (row first).
        use_shared_relative_position_bias (`bool`, defaults to False): BEiT/SimMIM relative position bias shared
            by all blocks.
        initializer_range (`float`, defaults to 0.02): std of normal / truncated-normal initialisations.
        pooling (`str`, defaults to "mean"): how the image-classification head pools tokens ("mean" or "cls").
    """

    model_type = "mim_vit"

    image_size: int | list[int] | tuple[int, int] = 224
    patch_size: int = 16
    num_channels: int = 3
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    qkv_bias: bool | str = True
    layer_norm_eps: float = 1e-6
    layer_scale_init_value: float | None = None
    drop_path_rate: float = 0.0
    hidden_dropout_prob: float = 0.0
    attention_probs_dropout_prob: float = 0.0
    use_cls_token: bool = True
    position_embedding_type: str = "sincos"
    pos_embed_layout: str = "mae"
    use_shared_relative_position_bias: bool = False
    initializer_range: float = 0.02
    pooling: str = "mean"

    def __post_init__(self, **kwargs):
        if isinstance(self.image_size, (list, tuple)):
            self.image_size = [int(s) for s in self.image_size]
        sizes = self.image_size if isinstance(self.image_size, list) else [self.image_size] * 2
        check_positive(self, "patch_size", "num_channels", "hidden_size", "num_hidden_layers", "num_attention_heads")
        if min(sizes) <= 0:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        if any(size % self.patch_size for size in sizes):
            raise ValueError(f"image_size {self.image_size} must be divisible by patch_size {self.patch_size}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be divisible by num_attention_heads {self.num_attention_heads}"
            )
        if self.position_embedding_type not in POSITION_EMBEDDING_TYPES:
            raise ValueError(
                f"position_embedding_type must be one of {POSITION_EMBEDDING_TYPES}, got {self.position_embedding_type!r}"
            )
        if self.position_embedding_type == "sincos" and self.hidden_size % 4:
            raise ValueError(f"sin-cos position embeddings need hidden_size divisible by 4, got {self.hidden_size}")
        if self.pooling not in POOLING_TYPES:
            raise ValueError(f"pooling must be one of {POOLING_TYPES}, got {self.pooling!r}")
        if self.pooling == "cls" and not self.use_cls_token:
            raise ValueError("pooling='cls' needs use_cls_token=True")
        super().__post_init__(**kwargs)

    @property
    def image_hw(self) -> tuple[int, int]:
        size = self.image_size
        return (size, size) if isinstance(size, int) else (size[0], size[1])

    @property
    def grid_size(self) -> tuple[int, int]:
        height, width = self.image_hw
        return height // self.patch_size, width // self.patch_size

    @property
    def num_patches(self) -> int:
        return math.prod(self.grid_size)


class TubeletGridMixin:
    """Video configs (before ``MIMViTConfig`` in the bases): the grid is ``(T', H', W')`` tubelets along time, rows
    and columns, so ``num_patches`` counts tubelets."""

    @property
    def grid_size(self) -> tuple[int, int, int]:
        height, width = self.image_hw
        return self.num_frames // self.tubelet_size, height // self.patch_size, width // self.patch_size
