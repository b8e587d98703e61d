# Generated from hf_mim.layers.attention by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Multi-head attention dispatched through transformers' attention interface.

``config._attn_implementation`` ("eager", "sdpa", "flash_attention_2", ...) picks the kernel at call time, so
``from_pretrained(..., attn_implementation=...)`` and ``model.set_attn_implementation(...)`` reach every block,
the decoder's included (transformers' ViTMAE decoder keeps a stale deep copy of the config; we share one).
"""

import warnings
from collections.abc import Callable

import torch
from torch import nn
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

QKV_BIAS_MODES = ("qkv", "qv", "none")


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference attention: softmax in float32. ``attention_mask`` is an additive bias ``[B or 1, H, Lq, Lk]``."""
    weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        weights = weights + attention_mask
    weights = nn.functional.softmax(weights, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = nn.functional.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


def dispatch_attention(module: nn.Module, query, key, value, attention_bias, **kwargs):
    """Run the kernel chosen by ``config._attn_implementation`` on ``[B, H, L, d]`` projections; returns the output
    as ``[B, Lq, H * d]`` and the attention weights. Fused kernels (sdpa, flash, ...) have no weights to return:
    with ``output_attentions=True`` that call falls back to eager attention, with a warning (as transformers'
    sdpa attention classes did), instead of returning None."""
    implementation = module.config._attn_implementation
    if kwargs.get("output_attentions") and implementation not in (None, "eager"):
        warnings.warn(
            f"{implementation} attention cannot return attention weights: falling back to eager attention for this "
            "call (output_attentions=True); load with attn_implementation='eager' to avoid the switch",
            stacklevel=3,
        )
        implementation = "eager"
    attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
    output, weights = attention_interface(
        module,
        query,
        key,
        value,
        attention_bias,
        dropout=module.attn_drop if module.training else 0.0,
        scaling=module.scaling,
        **kwargs,
    )
    return output.reshape(query.shape[0], query.shape[2], -1), weights


def normalize_qkv_bias(qkv_bias: bool | str) -> str:
    """``True`` -> "qkv" (timm/MAE), ``False`` -> "none"; "qv" is BEiT's learnable q and v bias with k bias fixed at 0."""
    if qkv_bias is True:
        return "qkv"
    if qkv_bias is False or qkv_bias is None:
        return "none"
    if qkv_bias not in QKV_BIAS_MODES:
        raise ValueError(f"qkv_bias must be a bool or one of {QKV_BIAS_MODES}, got {qkv_bias!r}")
    return qkv_bias


class Attention(nn.Module):
    """Self-attention with one fused ``qkv`` projection (the timm / official-MAE parameter layout)."""

    def __init__(self, config, dim: int, num_heads: int, qkv_bias: bool | str = True, attn_drop: float = 0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden size {dim} is not divisible by the number of attention heads {num_heads}")
        self.config = config
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scaling = self.head_dim**-0.5
        self.attn_drop = attn_drop
        self.is_causal = False
        mode = normalize_qkv_bias(qkv_bias)
        self.qkv = nn.Linear(dim, dim * 3, bias=mode == "qkv")
        if mode == "qv":
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.proj = nn.Linear(dim, dim)

    def project_qkv(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.q_bias is None:
            return self.qkv(hidden_states)
        bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        return nn.functional.linear(hidden_states, self.qkv.weight, bias)

    def forward(
        self, hidden_states: torch.Tensor, attention_bias: torch.Tensor | None = None, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, dim = hidden_states.shape
        qkv = self.project_qkv(hidden_states).reshape(batch, length, 3, self.num_heads, self.head_dim)
        query, key, value = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        output, weights = dispatch_attention(self, query, key, value, attention_bias, **kwargs)
        return self.proj(output), weights


class CrossAttention(nn.Module):
    """Queries from one sequence, keys/values from another (CAE regressor, CroCo/CropMAE decoders)."""

    def __init__(
        self, config, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0, kv_dim: int | None = None
    ):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"hidden size {dim} is not divisible by the number of attention heads {num_heads}")
        self.config = config
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scaling = self.head_dim**-0.5
        self.attn_drop = attn_drop
        self.is_causal = False
        kv_dim = dim if kv_dim is None else kv_dim
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.k = nn.Linear(kv_dim, dim, bias=qkv_bias)
        self.v = nn.Linear(kv_dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(
        self, queries: torch.Tensor, context: torch.Tensor, attention_bias: torch.Tensor | None = None, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, dim = queries.shape
        query = self.q(queries).reshape(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        key = self.k(context).reshape(batch, context.shape[1], self.num_heads, self.head_dim).transpose(1, 2)
        value = self.v(context).reshape(batch, context.shape[1], self.num_heads, self.head_dim).transpose(1, 2)
        output, weights = dispatch_attention(self, query, key, value, attention_bias, **kwargs)
        return self.proj(output), weights


class RelativePositionBias(nn.Module):
    """BEiT relative position bias for a ``grid`` of patches plus one cls token (shared across layers in SimMIM).

    The table has ``(2H-1)(2W-1)`` patch-to-patch entries and three extra ones (cls->token, token->cls, cls->cls).
    """

    def __init__(self, grid_size: tuple[int, int], num_heads: int):
        super().__init__()
        height, width = grid_size
        self.grid_size = (height, width)
        self.num_relative_distance = (2 * height - 1) * (2 * width - 1) + 3
        self.relative_position_bias_table = nn.Parameter(torch.zeros(self.num_relative_distance, num_heads))
        self.register_buffer("relative_position_index", self.build_index(height, width), persistent=False)

    @staticmethod
    def build_index(height: int, width: int) -> torch.Tensor:
        rows = torch.arange(height).repeat_interleave(width)
        cols = torch.arange(width).repeat(height)
        d_row = rows[:, None] - rows[None, :] + height - 1
        d_col = cols[:, None] - cols[None, :] + width - 1
        num_relative = (2 * height - 1) * (2 * width - 1)
        index = torch.zeros(height * width + 1, height * width + 1, dtype=torch.long)
        index[1:, 1:] = d_row * (2 * width - 1) + d_col
        index[0, :] = num_relative
        index[:, 0] = num_relative + 1
        index[0, 0] = num_relative + 2
        return index

    def forward(self) -> torch.Tensor:
        """Additive attention bias ``[1, heads, 1+L, 1+L]``."""
        tokens = self.relative_position_index.shape[0]
        bias = self.relative_position_bias_table[self.relative_position_index.reshape(-1)]
        return bias.reshape(tokens, tokens, -1).permute(2, 0, 1).unsqueeze(0)
