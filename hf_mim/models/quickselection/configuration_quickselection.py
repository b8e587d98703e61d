"""QuickSelection configuration (Atashgahi et al., Machine Learning 2022, "Quick and Robust Feature Selection: the
Strength of Energy-efficient Sparse Training for Autoencoders")."""

from transformers import PreTrainedConfig

from hf_mim.configuration_utils import check_positive


class QuickSelectionConfig(PreTrainedConfig):
    r"""
    A sparse denoising autoencoder with one hidden layer (sigmoid hidden, linear output) trained with Sparse
    Evolutionary Training; the input features are ranked by the strength of their connections. Defaults are the
    official recipe (zahraatashgahi/QuickSelection ``train_sparse_DAE.py``).

    Args:
        feature_size (`int`, defaults to 64): number of input features (`hf-mim pretrain` reads it from the data).
        hidden_size (`int`, defaults to 1000): hidden neurons (`noHiddenNeuronsLayer`).
        epsilon (`int`, defaults to 13): Erdős–Rényi sparsity: each layer draws `epsilon * (n_in + n_out)` random
            connections (duplicates collapse), i.e. a density of about `epsilon * (n_in + n_out) / (n_in * n_out)`.
        zeta (`float`, defaults to 0.2): fraction of the negative and of the positive weights pruned (those closest to
            zero) and regrown at random after every epoch but the last.
        noise_factor (`float`, defaults to 0.2): std of the additive Gaussian input noise.
        hidden_dropout (`float`, defaults to 0.2): dropout on the hidden activations while training (`dropoutRate`).
        initializer_range (`float`, defaults to 0.1): std of the initial and of the regrown weights (`randn / 10`).
        num_selected_features (`int`, defaults to 50): K of `select_features()` when no K is given (the paper's K).
    """

    model_type = "quickselection"

    feature_size: int = 64
    hidden_size: int = 1000
    epsilon: int = 13
    zeta: float = 0.2
    noise_factor: float = 0.2
    hidden_dropout: float = 0.2
    initializer_range: float = 0.1
    num_selected_features: int = 50

    def __post_init__(self, **kwargs):
        check_positive(self, "feature_size", "hidden_size", "epsilon", "num_selected_features")
        if not 0.0 < self.zeta < 1.0:
            raise ValueError(f"zeta (the fraction of weights pruned per SET step) must be in (0, 1), got {self.zeta}")
        if not 0.0 <= self.hidden_dropout < 1.0:
            raise ValueError(f"hidden_dropout must be in [0, 1), got {self.hidden_dropout}")
        if self.noise_factor < 0:
            raise ValueError(f"noise_factor must be >= 0, got {self.noise_factor}")
        super().__post_init__(**kwargs)
