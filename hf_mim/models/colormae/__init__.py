from hf_mim.models.colormae.configuration_colormae import ColorMAEConfig
from hf_mim.models.colormae.modeling_colormae import (
    ColorMAEForImageClassification,
    ColorMAEForPreTraining,
    ColorMAEModel,
)
from hf_mim.registry import MethodSpec

TINY = dict(
    image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=4, decoder_intermediate_size=64,
    color_noise_num_patterns=256,
)
DEMO = dict(
    image_size=32, patch_size=4, hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
    decoder_hidden_size=128, decoder_num_hidden_layers=2, decoder_num_attention_heads=4, decoder_intermediate_size=512,
)


def example_inputs(model, pixel_values, generator):
    """A fixed coloured-noise mask: the bank windows cropped with ``generator``, given as MAE-style noise."""
    grid = (pixel_values.shape[-2] // model.config.patch_size, pixel_values.shape[-1] // model.config.patch_size)
    return {"pixel_values": pixel_values, "noise": model.color_noise_input(pixel_values.shape[0], grid, generator)}


METHOD = MethodSpec(
    name="colormae",
    config_class=ColorMAEConfig,
    model_class=ColorMAEModel,
    pretraining_class=ColorMAEForPreTraining,
    classification_class=ColorMAEForImageClassification,
    paper="ColorMAE: Exploring data-independent masking strategies in Masked AutoEncoders (Hinojosa et al., ECCV 2024)",
    paper_url="https://arxiv.org/abs/2407.13036",
    license="apache-2.0",
    tiny_config=TINY,
    demo_config=DEMO,
    example_inputs=example_inputs,
    # carlosh93/ColorMAE configs (mmpretrain MAE): AdamW lr 2.4e-3 at batch 4096 (= 1.5e-4 per 256),
    # betas (0.9, 0.95), weight decay 0.05
    training_defaults=dict(base_learning_rate=1.5e-4, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05),
)

__all__ = ["ColorMAEConfig", "ColorMAEForImageClassification", "ColorMAEForPreTraining", "ColorMAEModel", "METHOD"]
