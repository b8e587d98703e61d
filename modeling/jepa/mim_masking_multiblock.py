# Generated from hf_mim.masking.multiblock by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""I-JEPA multi-block masks: several target blocks to predict and one large context block with the targets cut
out, as facebookresearch/ijepa ``src/masks/multiblock.py`` (``MaskCollator``) samples them.

Official semantics kept here: one block *size* per batch (for targets and for the context), per-sample block
*positions*; the top-left corner is drawn with an exclusive upper bound ``H - h`` (so a block never touches the
last row / column: an official quirk, kept); a block is valid when it keeps more than ``min_keep`` patches, and
after 20 failed draws the context drops one acceptable region (target complement) at a time; finally every
sample's index list is truncated to the batch minimum (raster order) so the batch stacks.
"""

import math

import torch


def sample_block_size(generator: torch.Generator, grid: tuple[int, int], scale, aspect_ratio) -> tuple[int, int]:
    """Block height and width from one uniform draw shared by scale and aspect ratio (as the official code)."""
    height, width = grid
    r = torch.rand(1, generator=generator).item()
    max_keep = int(height * width * (scale[0] + r * (scale[1] - scale[0])))
    ratio = aspect_ratio[0] + r * (aspect_ratio[1] - aspect_ratio[0])
    h = min(int(round(math.sqrt(max_keep * ratio))), height - 1)
    w = min(int(round(math.sqrt(max_keep / ratio))), width - 1)
    return max(h, 1), max(w, 1)


def sample_block(
    generator: torch.Generator,
    grid: tuple[int, int],
    size: tuple[int, int],
    min_keep: int,
    acceptable: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sorted patch indices of one block (restricted to ``acceptable`` regions) and its ``[H, W]`` complement."""
    (height, width), (h, w) = grid, size
    tries, timeout = 0, 20
    while True:
        top = int(torch.randint(0, height - h, (1,), generator=generator))
        left = int(torch.randint(0, width - w, (1,), generator=generator))
        block = torch.zeros(height, width, dtype=torch.int32)
        block[top : top + h, left : left + w] = 1
        for region in (acceptable or [])[: max(len(acceptable or []) - tries, 0)]:
            block *= region
        indices = torch.nonzero(block.flatten()).flatten()
        if len(indices) > min_keep:
            break
        timeout -= 1
        if timeout == 0:
            if not acceptable or tries >= len(acceptable):
                raise ValueError(
                    f"cannot sample a {h}x{w} block with more than min_keep={min_keep} patches on a {height}x{width} "
                    "grid: lower min_keep or raise the block scale"
                )
            tries, timeout = tries + 1, 20
    complement = torch.ones(height, width, dtype=torch.int32)
    complement[top : top + h, left : left + w] = 0
    return indices, complement


def sample_multiblock_masks(
    batch_size: int,
    grid: tuple[int, int],
    generator: torch.Generator,
    num_targets: int = 4,
    target_scale=(0.15, 0.2),
    target_aspect_ratio=(0.75, 1.5),
    context_scale=(0.85, 1.0),
    min_keep: int = 10,
    allow_overlap: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``context_ids [B, Nc]`` and ``target_ids [B, num_targets, Nt]`` (long, sorted within each block)."""
    if min(grid) < 2:
        raise ValueError(f"multi-block masking needs a patch grid of at least 2x2, got {grid}")
    target_size = sample_block_size(generator, grid, target_scale, target_aspect_ratio)
    context_size = sample_block_size(generator, grid, context_scale, (1.0, 1.0))
    targets, contexts = [], []
    for _ in range(batch_size):
        blocks, complements = [], []
        for _ in range(num_targets):
            indices, complement = sample_block(generator, grid, target_size, min_keep)
            blocks.append(indices)
            complements.append(complement)
        targets.append(blocks)
        contexts.append(sample_block(generator, grid, context_size, min_keep, None if allow_overlap else complements)[0])
    keep_target = min(len(block) for blocks in targets for block in blocks)
    keep_context = min(len(ids) for ids in contexts)
    target_ids = torch.stack([torch.stack([block[:keep_target] for block in blocks]) for blocks in targets])
    context_ids = torch.stack([ids[:keep_context] for ids in contexts])
    return context_ids, target_ids
