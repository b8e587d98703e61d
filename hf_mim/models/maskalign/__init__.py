from hf_mim.models.maskalign.configuration_maskalign import MaskAlignConfig
from hf_mim.models.maskalign.modeling_maskalign import (
    MaskAlignForImageClassification,
    MaskAlignForPreTraining,
    MaskAlignModel,
)
from hf_mim.registry import MethodSpec

# a tiny random CLIP vision tower (24-d, 2 blocks, the student's 4x4 grid, eager attention), built from a dict
TINY_TEACHER = dict(
    model_type="clip_vision_model", image_size=32, patch_size=8, hidden_size=24, intermediate_size=48,
    num_hidden_layers=2, num_attention_heads=2,
)
TINY = dict(
    image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    drop_path_rate=0.0, mask_ratio=0.5, teacher_name_or_path=TINY_TEACHER, teacher_image_mean=None,
    teacher_image_std=None, loss_weights="top1",
)
# demo: a random CLIP tower on the student's 8x8 grid (mechanism smoke test; use a real CLIP teacher for real runs)
DEMO = dict(
    image_size=32, patch_size=4, hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
    drop_path_rate=0.1, teacher_name_or_path=dict(TINY_TEACHER, patch_size=4, hidden_size=128, intermediate_size=512,
    num_hidden_layers=6, num_attention_heads=4), teacher_image_mean=None, teacher_image_std=None, loss_weights="top3",
)

METHOD = MethodSpec(
    name="maskalign",
    config_class=MaskAlignConfig,
    model_class=MaskAlignModel,
    pretraining_class=MaskAlignForPreTraining,
    classification_class=MaskAlignForImageClassification,
    paper="Stare at What You See: Masked Image Modeling without Reconstruction (Xue et al., CVPR 2023)",
    paper_url="https://arxiv.org/abs/2211.08887",
    license="apache-2.0",
    tiny_config=TINY,
    demo_config=DEMO,
    # OpenDriveLab/maskalign README: blr 1.5e-4 per 256 (lr 6e-4 at batch 1024), AdamW (0.9, 0.95), wd 0.05
    training_defaults=dict(base_learning_rate=1.5e-4, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05),
)

__all__ = ["MaskAlignConfig", "MaskAlignForImageClassification", "MaskAlignForPreTraining", "MaskAlignModel", "METHOD"]
