# Generated from hf_mim.layers.block by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Pre-norm transformer blocks shared by every ViT-based method."""

import torch
from torch import nn
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer

from .mim_layers_attention import Attention, CrossAttention


def drop_path(x: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop whole residual branches per sample, rescaling the kept ones."""
    if drop_prob == 0.0 or not training:
        return x
    keep = 1.0 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


def drop_path_rates(max_rate: float, depth: int) -> list[float]:
    """Stochastic-depth rate of each of ``depth`` blocks, rising linearly from 0 to ``max_rate`` (the official
    ``torch.linspace(...)`` values). Computed on the CPU explicitly: models are also built under
    ``torch.device("meta")``, where ``linspace(...).tolist()`` has no data to read."""
    return torch.linspace(0, max_rate, depth, device="cpu").tolist()


class DropPath(nn.Module):
    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class LayerScale(nn.Module):
    """Per-channel residual scaling (CaiT / BEiT ``gamma``), initialised to ``init_value``."""

    def __init__(self, dim: int, init_value: float):
        super().__init__()
        self.init_value = init_value
        self.gamma = nn.Parameter(torch.full((dim,), float(init_value)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gamma


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, act: str = "gelu", drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = ACT2FN[act]
        self.fc2 = nn.Linear(hidden_dim, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.fc2(self.act(self.fc1(x))))


def residual_extras(dim: int, layer_scale_init_value: float | None, drop_path_rate: float):
    scale = LayerScale(dim, layer_scale_init_value) if layer_scale_init_value else nn.Identity()
    return scale, DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()


class TransformerBlock(GradientCheckpointingLayer):
    """``x + attn(norm1(x))`` then ``x + mlp(norm2(x))``, with optional layer scale and drop path (timm names)."""

    def __init__(
        self,
        config,
        dim: int,
        num_heads: int,
        intermediate_size: int,
        qkv_bias: bool | str = True,
        layer_norm_eps: float = 1e-6,
        layer_scale_init_value: float | None = None,
        drop_path_rate: float = 0.0,
        hidden_act: str = "gelu",
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
    ):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.attn = Attention(config, dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop)
        self.ls1, self.drop_path1 = residual_extras(dim, layer_scale_init_value, drop_path_rate)
        self.norm2 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.mlp = Mlp(dim, intermediate_size, hidden_act, proj_drop)
        self.ls2, self.drop_path2 = residual_extras(dim, layer_scale_init_value, drop_path_rate)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(
        self, hidden_states: torch.Tensor, attention_bias: torch.Tensor | None = None, **kwargs
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        attn_out, weights = self.attn(self.norm1(hidden_states), attention_bias, **kwargs)
        hidden_states = hidden_states + self.drop_path1(self.ls1(self.proj_drop(attn_out)))
        hidden_states = hidden_states + self.drop_path2(self.ls2(self.mlp(self.norm2(hidden_states))))
        return hidden_states, weights


class CrossAttentionBlock(GradientCheckpointingLayer):
    """Cross-attention from queries to a context, then an MLP (pre-norm; used by CAE's regressor and CroCo)."""

    def __init__(
        self,
        config,
        dim: int,
        num_heads: int,
        intermediate_size: int,
        qkv_bias: bool = True,
        layer_norm_eps: float = 1e-6,
        layer_scale_init_value: float | None = None,
        drop_path_rate: float = 0.0,
        hidden_act: str = "gelu",
        context_dim: int | None = None,
        self_attention: bool = False,
    ):
        super().__init__()
        context_dim = dim if context_dim is None else context_dim
        self.self_attn = None
        if self_attention:
            self.norm0 = nn.LayerNorm(dim, eps=layer_norm_eps)
            self.self_attn = Attention(config, dim, num_heads, qkv_bias=qkv_bias)
        self.norm_q = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.norm_kv = nn.LayerNorm(context_dim, eps=layer_norm_eps)
        self.cross_attn = CrossAttention(config, dim, num_heads, qkv_bias=qkv_bias, kv_dim=context_dim)
        self.ls1, self.drop_path1 = residual_extras(dim, layer_scale_init_value, drop_path_rate)
        self.norm2 = nn.LayerNorm(dim, eps=layer_norm_eps)
        self.mlp = Mlp(dim, intermediate_size, hidden_act)
        self.ls2, self.drop_path2 = residual_extras(dim, layer_scale_init_value, drop_path_rate)

    def forward(self, queries: torch.Tensor, context: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.self_attn is not None:
            queries = queries + self.self_attn(self.norm0(queries), **kwargs)[0]
        attn_out, _ = self.cross_attn(self.norm_q(queries), self.norm_kv(context), **kwargs)
        queries = queries + self.drop_path1(self.ls1(attn_out))
        return queries + self.drop_path2(self.ls2(self.mlp(self.norm2(queries))))
