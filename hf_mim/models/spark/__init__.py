import torch

from hf_mim.models.spark.configuration_spark import SparKConfig
from hf_mim.models.spark.modeling_spark import SparKForImageClassification, SparKForPreTraining, SparKModel
from hf_mim.registry import MethodSpec

# 32 px inputs: a 3x3 stride-2 stem without max pool and 3 stages give a total stride of 8, i.e. a 4x4 mask grid
# (6 of 16 cells visible at ratio 0.6); the official ResNet-50 stem (7x7/2 + max pool) on 224 px gives 7x7.
TINY = dict(
    image_size=32, layer_type="basic", embedding_size=16, hidden_sizes=[16, 32, 64], depths=[1, 1, 1],
    stem_kernel_size=3, stem_stride=2, stem_pool=False, decoder_width=64, drop_path_rate=0.0,
)
DEMO = dict(
    image_size=32, layer_type="basic", embedding_size=32, hidden_sizes=[64, 128, 256], depths=[2, 2, 2],
    stem_kernel_size=3, stem_stride=2, stem_pool=False, decoder_width=256, drop_path_rate=0.0,
)


def example_inputs(model, pixel_values, generator):
    """Deterministic SparK mask: noise on the grid at the encoder's total stride."""
    stride = model.config.patch_size
    cells = (pixel_values.shape[-2] // stride) * (pixel_values.shape[-1] // stride)
    return {"pixel_values": pixel_values, "noise": torch.rand(pixel_values.shape[0], cells, generator=generator)}


METHOD = MethodSpec(
    name="spark",
    config_class=SparKConfig,
    model_class=SparKModel,
    pretraining_class=SparKForPreTraining,
    classification_class=SparKForImageClassification,
    paper="Designing BERT for Convolutional Networks: Sparse and Hierarchical Masked Modeling (Tian et al., ICLR 2023)",
    paper_url="https://arxiv.org/abs/2301.03580",
    license="mit",
    tiny_config=TINY,
    demo_config=DEMO,
    example_inputs=example_inputs,
    # keyu-tian/SparK pretrain/utils/arg_util.py: base lr 2e-4 per 256 images, weight decay 0.04 (cosine to 0.2,
    # not reproduced), grad clip 5, 40 warm-up epochs of 1600; the official optimiser is LAMB, AdamW is used here.
    training_defaults=dict(
        base_learning_rate=2e-4, lr_batch_divisor=256, weight_decay=0.04, max_grad_norm=5.0, warmup_ratio=0.025,
    ),
)

__all__ = ["METHOD", "SparKConfig", "SparKForImageClassification", "SparKForPreTraining", "SparKModel"]
