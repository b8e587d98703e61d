# Generated from hf_mim.masking.generators by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Seedable mask generators, usable from a data collator or inside a model (same code, same masks)."""

import math

import torch

from .mim_masking_core import mask_from_noise, random_noise


class RandomMaskGenerator:
    """MAE random masking: per-sample uniform noise, ``int(L*(1-ratio))`` lowest-noise patches stay visible."""

    def __init__(self, num_patches: int, mask_ratio: float = 0.75):
        self.num_patches = num_patches
        self.mask_ratio = mask_ratio

    def noise(self, batch_size: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        return random_noise(batch_size, self.num_patches, device=device, generator=generator)

    def __call__(self, batch_size: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        return mask_from_noise(self.noise(batch_size, generator, device), self.mask_ratio).mask


class SimMIMMaskGenerator:
    """SimMIM: mask ``ceil(cells * ratio)`` random cells of a coarse ``mask_patch_size`` grid, upsampled to the
    model's patch grid (30 of 49 32-px cells at 224 px and ratio 0.6, i.e. 61.2% of patches)."""

    def __init__(self, input_size: int = 224, mask_patch_size: int = 32, model_patch_size: int = 16, mask_ratio: float = 0.6):
        if input_size % mask_patch_size:
            raise ValueError(f"input size {input_size} must be divisible by mask_patch_size {mask_patch_size}")
        if mask_patch_size % model_patch_size:
            raise ValueError(f"mask_patch_size {mask_patch_size} must be divisible by the patch size {model_patch_size}")
        if not 0.0 <= mask_ratio <= 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1], got {mask_ratio}")
        self.cells_per_side = input_size // mask_patch_size
        self.scale = mask_patch_size // model_patch_size
        self.num_cells = self.cells_per_side**2
        self.num_masked_cells = int(math.ceil(self.num_cells * mask_ratio))
        self.num_patches = (self.cells_per_side * self.scale) ** 2

    def __call__(self, batch_size: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        noise = random_noise(batch_size, self.num_cells, device=device, generator=generator)
        order = torch.argsort(noise, dim=1)
        cells = torch.zeros(batch_size, self.num_cells, dtype=torch.bool, device=noise.device)
        cells.scatter_(1, order[:, : self.num_masked_cells], True)
        grid = cells.reshape(batch_size, self.cells_per_side, self.cells_per_side)
        grid = grid.repeat_interleave(self.scale, dim=1).repeat_interleave(self.scale, dim=2)
        return grid.reshape(batch_size, -1)
