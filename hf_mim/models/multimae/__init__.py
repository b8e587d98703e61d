from hf_mim.models.multimae.configuration_multimae import MultiMAEConfig
from hf_mim.models.multimae.modeling_multimae import (
    MultiMAEForImageClassification,
    MultiMAEForPreTraining,
    MultiMAEModel,
    generate_random_masks,
)
from hf_mim.registry import MethodSpec

# RGB-only presets (the bundled / CIFAR data has no depth or semseg); num_encoded_tokens keeps the official
# 98-of-196 visible share per modality. Add "depth" / "semseg" to input_modalities / output_tasks for more.
TINY = dict(
    image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=4, decoder_intermediate_size=64,
    input_modalities=["rgb"], output_tasks=["rgb"], num_encoded_tokens=8, semseg_num_classes=5,
    semseg_class_embed_dim=8,
)
DEMO = dict(
    image_size=32, patch_size=4, hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
    decoder_hidden_size=128, decoder_num_hidden_layers=2, decoder_num_attention_heads=4, decoder_intermediate_size=512,
    input_modalities=["rgb"], output_tasks=["rgb"], num_encoded_tokens=32,
)


def example_inputs(model, pixel_values, generator):
    """A fixed Dirichlet-split mask over the RGB tokens (``num_encoded_tokens`` visible), as ``bool_masked_pos``."""
    config = model.config
    grid = (pixel_values.shape[-2] // config.patch_size, pixel_values.shape[-1] // config.patch_size)
    info, _ = generate_random_masks(
        [grid[0] * grid[1]], pixel_values.shape[0], config.num_encoded_tokens, config.dirichlet_alphas_for(["rgb"]),
        generator=generator,
    )
    return {"pixel_values": pixel_values, "bool_masked_pos": info.mask}


METHOD = MethodSpec(
    name="multimae",
    config_class=MultiMAEConfig,
    model_class=MultiMAEModel,
    pretraining_class=MultiMAEForPreTraining,
    classification_class=MultiMAEForImageClassification,
    paper="MultiMAE: Multi-modal Multi-task Masked Autoencoders (Bachmann et al., ECCV 2022)",
    paper_url="https://arxiv.org/abs/2204.01678",
    license="cc-by-nc-4.0",
    tiny_config=TINY,
    demo_config=DEMO,
    example_inputs=example_inputs,
    # EPFL-VILAB/MultiMAE cfgs/pretrain/multimae-b_98_rgb+-depth-semseg_1600e.yaml: blr 1e-4 per 256 images,
    # AdamW betas (0.9, 0.95), weight decay 0.05
    training_defaults=dict(base_learning_rate=1e-4, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05),
)

__all__ = ["MultiMAEConfig", "MultiMAEForImageClassification", "MultiMAEForPreTraining", "MultiMAEModel", "METHOD"]
