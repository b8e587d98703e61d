# Generated from hf_mim.models.cae.masking_cae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""BEiT/CAE block-wise masking (Atten4Vis/CAE ``furnace/masking_generator.py`` ``MaskingGenerator``, the same
algorithm as BEiT's), drawn with a ``torch.Generator`` instead of Python's ``random`` so masks are seedable.

Official semantics kept: rectangles are added until *exactly* ``num_masking_patches`` are masked; each rectangle
try draws an area uniform in ``[min_num_patches, max_mask_patches]`` (``max_mask_patches`` = what is still
missing, capped by ``max_num_patches``) and a log-uniform aspect ratio; its sides must be strictly smaller than the
grid (``w < width and h < height``); its top-left corner is uniform over all placements (inclusive bounds); it is
accepted only when it adds between 1 and ``max_mask_patches`` new patches; at most 10 tries per rectangle.
"""

import math

import torch


class BlockMaskGenerator:
    """Bool masks ``[B, H*W]`` (True = masked) with exactly ``num_masking_patches`` masked patches per row."""

    def __init__(
        self,
        grid_size: tuple[int, int],
        num_masking_patches: int,
        min_num_patches: int = 16,
        max_num_patches: int | None = None,
        min_aspect: float = 0.3,
        max_aspect: float | None = None,
        max_rounds: int = 100_000,
    ):
        self.height, self.width = grid_size
        if not 0 < num_masking_patches < self.height * self.width:
            raise ValueError(
                f"num_masking_patches must be in (0, {self.height * self.width}) on a {self.height}x{self.width} grid, "
                f"got {num_masking_patches}"
            )
        if min(self.height, self.width) < 2:
            raise ValueError(f"block-wise masking needs a grid of at least 2x2 (blocks are smaller than the grid), got {grid_size}")
        self.num_masking_patches = num_masking_patches
        self.min_num_patches = min_num_patches
        self.max_num_patches = num_masking_patches if max_num_patches is None else max_num_patches
        max_aspect = max_aspect or 1 / min_aspect
        self.log_aspect_ratio = (math.log(min_aspect), math.log(max_aspect))
        self.max_rounds = max_rounds

    def _uniform(self, low: float, high: float, generator) -> float:
        # random.uniform(a, b) = a + (b - a) * U, also when b < a (the official code relies on that)
        return low + (high - low) * torch.rand(1, generator=generator, dtype=torch.float64).item()

    def _add_block(self, mask: torch.Tensor, max_mask_patches: int, generator) -> int:
        """One official ``_mask`` call: up to 10 tries; returns how many patches were newly masked."""
        delta = 0
        for _ in range(10):
            target_area = self._uniform(self.min_num_patches, max_mask_patches, generator)
            aspect_ratio = math.exp(self._uniform(*self.log_aspect_ratio, generator))
            h = int(round(math.sqrt(target_area * aspect_ratio)))
            w = int(round(math.sqrt(target_area / aspect_ratio)))
            if w < self.width and h < self.height:
                top = int(torch.randint(0, self.height - h + 1, (1,), generator=generator))
                left = int(torch.randint(0, self.width - w + 1, (1,), generator=generator))
                window = mask[top : top + h, left : left + w]
                new = h * w - int(window.sum())
                if 0 < new <= max_mask_patches:
                    window.fill_(True)
                    delta += new
                if delta > 0:
                    break
        return delta

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """One ``[H, W]`` bool mask."""
        mask = torch.zeros(self.height, self.width, dtype=torch.bool)
        count = 0
        for _ in range(self.max_rounds):
            if count == self.num_masking_patches:
                return mask
            max_mask_patches = min(self.num_masking_patches - count, self.max_num_patches)
            count += self._add_block(mask, max_mask_patches, generator)
        raise RuntimeError(
            f"block-wise masking did not reach {self.num_masking_patches} masked patches on a "
            f"{self.height}x{self.width} grid; lower min_mask_patches_per_block ({self.min_num_patches})"
        )

    def __call__(self, batch_size: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        masks = torch.stack([self.sample(generator).flatten() for _ in range(batch_size)])
        return masks.to(device) if device is not None else masks


class RandomMaskGenerator:
    """Official ``RandomMaskingGenerator``: exactly ``num_masking_patches`` uniformly random patches per row."""

    def __init__(self, grid_size: tuple[int, int], num_masking_patches: int):
        self.num_patches = grid_size[0] * grid_size[1]
        self.num_masking_patches = num_masking_patches

    def __call__(self, batch_size: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        order = torch.argsort(torch.rand(batch_size, self.num_patches, generator=generator), dim=1)
        masks = torch.zeros(batch_size, self.num_patches, dtype=torch.bool)
        masks.scatter_(1, order[:, : self.num_masking_patches], True)
        return masks.to(device) if device is not None else masks
