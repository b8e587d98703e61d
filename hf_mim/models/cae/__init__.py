from hf_mim.models.cae.configuration_cae import CAEConfig
from hf_mim.models.cae.modeling_cae import CAEForImageClassification, CAEForPreTraining, CAEModel
from hf_mim.registry import MethodSpec

# 4x4 patch grid: 8 of 16 patches masked, blocks of at least 2 patches (official 16 of a 14x14 grid)
TINY = dict(
    image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    decoder_hidden_size=32, decoder_num_attention_heads=4, decoder_intermediate_size=64, regressor_num_hidden_layers=1,
    decoder_num_hidden_layers=1, min_mask_patches_per_block=2, drop_path_rate=0.0,
)
# 8x8 patch grid: 32 of 64 patches masked, blocks of at least 4 patches (16/196 of the grid, as officially)
DEMO = dict(
    image_size=32, patch_size=4, hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
    decoder_hidden_size=192, decoder_num_attention_heads=3, decoder_intermediate_size=768, regressor_num_hidden_layers=2,
    decoder_num_hidden_layers=2, min_mask_patches_per_block=4,
)


def example_inputs(model, pixel_values, generator):
    """A fixed block-wise mask drawn with ``generator`` (the official masking, made deterministic)."""
    return {"pixel_values": pixel_values, "bool_masked_pos": model.mask_generator(pixel_values.shape[0], generator)}


METHOD = MethodSpec(
    name="cae",
    config_class=CAEConfig,
    model_class=CAEModel,
    pretraining_class=CAEForPreTraining,
    classification_class=CAEForImageClassification,
    paper="Context Autoencoder for Self-Supervised Representation Learning (Chen et al., IJCV 2023)",
    paper_url="https://arxiv.org/abs/2202.03026",
    # Atten4Vis/CAE has no LICENSE file: the licence of the official code and weights is unclear
    license="other",
    tiny_config=TINY,
    demo_config=DEMO,
    example_inputs=example_inputs,
    # Atten4Vis/CAE scripts/cae_base_800e.sh: absolute lr 1.5e-3 at batch 2048 (the official code does not scale
    # it; here it scales linearly from that batch), AdamW betas (0.9, 0.999), weight decay 0.05, clip 3.0,
    # 20 of 800 epochs warm-up
    training_defaults=dict(
        base_learning_rate=1.5e-3, lr_batch_divisor=2048, adam_beta2=0.999, weight_decay=0.05, max_grad_norm=3.0,
        warmup_steps=0.025,
    ),
)

__all__ = ["CAEConfig", "CAEForImageClassification", "CAEForPreTraining", "CAEModel", "METHOD"]
