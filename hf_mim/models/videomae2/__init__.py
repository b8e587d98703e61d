from hf_mim.models.videomae2.configuration_videomae2 import Videomae2Config
from hf_mim.models.videomae2.modeling_videomae2 import (
    Videomae2ForPreTraining,
    Videomae2ForVideoClassification,
    Videomae2Model,
)
from hf_mim.processing.video_processing_mim import MIMVideoProcessor
from hf_mim.registry import MethodSpec

TINY = dict(
    image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32, num_hidden_layers=2,
    num_attention_heads=4, intermediate_size=64, decoder_hidden_size=32, decoder_num_hidden_layers=1,
    decoder_num_attention_heads=4, decoder_intermediate_size=64, mask_ratio=0.75,
)
DEMO = dict(
    image_size=32, patch_size=8, num_frames=8, tubelet_size=2, hidden_size=192, num_hidden_layers=6,
    num_attention_heads=3, intermediate_size=768, decoder_hidden_size=128, decoder_num_hidden_layers=2,
    decoder_num_attention_heads=4, decoder_intermediate_size=512,
)


def example_inputs(model, pixel_values, generator) -> dict:
    """Fixed tube (encoder) and running-cell (decoder) masks."""
    inputs = {"pixel_values": pixel_values, "bool_masked_pos": model.mask_generator(pixel_values.shape[0], generator)}
    if model.decoder_mask_generator is not None:
        inputs["decoder_mask"] = model.decoder_mask_generator(pixel_values.shape[0], generator)
    return inputs


METHOD = MethodSpec(
    name="videomae2",
    config_class=Videomae2Config,
    model_class=Videomae2Model,
    pretraining_class=Videomae2ForPreTraining,
    classification_class=Videomae2ForVideoClassification,
    paper="VideoMAE V2: Scaling Video Masked Autoencoders with Dual Masking (Wang et al., CVPR 2023)",
    paper_url="https://arxiv.org/abs/2303.16727",
    license="mit",
    tiny_config=TINY,
    demo_config=DEMO,
    example_inputs=example_inputs,
    processor_class=MIMVideoProcessor,
    modality="video",
    # OpenGVLab/VideoMAEv2 scripts/pretrain: base lr 1e-3 per 256 clips, AdamW betas (0.9, 0.95), weight decay 0.05
    training_defaults=dict(base_learning_rate=1e-3, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05),
)

__all__ = ["METHOD", "Videomae2Config", "Videomae2ForPreTraining", "Videomae2ForVideoClassification", "Videomae2Model"]
