import torch

from hf_mim.models.cropmae.configuration_cropmae import CropMAEConfig
from hf_mim.models.cropmae.modeling_cropmae import (
    CropMAEForImageClassification,
    CropMAEForPreTraining,
    CropMAEModel,
)
from hf_mim.models.cropmae.transforms_cropmae import CropMAETransform, build_cropmae_transform, local_views
from hf_mim.registry import MethodSpec

# The official setting keeps 2 patches of the local view visible (int(196 * 0.015)). At 16 / 64 patches the
# ratio 0.985 would keep none (then the local view's position is unknowable), so the small presets keep the
# official visible COUNT: 1 - 2/16 and 1 - 2/64 (both exact in binary floating point).
TINY = dict(
    image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=4, decoder_intermediate_size=64,
    mask_ratio=0.875,
)
DEMO = dict(
    image_size=32, patch_size=4, hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
    decoder_hidden_size=128, decoder_num_hidden_layers=4, decoder_num_attention_heads=4, decoder_intermediate_size=512,
    mask_ratio=0.96875,
)


def example_inputs(model, pixel_values, generator):
    """The given images are the global views; local views are seeded random crops inside them (official local
    area 0.3-0.6), and the local mask is fixed by ``noise``."""
    local, _ = local_views(pixel_values, generator)
    patches = (pixel_values.shape[-2] // model.config.patch_size) * (pixel_values.shape[-1] // model.config.patch_size)
    noise = torch.rand(pixel_values.shape[0], patches, generator=generator)
    return {"pixel_values": local, "pixel_values_global": pixel_values, "noise": noise}


METHOD = MethodSpec(
    name="cropmae",
    config_class=CropMAEConfig,
    model_class=CropMAEModel,
    pretraining_class=CropMAEForPreTraining,
    classification_class=CropMAEForImageClassification,
    paper="Efficient Image Pre-Training with Siamese Cropped Masked Autoencoders (Eymaël et al., ECCV 2024)",
    paper_url="https://arxiv.org/abs/2403.17823",
    license="mit",
    tiny_config=TINY,
    demo_config=DEMO,
    transform=build_cropmae_transform,
    example_inputs=example_inputs,
    # scripts/train_cropmae_in.sh: blr 1e-4 per 256 images (lr 8e-4 at batch 2048), AdamW betas (0.9, 0.95),
    # weight decay 0.05, 5% warm-up then cosine to 0
    training_defaults=dict(
        base_learning_rate=1e-4, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05, warmup_ratio=0.05
    ),
)

__all__ = [
    "CropMAEConfig",
    "CropMAEForImageClassification",
    "CropMAEForPreTraining",
    "CropMAEModel",
    "CropMAETransform",
    "METHOD",
]
