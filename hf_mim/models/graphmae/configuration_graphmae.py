"""GraphMAE configuration (Hou et al., KDD 2022, "GraphMAE: Self-Supervised Masked Graph Autoencoders")."""

from transformers import PreTrainedConfig

from hf_mim.configuration_utils import check_positive


class GraphMAEConfig(PreTrainedConfig):
    r"""
    A GAT encoder over node features, a linear encoder-to-decoder map, a one-layer GAT decoder back to the
    features. Defaults are the official Cora recipe (THUDM/GraphMAE ``configs.yml``, ``cora``); residual
    connections and norms (off in that recipe, PyG branch's residual reads projected features) are not built.

    Args:
        feature_size (`int`, defaults to 1433): node feature dimension (Cora's; `hf-mim pretrain` reads it from the
            data).
        hidden_size (`int`, defaults to 512): encoder width; each layer has `num_attention_heads` heads of
            `hidden_size // num_attention_heads` features, concatenated.
        num_hidden_layers (`int`, defaults to 2), num_attention_heads (`int`, defaults to 4): encoder GAT depth and
            heads. The decoder is one single-head GAT layer (the official `nhead_out` = 1: more heads would be
            concatenated to a multiple of the feature size).
        feature_dropout (`float`, defaults to 0.2): dropout on the input of every GAT layer (`in_drop`).
        attention_dropout (`float`, defaults to 0.1): dropout on attention weights (`attn_drop`).
        negative_slope (`float`, defaults to 0.2): LeakyReLU slope of the attention scores.
        mask_ratio (`float`, defaults to 0.5): fraction of nodes masked (`mask_rate`), `int()`-truncated count.
        replace_ratio (`float`, defaults to 0.05): fraction of masked nodes given another node's features instead of
            the [MASK] token (`replace_rate`).
        loss_gamma (`float`, defaults to 3.0): exponent of the scaled cosine error (the paper's gamma, `alpha_l`).
        add_self_loops (`bool`, defaults to True): replace the graph's self-loops by one per node before message
            passing, as the official data loading does.
        initializer_range (`float`, defaults to 0.02): unused by the GAT (Xavier-normal, gain 1.414, as official);
            kept for the shared tooling.
    """

    model_type = "graphmae"

    feature_size: int = 1433
    hidden_size: int = 512
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    feature_dropout: float = 0.2
    attention_dropout: float = 0.1
    negative_slope: float = 0.2
    mask_ratio: float = 0.5
    replace_ratio: float = 0.05
    loss_gamma: float = 3.0
    add_self_loops: bool = True
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        check_positive(self, "feature_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size {self.hidden_size} must be divisible by num_attention_heads {self.num_attention_heads} "
                "(the heads' outputs are concatenated)"
            )
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        if not 0.0 <= self.replace_ratio < 1.0:
            raise ValueError(f"replace_ratio must be in [0, 1), got {self.replace_ratio}")
        if self.loss_gamma < 1:
            raise ValueError(f"loss_gamma must be >= 1 (the paper's scaling factor), got {self.loss_gamma}")
        super().__post_init__(**kwargs)
