# Generated from hf_mim.models.mae.configuration_mae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""MAE configuration (He et al., 2021, "Masked Autoencoders Are Scalable Vision Learners")."""

from .mim_configuration_utils import MIMViTConfig


class MAEConfig(MIMViTConfig):
    r"""
    ViT-B/16 encoder (see [`MIMViTConfig`]) plus the MAE decoder and masking. Defaults are the paper's base
    setting: 8-block 512-d decoder with 16 heads, 75% random masking, normalised-pixel targets.

    Args:
        decoder_hidden_size (`int`, defaults to 512), decoder_num_hidden_layers (`int`, defaults to 8),
        decoder_num_attention_heads (`int`, defaults to 16), decoder_intermediate_size (`int`, defaults to 2048):
            size of the light decoder.
        mask_ratio (`float`, defaults to 0.75): fraction of patches removed; `int(L * (1 - ratio))` stay visible.
        norm_pix_loss (`bool`, defaults to True): regress per-patch normalised pixels (mean / unbiased variance),
            as the released MAE models do. Set False to regress the (processor-normalised) pixels directly.
    """

    model_type = "mim_mae"

    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 8
    decoder_num_attention_heads: int = 16
    decoder_intermediate_size: int = 2048
    mask_ratio: float = 0.75
    norm_pix_loss: bool = True

    def __post_init__(self, **kwargs):
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        if self.decoder_hidden_size % self.decoder_num_attention_heads:
            raise ValueError(
                f"decoder_hidden_size {self.decoder_hidden_size} must be divisible by "
                f"decoder_num_attention_heads {self.decoder_num_attention_heads}"
            )
        super().__post_init__(**kwargs)
