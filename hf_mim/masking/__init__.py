"""Mask generators and the shared mask convention (bool ``[B, L]``, True = masked, plus ids_keep/ids_restore)."""

from hf_mim.masking.core import (
    MaskInfo,
    check_mask,
    gather_tokens,
    mask_from_bool,
    mask_from_noise,
    no_mask,
    num_visible_patches,
    random_noise,
    restore_sequence,
)
from hf_mim.masking.generators import RandomMaskGenerator, SimMIMMaskGenerator
from hf_mim.masking.video import RunningCellMaskGenerator, TubeMaskGenerator, top_relevance_mask
from hf_mim.masking.volume import BlockMaskGenerator3D

__all__ = [
    "BlockMaskGenerator3D",
    "MaskInfo",
    "RandomMaskGenerator",
    "RunningCellMaskGenerator",
    "SimMIMMaskGenerator",
    "TubeMaskGenerator",
    "check_mask",
    "gather_tokens",
    "mask_from_bool",
    "mask_from_noise",
    "no_mask",
    "num_visible_patches",
    "random_noise",
    "restore_sequence",
    "top_relevance_mask",
]
