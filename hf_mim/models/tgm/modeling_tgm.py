"""TGM: a video MAE whose mask hides the patches a frozen CLIP finds most relevant to the clip's caption.

Fan et al., "Text-Guided Video Masked Autoencoder" (ECCV 2024). No official code is released, so this follows the
paper; the choices it leaves open are marked [unverified] and are config switches where they matter:

* relevance: every frame goes through the frozen CLIP vision tower at CLIP's own resolution; its patch tokens
  get CLIP's ``post_layernorm`` and ``visual_projection`` (dense CLIP features) and their cosine similarity to
  the caption's CLIP text embedding is the relevance map, bilinearly resized from CLIP's patch grid to the
  tubelet grid and averaged over the frames of each tubelet [unverified: the paper does not say how a 7x7 B/32
  map meets the 14x14 tubelet grid, nor how 2-frame tubelets are scored];
* mask: in every temporal slice the ``int(mask_ratio * H'*W')`` most relevant patches (``mask_most_relevant``;
  False = the least relevant, the paper's ablation), ties broken at random (:func:`top_relevance_mask`);
* loss: VideoMAE's normalised-pixel MSE on the masked cubes (the VideoMAE V2 pre-training model with decoder
  masking off) plus, with ``contrastive_weight > 0``, a symmetric video-text InfoNCE between the projected mean of
  the encoder's visible tokens (no extra encoder pass) and the frozen CLIP text embeddings; the negatives are the
  other captions of the batch, and another clip with the very same caption (templated captions repeat) is not
  counted as a negative [unverified: temperature, projection].

The CLIP is frozen and kept OUT of the module tree (:class:`~hf_mim.teacher.TeacherHolderMixin`): never in the
state dict, the checkpoint or the optimiser; rebuilt from ``clip_model_name_or_path`` when the model is loaded.
"""

from dataclasses import dataclass

import torch
from torch import nn

from hf_mim.masking.video import top_relevance_mask
from hf_mim.models.tgm.configuration_tgm import TGMConfig
from hf_mim.models.videomae2.modeling_videomae2 import (
    Videomae2ForPreTraining,
    Videomae2ForVideoClassification,
    Videomae2Model,
    Videomae2PreTrainingOutput,
)
from hf_mim.teacher import TeacherHolderMixin

CAPTION_TOKENS_HELP = "CLIP-tokenized captions (the TGM collator makes them from the caption column)"


@dataclass
class TGMPreTrainingOutput(Videomae2PreTrainingOutput):
    """``relevance [B, T'*H'*W']``: the caption relevance of every cube when the mask was chosen from it."""

    relevance: torch.Tensor | None = None


class TGMModel(Videomae2Model):
    """The VideoMAE encoder (features out; see :class:`Videomae2Model`)."""

    config_class = TGMConfig


class TGMForVideoClassification(Videomae2ForVideoClassification):
    """Encoder + mean pooling + ``fc_norm`` + linear head (VideoMAE's fine-tuning head)."""

    config_class = TGMConfig
    encoder_class = TGMModel


def byte_level_clip_tokenizer():
    """A CLIP tokenizer over single bytes (no merges, vocabulary 514): the tokenizer of random CLIPs built from a
    config dict, so tests and demos tokenize any caption without a download. Token ids: 256 bytes, 256 bytes that
    end a word, then ``<|startoftext|>`` = 512 and ``<|endoftext|>`` = 513 (set ``vocab_size=514``,
    ``bos_token_id=512`` and ``eos_token_id=pad_token_id=513`` in the dict's ``text_config``)."""
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    characters = list(bytes_to_unicode().values())
    vocab = {character: index for index, character in enumerate(characters)}
    vocab.update({character + "</w>": index + 256 for index, character in enumerate(characters)})
    vocab.update({"<|startoftext|>": 512, "<|endoftext|>": 513})
    return CLIPTokenizer(vocab=vocab, merges=[])


def caption_tokenizer(config: TGMConfig):
    """The tokenizer of ``config``'s CLIP: loaded from its path / Hub id, byte-level for a random (dict) CLIP."""
    source = config.clip_model_name_or_path
    if isinstance(source, dict):
        return byte_level_clip_tokenizer()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(source)


def check_caption_length(length: int, limit: int, which: str = "the captions are") -> None:
    """Captions longer than the CLIP text model's positions are refused, not truncated: a cut caption would
    silently guide the mask with half a sentence."""
    if length > limit:
        raise ValueError(
            f"{which} {length} tokens long but the CLIP text model takes at most {limit} "
            "(max_position_embeddings); shorten the captions"
        )


def tokenize_captions(tokenizer, captions, limit: int) -> dict:
    """``input_ids`` / ``attention_mask`` (padded to the longest) of ``captions``; a caption longer than ``limit``
    tokens is refused with its index and start."""
    captions = list(captions)
    bad = [i for i, caption in enumerate(captions) if not isinstance(caption, str)]
    if bad:
        raise ValueError(f"caption {bad[0]} is {type(captions[bad[0]]).__name__}, not text: every clip needs a caption string")
    tokens = tokenizer(captions, padding=True, return_tensors="pt")
    lengths = tokens["attention_mask"].sum(dim=1)
    longest = int(lengths.argmax())
    check_caption_length(int(lengths[longest]), limit, f"caption {longest} ({captions[longest][:40]!r}...) is")
    return {"input_ids": tokens["input_ids"], "attention_mask": tokens["attention_mask"]}


def clip_text_limit(config: TGMConfig) -> int:
    """Longest caption (in tokens) the CLIP text model of ``config`` takes, read from its config only."""
    source = config.clip_model_name_or_path
    if isinstance(source, dict):
        return int(source.get("text_config", {}).get("max_position_embeddings", 77))
    from transformers import AutoConfig

    return int(AutoConfig.from_pretrained(source).text_config.max_position_embeddings)


def video_text_info_nce(video: torch.Tensor, text: torch.Tensor, same_caption: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between L2-normalised ``video [B, D]`` and ``text [B, D]``: clip ``i`` and caption ``i``
    are the positive pair, the other captions (clips) of the batch the negatives, except pairs with the same
    caption (``same_caption [B, B]``), which are neither."""
    logits = video.float() @ text.float().T / temperature
    false_negatives = same_caption & ~torch.eye(len(video), dtype=torch.bool, device=video.device)
    logits = logits.masked_fill(false_negatives, float("-inf"))
    targets = torch.arange(len(video), device=video.device)
    return (nn.functional.cross_entropy(logits, targets) + nn.functional.cross_entropy(logits.T, targets)) / 2


class TGMForPreTraining(TeacherHolderMixin, Videomae2ForPreTraining):
    """Text-guided VideoMAE pre-training. ``clip_model`` (a module, path or config dict) overrides the config's
    CLIP for this instance (it is not saved)."""

    config_class = TGMConfig
    teacher_names = ("clip_model",)

    def __init__(self, config: TGMConfig, clip_model=None):
        super().__init__(config)
        self.video_projection = (
            nn.Linear(config.hidden_size, config.clip_projection_dim) if config.contrastive_weight > 0 else None
        )
        self.post_init()  # initialises the projection only: the modules built above are marked initialised
        self._setup_teachers(**({"clip_model": clip_model} if clip_model is not None else {}))

    @property
    def clip(self):
        """The frozen CLIP (a :class:`~hf_mim.teacher.FrozenTeacher` around a transformers ``CLIPModel``)."""
        clip = self.get_teacher("clip_model")
        if clip.image_size is None:  # first use: check the CLIP against the config once
            width = clip.model.config.projection_dim
            if self.video_projection is not None and width != self.config.clip_projection_dim:
                raise ValueError(
                    f"the CLIP embeds into {width} dimensions but clip_projection_dim is "
                    f"{self.config.clip_projection_dim}: set clip_projection_dim={width}"
                )
            clip.image_size = clip.model.config.vision_config.image_size
        return clip

    @property
    def tokenizer(self):
        """The CLIP tokenizer for captions (built once)."""
        if self.__dict__.get("_tokenizer") is None:
            self.__dict__["_tokenizer"] = caption_tokenizer(self.config)
        return self.__dict__["_tokenizer"]

    def tokenize(self, captions: list[str]) -> dict:
        """``input_ids`` / ``attention_mask`` for a list of captions (refused when too long for CLIP)."""
        return tokenize_captions(self.tokenizer, captions, self.clip.model.config.text_config.max_position_embeddings)

    @torch.no_grad()
    def caption_embeddings(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """L2-normalised CLIP text embeddings ``[B, D]``."""
        clip = self.clip
        clip._move_to(input_ids.device)
        check_caption_length(input_ids.shape[1], clip.model.config.text_config.max_position_embeddings)
        pooled = clip.model.text_model(input_ids=input_ids, attention_mask=attention_mask).pooler_output
        return nn.functional.normalize(clip.model.text_projection(pooled).float(), dim=-1)

    @torch.no_grad()
    def patch_relevance(self, pixel_values: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """Cosine similarity of every cube to its clip's caption, ``[B, T', H'*W']`` (see the module docstring)."""
        clip = self.clip
        clip._move_to(pixel_values.device)
        batch, frames = pixel_values.shape[:2]
        vision = clip.model.vision_model(pixel_values=clip.prepare_pixels(pixel_values.flatten(0, 1)))
        patches = clip.model.visual_projection(clip.model.vision_model.post_layernorm(vision.last_hidden_state[:, 1:]))
        patches = nn.functional.normalize(patches.float(), dim=-1)
        side = int(patches.shape[1] ** 0.5)
        similarity = torch.einsum("bnd,bd->bn", patches, text_embeds.repeat_interleave(frames, dim=0))
        slices, rows, cols = self.config.grid_size
        relevance = nn.functional.interpolate(
            similarity.reshape(-1, 1, side, side), size=(rows, cols), mode="bilinear", align_corners=False
        )
        return relevance.reshape(batch, slices, frames // slices, rows * cols).mean(dim=2)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_ids: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        decoder_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> TGMPreTrainingOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, frames, channels, height, width)`): processed clips.
        input_ids / attention_mask (`torch.LongTensor` of shape `(batch, tokens)`): the clips' captions tokenized
            with CLIP's tokenizer (`model.tokenize(captions)`); needed to choose the mask and for the contrastive
            term.
        bool_masked_pos (`torch.BoolTensor` of shape `(batch, T'*H'*W')`, *optional*): True = masked; overrides
            the text-guided choice.
        decoder_mask (`torch.BoolTensor`, *optional*): as in [`Videomae2ForPreTraining`] (off by default).
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        contrastive = self.config.contrastive_weight > 0
        if input_ids is None and (bool_masked_pos is None or contrastive):
            need = "to choose the text-guided mask" if bool_masked_pos is None else "for the video-text contrastive term"
            raise ValueError(f"TGM needs the captions {need}: pass input_ids ({CAPTION_TOKENS_HELP})")
        text = self.caption_embeddings(input_ids, attention_mask) if input_ids is not None else None
        relevance = None
        if bool_masked_pos is None:
            self.encoder.patch_embed.check_input(pixel_values)
            relevance = self.patch_relevance(pixel_values, text)
            bool_masked_pos = top_relevance_mask(
                relevance, self.config.mask_ratio, self.config.mask_most_relevant, self.mask_rng
            )
            relevance = relevance.flatten(1)
        output, encoded = self.reconstruct(
            pixel_values, bool_masked_pos, decoder_mask, output_hidden_states=output_hidden_states,
            output_attentions=output_attentions, **kwargs,
        )
        output = TGMPreTrainingOutput(**output, relevance=relevance)
        if contrastive:
            video = nn.functional.normalize(self.video_projection(encoded.last_hidden_state.mean(dim=1)), dim=-1)
            same_caption = (input_ids[:, None] == input_ids[None]).all(dim=-1)
            contrast = video_text_info_nce(video, text, same_caption, self.config.contrastive_temperature)
            output["loss_terms"] = {"reconstruction": output.loss.detach(), "contrastive": contrast.detach()}
            output["loss"] = output.loss + self.config.contrastive_weight * contrast
        return output if return_dict else output.to_tuple()
