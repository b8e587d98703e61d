from hf_mim.models.cratemae.configuration_cratemae import OFFICIAL_SIZES, CRATEMAEConfig
from hf_mim.models.cratemae.modeling_cratemae import (
    CRATEMAEForImageClassification,
    CRATEMAEForPreTraining,
    CRATEMAEModel,
)
from hf_mim.registry import MethodSpec

# the CPU smoke size of the method's spec (img 32, patch 8, width 32, 2 heads, 2 + 2 blocks)
TINY = dict(
    image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
    decoder_hidden_size=32, decoder_num_hidden_layers=2, decoder_num_attention_heads=2,
)
# MAE's demo width and depth (4 x 128, patch 4), with the CRATE decoder as deep as the encoder as officially
DEMO = dict(
    image_size=32, patch_size=4, hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
    decoder_hidden_size=128, decoder_num_hidden_layers=4, decoder_num_attention_heads=4,
)

METHOD = MethodSpec(
    name="cratemae",
    config_class=CRATEMAEConfig,
    model_class=CRATEMAEModel,
    pretraining_class=CRATEMAEForPreTraining,
    classification_class=CRATEMAEForImageClassification,
    paper="Masked Completion via Structured Diffusion with White-Box Transformers (Pai et al., ICLR 2024)",
    paper_url="https://openreview.net/forum?id=PvyOYleymy",
    license="mit",
    tiny_config=TINY,
    demo_config=DEMO,
    # the official README trains CRATE-MAE with the facebookresearch/mae recipe: blr 1.5e-4 per 256 images,
    # AdamW betas (0.9, 0.95), weight decay 0.05
    training_defaults=dict(base_learning_rate=1.5e-4, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05),
)

__all__ = [
    "CRATEMAEConfig",
    "CRATEMAEForImageClassification",
    "CRATEMAEForPreTraining",
    "CRATEMAEModel",
    "METHOD",
    "OFFICIAL_SIZES",
]
