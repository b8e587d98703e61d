import torch

from hf_mim.models.crossvideomae.configuration_crossvideomae import CrossVideoMAEConfig
from hf_mim.models.crossvideomae.modeling_crossvideomae import (
    CrossVideoMAEForPreTraining,
    CrossVideoMAEForVideoClassification,
    CrossVideoMAEModel,
)
from hf_mim.models.crossvideomae.views_crossvideomae import CrossVideoViews
from hf_mim.models.videomae2 import DEMO as VIDEO_DEMO
from hf_mim.models.videomae2 import TINY as VIDEO_TINY
from hf_mim.processing.video_processing_mim import MIMVideoProcessor
from hf_mim.registry import MethodSpec

# the video branch at VideoMAE V2's sizes (decoder masking stays off: the config default), plus the projection width
TINY = {**VIDEO_TINY, "projection_dim": 16}
DEMO = {**VIDEO_DEMO, "projection_dim": 128}


def example_inputs(model, pixel_values, generator) -> dict:
    """Fixed masks and frames, and a fixed second view (the clip mirrored left-right and dimmed)."""
    batch = pixel_values.shape[0]
    return {
        "pixel_values": pixel_values,
        "augmented_pixel_values": 0.8 * pixel_values.flip(-1),
        "bool_masked_pos": model.mask_generator(batch, generator),
        "augmented_bool_masked_pos": model.mask_generator(batch, generator),
        "frame_index": torch.randint(pixel_values.shape[1], (batch,), generator=generator),
        "image_bool_masked_pos": model.image_mask(batch, generator),
    }


def make_views(processor, train: bool = True, scale=(0.2, 1.0)):
    return CrossVideoViews(processor, train=train, scale=scale)


METHOD = MethodSpec(
    name="crossvideomae",
    config_class=CrossVideoMAEConfig,
    model_class=CrossVideoMAEModel,
    pretraining_class=CrossVideoMAEForPreTraining,
    classification_class=CrossVideoMAEForVideoClassification,
    paper="CrossVideoMAE: Self-Supervised Image-Video Representation Learning with Masked Autoencoders "
    "(Ahamed et al., 2025)",
    paper_url="https://arxiv.org/abs/2502.07811",
    license="apache-2.0",  # no official code: hf_mim's own licence
    tiny_config=TINY,
    demo_config=DEMO,
    example_inputs=example_inputs,
    transform=make_views,
    processor_class=MIMVideoProcessor,
    modality="video",
    # no official recipe: VideoMAE's (base lr 1e-3 per 256 clips, AdamW betas (0.9, 0.95), weight decay 0.05)
    training_defaults=dict(base_learning_rate=1e-3, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05),
)

__all__ = [
    "METHOD", "CrossVideoMAEConfig", "CrossVideoMAEForPreTraining", "CrossVideoMAEForVideoClassification",
    "CrossVideoMAEModel", "CrossVideoViews",
]
