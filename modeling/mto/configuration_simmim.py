# Generated from hf_mim.models.simmim.configuration_simmim by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""SimMIM configuration (Xie et al., CVPR 2022, "SimMIM: A Simple Framework for Masked Image Modeling")."""

from .mim_configuration_utils import MIMViTConfig


class SimMIMConfig(MIMViTConfig):
    r"""
    ViT encoder with a mask token and a one-layer pixel head. Defaults follow the official ViT-B recipe
    (microsoft/SimMIM ``config.py`` + ``simmim_pretrain__vit_base__img224__800ep.yaml``): BEiT-style blocks with
    q/v bias and layer scale 0.1, a relative position bias shared by all blocks, no absolute position embedding,
    drop path 0.1, and 60% masking of 32-px cells.

    Args:
        mask_patch_size (`int`, defaults to 32): side of the square cells that are masked together.
        mask_ratio (`float`, defaults to 0.6): fraction of cells masked, rounded up (30 of 49 at 224 px).
    """

    model_type = "simmim"

    qkv_bias: bool | str = "qv"
    layer_scale_init_value: float | None = 0.1
    position_embedding_type: str = "none"
    use_shared_relative_position_bias: bool = True
    drop_path_rate: float = 0.1
    mask_patch_size: int = 32
    mask_ratio: float = 0.6

    def __post_init__(self, **kwargs):
        if self.mask_patch_size % self.patch_size:
            raise ValueError(f"mask_patch_size {self.mask_patch_size} must be a multiple of patch_size {self.patch_size}")
        sizes = self.image_size if isinstance(self.image_size, (list, tuple)) else [self.image_size]
        if any(size % self.mask_patch_size for size in sizes) or len(set(sizes)) != 1:
            raise ValueError(
                f"SimMIM needs a square image_size divisible by mask_patch_size {self.mask_patch_size}, got {self.image_size}"
            )
        if not 0.0 <= self.mask_ratio <= 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1], got {self.mask_ratio}")
        super().__post_init__(**kwargs)
