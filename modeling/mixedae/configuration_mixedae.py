# Generated from hf_mim.models.mixedae.configuration_mixedae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""MixedAE configuration (Chen et al., CVPR 2023, "Mixed Autoencoder for Self-supervised Visual Representation
Learning")."""

from .mim_configuration_utils import MIMViTConfig


class MixedAEConfig(MIMViTConfig):
    r"""
    ViT-B/16 encoder (see [`MIMViTConfig`]) and MAE decoder; instead of masking, every ``mixing_num_sources``
    images of a batch are mixed patch-wise into one image (each supplies ``1 / r`` of the positions, i.e. MAE's 75%
    masking per source at r = 4), the encoder runs on the mixed image with homologous TopK attention, the decoder
    reconstructs every source from its own positions, and a homologous contrastive loss makes patches recognise the
    patches of the same source. There is no official code: the values marked [unverified] are this implementation's
    choices (see the modeling docstring). There is no ``mask_ratio`` (an override is refused): each source keeps
    ``1 / mixing_num_sources`` of the positions.

    Args:
        decoder_hidden_size (`int`, defaults to 512), decoder_num_hidden_layers (`int`, defaults to 8),
        decoder_num_attention_heads (`int`, defaults to 16), decoder_intermediate_size (`int`, defaults to 2048):
            the MAE decoder.
        norm_pix_loss (`bool`, defaults to True): regress per-patch normalised pixels, as MAE.
        mixing_num_sources (`int`, defaults to 4): images mixed into one (paper: r = 4, mixing ratio 0.25). The
            batch size must be a multiple of it and so must the number of patches.
        homologous_attention (`bool`, defaults to True): use TopK attention in the encoder during pre-training
            (feature extraction and fine-tuning always use global attention, as the paper does).
        homologous_topk_ratio (`float`, *optional*): each query keeps its ``max(1, int(N * ratio))`` largest
            attention logits over the ``N`` tokens; defaults to ``1 / mixing_num_sources`` (paper: K = ratio x N).
        homologous_attention_layers (`list[int]`, *optional*): encoder blocks that use TopK attention; defaults to
            all [unverified].
        homologous_loss_weight (`float`, defaults to 0.1): weight of the homologous contrastive loss [unverified].
        homologous_temperature (`float`, defaults to 0.07): its temperature (SupCon's default) [unverified].
    """

    model_type = "mixedae"

    decoder_hidden_size: int = 512
    decoder_num_hidden_layers: int = 8
    decoder_num_attention_heads: int = 16
    decoder_intermediate_size: int = 2048
    norm_pix_loss: bool = True
    mixing_num_sources: int = 4
    homologous_attention: bool = True
    homologous_topk_ratio: float | None = None
    homologous_attention_layers: list[int] | None = None
    homologous_loss_weight: float = 0.1
    homologous_temperature: float = 0.07

    def __post_init__(self, **kwargs):
        if self.mixing_num_sources < 2:
            raise ValueError(
                f"mixing_num_sources must be >= 2 (each source gives 1/r of the patches and the rest is "
                f"reconstructed), got {self.mixing_num_sources}"
            )
        if self.homologous_topk_ratio is not None and not 0.0 < self.homologous_topk_ratio <= 1.0:
            raise ValueError(f"homologous_topk_ratio must be in (0, 1], got {self.homologous_topk_ratio}")
        if self.homologous_temperature <= 0:
            raise ValueError(f"homologous_temperature must be > 0, got {self.homologous_temperature}")
        if self.homologous_loss_weight < 0:
            raise ValueError(f"homologous_loss_weight must be >= 0, got {self.homologous_loss_weight}")
        if self.decoder_hidden_size % self.decoder_num_attention_heads:
            raise ValueError(
                f"decoder_hidden_size {self.decoder_hidden_size} must be divisible by "
                f"decoder_num_attention_heads {self.decoder_num_attention_heads}"
            )
        super().__post_init__(**kwargs)
        if self.num_patches % self.mixing_num_sources:
            raise ValueError(
                f"{self.num_patches} patches cannot be split evenly among mixing_num_sources="
                f"{self.mixing_num_sources}; choose an image/patch size whose patch count is a multiple of it"
            )
        if self.homologous_attention_layers is not None:
            bad = [i for i in self.homologous_attention_layers if not 0 <= i < self.num_hidden_layers]
            if bad:
                raise ValueError(
                    f"homologous_attention_layers {bad} are not encoder blocks (0..{self.num_hidden_layers - 1})"
                )

    @property
    def topk_ratio(self) -> float:
        return self.homologous_topk_ratio if self.homologous_topk_ratio is not None else 1.0 / self.mixing_num_sources
