"""g-SAE configuration (Olmo et al., NAACL Findings 2025, "Features that Make a Difference: Leveraging Gradients
for Improved Dictionary Learning", arXiv 2411.10397)."""

from transformers import PreTrainedConfig

from hf_mim.configuration_utils import check_positive


class GSAEConfig(PreTrainedConfig):
    r"""
    A TopK sparse autoencoder on one layer's residual-stream activations of a causal language model whose TopK
    chooses latents by ``z + beta * z * |W_dec^T g|`` (g: the LM loss gradient at the activation). ``beta = 0`` is
    the plain TopK SAE of Gao et al. (2024). The paper publishes no code; the sizes below are common GPT-2-small
    TopK-SAE settings, not values read from the paper (unverified).

    Args:
        d_in (`int`, defaults to 768): width of the activations (the source model's hidden size).
        num_latents (`int`, defaults to 24576): dictionary size (32 x d_in).
        k (`int`, defaults to 32): latents kept per activation.
        beta (`float`, defaults to 1.0): weight of the gradient term in the selection score (0: plain TopK).
        aux_k (`int`, defaults to 512): latents of the AuxK loss (Gao et al.: 512), chosen among the dead ones.
        aux_k_coef (`float`, defaults to 1/32): weight of the AuxK loss (Gao et al.; 0 turns it off).
        dead_tokens_threshold (`int`, defaults to 10_000_000): a latent that selected for none of this many training
            tokens is dead (Gao et al.: 10M tokens).
        source_model (`str`, *optional*): name or path of the language model the SAE was trained on.
        source_layer (`int`, *optional*): its decoder block whose output (residual stream) the SAE reads.
    """

    model_type = "gsae"

    d_in: int = 768
    num_latents: int = 24576
    k: int = 32
    beta: float = 1.0
    aux_k: int = 512
    aux_k_coef: float = 1 / 32
    dead_tokens_threshold: int = 10_000_000
    source_model: str | None = None
    source_layer: int | None = None

    def __post_init__(self, **kwargs):
        check_positive(self, "d_in", "num_latents", "k", "aux_k", "dead_tokens_threshold")
        if self.k >= self.num_latents:
            raise ValueError(f"k ({self.k}) must be smaller than num_latents ({self.num_latents}): keeping every latent is "
                             "no sparse code")
        if self.beta < 0 or self.aux_k_coef < 0:
            raise ValueError(f"beta and aux_k_coef must be >= 0, got {self.beta} and {self.aux_k_coef}")
        super().__post_init__(**kwargs)
