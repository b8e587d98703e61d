
from hf_mim.models.jepa.configuration_jepa import JEPAConfig
from hf_mim.models.jepa.modeling_jepa import JEPAForImageClassification, JEPAForPreTraining, JEPAModel
from hf_mim.registry import MethodSpec

TINY = dict(
    image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    predictor_hidden_size=32, predictor_num_hidden_layers=1, predictor_num_attention_heads=4,
    # a 4x4 grid: single-patch targets, a 3x3 context block
    num_target_blocks=2, target_scale=[0.1, 0.15], min_keep=0,
)
DEMO = dict(
    image_size=32, patch_size=4, hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768,
    predictor_hidden_size=96, predictor_num_hidden_layers=4, predictor_num_attention_heads=3, min_keep=4,
)


def example_inputs(model, pixel_values, generator):
    grid = model.context_encoder.patch_embed.check_input(pixel_values)
    context_ids, target_ids = model.sample_masks(pixel_values.shape[0], grid, generator)
    return {"pixel_values": pixel_values, "context_ids": context_ids, "target_ids": target_ids}


METHOD = MethodSpec(
    name="jepa",
    config_class=JEPAConfig,
    model_class=JEPAModel,
    pretraining_class=JEPAForPreTraining,
    classification_class=JEPAForImageClassification,
    paper="How JEPA Avoids Noisy Features: The Implicit Bias of Deep Linear Self Distillation Networks "
    "(Littwin et al., NeurIPS 2024); image model after I-JEPA (Assran et al., CVPR 2023)",
    paper_url="https://arxiv.org/abs/2407.03475",
    license="cc-by-nc-4.0",
    tiny_config=TINY,
    demo_config=DEMO,
    example_inputs=example_inputs,
    # facebookresearch/ijepa: AdamW lr 1e-3 for batch 2048 (= 1.25e-4 per 256), default betas, weight decay 0.04
    # (the official cosine weight-decay schedule 0.04 -> 0.4 is not reproduced: Trainer has a constant one)
    training_defaults=dict(base_learning_rate=1.25e-4, lr_batch_divisor=256, adam_beta2=0.999, weight_decay=0.04),
)

__all__ = ["JEPAConfig", "JEPAForImageClassification", "JEPAForPreTraining", "JEPAModel", "METHOD"]
