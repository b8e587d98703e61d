# Generated from hf_mim.models.cae.configuration_cae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""CAE configuration (Chen et al., IJCV 2023, "Context Autoencoder for Self-Supervised Representation Learning")."""

from .mim_configuration_utils import MIMViTConfig

MASK_GENERATORS = ("block", "random")
RECONSTRUCTION_TARGETS = ("pixel", "tokens")


class CAEConfig(MIMViTConfig):
    r"""
    ViT-B/16 encoder (see [`MIMViTConfig`]) plus CAE's latent contextual regressor and decoder. Defaults follow the
    official ``scripts/cae_base_800e.sh`` / ``models/modeling_cae.py`` (Atten4Vis/CAE): BEiT-style encoder blocks
    (q/v bias, layer scale 0.1, drop path 0.1), fixed row-first ("mocov3") 2-D sin-cos positions, a 4-block
    768-wide regressor and a 4-block decoder (layer scale 0.1), block-wise masking of 98 of 196 patches, and an
    alignment loss weighted by 2.

    Args:
        decoder_hidden_size (`int`, defaults to 768): width of the regressor and decoder (official
            ``decoder_embed_dim``). When it differs from `hidden_size`, encoder outputs pass through a Linear +
            LayerNorm projection (applied to the alignment target too).
        decoder_num_attention_heads (`int`, defaults to 12), decoder_intermediate_size (`int`, defaults to 3072):
            heads and MLP width of the regressor and decoder blocks.
        regressor_num_hidden_layers (`int`, defaults to 4): cross-attention blocks of the latent regressor.
        decoder_num_hidden_layers (`int`, defaults to 4): self-attention blocks of the decoder.
        decoder_layer_scale_init_value (`float`, defaults to 0.1): layer scale of regressor and decoder blocks
            (0 or None disables it, as the official code does with fixed unit gammas).
        mask_generator (`str`, defaults to `"block"`): "block" (BEiT block-wise, the official default) or "random".
        mask_ratio (`float`, defaults to 0.5): `int(ratio * num_patches)` patches are masked (98 of 196). Also the
            ratio used with MAE-style `noise` input.
        min_mask_patches_per_block (`int`, defaults to 16), max_mask_patches_per_block (`int`, *optional*),
        min_mask_aspect (`float`, defaults to 0.3): rectangle limits of the block-wise generator (area uniform in
            [min, remaining], log-uniform aspect in [0.3, 1/0.3]).
        reconstruction_target (`str`, defaults to `"pixel"`): "pixel" regresses (normalised) pixels of masked
            patches with MSE; "tokens" is the official DALL-E target: cross-entropy against visual token ids that
            the caller passes as `visual_token_ids` (hf_mim ships no tokenizer: the DALL-E weights are not
            downloadable here, so pixels are the default).
        norm_pix_loss (`bool`, defaults to True): per-patch normalised pixel target (MAE's), for "pixel".
        vocab_size (`int`, defaults to 8192): visual token vocabulary, for "tokens".
        alignment_loss_weight (`float`, defaults to 2.0): weight of the latent alignment MSE (official
            ``--align_loss_weight 2``).
    """

    model_type = "mim_cae"

    qkv_bias: bool | str = "qv"
    layer_scale_init_value: float | None = 0.1
    drop_path_rate: float = 0.1
    pos_embed_layout: str = "mocov3"
    decoder_hidden_size: int = 768
    decoder_num_attention_heads: int = 12
    decoder_intermediate_size: int = 3072
    regressor_num_hidden_layers: int = 4
    decoder_num_hidden_layers: int = 4
    decoder_layer_scale_init_value: float | None = 0.1
    mask_generator: str = "block"
    mask_ratio: float = 0.5
    min_mask_patches_per_block: int = 16
    max_mask_patches_per_block: int | None = None
    min_mask_aspect: float = 0.3
    reconstruction_target: str = "pixel"
    norm_pix_loss: bool = True
    vocab_size: int = 8192
    alignment_loss_weight: float = 2.0

    def __post_init__(self, **kwargs):
        if self.mask_generator not in MASK_GENERATORS:
            raise ValueError(f"mask_generator must be one of {MASK_GENERATORS}, got {self.mask_generator!r}")
        if self.reconstruction_target not in RECONSTRUCTION_TARGETS:
            raise ValueError(
                f"reconstruction_target must be one of {RECONSTRUCTION_TARGETS}, got {self.reconstruction_target!r}"
            )
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1): CAE needs visible and masked patches, got {self.mask_ratio}")
        if not 0.0 < self.min_mask_aspect <= 1.0:
            raise ValueError(f"min_mask_aspect must be in (0, 1], got {self.min_mask_aspect}")
        if self.min_mask_patches_per_block < 1:
            raise ValueError(f"min_mask_patches_per_block must be >= 1, got {self.min_mask_patches_per_block}")
        if self.decoder_hidden_size % self.decoder_num_attention_heads:
            raise ValueError(
                f"decoder_hidden_size {self.decoder_hidden_size} must be divisible by "
                f"decoder_num_attention_heads {self.decoder_num_attention_heads}"
            )
        if self.decoder_hidden_size % 4:
            raise ValueError(
                f"the regressor's sin-cos positions need decoder_hidden_size divisible by 4, got {self.decoder_hidden_size}"
            )
        if self.position_embedding_type != "sincos":
            raise ValueError(
                "CAE uses fixed sin-cos position embeddings in the encoder and the regressor "
                f"(position_embedding_type='sincos'), got {self.position_embedding_type!r}"
            )
        if not self.use_cls_token:
            raise ValueError("CAE's encoder has a cls token (use_cls_token=True)")
        super().__post_init__(**kwargs)
        num_masked = self.num_masking_patches
        if not 0 < num_masked < self.num_patches:
            raise ValueError(
                f"mask_ratio {self.mask_ratio} masks {num_masked} of {self.num_patches} patches; CAE needs at least "
                "one masked and one visible patch"
            )

    @property
    def num_masking_patches(self) -> int:
        """Masked patches per image: ``int(ratio * L)`` as the official RandomMaskingGenerator (98 of 196)."""
        return int(self.mask_ratio * self.num_patches)
