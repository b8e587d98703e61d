# Generated from hf_mim.layers.pos_embed by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Fixed sin-cos position embeddings.

Two incompatible 2-D layouts exist in the official code bases and checkpoints depend on them:

* ``"mae"`` (column first): ``[sin(col), cos(col), sin(row), cos(row)]`` -- facebookresearch/mae, HPM,
  CropMAE, CroCo and transformers' ViTMAE. The MAE source calls the first half ``emb_h`` but it encodes the column.
* ``"mocov3"`` (row first): ``[sin(row), cos(row), sin(col), cos(col)]`` -- MoCo v3, CAE, MultiMAE.

Frequencies are ``omega_i = 1 / 10000 ** (i / (D/4))`` and the cls slot (if any) is all zeros in both layouts.
"""

import torch

POS_EMBED_LAYOUTS = ("mae", "mocov3")


def sincos_1d(positions: torch.Tensor, dim: int, temperature: float = 10000.0) -> torch.Tensor:
    """[N] positions -> [N, dim] as ``[sin(p * omega), cos(p * omega)]`` (computed in float64)."""
    if dim % 2:
        raise ValueError(f"sin-cos embedding dimension must be even, got {dim}")
    omega = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    omega = 1.0 / temperature**omega
    angles = positions.to(torch.float64).reshape(-1, 1) * omega.reshape(1, -1)
    return torch.cat([angles.sin(), angles.cos()], dim=1)


def sincos_2d(
    grid_size: int | tuple[int, int],
    dim: int,
    layout: str = "mae",
    cls_token: bool = False,
    temperature: float = 10000.0,
) -> torch.Tensor:
    """2-D sin-cos table of shape ``[(1 if cls_token) + H*W, dim]`` for a raster-ordered (row-major) patch grid."""
    if layout not in POS_EMBED_LAYOUTS:
        raise ValueError(f"unknown position-embedding layout {layout!r}; expected one of {POS_EMBED_LAYOUTS}")
    if dim % 4:
        raise ValueError(f"2-D sin-cos embedding dimension must be divisible by 4, got {dim}")
    height, width = (grid_size, grid_size) if isinstance(grid_size, int) else grid_size
    rows = torch.arange(height).repeat_interleave(width)
    cols = torch.arange(width).repeat(height)
    row_emb, col_emb = sincos_1d(rows, dim // 2, temperature), sincos_1d(cols, dim // 2, temperature)
    table = torch.cat([col_emb, row_emb] if layout == "mae" else [row_emb, col_emb], dim=1)
    if cls_token:
        table = torch.cat([torch.zeros(1, dim, dtype=table.dtype), table], dim=0)
    return table.float()


def sincos_3d(
    grid_size: tuple[int, int, int], dim: int, temporal_dim: int | None = None, cls_token: bool = False
) -> torch.Tensor:
    """3-D (time, row, col) sin-cos table ``[T*H*W, dim]`` for video: temporal part first, then the MAE 2-D layout.

    ``temporal_dim`` defaults to a quarter of ``dim`` (the split used by the MAE-ST code).
    """
    frames, height, width = grid_size
    temporal_dim = dim // 4 if temporal_dim is None else temporal_dim
    spatial = sincos_2d((height, width), dim - temporal_dim, layout="mae")
    temporal = sincos_1d(torch.arange(frames), temporal_dim).float()
    table = torch.cat(
        [temporal.repeat_interleave(height * width, dim=0), spatial.repeat(frames, 1)], dim=1
    )
    if cls_token:
        table = torch.cat([torch.zeros(1, dim), table], dim=0)
    return table


def sinusoid_table(num_positions: int, dim: int) -> torch.Tensor:
    """VideoMAE's 1-D table over the flattened (time, row, col) tubelet sequence, ``[num_positions, dim]``:
    interleaved ``sin`` (even channels) / ``cos`` (odd channels) of ``p / 10000 ** (2 * (j // 2) / dim)``, as the
    official VideoMAE / VideoMAE V2 ``get_sinusoid_encoding_table`` (and transformers' VideoMAE) compute it."""
    exponent = 2 * (torch.arange(dim, dtype=torch.float64) // 2) / dim
    angles = torch.arange(num_positions, dtype=torch.float64).reshape(-1, 1) / 10000.0**exponent
    table = angles.clone()
    table[:, 0::2] = angles[:, 0::2].sin()
    table[:, 1::2] = angles[:, 1::2].cos()
    return table.float()
