from hf_mim.data import MIMCollator
from hf_mim.models.tgm.configuration_tgm import TGMConfig
from hf_mim.models.tgm.modeling_tgm import (
    TGMForPreTraining,
    TGMForVideoClassification,
    TGMModel,
    caption_tokenizer,
    clip_text_limit,
    tokenize_captions,
)
from hf_mim.processing.video_processing_mim import MIMVideoProcessor
from hf_mim.registry import MethodSpec


def tiny_clip(image_size=32, patch_size=8, width=16, layers=1, projection_dim=16) -> dict:
    """A random CLIPModel as a config dict (built seeded, never downloaded), tokenized by the byte-level CLIP
    tokenizer (vocabulary 514, see ``byte_level_clip_tokenizer``)."""
    return dict(
        model_type="clip", projection_dim=projection_dim,
        text_config=dict(vocab_size=514, hidden_size=width, intermediate_size=2 * width, num_hidden_layers=layers,
                         num_attention_heads=2, max_position_embeddings=77, bos_token_id=512, eos_token_id=513,
                         pad_token_id=513),
        vision_config=dict(image_size=image_size, patch_size=patch_size, hidden_size=width, intermediate_size=2 * width,
                           num_hidden_layers=layers, num_attention_heads=2),
    )


TINY = dict(
    image_size=32, patch_size=8, num_frames=4, tubelet_size=2, hidden_size=32, num_hidden_layers=2,
    num_attention_heads=4, intermediate_size=64, decoder_hidden_size=32, decoder_num_hidden_layers=1,
    decoder_num_attention_heads=4, decoder_intermediate_size=64, clip_model_name_or_path=tiny_clip(),
    clip_model_image_mean=None, clip_model_image_std=None,
)
# demo: a real CLIP at 224 px does not fit a 32 px CPU demo; the preset's CLIP is random (a smoke test of the
# mechanism). benchmarks/tgm_demo.py trains a small CLIP on the demo frames and passes its path instead.
DEMO = dict(
    image_size=32, patch_size=8, num_frames=8, tubelet_size=2, hidden_size=192, num_hidden_layers=6,
    num_attention_heads=3, intermediate_size=768, decoder_hidden_size=128, decoder_num_hidden_layers=2,
    decoder_num_attention_heads=4, decoder_intermediate_size=512,
    clip_model_name_or_path=tiny_clip(patch_size=4, width=64, layers=2, projection_dim=64),
    clip_model_image_mean=None, clip_model_image_std=None,
)


def example_inputs(model, pixel_values, generator) -> dict:
    """Fixed captions; the mask is the text-guided one (explicit masks go in as ``bool_masked_pos``)."""
    captions = [f"a video of a moving object number {index}" for index in range(pixel_values.shape[0])]
    return {"pixel_values": pixel_values, **model.tokenize(captions)}


class CaptionCollator(MIMCollator):
    """:class:`MIMCollator` whose batches also carry the captions tokenized for the method's CLIP
    (``input_ids`` / ``attention_mask``); a caption longer than the CLIP text model takes is refused."""

    def __init__(self, config: TGMConfig, processor=None):
        super().__init__()
        self.tokenizer, self.limit = caption_tokenizer(config), clip_text_limit(config)

    def __call__(self, samples: list[dict]) -> dict:
        batch = super().__call__(samples)
        if "caption" in batch:
            batch.update(tokenize_captions(self.tokenizer, batch.pop("caption"), self.limit))
        return batch


def prepare_captioned_videos(dataset, processor, train=True, column=None, label_column=None, with_labels=False, transform=None, scale=(0.2, 1.0), caption_column=None):
    """Video clips with their captions for pre-training (see :func:`hf_mim.data.video.add_captions`: the caption
    column, or captions derived from class names); evaluation (``with_labels``) needs none."""
    from hf_mim.data.video import add_captions, prepare_video_dataset

    if not with_labels:
        dataset, caption_column = add_captions(dataset, caption_column)
    return prepare_video_dataset(
        dataset, processor, train=train, column=column, label_column=label_column, with_labels=with_labels,
        transform=transform, scale=scale, caption_column=None if with_labels else caption_column,
    )


METHOD = MethodSpec(
    name="tgm",
    config_class=TGMConfig,
    model_class=TGMModel,
    pretraining_class=TGMForPreTraining,
    classification_class=TGMForVideoClassification,
    paper="Text-Guided Video Masked Autoencoder (Fan et al., ECCV 2024)",
    paper_url="https://arxiv.org/abs/2408.00759",
    license="apache-2.0",
    tiny_config=TINY,
    demo_config=DEMO,
    example_inputs=example_inputs,
    processor_class=MIMVideoProcessor,
    modality="video",
    collator=CaptionCollator,
    prepare_dataset=prepare_captioned_videos,
    # paper: AdamW, lr 1.5e-4 [unverified: third-party summary], cosine decay; VideoMAE's betas and weight decay
    training_defaults=dict(base_learning_rate=1.5e-4, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05),
)

__all__ = ["METHOD", "TGMConfig", "TGMForPreTraining", "TGMForVideoClassification", "TGMModel"]
