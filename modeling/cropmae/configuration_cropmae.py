# Generated from hf_mim.models.cropmae.configuration_cropmae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""CropMAE configuration (Eymaël et al., ECCV 2024, "Efficient Image Pre-Training with Siamese Cropped Masked
Autoencoders")."""

from .configuration_mae import MAEConfig


class CropMAEConfig(MAEConfig):
    r"""
    Siamese MAE on two crops of one image. Defaults are the official ImageNet release
    (alexandre-eymael/CropMAE ``scripts/train_cropmae_in.sh`` + ``siam_mae_vit_small``): a ViT-S/16 encoder
    (384 wide, 12 layers, 6 heads) shared by both views, a 4-block 256-d decoder with 8 heads whose
    feed-forward width is fixed at 2048 (``nn.TransformerDecoderLayer``'s default, not 4x the width), 98.5% of
    the local view masked (``int(196 * 0.015) = 2`` patches stay visible), normalised-pixel targets.

    Args:
        decoder_hidden_size (`int`, defaults to 256), decoder_num_hidden_layers (`int`, defaults to 4),
        decoder_num_attention_heads (`int`, defaults to 8), decoder_intermediate_size (`int`, defaults to 2048):
            size of the cross-attention decoder.
        decoder_dropout (`float`, defaults to 0.1): dropout on the decoder's attention weights and on every
            residual branch (PyTorch ``TransformerDecoderLayer`` default kept by the official code).
        mask_ratio (`float`, defaults to 0.985): fraction of the LOCAL view's patches removed, MAE rounding
            (``int(L * (1 - ratio))`` visible). The global view is never masked.
    """

    model_type = "cropmae"

    hidden_size: int = 384
    num_hidden_layers: int = 12
    num_attention_heads: int = 6
    intermediate_size: int = 1536
    decoder_hidden_size: int = 256
    decoder_num_hidden_layers: int = 4
    decoder_num_attention_heads: int = 8
    decoder_intermediate_size: int = 2048
    decoder_dropout: float = 0.1
    mask_ratio: float = 0.985
    norm_pix_loss: bool = True

    def __post_init__(self, **kwargs):
        if not 0.0 <= self.decoder_dropout < 1.0:
            raise ValueError(f"decoder_dropout must be in [0, 1), got {self.decoder_dropout}")
        super().__post_init__(**kwargs)
