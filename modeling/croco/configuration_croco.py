# Generated from hf_mim.models.croco.configuration_croco by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""CroCo configuration (Weinzaepfel et al., NeurIPS 2022, "CroCo: Self-Supervised Pre-training for 3D Vision Tasks
by Cross-View Completion")."""

from .mim_configuration_utils import MIMViTConfig


class CroCoConfig(MIMViTConfig):
    r"""
    ViT-B/16 encoder without cls token (see [`MIMViTConfig`]) shared by the two views, plus the CroCo decoder.
    Defaults are CroCo v1 (naver/croco ``CroCoNet()``): 8-block 512-d decoder with 16 heads, each block
    self-attention over view-1 tokens then cross-attention to the view-2 tokens, 90% masking of view 1,
    normalised-pixel targets, fixed 2-D sin-cos position embeddings (``pos_embed='cosine'``, MAE layout).

    Args:
        decoder_hidden_size (`int`, defaults to 512), decoder_num_hidden_layers (`int`, defaults to 8),
        decoder_num_attention_heads (`int`, defaults to 16), decoder_intermediate_size (`int`, defaults to 2048):
            size of the cross-view decoder.
        mask_ratio (`float`, defaults to 0.9): fraction of view-1 patches removed; CroCo masks `int(ratio * L)`
            patches (176 of 196), so one more patch stays visible than MAE's rounding would leave.
        norm_pix_loss (`bool`, defaults to True): regress per-patch normalised pixels (mean / unbiased variance),
            the `pretrain.py` default (`--norm_pix_loss 1`).
        norm_ref_in_decoder (`bool`, defaults to True): LayerNorm on the reference-view tokens before every
            cross-attention (CroCo's `norm_im2_in_dec`).
    """

    model_type = "mim_croco"

    use_cls_token: bool = False
    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 8
    decoder_num_attention_heads: int = 16
    decoder_intermediate_size: int = 2048
    mask_ratio: float = 0.9
    norm_pix_loss: bool = True
    norm_ref_in_decoder: bool = True

    def __post_init__(self, **kwargs):
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(
                f"mask_ratio must be in (0, 1): CroCo completes masked patches of view 1, got {self.mask_ratio}"
            )
        if self.decoder_hidden_size % self.decoder_num_attention_heads:
            raise ValueError(
                f"decoder_hidden_size {self.decoder_hidden_size} must be divisible by "
                f"decoder_num_attention_heads {self.decoder_num_attention_heads}"
            )
        if self.decoder_hidden_size % 4:
            raise ValueError(
                f"the decoder's 2-D sin-cos position embeddings need decoder_hidden_size divisible by 4, "
                f"got {self.decoder_hidden_size}"
            )
        if self.position_embedding_type != "sincos":
            raise ValueError(
                "CroCo v1 uses fixed 2-D sin-cos position embeddings in encoder and decoder "
                f"(position_embedding_type='sincos'); got {self.position_embedding_type!r}. CroCo v2's RoPE is not "
                "implemented in hf_mim."
            )
        super().__post_init__(**kwargs)
