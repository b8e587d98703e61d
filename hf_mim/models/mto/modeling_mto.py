"""MTO — Masked Token Optimization (Choi et al., ECCV 2024, "Emerging Property of Masked Token for Effective
Pre-training", https://arxiv.org/abs/2404.08330), applied to SimMIM.

The official code (github.com/doihye/MTO) could not be read, nor the paper's full text; this follows the hf_mim spec
section 9. MTO is an add-on for MIM methods that feed mask tokens through attention; its host here is SimMIM
(``SimMIMModel`` / ``SimMIMForPreTraining`` are subclassed, not copied: masking, mask token, pixel head and L1 loss
are SimMIM's).

What is implemented — **weight recalibration** ("data singularity" of the mask token enforced in the attention):
in every encoder layer the masked tokens are removed from the keys/values of the *visible* queries, through an
additive ``-inf`` attention bias ``[B, 1, T, T]`` added to SimMIM's shared relative position bias. Masked queries
still attend to every token (visible and masked), so the masked->visible path the reconstruction needs is intact.
Choices we could not verify: the cls token counts as a visible token (it is real content, not a mask token), and
the recalibration is applied in all layers (the paper calls it "selective"; which layers is unknown to us).

What is NOT implemented: the paper's depth-dependent data-singularity losses (L_spa, L_e, L_r, built on an entropy
heterogeneity measure between masked and visible tokens). Their formulas, weights and layer schedule could not be
obtained (no readable code, no full text), and the spec says not to implement them before they are confirmed.
With ``weight_recalibration=False`` the model is exactly SimMIM (same parameters, outputs and loss).
"""

import torch

from hf_mim.models.mto.configuration_mto import MTOConfig
from hf_mim.models.simmim.modeling_simmim import (
    SimMIMForImageClassification,
    SimMIMForPreTraining,
    SimMIMModel,
)


def recalibration_bias(
    bool_masked_pos: torch.Tensor, num_prefix_tokens: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Additive attention bias ``[B, 1, T, T]`` (``T = prefix + L``): ``-inf`` where a visible query (prefix/cls
    tokens and unmasked patches) meets a masked key, 0 elsewhere. ``bool_masked_pos``: ``[B, L]``, True = masked."""
    batch = bool_masked_pos.shape[0]
    masked = torch.cat([bool_masked_pos.new_zeros(batch, num_prefix_tokens), bool_masked_pos.bool()], dim=1)
    blocked = (~masked)[:, :, None] & masked[:, None, :]
    bias = torch.zeros(blocked.shape, dtype=dtype, device=bool_masked_pos.device)
    return bias.masked_fill(blocked, float("-inf")).unsqueeze(1)


class MTOModel(SimMIMModel):
    """The SimMIM encoder with MTO weight recalibration: when masked patches are replaced by the mask token
    (``replace_masked=True``), visible queries cannot attend to them. Without a mask it is the plain encoder."""

    config_class = MTOConfig
    _recalibration_mask: torch.Tensor | None = None

    def attention_bias(self, ids_keep: torch.Tensor | None, grid: tuple[int, int]) -> torch.Tensor | None:
        bias = super().attention_bias(ids_keep, grid)
        if self._recalibration_mask is None:
            return bias
        mto_bias = recalibration_bias(self._recalibration_mask, self.num_prefix_tokens)
        return mto_bias if bias is None else bias + mto_bias

    def forward(self, pixel_values=None, noise=None, bool_masked_pos=None, mask_ratio=None, replace_masked=False, **kwargs):
        r"""As [`MIMViTModel.forward`]; with `replace_masked=True` and `config.weight_recalibration` the key mask of
        MTO is added to the attention bias of every block."""
        use_mto = replace_masked and bool_masked_pos is not None and self.config.weight_recalibration
        self._recalibration_mask = bool_masked_pos if use_mto else None
        try:
            return super().forward(
                pixel_values, noise=noise, bool_masked_pos=bool_masked_pos, mask_ratio=mask_ratio,
                replace_masked=replace_masked, **kwargs,
            )
        finally:
            self._recalibration_mask = None


class MTOForPreTraining(SimMIMForPreTraining):
    """SimMIM pre-training (mask token, 1x1 conv + PixelShuffle head, masked L1 loss) with the MTO encoder."""

    config_class = MTOConfig

    def __init__(self, config: MTOConfig):
        super().__init__(config)
        # SimMIM builds its own encoder class; swap in the MTO encoder (same parameters) and initialise it
        self.encoder = MTOModel(config, use_mask_token=True)
        self.post_init()


class MTOForImageClassification(SimMIMForImageClassification):
    config_class = MTOConfig
    encoder_class = MTOModel
