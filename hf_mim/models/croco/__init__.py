import torch

from hf_mim.models.croco.configuration_croco import CroCoConfig
from hf_mim.models.croco.modeling_croco import CroCoForImageClassification, CroCoForPreTraining, CroCoModel
from hf_mim.models.croco.pairs_croco import CroCoPairTransform, make_pair_transform, shifted_reference
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
    """A fixed pair (view 2 = view 1 shifted by a seeded offset) and a fixed view-1 mask given as noise."""
    patch_size = model.config.patch_size
    num_patches = (pixel_values.shape[-2] // patch_size) * (pixel_values.shape[-1] // patch_size)
    reference = shifted_reference(pixel_values, patch_size, generator)
    noise = torch.rand(pixel_values.shape[0], num_patches, generator=generator)
    return {"pixel_values": pixel_values, "pixel_values_ref": reference, "noise": noise}


METHOD = MethodSpec(
    name="croco",
    config_class=CroCoConfig,
    model_class=CroCoModel,
    pretraining_class=CroCoForPreTraining,
    classification_class=CroCoForImageClassification,
    paper=(
        "CroCo: Self-Supervised Pre-training for 3D Vision Tasks by Cross-View Completion "
        "(Weinzaepfel et al., NeurIPS 2022)"
    ),
    paper_url="https://arxiv.org/abs/2210.10716",
    license="cc-by-nc-sa-4.0",
    tiny_config=TINY,
    demo_config=DEMO,
    transform=make_pair_transform,
    example_inputs=example_inputs,
    # naver/croco pretrain.py: blr 1.5e-4 per 256 images, AdamW betas (0.9, 0.95), weight decay 0.05
    training_defaults=dict(base_learning_rate=1.5e-4, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05),
)

__all__ = [
    "CroCoConfig",
    "CroCoForImageClassification",
    "CroCoForPreTraining",
    "CroCoModel",
    "CroCoPairTransform",
    "METHOD",
]
