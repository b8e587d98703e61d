"""3-D Swin Transformer building blocks on channels-last volumes ``[B, D, H, W, C]``.

Window attention with a learned relative position bias, cyclic shifts with the attention mask of the shifted
windows, patch merging of 2x2x2 neighbours. The maths follow torchvision's 2-D Swin as NeRF-MAE extends it to 3-D
(``nerf_mae/model/mae/swin_mae3d.py``), including its treatment of volumes that are not a multiple of the window:
they are zero-padded and the padding takes part in attention; a window as large as the (padded) volume is not shifted.
"""

import torch
from torch import nn
from torch.nn import functional as F

from hf_mim.layers.block import DropPath


def window_partition(x: torch.Tensor, window: int) -> torch.Tensor:
    """``[B, D, H, W, C]`` (each side a multiple of ``window``) -> ``[B * windows, window**3, C]``."""
    b, d, h, w, c = x.shape
    x = x.view(b, d // window, window, h // window, window, w // window, window, c)
    return x.permute(0, 1, 3, 5, 2, 4, 6, 7).reshape(-1, window**3, c)


def window_reverse(windows: torch.Tensor, window: int, shape: tuple[int, ...]) -> torch.Tensor:
    """Inverse of :func:`window_partition` for a volume of ``shape`` ``(B, D, H, W)``."""
    b, d, h, w = shape
    x = windows.view(b, d // window, h // window, w // window, window, window, window, -1)
    return x.permute(0, 1, 4, 2, 5, 3, 6, 7).reshape(b, d, h, w, -1)


def shifted_window_mask(size: tuple[int, int, int], window: int, shifts: list[int], device) -> torch.Tensor:
    """``[windows, window**3, window**3]`` additive mask (0 / -100) keeping attention inside the regions that a
    cyclic shift by ``shifts`` (per axis) brought together in one window (the Swin recipe, per axis three slices;
    an unshifted axis is one region)."""
    regions = torch.zeros(size, device=device)
    slices = [((0, -window), (-window, -shift), (-shift, None)) for shift in shifts]
    count = 0
    for a in slices[0]:
        for b in slices[1]:
            for c in slices[2]:
                regions[a[0]:a[1], b[0]:b[1], c[0]:c[1]] = count
                count += 1
    regions = window_partition(regions[None, ..., None], window).squeeze(-1)
    difference = regions.unsqueeze(1) - regions.unsqueeze(2)
    return difference.masked_fill(difference != 0, -100.0).masked_fill(difference == 0, 0.0)


class WindowAttention3D(nn.Module):
    """Multi-head self-attention inside cubic windows of ``window`` tokens a side, optionally cyclically shifted by
    ``shift``, with a learned relative position bias per head (``(2 window - 1)**3`` entries)."""

    def __init__(self, dim: int, num_heads: int, window: int, shift: int, attention_dropout: float = 0.0,
                 dropout: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"width {dim} must be divisible by the number of heads {num_heads}")
        self.num_heads, self.window, self.shift = num_heads, window, shift
        self.attention_dropout, self.dropout = attention_dropout, dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 3, num_heads))
        self.register_buffer("relative_position_index", self.build_index(window), persistent=False)

    @staticmethod
    def build_index(window: int) -> torch.Tensor:
        """``[window**3 * window**3]`` index into the bias table for every (query, key) pair of a window."""
        coords = torch.stack(torch.meshgrid(*[torch.arange(window)] * 3, indexing="ij")).flatten(1)
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        span = 2 * window - 1
        return (relative[..., 0] * span * span + relative[..., 1] * span + relative[..., 2]).flatten()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, d, h, w, c = x.shape
        window = self.window
        pads = [(window - size % window) % window for size in (d, h, w)]
        x = F.pad(x, (0, 0, 0, pads[2], 0, pads[1], 0, pads[0]))
        size = x.shape[1:4]
        # official: no shift along an axis whose padded size fits in one window
        shifts = [0 if window >= s else self.shift for s in size]
        shifted = sum(shifts) > 0
        if shifted:
            x = torch.roll(x, shifts=[-s for s in shifts], dims=(1, 2, 3))
        windows = window_partition(x, window)
        n = windows.shape[1]
        qkv = F.linear(windows, self.qkv.weight, self.qkv.bias)
        q, k, v = qkv.reshape(-1, n, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        attention = (q * (c // self.num_heads) ** -0.5) @ k.transpose(-2, -1)
        bias = self.relative_position_bias_table[self.relative_position_index].view(n, n, -1).permute(2, 0, 1)
        attention = attention + bias.unsqueeze(0)
        if shifted:
            num_windows = windows.shape[0] // b
            mask = shifted_window_mask(tuple(size), window, shifts, x.device).to(attention.dtype)
            attention = attention.view(b, num_windows, self.num_heads, n, n) + mask[None, :, None]
            attention = attention.view(-1, self.num_heads, n, n)
        attention = F.dropout(attention.softmax(-1), self.attention_dropout, self.training)
        out = (attention @ v).transpose(1, 2).reshape(-1, n, c)
        out = F.dropout(self.proj(out), self.dropout, self.training)
        x = window_reverse(out, window, (b, *size))
        if shifted:
            x = torch.roll(x, shifts=shifts, dims=(1, 2, 3))
        return x[:, :d, :h, :w].contiguous()


class SwinBlock3D(nn.Module):
    """Pre-norm Swin block: ``x + drop_path(attn(norm1(x)))``, then ``x + drop_path(mlp(norm2(x)))``."""

    def __init__(self, dim: int, num_heads: int, window: int, shift: int, mlp_ratio: float = 4.0,
                 drop_path: float = 0.0, dropout: float = 0.0, attention_dropout: float = 0.0, eps: float = 1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = WindowAttention3D(dim, num_heads, window, shift, attention_dropout, dropout)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchMerging3D(nn.Module):
    """Concatenate each 2x2x2 neighbourhood (odd sides zero-padded), LayerNorm, linear ``8C -> out_dim`` (no bias).
    Neighbour order (d, h, w offsets): 000, 100, 010, 110, 001, 101, 011, 111, as the official code."""

    OFFSETS = ((0, 0, 0), (1, 0, 0), (0, 1, 0), (1, 1, 0), (0, 0, 1), (1, 0, 1), (0, 1, 1), (1, 1, 1))

    def __init__(self, dim: int, out_dim: int, eps: float = 1e-5):
        super().__init__()
        self.norm = nn.LayerNorm(8 * dim, eps=eps)
        self.reduction = nn.Linear(8 * dim, out_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d, h, w = x.shape[1:4]
        x = F.pad(x, (0, 0, 0, w % 2, 0, h % 2, 0, d % 2))
        x = torch.cat([x[:, i::2, j::2, k::2] for i, j, k in self.OFFSETS], dim=-1)
        return self.reduction(self.norm(x))
