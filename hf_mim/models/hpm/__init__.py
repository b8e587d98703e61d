from hf_mim.models.hpm.configuration_hpm import HPMConfig
from hf_mim.models.hpm.modeling_hpm import HPMForImageClassification, HPMForPreTraining, HPMModel
from hf_mim.registry import MethodSpec

# short runs: a faster teacher EMA than the official 0.999 -> 0.9999, so the teacher follows the student
TINY = dict(
    image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=4, decoder_intermediate_size=64,
    ema_decay=[0.9, 0.99],
)
DEMO = dict(
    image_size=32, patch_size=4, hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
    decoder_hidden_size=128, decoder_num_hidden_layers=2, decoder_num_attention_heads=4, decoder_intermediate_size=512,
    ema_decay=[0.99, 0.999],
)

METHOD = MethodSpec(
    name="hpm",
    config_class=HPMConfig,
    model_class=HPMModel,
    pretraining_class=HPMForPreTraining,
    classification_class=HPMForImageClassification,
    paper="Hard Patches Mining for Masked Image Modeling (Wang et al., CVPR 2023)",
    paper_url="https://arxiv.org/abs/2304.05919",
    license="apache-2.0",
    tiny_config=TINY,
    demo_config=DEMO,
    # Haochen-Wang409/HPM scripts/pretrain_base.sh: blr 1.5e-4 per 256 images, AdamW betas (0.9, 0.95) (MAE's
    # main_pretrain.py), weight decay 0.05, 40 warm-up epochs, cosine
    training_defaults=dict(base_learning_rate=1.5e-4, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05),
)

__all__ = ["HPMConfig", "HPMForImageClassification", "HPMForPreTraining", "HPMModel", "METHOD"]
