import torch

from hf_mim.models.mixedae.configuration_mixedae import MixedAEConfig
from hf_mim.models.mixedae.modeling_mixedae import MixedAEForImageClassification, MixedAEForPreTraining, MixedAEModel
from hf_mim.registry import MethodSpec

TINY = dict(
    image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=4, decoder_intermediate_size=64,
)
DEMO = dict(
    image_size=32, patch_size=4, hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
    decoder_hidden_size=128, decoder_num_hidden_layers=2, decoder_num_attention_heads=4, decoder_intermediate_size=512,
)


def example_inputs(model, pixel_values, generator):
    """A fixed mixing: per-group noise ``[B / r, L]`` (the batch must be a multiple of ``mixing_num_sources``)."""
    groups = pixel_values.shape[0] // model.config.mixing_num_sources
    patches = (pixel_values.shape[-2] // model.config.patch_size) * (pixel_values.shape[-1] // model.config.patch_size)
    return {"pixel_values": pixel_values, "noise": torch.rand(groups, patches, generator=generator)}


METHOD = MethodSpec(
    name="mixedae",
    config_class=MixedAEConfig,
    model_class=MixedAEModel,
    pretraining_class=MixedAEForPreTraining,
    classification_class=MixedAEForImageClassification,
    paper="Mixed Autoencoder for Self-supervised Visual Representation Learning (Chen et al., CVPR 2023)",
    paper_url="https://arxiv.org/abs/2303.17152",
    license="apache-2.0",
    tiny_config=TINY,
    demo_config=DEMO,
    example_inputs=example_inputs,
    # no official code; the paper follows the MAE recipe: blr 1.5e-4 per 256, AdamW (0.9, 0.95), wd 0.05.
    # drop_last: a batch must be a multiple of mixing_num_sources
    training_defaults=dict(
        base_learning_rate=1.5e-4, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05, dataloader_drop_last=True
    ),
)

__all__ = ["METHOD", "MixedAEConfig", "MixedAEForImageClassification", "MixedAEForPreTraining", "MixedAEModel"]
