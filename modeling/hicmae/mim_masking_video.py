# Generated from hf_mim.masking.video by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Video mask generators over a ``(T', H', W')`` tubelet grid, flattened in (time, row, col) order; bool
``[B, T'*H'*W']``, True = masked, drawn from a ``torch.Generator`` (same convention as the image generators)."""

import torch

from .mim_masking_core import random_noise


def _grid(grid_size) -> tuple[int, int, int]:
    frames, height, width = (int(v) for v in grid_size)
    return frames, height, width


class TubeMaskGenerator:
    """VideoMAE tube masking: one random spatial mask of ``int(ratio * H'*W')`` patches per clip, repeated over
    every temporal slice, so a masked patch is hidden in all frames and cannot be copied from a neighbour
    (official ``TubeMaskingGenerator``: same counts, numpy RNG replaced by a torch generator)."""

    def __init__(self, grid_size, mask_ratio: float = 0.9):
        self.frames, self.height, self.width = _grid(grid_size)
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"tube mask_ratio must be in (0, 1), got {mask_ratio}")
        self.per_frame = self.height * self.width
        self.num_masked_per_frame = int(mask_ratio * self.per_frame)
        if self.num_masked_per_frame == 0:
            raise ValueError(f"tube mask_ratio {mask_ratio} masks no patch of a {self.height}x{self.width} grid")
        self.num_patches = self.frames * self.per_frame

    def __call__(self, batch_size: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        order = torch.argsort(random_noise(batch_size, self.per_frame, generator=generator), dim=1)
        spatial = torch.zeros(batch_size, self.per_frame, dtype=torch.bool)
        spatial.scatter_(1, order[:, : self.num_masked_per_frame], True)
        return spatial.repeat(1, self.frames).to(device)


class RunningCellMaskGenerator:
    """VideoMAE V2 decoder masking: a 2x2 cell with ``int(4 * ratio)`` masked slots, tiled over the grid, whose
    pattern shifts by one slot at every temporal slice; one of the 4 starting phases is drawn per clip. Each
    location is kept in some slices and masked in others, so the decoder still covers the whole clip over time
    (official ``RunningCellMaskingGenerator``)."""

    def __init__(self, grid_size, mask_ratio: float = 0.5):
        self.frames, self.height, self.width = _grid(grid_size)
        masked_per_cell = int(4 * mask_ratio)
        if not 0 < masked_per_cell < 4:
            raise ValueError(
                f"running-cell mask_ratio {mask_ratio} masks {masked_per_cell} of the 4 slots of a 2x2 cell; use a "
                "ratio in [0.25, 1) that masks 1 to 3 slots (0.5 in VideoMAE V2)"
            )
        if self.height % 2 or self.width % 2:
            raise ValueError(
                f"running-cell masking tiles 2x2 cells, but the tubelet grid is {self.height}x{self.width}; choose "
                "image_size / patch_size so that both sides of the patch grid are even"
            )
        queue = torch.tensor([True] * masked_per_cell + [False] * (4 - masked_per_cell))
        slots = torch.arange(4)
        maps = []
        for phase in range(4):  # the official Cell: the pointer advances once before every temporal slice
            cells = [queue[(slots + phase + t + 1) % 4].reshape(2, 2) for t in range(self.frames)]
            maps.append(torch.stack([c.repeat(self.height // 2, self.width // 2).flatten() for c in cells]))
        self.maps = torch.stack(maps).reshape(4, -1)  # [phase, T'*H'*W']
        self.num_patches = self.maps.shape[1]

    def __call__(self, batch_size: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        phases = torch.randint(4, (batch_size,), generator=generator)
        return self.maps[phases].to(device)


def top_relevance_mask(relevance: torch.Tensor, mask_ratio: float, most_relevant: bool = True, generator: torch.Generator | None = None) -> torch.Tensor:
    """Guided masking (TGM): in every temporal slice of ``relevance [B, T', H'*W']`` mask the ``int(ratio * H'*W')``
    most relevant patches (``most_relevant=False``: the least relevant, the paper's ablation). Ties are broken
    uniformly at random (from ``generator``): a flat relevance map (e.g. an empty background) must not always mask
    the same raster corner. Returns bool ``[B, T'*H'*W']``, True = masked."""
    batch, frames, per_frame = relevance.shape
    count = int(mask_ratio * per_frame)
    if not 0 < count < per_frame:
        raise ValueError(f"mask_ratio {mask_ratio} masks {count} of the {per_frame} patches of a slice; use a ratio that masks some but not all")
    shuffle = torch.argsort(random_noise(batch * frames, per_frame, generator=generator), dim=1).to(relevance.device)
    scores = torch.gather(relevance.reshape(batch * frames, per_frame), 1, shuffle)
    order = torch.argsort(scores, dim=1, descending=most_relevant, stable=True)  # ties keep the random order
    chosen = torch.gather(shuffle, 1, order[:, :count])
    mask = torch.zeros(batch * frames, per_frame, dtype=torch.bool, device=relevance.device)
    return mask.scatter_(1, chosen, True).reshape(batch, frames * per_frame)
