from hf_mim.models.g2sd.configuration_g2sd import G2SDConfig
from hf_mim.models.g2sd.modeling_g2sd import G2SDForImageClassification, G2SDForPreTraining, G2SDModel
from hf_mim.registry import MethodSpec

# a tiny random transformers ViTMAE teacher (48-d encoder, 2-block 16-d decoder, the student's 4x4 grid), built
# from a dict: no download. The target is its decoder block 1 (of 2), like the official block 4 of 8.
TINY_TEACHER = dict(
    model_type="vit_mae", image_size=32, patch_size=8, hidden_size=48, num_hidden_layers=2, num_attention_heads=2,
    intermediate_size=96, decoder_hidden_size=16, decoder_num_hidden_layers=2, decoder_num_attention_heads=2,
    decoder_intermediate_size=32, mask_ratio=0.75,
)
TINY = dict(
    image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=4, decoder_intermediate_size=64,
    teacher_name_or_path=TINY_TEACHER, teacher_decoder_layer=1,
)
# demo: a random ViTMAE teacher on the student's 8x8 grid (mechanism smoke test; pass a real pre-trained MAE
# teacher, e.g. an hf_mim MAE pre-trained on the same data, for real runs)
DEMO = dict(
    image_size=32, patch_size=4, hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
    decoder_hidden_size=128, decoder_num_hidden_layers=2, decoder_num_attention_heads=4, decoder_intermediate_size=512,
    teacher_name_or_path=dict(
        TINY_TEACHER, patch_size=4, hidden_size=256, num_hidden_layers=8, num_attention_heads=4, intermediate_size=1024,
        decoder_hidden_size=256, decoder_num_hidden_layers=4, decoder_num_attention_heads=8, decoder_intermediate_size=1024,
    ),
    teacher_decoder_layer=2,
)

METHOD = MethodSpec(
    name="g2sd",
    config_class=G2SDConfig,
    model_class=G2SDModel,
    pretraining_class=G2SDForPreTraining,
    classification_class=G2SDForImageClassification,
    paper="Generic-to-Specific Distillation of Masked Autoencoders (Huang et al., CVPR 2023)",
    paper_url="https://arxiv.org/abs/2302.14771",
    license="cc-by-nc-4.0",
    tiny_config=TINY,
    demo_config=DEMO,
    # pengzhiliang/G2SD GD.sh: blr 1.5e-4 per 256 images (lr 2.4e-3 at 4096), AdamW betas (0.9, 0.95), wd 0.05
    training_defaults=dict(base_learning_rate=1.5e-4, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05),
)

__all__ = ["G2SDConfig", "G2SDForImageClassification", "G2SDForPreTraining", "G2SDModel", "METHOD"]
