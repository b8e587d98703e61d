from hf_mim.models.hybriddistill.configuration_hybriddistill import HybridDistillConfig
from hf_mim.models.hybriddistill.modeling_hybriddistill import (
    HybridDistillForImageClassification,
    HybridDistillForPreTraining,
    HybridDistillModel,
)
from hf_mim.registry import MethodSpec

# tiny random teachers built from config dicts (no download), both on the student's 4x4 patch grid and with its 2
# heads (per-head relations): an MAE encoder (48-d; its own mask ratio is bypassed, it sees every patch) and a
# CLIP vision tower (24-d) standing in for the CL teacher
TINY_MIM = dict(
    model_type="vit_mae", image_size=32, patch_size=8, hidden_size=48, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=96, decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
    decoder_intermediate_size=32, mask_ratio=0.75,
)
TINY_CL = dict(
    model_type="clip_vision_model", image_size=32, patch_size=8, hidden_size=24, intermediate_size=48,
    num_hidden_layers=2, num_attention_heads=2,
)
TINY = dict(
    image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
    drop_path_rate=0.0, mim_teacher_name_or_path=TINY_MIM, cl_teacher_name_or_path=TINY_CL,
    cl_teacher_image_mean=None, cl_teacher_image_std=None, relation_layers=[1, 2], drop_layers=[0, 1],
    drop_ratios=[0.25, 0.5],
)
# demo: random teachers on the student's 8x8 grid (a smoke test of the mechanism, not of the paper's gains; pass
# real MAE / CLIP teachers for real runs)
DEMO = dict(
    image_size=32, patch_size=4, hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
    drop_path_rate=0.1,
    mim_teacher_name_or_path=dict(TINY_MIM, patch_size=4, hidden_size=96, intermediate_size=384, num_hidden_layers=6,
                                  num_attention_heads=3),
    cl_teacher_name_or_path=dict(TINY_CL, patch_size=4, hidden_size=128, intermediate_size=512, num_hidden_layers=6,
                                 num_attention_heads=4),
    cl_teacher_image_mean=None, cl_teacher_image_std=None, drop_layers=[0, 2, 4], drop_ratios=[0.25, 0.45, 0.65],
)

METHOD = MethodSpec(
    name="hybriddistill",
    config_class=HybridDistillConfig,
    model_class=HybridDistillModel,
    pretraining_class=HybridDistillForPreTraining,
    classification_class=HybridDistillForImageClassification,
    paper="Hybrid Distillation: Connecting Masked Autoencoders with Contrastive Learners (Shi et al., ICLR 2024)",
    paper_url="https://arxiv.org/abs/2306.15876",
    license="apache-2.0",  # no official code or weights were released: hf_mim's own licence
    tiny_config=TINY,
    demo_config=DEMO,
    # no official code / recipe released: the feature-distillation recipe (blr 1.5e-4 per 256, AdamW, wd 0.05) is
    # assumed [unverified]
    training_defaults=dict(base_learning_rate=1.5e-4, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05),
)

__all__ = [
    "HybridDistillConfig",
    "HybridDistillForImageClassification",
    "HybridDistillForPreTraining",
    "HybridDistillModel",
    "METHOD",
]
