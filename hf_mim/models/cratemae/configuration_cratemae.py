"""CRATE-MAE configuration (Pai et al., ICLR 2024, "Masked Completion via Structured Diffusion with White-Box
Transformers")."""

from hf_mim.configuration_utils import MIMViTConfig

# the official ``mae_crate_{tiny,small,base,large}`` builders of Ma-Lab-Berkeley/CRATE ``model/crate_ae/crate_ae.py``
# (patch 16; the decoder has the encoder's width, depth and heads)
OFFICIAL_SIZES = {
    "tiny": dict(hidden_size=384, num_hidden_layers=12, num_attention_heads=6),
    "small": dict(hidden_size=576, num_hidden_layers=12, num_attention_heads=12),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16),
}


class CRATEMAEConfig(MIMViTConfig):
    r"""
    White-box CRATE encoder and decoder (see [`MIMViTConfig`] for the shared fields). Defaults are the official
    ``mae_crate_base``: 12 encoder and 12 decoder blocks of width 768 with 12 heads, 75% random masking, raw-pixel
    targets. CRATE has no MLP, so ``intermediate_size`` is unused. ``pooling`` defaults to the cls token, as the
    CRATE classifiers of the official repository (``model/crate.py``, ``pool="cls"``) use it.

    Args:
        decoder_hidden_size (`int`, defaults to 768): must equal ``hidden_size``: the official mask token has the
            decoder's width but enters the encoder, and the decoder reads the encoder output without a projection.
        decoder_num_hidden_layers (`int`, defaults to 12), decoder_num_attention_heads (`int`, defaults to 12).
        ista_step_size (`float`, defaults to 0.1): eta, the step of the ISTA sparse-coding step of each encoder block.
        ista_lambda (`float`, defaults to 0.5): lambda, the sparsity penalty of that step (``lambd`` officially).
        block_norm_eps (`float`, defaults to 1e-5): epsilon of the LayerNorms inside the blocks (the official
            ``PreNorm`` uses PyTorch's default); the final norms use ``layer_norm_eps`` (1e-6) as officially.
        mask_ratio (`float`, defaults to 0.75): fraction of patches replaced by the mask token.
        norm_pix_loss (`bool`, defaults to False): regress per-patch normalised pixels (the official default is off).

    ``CRATEMAEConfig.official("tiny" | "small" | "base" | "large", **overrides)`` gives the official sizes.
    """

    model_type = "cratemae"

    pooling: str = "cls"
    decoder_hidden_size: int = 768
    decoder_num_hidden_layers: int = 12
    decoder_num_attention_heads: int = 12
    ista_step_size: float = 0.1
    ista_lambda: float = 0.5
    block_norm_eps: float = 1e-5
    mask_ratio: float = 0.75
    norm_pix_loss: bool = False

    def __post_init__(self, **kwargs):
        if self.decoder_hidden_size != self.hidden_size:
            raise ValueError(
                f"CRATE-MAE needs decoder_hidden_size == hidden_size (its mask token enters the encoder and the "
                f"decoder reads the encoder output unprojected), got {self.decoder_hidden_size} and {self.hidden_size}"
            )
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        if self.decoder_hidden_size % self.decoder_num_attention_heads:
            raise ValueError(
                f"decoder_hidden_size {self.decoder_hidden_size} must be divisible by "
                f"decoder_num_attention_heads {self.decoder_num_attention_heads}"
            )
        super().__post_init__(**kwargs)

    @classmethod
    def official(cls, size: str, **overrides) -> "CRATEMAEConfig":
        """The configuration of the official ``mae_crate_<size>``."""
        if size not in OFFICIAL_SIZES:
            raise ValueError(f"size must be one of {sorted(OFFICIAL_SIZES)}, got {size!r}")
        dims = OFFICIAL_SIZES[size]
        decoder = dict(
            decoder_hidden_size=dims["hidden_size"],
            decoder_num_hidden_layers=dims["num_hidden_layers"],
            decoder_num_attention_heads=dims["num_attention_heads"],
        )
        return cls(**{**dims, **decoder, **overrides})
