from hf_mim.models.dmae.configuration_dmae import DMAEConfig
from hf_mim.models.dmae.modeling_dmae import DMAEForImageClassification, DMAEForPreTraining, DMAEModel
from hf_mim.registry import MethodSpec

# a tiny random transformers ViTMAE teacher (48-d, 4 blocks, the student's 4x4 grid), built from a dict: no download.
# Student block 1 is aligned to teacher block 2, so only the teacher's first 2 blocks run.
TINY_TEACHER = dict(
    model_type="vit_mae", image_size=32, patch_size=8, hidden_size=48, num_hidden_layers=4, num_attention_heads=2,
    intermediate_size=96, decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
    decoder_intermediate_size=32, mask_ratio=0.75,
)
TINY = dict(
    image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=4, decoder_intermediate_size=64,
    teacher_name_or_path=TINY_TEACHER, student_align_layers=[1], teacher_align_layers=[2],
)
# demo: a random ViTMAE teacher on the student's 8x8 grid (mechanism smoke test; pass a real MAE teacher for real runs)
DEMO = dict(
    image_size=32, patch_size=4, hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
    decoder_hidden_size=128, decoder_num_hidden_layers=2, decoder_num_attention_heads=4, decoder_intermediate_size=512,
    teacher_name_or_path=dict(TINY_TEACHER, patch_size=4, hidden_size=256, num_hidden_layers=8, num_attention_heads=4, intermediate_size=1024),
    student_align_layers=[4], teacher_align_layers=[6],
)

METHOD = MethodSpec(
    name="dmae",
    config_class=DMAEConfig,
    model_class=DMAEModel,
    pretraining_class=DMAEForPreTraining,
    classification_class=DMAEForImageClassification,
    paper="Masked Autoencoders Enable Efficient Knowledge Distillers (Bai et al., CVPR 2023)",
    paper_url="https://arxiv.org/abs/2208.12256",
    license="cc-by-nc-4.0",
    tiny_config=TINY,
    demo_config=DEMO,
    # UCSC-VLAA/DMAE main_distill.py / pretrain.sh: blr 1.5e-4 per 256, AdamW (0.9, 0.95), wd 0.05, 100 epochs
    training_defaults=dict(base_learning_rate=1.5e-4, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05),
)

__all__ = ["DMAEConfig", "DMAEForImageClassification", "DMAEForPreTraining", "DMAEModel", "METHOD"]
