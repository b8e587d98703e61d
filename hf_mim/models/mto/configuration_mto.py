"""MTO configuration (Choi et al., ECCV 2024, "Emerging Property of Masked Token for Effective Pre-training")."""

from hf_mim.models.simmim.configuration_simmim import SimMIMConfig


class MTOConfig(SimMIMConfig):
    r"""
    Masked Token Optimization on top of SimMIM (the host whose *encoder* attends over mask tokens). Every field of
    [`SimMIMConfig`] keeps its SimMIM default (ViT-B/16, BEiT-style blocks, shared relative position bias, 60%
    masking of 32-px cells); MTO adds:

    Args:
        weight_recalibration (`bool`, defaults to True): in every encoder layer, exclude the masked tokens from the
            keys of the *visible* queries (visible patches and the cls token), so visible tokens stop aggregating
            the semantically empty mask tokens. Masked queries still attend to all tokens. False gives SimMIM
            exactly.
    """

    model_type = "mto"

    weight_recalibration: bool = True
