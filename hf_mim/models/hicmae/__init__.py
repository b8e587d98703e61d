from hf_mim.models.hicmae.configuration_hicmae import HiCMAEConfig
from hf_mim.models.hicmae.modeling_hicmae import (
    HiCMAEForAudioVisualClassification,
    HiCMAEForPreTraining,
    HiCMAEModel,
)

# the CPU test size of the research notes: video 4x32x32 (patch 8, tubelet 2), audio 32x16 (patch 8), width 32,
# 4-block encoders with skip layers (1, 2, 3), 4-block decoders, one fusion block
TINY = dict(
    image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32, num_hidden_layers=4,
    num_attention_heads=4, intermediate_size=64, audio_length=32, num_mel_bins=16, audio_patch_size=8,
    audio_hidden_size=32, audio_num_hidden_layers=4, audio_num_attention_heads=4, audio_intermediate_size=64,
    fusion_num_hidden_layers=1, fusion_num_attention_heads=4, decoder_hidden_size=32, decoder_num_hidden_layers=4,
    decoder_num_attention_heads=4, decoder_intermediate_size=64, skip_connection_layers=[1, 2, 3],
)
