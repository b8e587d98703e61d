from hf_mim.models.saecircuits.configuration_saecircuits import SAECircuitsConfig
from hf_mim.models.saecircuits.modeling_saecircuits import DiscreteCodeSAE, DiscreteCodeSAEModel, UnitNormLinear
from hf_mim.processing.tabular_processing_mim import TabularFeatureExtractor
from hf_mim.registry import MethodSpec

TINY = dict(feature_size=16, num_latents=24, num_layers=2, num_heads=2)
DEMO = dict(feature_size=64, num_latents=200)


def example_inputs(model, rows: dict, generator) -> dict:
    """Head result vectors as rows (``{"input_values": [B, feature_size]}``); the SAE has no masking."""
    return dict(rows)


METHOD = MethodSpec(
    name="saecircuits",
    config_class=SAECircuitsConfig,
    model_class=DiscreteCodeSAEModel,
    pretraining_class=DiscreteCodeSAE,
    paper="Sparse Autoencoders Enable Scalable and Reliable Circuit Identification in Language Models "
    "(O'Neill & Bui, 2024)",
    paper_url="https://arxiv.org/abs/2405.12522",
    license="mit",
    tiny_config=TINY,
    demo_config=DEMO,
    example_inputs=example_inputs,
    processor_class=TabularFeatureExtractor,
    modality="tabular",
    # src/configs/config.yaml + main.py: Adam lr 1e-3, 500 full-batch epochs on 10 examples, no schedule or clipping
    training_defaults=dict(optim="adamw_torch", learning_rate=1e-3, weight_decay=0.0, adam_beta2=0.999,
                           per_device_train_batch_size=10, num_train_epochs=500, lr_scheduler_type="constant",
                           warmup_steps=0.0, max_grad_norm=0.0),
)

__all__ = ["METHOD", "DiscreteCodeSAE", "DiscreteCodeSAEModel", "SAECircuitsConfig", "UnitNormLinear"]
