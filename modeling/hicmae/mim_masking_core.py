# Generated from hf_mim.masking.core by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""The one mask convention of hf_mim.

A mask is a bool tensor ``[B, L]`` over the raster-ordered patch grid, **True = masked** (hidden from the encoder
or replaced by a mask token). Methods whose encoder drops masked tokens (MAE family) also need
``ids_keep [B, K]`` (visible patch indices, in the order the encoder sees them) and ``ids_restore [B, L]``
(the permutation that puts ``[visible..., masked...]`` back into raster order).
"""

from dataclasses import dataclass

import torch


@dataclass
class MaskInfo:
    mask: torch.Tensor  # bool [B, L], True = masked
    ids_keep: torch.Tensor  # long [B, K]
    ids_restore: torch.Tensor  # long [B, L]

    @property
    def num_visible(self) -> int:
        return self.ids_keep.shape[1]


def num_visible_patches(num_patches: int, mask_ratio: float) -> int:
    """MAE's rounding: ``int(L * (1 - ratio))`` visible patches (49 of 196 at 0.75)."""
    if not 0.0 <= mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    return int(num_patches * (1 - mask_ratio))


def check_mask(bool_masked_pos: torch.Tensor, allow_unmasked: bool = False) -> torch.Tensor:
    """Refuse masks a masked-modeling loss cannot use: a non-bool tensor (``.bool()`` would read float noise as
    "all masked"), or a row that hides no patch (the masked loss is 0 and the model trains on nothing) or every
    patch (nothing left to predict from). ``allow_unmasked``: for encoders, where hiding nothing is dense encoding."""
    if bool_masked_pos.dtype != torch.bool:
        raise ValueError(
            f"bool_masked_pos must be a bool tensor (True = masked), got {bool_masked_pos.dtype}; "
            "pass mask.bool() for a 0/1 mask"
        )
    hidden = bool_masked_pos.flatten(1).sum(1)
    total = bool_masked_pos.shape[1:].numel()
    usable = hidden < total if allow_unmasked else (hidden > 0) & (hidden < total)
    check_values(usable.all(), lambda: _mask_problem(hidden, total))
    return bool_masked_pos


def _mask_problem(hidden: torch.Tensor, total: int) -> str:
    for count, problem, fix in ((total, "hides every patch", "mask_ratio < 1"), (0, "hides no patch", "mask_ratio > 0")):
        rows = (hidden == count).nonzero().flatten().tolist()
        if rows:
            return f"the mask {problem} in sample(s) {rows[:8]}: mask some patches and keep some visible ({fix})"
    return "the mask is unusable"


def random_noise(batch_size: int, num_patches: int, device=None, generator: torch.Generator | None = None):
    """Uniform noise whose argsort defines a random mask. With a generator the noise is drawn on the CPU (so the
    same seed gives the same masks on any device) and then moved."""
    if generator is None:
        return torch.rand(batch_size, num_patches, device=device)
    return torch.rand(batch_size, num_patches, generator=generator).to(device)


def mask_from_noise(noise: torch.Tensor, mask_ratio: float) -> MaskInfo:
    """Exact MAE semantics: argsort the noise ascending, keep the first ``int(L*(1-ratio))`` indices."""
    if noise.ndim != 2:
        raise ValueError(f"noise must have shape [batch, num_patches], got {tuple(noise.shape)}")
    length = noise.shape[1]
    len_keep = num_visible_patches(length, mask_ratio)
    if len_keep == 0:
        raise ValueError(f"mask_ratio {mask_ratio} hides every patch of {length}: keep some visible")
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    # ids_restore[b, i] is patch i's rank in the noise order, so it is masked exactly when that rank is not kept
    # (the official code gathers a [0]*K + [1]*(L-K) row by ids_restore: the same mask)
    mask = ids_restore >= len_keep
    return MaskInfo(mask=mask, ids_keep=ids_shuffle[:, :len_keep], ids_restore=ids_restore)


def check_values(condition: torch.Tensor, message) -> None:
    """Raise ``ValueError(message)`` unless the one-element bool tensor ``condition`` holds (``message`` may be a
    callable, evaluated only on failure). A check on tensor *values* is no Python branch under ``torch.export``:
    there it becomes a runtime assertion of the exported program."""
    torch._check_with(ValueError, condition.item(), message)


def mask_from_bool(bool_masked_pos: torch.Tensor, num_masked: int | None = None) -> MaskInfo:
    """Turn an explicit bool mask into keep/restore indices (visible patches stay in raster order).

    Every row must mask the same number of patches, because the encoder runs on a dense ``[B, K, D]`` batch.
    ``num_masked``: that number when it is known in advance (a mask generator's count, the config's): it fixes the
    shapes for ``torch.export`` and is checked against the mask at run time. Without it the count is read from the
    mask (a data-dependent shape that ``torch.export`` cannot trace).
    """
    if bool_masked_pos.ndim != 2:
        raise ValueError(f"bool_masked_pos must have shape [batch, num_patches], got {tuple(bool_masked_pos.shape)}")
    mask = check_mask(bool_masked_pos)
    counts = mask.sum(dim=1)
    ids_shuffle = torch.argsort(mask.to(torch.int8), dim=1, stable=True)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    if not counts.numel():
        return MaskInfo(mask=mask, ids_keep=ids_shuffle, ids_restore=ids_restore)
    expected = counts[0] if num_masked is None else num_masked
    check_values(
        (counts == expected).all(),
        lambda: f"every sample must mask the same number of patches{'' if num_masked is None else f' ({num_masked})'}, "
        f"got counts {counts.tolist()}; use a mask generator with a fixed ratio",
    )
    len_keep = mask.shape[1] - (int(counts[0]) if num_masked is None else num_masked)
    return MaskInfo(mask=mask, ids_keep=ids_shuffle[:, :len_keep], ids_restore=ids_restore)


def no_mask(batch_size: int, num_patches: int, device=None) -> MaskInfo:
    """All patches visible, in order (feature extraction)."""
    ids = torch.arange(num_patches, device=device).expand(batch_size, -1)
    return MaskInfo(mask=torch.zeros(batch_size, num_patches, dtype=torch.bool, device=device), ids_keep=ids, ids_restore=ids)


def gather_tokens(tokens: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``tokens[b, ids[b, k]]`` for ``[B, L, D]`` tokens and ``[B, K]`` ids."""
    return torch.gather(tokens, 1, ids.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def restore_sequence(visible: torch.Tensor, fill_token: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
    """MAE decoder input: append ``L-K`` copies of ``fill_token`` to the ``K`` visible tokens and unshuffle."""
    batch, num_visible, dim = visible.shape
    fill = fill_token.to(visible.dtype).expand(batch, ids_restore.shape[1] - num_visible, dim)
    return gather_tokens(torch.cat([visible, fill], dim=1), ids_restore)
