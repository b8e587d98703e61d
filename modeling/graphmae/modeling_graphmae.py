# Generated from hf_mim.models.graphmae.modeling_graphmae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""GraphMAE: masked node-feature reconstruction with a GAT encoder and a re-masked one-layer GAT decoder.

A random ``mask_ratio`` of the nodes is masked; of those, ``int((1 - replace_ratio) * M)`` get their features set
to a learnable [MASK] token and ``int(replace_ratio * M)`` get the features of random nodes. The GAT encoder
embeds the corrupted graph, a linear map (no bias) goes to the decoder width, the rows of masked nodes are zeroed
again (re-masking: the decoder must rebuild them from their neighbours), and a single-head GAT layer predicts the
features. Loss: scaled cosine error ``mean over masked nodes of (1 - cos(x_hat, x)) ** gamma``.

Faithful to THUDM/GraphMAE (``graphmae/models/edcoder.py: PreModel``, ``gat.py``, ``loss_func.py: sce_loss``; its
PyG branch, which equals the DGL one), including its quirks:

* both counts are ``int()``-truncated separately, so one masked node can keep its own features and still count in
  the loss (50 masked, 5%: 47 tokens, 2 replaced, 1 unchanged). We represent it as a node replaced by itself.
* where ``int(replace_ratio * M)`` is 0 the official code selects ``perm[-0:]``, i.e. *every* masked node, and then
  fails on the shape; we replace none there (the evident intent; it only happens on graphs of under ~40 nodes).
* nodes replaced by other nodes' features do not get the [MASK] token; the token starts at zero.
* the mask is drawn over all nodes of a batch (graphs concatenated), not per graph.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import TokenClassifierOutput
from transformers.utils import ModelOutput

from .mim_layers_graph import GATLayer, check_edge_index, with_self_loops
from .mim_modeling_utils import MIMPreTrainedModel, torch_default_init_
from .configuration_graphmae import GraphMAEConfig


@dataclass
class GraphMAEEncoderOutput(ModelOutput):
    """``last_hidden_state [N, hidden_size]``: one embedding per node. ``mask [N]``: the masked nodes (if any).
    ``hidden_states``: the (corrupted) input features, then every layer's output. ``attentions``: per layer,
    ``[E, heads]`` attention weights over the edges message passing used (self-loops included)."""

    last_hidden_state: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class GraphMAEPreTrainingOutput(ModelOutput):
    """``logits [N, feature_size]``: reconstructed features of every node (the loss reads the masked ones);
    ``mask [N]``: True = masked node; ``replace_sources [N]``: per masked node, -1 = [MASK] token, else the node
    whose features it received."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    replace_sources: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


def scaled_cosine_error(prediction: torch.Tensor, target: torch.Tensor, gamma: float) -> torch.Tensor:
    """``mean((1 - cos(prediction, target)) ** gamma)`` over rows (``sce_loss``; the paper's Eq. 5)."""
    cosine = (nn.functional.normalize(prediction, dim=-1) * nn.functional.normalize(target, dim=-1)).sum(-1)
    return (1 - cosine).pow(gamma).mean()


def random_node_mask(num_nodes: int, ratio: float, generator=None, device=None) -> torch.Tensor:
    """Bool ``[num_nodes]``, exactly ``int(ratio * num_nodes)`` True (the official ``randperm`` split)."""
    count = int(ratio * num_nodes)
    if not 0 < count < num_nodes:
        raise ValueError(
            f"mask_ratio {ratio} masks {count} of {num_nodes} nodes; GraphMAE needs some but not all nodes masked: "
            "use a larger graph or batch, or another mask_ratio"
        )
    mask = torch.zeros(num_nodes, dtype=torch.bool, device=device)
    mask[torch.randperm(num_nodes, generator=generator)[:count].to(device)] = True
    return mask


def random_replacements(mask: torch.Tensor, replace_ratio: float, generator=None) -> torch.Tensor:
    """``replace_sources [N]`` for ``mask [N]`` drawn as the official ``encoding_mask_noise``: of the ``M`` masked
    nodes (in a random order), the first ``int((1 - r) * M)`` get the token (-1), the last ``int(r * M)`` the
    features of distinct random nodes, any left in between (``int()`` truncation) their own."""
    masked = mask.nonzero().flatten().cpu()
    count, num_nodes = masked.numel(), mask.numel()
    sources = torch.full((num_nodes,), -1, dtype=torch.long)
    sources[masked] = masked
    order = masked[torch.randperm(count, generator=generator)]
    num_tokens, num_noise = int((1 - replace_ratio) * count), int(replace_ratio * count)
    sources[order[:num_tokens]] = -1
    if num_noise > 0:
        sources[order[count - num_noise :]] = torch.randperm(num_nodes, generator=generator)[:num_noise]
    return sources.to(mask.device)


class GraphMAEPreTrainedModel(MIMPreTrainedModel):
    config_class = GraphMAEConfig
    main_input_name = "node_features"
    input_modalities = ("graph",)
    _no_split_modules = []
    _supports_sdpa = False
    _supports_flash_attn = False
    _supports_attention_backend = False
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Official init: Xavier-normal (gain 1.414) GAT weights and attention vectors, zero biases, PReLU 0.25,
        PyTorch's default for plain Linear layers (``encoder_to_decoder``, the probe head), zero [MASK] token."""
        if isinstance(module, GATLayer):
            for weight in (module.weight, module.att_src, module.att_dst):
                init.xavier_normal_(weight, gain=1.414)
            init.zeros_(module.bias)
        elif isinstance(module, nn.PReLU):
            init.constant_(module.weight, 0.25)
        elif isinstance(module, nn.Linear):
            torch_default_init_(module)
        elif isinstance(module, GraphMAEModel):
            init.zeros_(module.mask_token)

    def prepare_graph(self, node_features: torch.Tensor | None, edge_index: torch.Tensor | None) -> torch.Tensor:
        """Check the inputs; returns the edges message passing uses (self-loops per ``config.add_self_loops``)."""
        if node_features is None or edge_index is None:
            raise ValueError("node_features [num_nodes, feature_size] and edge_index [2, num_edges] are required")
        if node_features.dim() != 2 or node_features.shape[1] != self.config.feature_size:
            raise ValueError(
                f"node_features must have shape [num_nodes, {self.config.feature_size}] (config.feature_size), "
                f"got {tuple(node_features.shape)}"
            )
        edge_index = edge_index.to(node_features.device)
        check_edge_index(edge_index, node_features.shape[0])
        edge_index = edge_index.long()
        return with_self_loops(edge_index, node_features.shape[0]) if self.config.add_self_loops else edge_index


class GraphMAEModel(GraphMAEPreTrainedModel):
    """GAT encoder: ``num_hidden_layers`` layers of ``num_attention_heads`` concatenated heads, each followed by
    PReLU, dropout on every layer's input. With ``mask_nodes`` the masked nodes' features are corrupted first
    (token / replacement); without it every node is encoded as is (features for probes)."""

    _keys_to_ignore_on_load_unexpected = [r"^(encoder_to_decoder|decoder)\."]  # the pre-training head

    def __init__(self, config: GraphMAEConfig):
        super().__init__(config)
        head_dim = config.hidden_size // config.num_attention_heads
        dims = [config.feature_size] + [config.hidden_size] * config.num_hidden_layers
        self.mask_token = nn.Parameter(torch.zeros(1, config.feature_size))
        self.layers = nn.ModuleList(
            GATLayer(dims[i], head_dim, config.num_attention_heads, config.negative_slope, config.attention_dropout,
                     activation=config.num_hidden_layers > 1)  # official gat.py: a 1-layer encoder has no PReLU
            for i in range(config.num_hidden_layers)
        )
        self.dropout = nn.Dropout(config.feature_dropout)
        self.post_init()

    def corrupt(self, node_features: torch.Tensor, mask: torch.Tensor, replace_sources: torch.Tensor) -> torch.Tensor:
        """Masked nodes get the [MASK] token (``replace_sources == -1``) or another node's features."""
        sources = torch.where(mask & (replace_sources >= 0), replace_sources, torch.arange(len(mask), device=mask.device))
        corrupted = node_features[sources]
        token_nodes = (mask & (replace_sources < 0)).unsqueeze(1)
        return torch.where(token_nodes, self.mask_token.to(corrupted.dtype).expand_as(corrupted), corrupted)

    def forward(
        self,
        node_features: torch.Tensor | None = None,
        edge_index: torch.Tensor | None = None,
        mask_nodes: torch.Tensor | None = None,
        replace_sources: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> GraphMAEEncoderOutput | tuple:
        r"""
        node_features (`torch.FloatTensor` of shape `(num_nodes, feature_size)`): node features (graphs of a batch
            concatenated, see `GraphCollator`).
        edge_index (`torch.LongTensor` of shape `(2, num_edges)`): (source, target) node ids.
        mask_nodes (`torch.BoolTensor` of shape `(num_nodes,)`, *optional*): nodes to corrupt (True = masked).
        replace_sources (`torch.LongTensor` of shape `(num_nodes,)`, *optional*): per masked node, -1 = [MASK]
            token, else the node whose features it gets; default: the [MASK] token for every masked node.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        edges = self.prepare_graph(node_features, edge_index)
        h = node_features
        if mask_nodes is not None:
            sources = replace_sources if replace_sources is not None else torch.full_like(mask_nodes, -1, dtype=torch.long)
            h = self.corrupt(node_features, mask_nodes, sources.to(node_features.device))
        hidden_states, attentions = [h], []
        for layer in self.layers:
            h, weights = layer(self.dropout(h), edges)
            hidden_states.append(h)
            attentions.append(weights)
        output = GraphMAEEncoderOutput(
            last_hidden_state=h, mask=mask_nodes,
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
        )
        return output if return_dict else output.to_tuple()

    def pooled_features(self, node_features: torch.Tensor, edge_index: torch.Tensor, pooling: str | None = None,
                        **kwargs) -> torch.Tensor:
        """``[num_nodes, hidden_size]``: one embedding per node (nodes are the samples of node-level probes)."""
        return self(node_features, edge_index, return_dict=True).last_hidden_state


class GraphMAEForPreTraining(GraphMAEPreTrainedModel):
    """GraphMAE pre-training: corrupt masked nodes, encode, map to the decoder (no bias), re-mask, decode with one
    single-head GAT layer, scaled cosine error on the masked nodes."""

    def __init__(self, config: GraphMAEConfig):
        super().__init__(config)
        self.encoder = GraphMAEModel(config)
        self.encoder_to_decoder = nn.Linear(config.hidden_size, config.hidden_size, bias=False)
        self.decoder = GATLayer(config.hidden_size, config.feature_size, 1, config.negative_slope,
                                config.attention_dropout, activation=False)
        self.dropout = nn.Dropout(config.feature_dropout)
        self.post_init()

    def mask_generator(self, num_nodes: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """A random node mask at ``config.mask_ratio`` (used by ``MethodSpec.make_inputs``)."""
        return random_node_mask(num_nodes, self.config.mask_ratio, generator)

    def forward(
        self,
        node_features: torch.Tensor | None = None,
        edge_index: torch.Tensor | None = None,
        mask_nodes: torch.Tensor | None = None,
        replace_sources: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> GraphMAEPreTrainingOutput | tuple:
        r"""
        node_features (`torch.FloatTensor` of shape `(num_nodes, feature_size)`), edge_index (`torch.LongTensor`
            of shape `(2, num_edges)`): the graph (or a batch of graphs concatenated by `GraphCollator`).
        mask_nodes (`torch.BoolTensor` of shape `(num_nodes,)`, *optional*): True = masked; some but not all nodes
            (default: `int(config.mask_ratio * num_nodes)` random nodes from `mask_rng`).
        replace_sources (`torch.LongTensor` of shape `(num_nodes,)`, *optional*): per masked node, -1 = [MASK]
            token, else the node whose features replace its own (default: the official token/replacement split at
            `config.replace_ratio`, from `mask_rng`).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        edges = self.prepare_graph(node_features, edge_index)
        num_nodes = node_features.shape[0]
        if mask_nodes is None:
            mask_nodes = random_node_mask(num_nodes, self.config.mask_ratio, self.mask_rng, node_features.device)
        mask_nodes = mask_nodes.to(node_features.device)
        if mask_nodes.dtype != torch.bool or mask_nodes.shape != (num_nodes,):
            raise ValueError(f"mask_nodes must be a bool tensor of shape [{num_nodes}], got {mask_nodes.dtype} "
                             f"{tuple(mask_nodes.shape)}; pass mask.bool() for a 0/1 mask")
        if mask_nodes.device.type != "meta" and not 0 < int(mask_nodes.sum()) < num_nodes:
            raise ValueError(f"mask_nodes masks {int(mask_nodes.sum())} of {num_nodes} nodes: mask some but not all")
        if replace_sources is None:
            replace_sources = random_replacements(mask_nodes, self.config.replace_ratio, self.mask_rng)
        encoded = self.encoder(
            node_features, edges, mask_nodes=mask_nodes, replace_sources=replace_sources,
            output_hidden_states=output_hidden_states, output_attentions=output_attentions, return_dict=True,
        )
        latent = self.encoder_to_decoder(encoded.last_hidden_state).masked_fill(mask_nodes.unsqueeze(1), 0.0)
        logits, weights = self.decoder(self.dropout(latent), edges)
        dtype = torch.promote_types(logits.dtype, torch.float32)  # half precision upcast, float64 kept
        loss = scaled_cosine_error(logits[mask_nodes].to(dtype), node_features[mask_nodes].to(dtype), self.config.loss_gamma)
        attentions = encoded.attentions + (weights,) if output_attentions else None
        output = GraphMAEPreTrainingOutput(
            loss=loss, logits=logits, mask=mask_nodes, replace_sources=replace_sources,
            hidden_states=encoded.hidden_states, attentions=attentions,
        )
        return output if return_dict else output.to_tuple()


class GraphMAEForNodeClassification(GraphMAEPreTrainedModel):
    """Encoder + a linear layer per node (the official evaluation's ``LogisticRegression``). ``labels [N]`` with
    -100 for nodes outside the training split. The pre-training decoder in a checkpoint is ignored on load."""

    _keys_to_ignore_on_load_unexpected = [r"^(?!encoder\.)"]

    def __init__(self, config: GraphMAEConfig):
        super().__init__(config)
        self.encoder = GraphMAEModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def forward(
        self,
        node_features: torch.Tensor | None = None,
        edge_index: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> TokenClassifierOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        encoded = self.encoder(node_features, edge_index, output_hidden_states=output_hidden_states,
                               output_attentions=output_attentions, return_dict=True)
        logits = self.classifier(encoded.last_hidden_state)
        loss = None if labels is None else nn.functional.cross_entropy(logits.float(), labels.to(logits.device).long())
        output = TokenClassifierOutput(loss=loss, logits=logits, hidden_states=encoded.hidden_states,
                                       attentions=encoded.attentions)
        return output if return_dict else output.to_tuple()
