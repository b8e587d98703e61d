# Generated from hf_mim.layers.sparse_conv by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Sparse (masked) convolution emulation for SparK (Tian et al., ICLR 2023; keyu-tian/SparK ``pretrain/encoder.py``).

A masked image is treated as a sparse set of *active* (visible) sites. Dense layers emulate submanifold sparse
ops: every conv / pooling output is multiplied by the active map upsampled to its resolution, and normalisation
layers compute their statistics over the active sites only, writing zeros at the inactive ones.

Unlike the official code, which keeps the current mask in a module-level global (``encoder._cur_active``), the
active map is passed explicitly to each layer's ``forward(x, active)``. ``active`` is a bool tensor ``[B, 1, h, w]``
on the coarsest grid, True = visible (the official polarity; hf_mim masks are True = masked, convert at the
boundary with :func:`active_from_mask`). With ``active=None`` every layer is the plain dense layer, so the same
weights serve dense fine-tuning and feature extraction, as the official downstream code does.

Under distributed training the BatchNorm statistics are those of the active sites of every process (the official
``SparseSyncBatchNorm2d`` / ``nn.SyncBatchNorm``, ``--sbn`` on by default and switched off when not distributed).
"""

import torch
from torch import distributed as dist
from torch import nn


def active_from_mask(bool_masked_pos: torch.Tensor, grid_size: tuple[int, int]) -> torch.Tensor:
    """hf_mim mask ``[B, L]`` (True = masked) -> SparK active map ``[B, 1, h, w]`` (True = visible)."""
    height, width = grid_size
    if bool_masked_pos.dim() != 2 or bool_masked_pos.shape[1] != height * width:
        raise ValueError(
            f"the mask must have shape [batch, {height * width}] (the {height}x{width} grid at the encoder's total "
            f"stride), got {tuple(bool_masked_pos.shape)}"
        )
    return bool_masked_pos.logical_not().reshape(-1, 1, height, width)


def active_at(active: torch.Tensor, size) -> torch.Tensor:
    """Upsample the active map ``[B, 1, h, w]`` to ``size = (H, W)`` by repeating each cell (nearest), as the
    official ``_get_active_ex_or_ii`` does with ``repeat_interleave``."""
    height, width = int(size[0]), int(size[1])
    grid_h, grid_w = active.shape[-2:]
    if height % grid_h or width % grid_w:
        raise ValueError(
            f"a {height}x{width} feature map is not a whole multiple of the {grid_h}x{grid_w} mask grid; the input "
            "size must be divisible by the encoder's total stride"
        )
    return active.repeat_interleave(height // grid_h, dim=2).repeat_interleave(width // grid_w, dim=3)


def mask_output(x: torch.Tensor, active: torch.Tensor | None) -> torch.Tensor:
    """Zero the inactive sites of a ``[B, C, H, W]`` map (no-op when ``active`` is None)."""
    if active is None:
        return x
    return x * active_at(active, x.shape[-2:]).to(x.dtype)


class SparseConv2d(nn.Conv2d):
    """``nn.Conv2d`` whose output is re-masked (official ``SparseConv2d`` / ``sp_conv_forward``)."""

    def forward(self, x: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        return mask_output(super().forward(x), active)


class SparseMaxPool2d(nn.MaxPool2d):
    """``nn.MaxPool2d`` whose output is re-masked (official ``SparseMaxPooling``)."""

    def forward(self, x: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        return mask_output(super().forward(x), active)


class SparseAvgPool2d(nn.AvgPool2d):
    """``nn.AvgPool2d`` whose output is re-masked (official ``SparseAvgPooling``)."""

    def forward(self, x: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        return mask_output(super().forward(x), active)


def _scatter_active(values: torch.Tensor, where: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    out = like.new_zeros(like.shape)
    out[where] = values.to(out.dtype)
    return out


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def synced_batch_norm(rows: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """Training-mode BatchNorm of ``[N, C]`` rows with the mean and (biased) variance of the rows of EVERY process,
    as ``nn.SyncBatchNorm`` (which runs on GPUs only) computes them; the running averages take the unbiased
    variance. Differentiable all-reduces carry the gradients of the shared statistics back to every process."""
    from torch.distributed.nn.functional import all_reduce

    count = rows.new_full((1,), rows.shape[0], dtype=torch.float32)
    sums = all_reduce(torch.cat([rows.float().sum(0), count]))
    total = sums[-1]
    mean = sums[:-1] / total
    centered = rows.float() - mean
    var = all_reduce(centered.pow(2).sum(0)) / total
    if bn.track_running_stats:
        with torch.no_grad():
            bn.num_batches_tracked.add_(1)
            factor = bn.momentum if bn.momentum is not None else 1.0 / float(bn.num_batches_tracked)
            bn.running_mean.lerp_(mean.detach().to(bn.running_mean.dtype), factor)
            unbiased = var.detach() * total / (total - 1).clamp(min=1)
            bn.running_var.lerp_(unbiased.to(bn.running_var.dtype), factor)
    out = centered * torch.rsqrt(var + bn.eps)
    if bn.affine:
        out = out * bn.weight + bn.bias
    return out.to(rows.dtype)


class SparseBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the active sites only (official ``SparseBatchNorm2d``: a BN1d applied to the ``[N, C]``
    features gathered at the active positions, zeros written back elsewhere). Batch statistics, the running
    averages and ``num_batches_tracked`` therefore see only visible positions. With ``sync`` (default) and
    ``torch.distributed`` running on several processes, training-mode statistics come from all processes
    (:func:`synced_batch_norm`); with ``active=None`` it is then a dense synchronised BatchNorm (the decoder's).
    Parameter / buffer names are those of ``nn.BatchNorm2d`` so dense checkpoints load as they are."""

    def __init__(self, *args, sync: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.sync = sync

    def syncs(self) -> bool:
        return self.sync and (self.training or not self.track_running_stats) and is_distributed()

    def forward(self, x: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        syncs = self.syncs()
        bhwc = x.permute(0, 2, 3, 1)
        if active is None:
            if not syncs:
                return super().forward(x)
            return synced_batch_norm(bhwc.reshape(-1, bhwc.shape[-1]), self).reshape(bhwc.shape).permute(0, 3, 1, 2)
        where = active_at(active, x.shape[-2:]).squeeze(1)  # [B, H, W]
        visible = bhwc[where]  # [N, C], in (b, h, w) raster order like ``nonzero``
        if syncs:
            normed = synced_batch_norm(visible, self)
        else:  # BN2d on [N, C, 1, 1] computes exactly BN1d's statistics over the N rows
            normed = super().forward(visible[:, :, None, None])[:, :, 0, 0]
        return _scatter_active(normed, where, bhwc).permute(0, 3, 1, 2)


class SparseLayerNorm(nn.LayerNorm):
    """LayerNorm over channels at active sites only (official ``SparseConvNeXtLayerNorm``), for
    ``[B, H, W, C]`` (``data_format="channels_last"``) or ``[B, C, H, W]`` (``"channels_first"``) maps. With
    ``active=None`` it is the dense channel LayerNorm."""

    def __init__(self, normalized_shape: int, eps: float = 1e-6, data_format: str = "channels_last"):
        if data_format not in ("channels_last", "channels_first"):
            raise ValueError(f"data_format must be 'channels_last' or 'channels_first', got {data_format!r}")
        super().__init__(normalized_shape, eps=eps)
        self.data_format = data_format

    def forward(self, x: torch.Tensor, active: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"SparseLayerNorm expects a 4-D feature map, got shape {tuple(x.shape)}")
        bhwc = x if self.data_format == "channels_last" else x.permute(0, 2, 3, 1)
        if active is None:
            out = super().forward(bhwc)
        else:
            where = active_at(active, bhwc.shape[1:3]).squeeze(1)
            out = _scatter_active(super().forward(bhwc[where]), where, bhwc)
        return out if self.data_format == "channels_last" else out.permute(0, 3, 1, 2)
