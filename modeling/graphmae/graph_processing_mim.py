# Generated from hf_mim.processing.graph_processing_mim by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Graph feature extractor (loaded by ``AutoFeatureExtractor``) and the graph batching it shares with the collator.

A graph is a dict: ``node_features [n, F]``, ``edge_index [2, e]`` (source row, target row; node ids local to the
graph) and optionally per-node ``labels [n]``. A batch of graphs is one disconnected graph: node features and
labels concatenated, edge ids offset by the nodes before them (no padding, no stacking of ragged tensors).
"""

import torch
from transformers import BatchFeature, FeatureExtractionMixin

from .mim_layers_graph import check_edge_index
from .remote_code_saving import SavesRemoteCode

NORMALIZATIONS = (None, "row")


def collate_graphs(graphs: list[dict]) -> dict:
    """Concatenate processed graphs into one batch graph (edge ids offset); labels only when every graph has them."""
    if not graphs:
        return {}
    offsets = torch.tensor([0] + [g["node_features"].shape[0] for g in graphs[:-1]]).cumsum(0)
    batch = {
        "node_features": torch.cat([g["node_features"] for g in graphs]),
        "edge_index": torch.cat([g["edge_index"] + offset for g, offset in zip(graphs, offsets.tolist())], dim=1),
    }
    if all("labels" in g for g in graphs):
        batch["labels"] = torch.cat([g["labels"] for g in graphs])
    return batch


class GraphFeatureExtractor(SavesRemoteCode, FeatureExtractionMixin):
    """Turns graphs into model inputs: float32 node features (optionally row-normalised), int64 edge ids checked
    against the node count, int64 labels; a list of graphs becomes one batch graph (:func:`collate_graphs`).

    Args:
        feature_size (`int`): node feature dimension the model expects.
        normalize_features (`str`, *optional*): "row" = PyG's ``NormalizeFeatures`` (shift by the minimum, divide
            each row by its sum, at least 1), which GraphMAE's Planetoid loading applies; None keeps features.
    """

    model_input_names = ["node_features", "edge_index"]
    remote_code_auto_class = "AutoFeatureExtractor"

    def __init__(self, feature_size: int = 1433, normalize_features: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if normalize_features not in NORMALIZATIONS:
            raise ValueError(f"normalize_features must be one of {NORMALIZATIONS}, got {normalize_features!r}")
        self.feature_size, self.normalize_features = feature_size, normalize_features

    @classmethod
    def from_model_config(cls, config, **kwargs) -> "GraphFeatureExtractor":
        return cls(**{"feature_size": config.feature_size, **kwargs})

    def process_graph(self, graph: dict, with_labels: bool = True) -> dict:
        """One graph dict -> tensors, with a one-line error for missing fields, wrong shapes and bad edge ids."""
        missing = [key for key in ("node_features", "edge_index") if graph.get(key) is None]
        if missing:
            raise ValueError(f"a graph needs node_features [num_nodes, feature_size] and edge_index [2, num_edges]; "
                             f"missing {missing} (got fields {sorted(graph)})")
        features = torch.as_tensor(graph["node_features"], dtype=torch.float32)
        if features.dim() != 2 or features.shape[1] != self.feature_size:
            raise ValueError(f"node_features must have shape [num_nodes, {self.feature_size}] (feature_size), got "
                             f"{tuple(features.shape)}")
        edge_index = torch.as_tensor(graph["edge_index"])
        if edge_index.numel() == 0:
            edge_index = edge_index.reshape(2, 0)
        if edge_index.is_floating_point() and bool((edge_index == edge_index.round()).all()):
            edge_index = edge_index.long()
        check_edge_index(edge_index, features.shape[0])
        if self.normalize_features == "row":
            features = features - features.min()
            features = features / features.sum(dim=-1, keepdim=True).clamp(min=1.0)
        out = {"node_features": features, "edge_index": edge_index.long()}
        if with_labels and graph.get("labels") is not None:
            labels = torch.as_tensor(graph["labels"], dtype=torch.long).reshape(-1)
            if labels.shape[0] != features.shape[0]:
                raise ValueError(f"labels must have one entry per node ({features.shape[0]}), got {labels.shape[0]}")
            out["labels"] = labels
        return out

    def __call__(self, graphs, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        """``graphs``: one graph dict or a list of them -> a ``BatchFeature`` of one batch graph."""
        graphs = [graphs] if isinstance(graphs, dict) else list(graphs)
        return BatchFeature(collate_graphs([self.process_graph(g) for g in graphs]))
