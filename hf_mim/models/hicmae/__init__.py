from hf_mim.models.hicmae.configuration_hicmae import HiCMAEConfig
from hf_mim.models.hicmae.modeling_hicmae import (
    HiCMAEForAudioVisualClassification,
    HiCMAEForPreTraining,
    HiCMAEModel,
)
from hf_mim.processing.audio_visual_processing_mim import MIMAudioVisualProcessor
from hf_mim.registry import MethodSpec

# the CPU test size of the research notes: video 4x32x32 (patch 8, tubelet 2), audio 32x16 (patch 8), width 32,
# 4-block encoders with skip layers (1, 2, 3), 4-block decoders, one fusion block
TINY = dict(
    image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32, num_hidden_layers=4,
    num_attention_heads=4, intermediate_size=64, audio_length=32, num_mel_bins=16, audio_patch_size=8,
    audio_hidden_size=32, audio_num_hidden_layers=4, audio_num_attention_heads=4, audio_intermediate_size=64,
    fusion_num_hidden_layers=1, fusion_num_attention_heads=4, decoder_hidden_size=32, decoder_num_hidden_layers=4,
    decoder_num_attention_heads=4, decoder_intermediate_size=64, skip_connection_layers=[1, 2, 3],
)
DEMO = dict(
    image_size=32, patch_size=8, num_frames=8, tubelet_size=2, hidden_size=96, num_hidden_layers=4,
    num_attention_heads=4, intermediate_size=384, audio_length=96, num_mel_bins=64, audio_patch_size=16,
    audio_hidden_size=96, audio_num_hidden_layers=4, audio_num_attention_heads=4, audio_intermediate_size=384,
    fusion_num_hidden_layers=1, fusion_num_attention_heads=4, decoder_hidden_size=64, decoder_num_hidden_layers=4,
    decoder_num_attention_heads=4, decoder_intermediate_size=256, skip_connection_layers=[1, 2, 3],
)


def example_inputs(model, clips: dict, generator) -> dict:
    """A batch of clips with their filter banks plus fixed tube (video) and random (audio) masks."""
    return {**clips, **model.mask_generator(clips["pixel_values"].shape[0], generator)}


METHOD = MethodSpec(
    name="hicmae",
    config_class=HiCMAEConfig,
    model_class=HiCMAEModel,
    pretraining_class=HiCMAEForPreTraining,
    classification_class=HiCMAEForAudioVisualClassification,
    paper="HiCMAE: Hierarchical Contrastive Masked Autoencoder for Self-Supervised Audio-Visual Emotion Recognition "
          "(Sun et al., Information Fusion 2024)",
    paper_url="https://arxiv.org/abs/2401.05698",
    license="mit",
    tiny_config=TINY,
    demo_config=DEMO,
    example_inputs=example_inputs,
    processor_class=MIMAudioVisualProcessor,
    modality="audio-visual",
    # scripts/voxceleb2/audio_visual/hicmae_pretrain_base/pretrain_base.sh: AdamW (0.9, 0.95), lr 3e-4 at batch
    # 160 (40 x 4 GPUs; run_mae_pretraining_av.py scales lr by batch / 256), weight decay 0.05, 5 warm-up epochs
    training_defaults=dict(base_learning_rate=3e-4, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05),
)

__all__ = ["METHOD", "HiCMAEConfig", "HiCMAEForAudioVisualClassification", "HiCMAEForPreTraining", "HiCMAEModel"]
