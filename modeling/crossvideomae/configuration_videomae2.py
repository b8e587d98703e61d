# Generated from hf_mim.models.videomae2.configuration_videomae2 by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""VideoMAE V2 configuration (Wang et al., CVPR 2023, "VideoMAE V2: Scaling Video Masked Autoencoders with Dual
Masking")."""

from .mim_configuration_utils import MIMViTConfig, TubeletGridMixin


class Videomae2Config(TubeletGridMixin, MIMViTConfig):
    r"""
    Joint space-time ViT over ``tubelet_size x patch_size x patch_size`` tubelets (see [`MIMViTConfig`] for the
    encoder fields) plus the VideoMAE decoder and the two masks. Defaults are the official ViT-B pre-training
    (``pretrain_videomae_base_patch16_224`` with the ``scripts/pretrain`` settings): 16 frames, tubelet 2, q/v
    attention biases, no cls token, fixed sinusoid positions, LayerNorm eps 1e-6, 4-block 384-d decoder.

    Args:
        num_frames (`int`, defaults to 16): frames per clip. tubelet_size (`int`, defaults to 2): frames per token.
        decoder_hidden_size (`int`, defaults to 384), decoder_num_hidden_layers (`int`, defaults to 4),
        decoder_num_attention_heads (`int`, defaults to 6), decoder_intermediate_size (`int`, defaults to 1536).
        mask_ratio (`float`, defaults to 0.9): tube masking ratio of the encoder.
        decoder_mask_ratio (`float`, defaults to 0.5): running-cell ratio of the decoder; 0 disables decoder
            masking (the decoder then reconstructs every encoder-masked cube: plain VideoMAE).
        norm_pix_loss (`bool`, defaults to True): per-patch, per-channel normalised targets.
    """

    model_type = "videomae2"

    image_size: int | list[int] | tuple[int, int] = 224
    num_frames: int = 16
    tubelet_size: int = 2
    qkv_bias: bool | str = "qv"
    use_cls_token: bool = False
    decoder_hidden_size: int = 384
    decoder_num_hidden_layers: int = 4
    decoder_num_attention_heads: int = 6
    decoder_intermediate_size: int = 1536
    mask_ratio: float = 0.9
    decoder_mask_ratio: float = 0.5
    norm_pix_loss: bool = True

    def __post_init__(self, **kwargs):
        if self.num_frames % self.tubelet_size:
            raise ValueError(
                f"num_frames {self.num_frames} is not divisible by tubelet_size {self.tubelet_size}: use a multiple "
                f"of {self.tubelet_size} frames"
            )
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if not 0.0 <= self.decoder_mask_ratio < 1.0:
            raise ValueError(f"decoder_mask_ratio must be in [0, 1), got {self.decoder_mask_ratio}")
        if self.decoder_hidden_size % self.decoder_num_attention_heads:
            raise ValueError(
                f"decoder_hidden_size {self.decoder_hidden_size} must be divisible by "
                f"decoder_num_attention_heads {self.decoder_num_attention_heads}"
            )
        if self.use_cls_token:
            raise ValueError("VideoMAE V2 has no cls token (use_cls_token=False)")
        super().__post_init__(**kwargs)
        if self.decoder_mask_ratio > 0 and any(side % 2 for side in self.grid_size[1:]):
            raise ValueError(
                f"running-cell decoder masking tiles 2x2 cells, but the patch grid is {self.grid_size[1]}x"
                f"{self.grid_size[2]}; choose image_size / patch_size giving even sides, or decoder_mask_ratio=0"
            )
