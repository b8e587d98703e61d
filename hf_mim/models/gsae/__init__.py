from hf_mim.models.gsae.configuration_gsae import GSAEConfig
from hf_mim.models.gsae.modeling_gsae import GSAEModel, GSAEOutput
from hf_mim.processing.activation_processing_mim import ActivationFeatureExtractor
from hf_mim.registry import MethodSpec

TINY = dict(d_in=32, num_latents=128, k=4, aux_k=16, dead_tokens_threshold=256)
DEMO = dict(num_latents=1024, k=16, aux_k=64, dead_tokens_threshold=50_000)


def example_inputs(model, inputs: dict, generator) -> dict:
    """The activations and gradients as given (no random draw: the SAE has no mask)."""
    return dict(inputs)


METHOD = MethodSpec(
    name="gsae",
    config_class=GSAEConfig,
    model_class=GSAEModel,
    pretraining_class=GSAEModel,
    paper="Features that Make a Difference: Leveraging Gradients for Improved Dictionary Learning "
    "(Olmo et al., NAACL Findings 2025)",
    paper_url="https://arxiv.org/abs/2411.10397",
    license="apache-2.0",
    tiny_config=TINY,
    demo_config=DEMO,
    example_inputs=example_inputs,
    processor_class=ActivationFeatureExtractor,
    modality="activations",
    callbacks=lambda: [decoder_norm_callback_class()()],
    # Gao et al.'s TopK recipe: Adam, lr ~1e-4 scaled for small dictionaries, no weight decay, constant lr
    training_defaults=dict(learning_rate=1e-3, weight_decay=0.0, lr_scheduler_type="constant", warmup_steps=0.0,
                           per_device_train_batch_size=256, max_grad_norm=1.0),
)


def decoder_norm_callback_class():
    """:class:`~hf_mim.models.gsae.training_gsae.UnitNormDecoderCallback`, imported on first use (it needs
    transformers' Trainer stack, which `import hf_mim` must not load)."""
    from hf_mim.models.gsae.training_gsae import UnitNormDecoderCallback

    return UnitNormDecoderCallback


def __getattr__(name: str):
    if name == "UnitNormDecoderCallback":
        return decoder_norm_callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["METHOD", "GSAEConfig", "GSAEModel", "GSAEOutput", "UnitNormDecoderCallback"]
