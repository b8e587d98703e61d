# Generated from hf_mim.masking.volume by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""3-D block masking on a cubic token grid, flattened in (d, h, w) raster order; bool ``[B, L]``, True = masked."""

import torch


class BlockMaskGenerator3D:
    """NeRF-MAE's ``window_masking_3d`` (random strategy): the ``grid``-a-side token grid is tiled by cubes of
    ``block`` tokens a side and each cube is masked with probability ``ratio``, independently (so the masked
    fraction varies around ``ratio``). As the official code, one mask is drawn per batch and shared by its samples.

    Deviation: the official draw can (rarely) mask every block or none; a mask that hides nothing or everything is
    redrawn here, since the alpha loss (over masked voxels) would be 0/0 or nothing would be left to see."""

    def __init__(self, grid: int, block: int, ratio: float):
        if grid % block:
            raise ValueError(f"the token grid ({grid} a side) must be divisible by the mask block size {block}")
        if not 0.0 < ratio < 1.0:
            raise ValueError(f"block mask_ratio must be in (0, 1), got {ratio}")
        self.grid, self.block, self.ratio = grid, block, ratio

    def __call__(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        blocks = self.grid // self.block
        while True:
            drawn = torch.rand(blocks, blocks, blocks, generator=generator) < self.ratio
            if 0 < int(drawn.sum()) < drawn.numel():
                break
        mask = drawn.repeat_interleave(self.block, 0).repeat_interleave(self.block, 1).repeat_interleave(self.block, 2)
        return mask.flatten().unsqueeze(0).expand(batch_size, -1).clone()
