from hf_mim.models.mrmae.configuration_mrmae import MRMAEConfig
from hf_mim.models.mrmae.modeling_mrmae import MRMAEForImageClassification, MRMAEForPreTraining, MRMAEModel
from hf_mim.registry import MethodSpec

# tiny random teachers built from config dicts (no download): a CLIP vision tower (24-d) and a ViT (40-d, the
# DINO stand-in), both with the student's 4x4 patch grid
TINY_CLIP = dict(
    model_type="clip_vision_model", image_size=32, patch_size=8, hidden_size=24, intermediate_size=48,
    num_hidden_layers=2, num_attention_heads=2,
)
TINY_DINO = dict(
    model_type="vit", image_size=32, patch_size=8, hidden_size=40, intermediate_size=80, num_hidden_layers=2,
    num_attention_heads=2,
)
TINY = dict(
    image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=4, decoder_intermediate_size=64,
    teacher_name_or_path=TINY_CLIP, teacher_image_mean=None, teacher_image_std=None,
    second_teacher_name_or_path=TINY_DINO,
)
# demo: real pretrained teachers at 224 px do not fit a 32 px CPU demo; the demo uses random teachers on the
# student's 8x8 grid (a smoke test of the mechanism, not of the paper's gains). Pass real teachers for real runs.
DEMO = dict(
    image_size=32, patch_size=4, hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
    decoder_hidden_size=128, decoder_num_hidden_layers=2, decoder_num_attention_heads=4, decoder_intermediate_size=512,
    teacher_name_or_path=dict(TINY_CLIP, patch_size=4, hidden_size=64, intermediate_size=128, num_hidden_layers=4),
    teacher_image_mean=None, teacher_image_std=None,
    second_teacher_name_or_path=dict(TINY_DINO, patch_size=4, hidden_size=64, intermediate_size=128, num_hidden_layers=4),
)

METHOD = MethodSpec(
    name="mrmae",
    config_class=MRMAEConfig,
    model_class=MRMAEModel,
    pretraining_class=MRMAEForPreTraining,
    classification_class=MRMAEForImageClassification,
    paper="Mimic before Reconstruct: Enhancing Masked Autoencoders with Feature Mimicking (Gao et al., arXiv 2023)",
    paper_url="https://arxiv.org/abs/2303.05475",
    license="mit",
    tiny_config=TINY,
    demo_config=DEMO,
    # MR-MAE's recipe is not released; the MAE recipe (blr 1.5e-4 per 256, AdamW (0.9, 0.95), wd 0.05) is assumed
    training_defaults=dict(base_learning_rate=1.5e-4, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05),
)

__all__ = ["MRMAEConfig", "MRMAEForImageClassification", "MRMAEForPreTraining", "MRMAEModel", "METHOD"]
