from hf_mim.models.graphmae.configuration_graphmae import GraphMAEConfig
from hf_mim.models.graphmae.modeling_graphmae import (
    GraphMAEForNodeClassification,
    GraphMAEForPreTraining,
    GraphMAEModel,
    random_replacements,
)
from hf_mim.processing.graph_processing_mim import GraphFeatureExtractor
from hf_mim.registry import MethodSpec

TINY = dict(feature_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4)
DEMO = dict(feature_size=16, hidden_size=64, num_hidden_layers=2, num_attention_heads=4)


def example_inputs(model, graph: dict, generator) -> dict:
    """A graph (``node_features``, ``edge_index``) plus a fixed node mask and token/replacement split."""
    mask = model.mask_generator(graph["node_features"].shape[0], generator)
    return {**graph, "mask_nodes": mask, "replace_sources": random_replacements(mask, model.config.replace_ratio, generator)}


METHOD = MethodSpec(
    name="graphmae",
    config_class=GraphMAEConfig,
    model_class=GraphMAEModel,
    pretraining_class=GraphMAEForPreTraining,
    classification_class=GraphMAEForNodeClassification,
    paper="GraphMAE: Self-Supervised Masked Graph Autoencoders (Hou et al., KDD 2022)",
    paper_url="https://arxiv.org/abs/2205.10803",
    license="mit",
    tiny_config=TINY,
    demo_config=DEMO,
    example_inputs=example_inputs,
    processor_class=GraphFeatureExtractor,
    modality="graph",
    # THUDM/GraphMAE configs.yml (cora): lr 1e-3, weight decay 2e-4, cosine decay without warm-up; Adam's betas.
    # Trainer's AdamW decays decoupled (official: Adam's L2), and one step is one batch of graphs, not an epoch.
    training_defaults=dict(learning_rate=1e-3, weight_decay=2e-4, adam_beta2=0.999, warmup_steps=0.0),
)

__all__ = ["METHOD", "GraphMAEConfig", "GraphMAEForNodeClassification", "GraphMAEForPreTraining", "GraphMAEModel"]
