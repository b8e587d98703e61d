from hf_mim.models.simmim.configuration_simmim import SimMIMConfig
from hf_mim.models.simmim.modeling_simmim import SimMIMForImageClassification, SimMIMForPreTraining, SimMIMModel
from hf_mim.registry import MethodSpec

TINY = dict(
    image_size=32, patch_size=8, mask_patch_size=16, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
    intermediate_size=64, drop_path_rate=0.0,
)
DEMO = dict(
    image_size=32, patch_size=4, mask_patch_size=8, hidden_size=192, num_hidden_layers=6, num_attention_heads=3,
    intermediate_size=768,
)

METHOD = MethodSpec(
    name="simmim",
    config_class=SimMIMConfig,
    model_class=SimMIMModel,
    pretraining_class=SimMIMForPreTraining,
    classification_class=SimMIMForImageClassification,
    paper="SimMIM: A Simple Framework for Masked Image Modeling (Xie et al., CVPR 2022)",
    paper_url="https://arxiv.org/abs/2111.09886",
    license="mit",
    tiny_config=TINY,
    demo_config=DEMO,
    # microsoft/SimMIM config.py: BASE_LR 1e-4 scaled by total batch / 512, AdamW betas (0.9, 0.999), clip 5.0
    training_defaults=dict(base_learning_rate=1e-4, lr_batch_divisor=512, adam_beta2=0.999, max_grad_norm=5.0),
)

__all__ = ["METHOD", "SimMIMConfig", "SimMIMForImageClassification", "SimMIMForPreTraining", "SimMIMModel"]
