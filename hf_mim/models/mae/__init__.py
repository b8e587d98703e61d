from hf_mim.models.mae.configuration_mae import MAEConfig
from hf_mim.models.mae.modeling_mae import MAEForImageClassification, MAEForPreTraining, MAEModel
from hf_mim.registry import MethodSpec

TINY = dict(
    image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=4, decoder_intermediate_size=64,
)
# `hf-mim demo`'s model: 4 x 128 learns faster in a few CPU minutes than the 6 x 192 ViT-tiny it replaced (on the demo
# data, step 150: +13 mean-pooled kNN points over random init against +5 at step 50 for 6 x 192)
DEMO = dict(
    image_size=32, patch_size=4, hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
    decoder_hidden_size=128, decoder_num_hidden_layers=2, decoder_num_attention_heads=4, decoder_intermediate_size=512,
)

METHOD = MethodSpec(
    name="mae",
    config_class=MAEConfig,
    model_class=MAEModel,
    pretraining_class=MAEForPreTraining,
    classification_class=MAEForImageClassification,
    paper="Masked Autoencoders Are Scalable Vision Learners (He et al., CVPR 2022)",
    paper_url="https://arxiv.org/abs/2111.06377",
    license="cc-by-nc-4.0",
    tiny_config=TINY,
    demo_config=DEMO,
    # facebookresearch/mae: blr 1.5e-4 per 256 images, AdamW betas (0.9, 0.95), weight decay 0.05
    training_defaults=dict(base_learning_rate=1.5e-4, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05),
)

__all__ = ["MAEConfig", "MAEForImageClassification", "MAEForPreTraining", "MAEModel", "METHOD"]
