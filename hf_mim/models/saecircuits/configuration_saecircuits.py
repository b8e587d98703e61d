"""SAE circuits configuration (O'Neill & Bui, 2024, "Sparse Autoencoders Enable Scalable and Reliable Circuit
Identification in Language Models")."""

from transformers import PreTrainedConfig

from hf_mim.configuration_utils import check_positive

POSITIONS = ("mean", "last")


class SAECircuitsConfig(PreTrainedConfig):
    r"""
    A one-layer sparse autoencoder over the per-head attention results of a causal LM, whose argmax latent is each
    head's discrete code. Defaults are the official recipe (charlieoneill11/sae-circuits ``src/configs/config.yaml``,
    ``src/sae.py``, ``src/train.py``).

    Args:
        feature_size (`int`, defaults to 768): width of a head result vector, i.e. the source model's hidden size
            (GPT-2 small: 768).
        num_latents (`int`, defaults to 200): SAE latents (``num_unique``): the number of possible codes per head.
        l1_coefficient (`float`, defaults to 0.02): weight of the sparsity term (``lambda_``).
        source_model (`str`, *optional*): the causal LM whose heads the SAE was trained on (path or Hub id).
        num_layers / num_heads (`int`, *optional*): the source model's head layout; head ``i`` of the
            ``num_layers * num_heads`` stacked results is layer ``i // num_heads``, head ``i % num_heads``.
        position (`str`, defaults to `"mean"`): how a prompt's head results are pooled over tokens: `"mean"` (the
            official data builders' default) or `"last"` (the last non-padding token).
    """

    model_type = "saecircuits"

    feature_size: int = 768
    num_latents: int = 200
    l1_coefficient: float = 0.02
    source_model: str | None = None
    num_layers: int | None = None
    num_heads: int | None = None
    position: str = "mean"

    def __post_init__(self, **kwargs):
        check_positive(self, "feature_size", "num_latents")
        for name in ("num_layers", "num_heads"):
            if getattr(self, name) is not None:
                check_positive(self, name)
        if self.l1_coefficient < 0:
            raise ValueError(f"l1_coefficient must be >= 0, got {self.l1_coefficient}")
        if self.position not in POSITIONS:
            raise ValueError(f"position must be one of {POSITIONS}, got {self.position!r}")
        super().__post_init__(**kwargs)

    @property
    def head_labels(self) -> list[str]:
        """``["L0H0", "L0H1", ...]`` in the stacking order of the head results (TransformerLens' labels)."""
        if self.num_layers is None or self.num_heads is None:
            raise ValueError("this SAE records no head layout (num_layers, num_heads): set them in its config")
        return [f"L{layer}H{head}" for layer in range(self.num_layers) for head in range(self.num_heads)]
