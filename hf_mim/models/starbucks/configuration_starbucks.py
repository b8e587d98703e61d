"""Starbucks configuration (Zhuang et al., 2024/25, "Starbucks: Improved Training for 2D Matryoshka Embeddings")."""

from transformers import BertConfig

# ielab/Starbucks smae/modeling.py: the (layers, dims) pairs, hard-coded there for bert-base (12 layers, width 768)
PAPER_LAYERS = (2, 4, 6, 8, 10, 12)
PAPER_DIMS = (32, 64, 128, 256, 512, 768)


def default_pairs(num_hidden_layers: int, hidden_size: int) -> tuple[list[int], list[int]]:
    """The paper's six (layer, dim) pairs for a 12-layer, 768-wide BERT; for another size ``k = min(6, layers)``
    pairs with evenly spaced depths ``round(i * layers / k)`` and widths halving from the full width
    (``hidden_size >> (k - i)``, at least 1), so the last pair is always the full model. The rule keeps the paper's
    shape (depth grows linearly, width geometrically); for bert-base it would give 384 instead of the paper's 512
    at layer 10, which is why that size keeps the paper's list."""
    if (num_hidden_layers, hidden_size) == (PAPER_LAYERS[-1], PAPER_DIMS[-1]):
        return list(PAPER_LAYERS), list(PAPER_DIMS)
    k = min(len(PAPER_LAYERS), num_hidden_layers)
    layers = [round(i * num_hidden_layers / k) for i in range(1, k + 1)]
    dims = [max(1, hidden_size >> (k - i)) for i in range(1, k + 1)]
    return layers, dims


class StarbucksConfig(BertConfig):
    r"""
    A BERT encoder (every `BertConfig` field) trained so that its first `n` layers and first `d` dimensions give
    usable embeddings at fixed (layer, dim) pairs.

    Args:
        matryoshka_layers (`list[int]`, *optional*), matryoshka_dims (`list[int]`, *optional*): the (layer, dim)
            pairs, 1-based layers (layer 0 would be the embedding layer), increasing. Default: the paper's
            (2, 32) ... (12, 768) for a 12-layer, 768-wide model, else the scaled rule of :func:`default_pairs`.
        use_mae_decoder (`bool`, defaults to True): the RetroMAE-style auxiliary (SMAE): a one-layer BERT decoder
            reconstructs a more heavily masked copy of the text from each pair's sliced [CLS] vector; it shares the
            encoder's embeddings and MLM head.
        mlm_probability (`float`, defaults to 0.2), decoder_mlm_probability (`float`, defaults to 0.4): whole-word
            masking ratios of the encoder input and of the decoder copy (`smae/pretrain_smae.sh`); the decoder's
            masked words include the encoder's.

    SRL fine-tuning settings (KL weight, score temperature) belong to the loss,
    :class:`~hf_mim.models.starbucks.StarbucksLoss`, not to the model.
    """

    model_type = "starbucks"

    matryoshka_layers: list[int] | None = None
    matryoshka_dims: list[int] | None = None
    use_mae_decoder: bool = True
    mlm_probability: float = 0.2
    decoder_mlm_probability: float = 0.4

    def __post_init__(self, **kwargs):
        layers, dims = default_pairs(self.num_hidden_layers, self.hidden_size)
        self.matryoshka_layers = list(self.matryoshka_layers or layers)
        self.matryoshka_dims = list(self.matryoshka_dims or dims)
        check_pairs(self.matryoshka_layers, self.matryoshka_dims, self.num_hidden_layers, self.hidden_size)
        if not 0.0 < self.mlm_probability <= self.decoder_mlm_probability < 1.0:
            raise ValueError(
                "need 0 < mlm_probability <= decoder_mlm_probability < 1 (the decoder copy masks the encoder's words "
                f"and more), got {self.mlm_probability} and {self.decoder_mlm_probability}"
            )
        super().__post_init__(**kwargs)

    @property
    def pairs(self) -> list[tuple[int, int]]:
        return list(zip(self.matryoshka_layers, self.matryoshka_dims))


def check_pairs(layers, dims, num_hidden_layers: int, hidden_size: int) -> None:
    if len(layers) != len(dims) or not layers:
        raise ValueError(f"matryoshka_layers and matryoshka_dims must be non-empty lists of the same length, got "
                         f"{list(layers)} and {list(dims)}")
    if any(b <= a for a, b in zip(layers, layers[1:])) or not 1 <= layers[0] <= layers[-1] <= num_hidden_layers:
        raise ValueError(f"matryoshka_layers must increase within 1..{num_hidden_layers} (1-based), got {list(layers)}")
    if any(b < a for a, b in zip(dims, dims[1:])) or not 1 <= dims[0] <= dims[-1] <= hidden_size:
        raise ValueError(f"matryoshka_dims must not decrease and lie within 1..{hidden_size}, got {list(dims)}")
