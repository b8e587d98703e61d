from hf_mim.models.i2pmae.configuration_i2pmae import I2PMAEConfig
from hf_mim.models.i2pmae.modeling_i2pmae import I2PMAEForPointCloudClassification, I2PMAEForPreTraining, I2PMAEModel
from hf_mim.processing.point_processing_mim import PointCloudFeatureExtractor
from hf_mim.registry import MethodSpec

# a random 2-layer CLIP vision tower at 32 px (patch 8: a 4 x 4 grid) as the teacher of tests and demos
TINY_TEACHER = dict(model_type="clip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                    num_attention_heads=2, image_size=32, patch_size=8)
TINY = dict(num_points=256, num_groups=[32, 16, 8], group_sizes=[8, 4, 4], encoder_hidden_sizes=[16, 32, 32],
            encoder_depths=[1, 1, 1], num_attention_heads=2, token_embed_sizes=[16, 32], decoder_depths=[1, 1],
            mask_ratio=0.5, projection_size=32, splat_radius=1, teacher_name_or_path=TINY_TEACHER)
DEMO = dict(num_points=512, num_groups=[128, 64, 16], group_sizes=[16, 8, 8], encoder_hidden_sizes=[32, 64, 128],
            encoder_depths=[2, 2, 2], num_attention_heads=4, token_embed_sizes=[32, 64], decoder_depths=[1, 1],
            projection_size=64, teacher_name_or_path={**TINY_TEACHER, "image_size": 64})


def example_inputs(model, points, generator) -> dict:
    """Clouds plus a fixed top-scale mask at ``config.mask_ratio``."""
    points = points["points"] if isinstance(points, dict) else points
    return {"points": points, "bool_masked_pos": model.mask_generator(points.shape[0], generator)}


METHOD = MethodSpec(
    name="i2pmae",
    config_class=I2PMAEConfig,
    model_class=I2PMAEModel,
    pretraining_class=I2PMAEForPreTraining,
    classification_class=I2PMAEForPointCloudClassification,
    paper="Learning 3D Representations from 2D Pre-trained Models via Image-to-Point Masked Autoencoders (Zhang et al., CVPR 2023)",
    paper_url="https://arxiv.org/abs/2212.06785",
    license="apache-2.0",  # the official code has no licence file: a clean-room reimplementation under hf_mim's licence
    tiny_config=TINY,
    demo_config=DEMO,
    example_inputs=example_inputs,
    processor_class=PointCloudFeatureExtractor,
    modality="points",
    # cfgs/pre-training/i2p-mae.yaml: AdamW lr 1e-3, weight decay 0.05, cosine with 10 warm-up epochs (of 300)
    training_defaults=dict(learning_rate=1e-3, weight_decay=0.05, warmup_steps=10 / 300),
)

__all__ = ["METHOD", "I2PMAEConfig", "I2PMAEForPointCloudClassification", "I2PMAEForPreTraining", "I2PMAEModel"]
