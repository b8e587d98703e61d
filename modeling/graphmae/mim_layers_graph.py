# Generated from hf_mim.layers.graph by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Message passing for graph methods in pure torch: a GAT layer and the edge utilities it needs.

Why not torch_geometric: it installs and runs with our torch, but a checkpoint's remote-code bundle must load
where only transformers and torch are installed, and a ~50-line GAT (``index_add_`` / ``scatter_reduce``) builds
under ``torch.device("meta")`` like every other hf_mim layer. The maths is PyG's ``GATConv`` as GraphMAE's PyG
branch subclasses it (``graphmae/models/gat.py``), which equals its DGL branch: the same attention softmax
(max-shifted, ``+ 1e-16`` in the denominator) over each node's incoming edges.
"""

import torch
from torch import nn


def with_self_loops(edge_index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Drop existing self-loops, then append one per node (PyG's ``remove_self_loops`` + ``add_self_loops``, as
    GraphMAE's data loading does): every node attends to itself once, and isolated nodes keep their features."""
    edge_index = edge_index[:, edge_index[0] != edge_index[1]]
    loops = torch.arange(num_nodes, device=edge_index.device).expand(2, num_nodes)
    return torch.cat([edge_index, loops], dim=1)


def check_edge_index(edge_index: torch.Tensor, num_nodes: int) -> None:
    """A clear error for edge lists that would index out of range (torch's own error names no cause)."""
    if edge_index.dim() != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must have shape [2, num_edges] (sources, targets), got {tuple(edge_index.shape)}")
    if edge_index.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"edge_index must hold integer node ids, got {edge_index.dtype}")
    if edge_index.numel() and edge_index.device.type != "meta":
        low, high = int(edge_index.min()), int(edge_index.max())
        if low < 0 or high >= num_nodes:
            raise ValueError(
                f"edge_index refers to node {low if low < 0 else high}, but the graph has {num_nodes} nodes "
                f"(ids 0..{num_nodes - 1}); fix the edge list or the node features"
            )


def segment_softmax(scores: torch.Tensor, index: torch.Tensor, num_nodes: int) -> torch.Tensor:
    """Softmax of ``scores [E, H]`` over the edges that share a target ``index [E]`` (PyG's ``softmax``)."""
    shape = (num_nodes, scores.shape[1])
    expanded = index.unsqueeze(1).expand_as(scores)
    peak = scores.new_full(shape, float("-inf")).scatter_reduce(0, expanded, scores.detach(), "amax", include_self=True)
    exp = (scores - peak.gather(0, expanded)).exp()
    total = exp.new_zeros(shape).index_add_(0, index, exp) + 1e-16
    return exp / total.gather(0, expanded)


class GATLayer(nn.Module):
    """Multi-head graph attention: ``h_i = act(concat_h sum_j a_ij^h W x_j + b)`` with
    ``a_ij = softmax_j(leaky_relu(att_src . W x_j + att_dst . W x_i))`` over the edges ``j -> i``.

    ``edge_index [2, E]`` holds (source, target) rows; ``attention_dropout`` drops attention weights in training.
    Parameters as PyG's ``GATConv``: ``weight [heads*out_dim, in_dim]`` (its ``lin_src``), ``att_src``, ``att_dst``
    ``[1, heads, out_dim]``, ``bias``; the optional PReLU (GraphMAE's default activation) is part of the layer."""

    def __init__(self, in_dim: int, out_dim: int, num_heads: int, negative_slope: float = 0.2,
                 attention_dropout: float = 0.0, activation: bool = True):
        super().__init__()
        self.num_heads, self.head_dim, self.negative_slope = num_heads, out_dim, negative_slope
        self.weight = nn.Parameter(torch.empty(num_heads * out_dim, in_dim))
        self.att_src = nn.Parameter(torch.empty(1, num_heads, out_dim))
        self.att_dst = nn.Parameter(torch.empty(1, num_heads, out_dim))
        self.bias = nn.Parameter(torch.empty(num_heads * out_dim))
        self.attention_dropout = nn.Dropout(attention_dropout)
        self.activation = nn.PReLU() if activation else None

    def forward(self, x: torch.Tensor, edge_index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [N, in_dim]`` -> (``[N, heads * out_dim]``, attention weights ``[E, heads]``)."""
        source, target = edge_index
        weight = self.weight.view(self.num_heads, self.head_dim, -1)
        # a widening layer (GraphMAE's decoder, 64 -> 512 features) attends and sums in the input space:
        # att . W x = (W^T att) . x and sum_j a_ij W x_j = W sum_j a_ij x_j, so each edge moves in_dim numbers
        widening = x.shape[1] < self.head_dim
        if widening:
            score_src = x @ torch.einsum("hc,hci->ih", self.att_src[0], weight)
            score_dst = x @ torch.einsum("hc,hci->ih", self.att_dst[0], weight)
            values = x.unsqueeze(1)
        else:
            values = nn.functional.linear(x, self.weight).view(-1, self.num_heads, self.head_dim)
            score_src, score_dst = (values * self.att_src).sum(-1), (values * self.att_dst).sum(-1)
        scores = nn.functional.leaky_relu(score_src[source] + score_dst[target], self.negative_slope)
        weights = segment_softmax(scores, target, x.shape[0])
        messages = self.attention_dropout(weights).unsqueeze(-1) * values[source]
        out = messages.new_zeros(x.shape[0], *messages.shape[1:]).index_add_(0, target, messages)
        if widening:
            out = torch.einsum("nhi,hci->nhc", out, weight)
        out = out.flatten(1) + self.bias
        return (self.activation(out) if self.activation is not None else out), weights
