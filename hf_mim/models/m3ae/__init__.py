from hf_mim.models.m3ae.collator_m3ae import M3AECollator
from hf_mim.models.m3ae.configuration_m3ae import M3AEConfig
from hf_mim.models.m3ae.modeling_m3ae import M3AEForPreTraining, M3AEModel, whole_word_mask

__all__ = ["M3AECollator", "M3AEConfig", "M3AEForPreTraining", "M3AEModel", "whole_word_mask"]

# tiny towers for tests: CLIP 32px / patch 8, RoBERTa 2 layers, 2 fusion layers (pixels from the stream entering
# the second), a 1-block decoder
TINY = dict(
    vision_config=dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                       intermediate_size=64),
    text_config=dict(vocab_size=100, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=34),
    hidden_size=32, num_fusion_layers=2, num_attention_heads=2, intermediate_size=64, mim_layer=1,
    decoder_hidden_size=32, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
)
