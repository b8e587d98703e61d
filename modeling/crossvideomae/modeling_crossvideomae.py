# Generated from hf_mim.models.crossvideomae.modeling_crossvideomae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""CrossVideoMAE: a video MAE whose visible-token embeddings are also aligned, by contrastive terms, with an
augmented view of the clip and with a frame sampled from it (Ahamed et al., 2025, arXiv 2502.07811).

Two branches, both ViTs of one width and patch size:
* the **video branch** (:class:`~hf_mim.models.videomae2.modeling_videomae2.Videomae2ForPreTraining`'s encoder,
  decoder, tube masks and normalised-pixel loss, reused as is) runs on the clip and on an augmented view of it,
  each with its own tube mask, and reconstructs the masked cubes;
* the **image branch** (:class:`~hf_mim.modeling_utils.MIMViTModel` with a 2-D patch embedding) runs on one frame
  sampled from each clip (``frame_index``), randomly masked at ``image_mask_ratio``.

Visible tokens are mean-pooled and projected (an MLP head per branch) into one space, where three NT-Xent terms
(:func:`~hf_mim.layers.contrastive.nt_xent`, negatives = the other clips of the batch) pull together:
* intra-video: the clip and its augmented view (augmentation invariance);
* cross-modal, video level: the sampled frame and the clip (by default the mean of both views' embeddings, as the
  CrossPoint cross-modal term the paper builds on);
* cross-modal, frame level: the sampled frame and the clip's visible tokens of the time slice that frame lies in.

``loss = w_rec * reconstruction + w_intra * intra_video + w_video * cross_video + w_frame * cross_frame``.

No official code exists (none found in the code index or linked from the paper), so nothing here is checked
against a reference implementation; the tests check the equations above directly on tiny tensors. What the paper
leaves open (loss weights, temperature, head shapes, whether the augmented view is reconstructed, which video
embedding meets the frame, whether the image branch is frozen) is a config switch, see
:class:`CrossVideoMAEConfig`.
"""

from dataclasses import dataclass

import torch
from torch import nn

from .mim_layers_contrastive import nt_xent
from .mim_masking_core import check_mask, mask_from_noise, random_noise
from .mim_modeling_utils import MIMPreTrainedModel, MIMPreTrainingOutput, MIMViTForImageClassification, MIMViTModel
from .configuration_crossvideomae import CrossVideoMAEConfig
from .modeling_videomae2 import Videomae2ForPreTraining, Videomae2Model


@dataclass
class CrossVideoMAEPreTrainingOutput(MIMPreTrainingOutput):
    """``logits`` / ``mask``: reconstruction of the original clip (as VideoMAE); the projected embeddings
    ``[B, projection_dim]`` of the clip (``video_embeds``), its augmented view (``augmented_video_embeds``), the
    sampled frame (``image_embeds``) and the clip's time slice holding that frame (``frame_video_embeds``);
    ``frame_index [B]`` and ``image_mask [B, H'*W']`` as used."""

    video_embeds: torch.Tensor | None = None
    augmented_video_embeds: torch.Tensor | None = None
    image_embeds: torch.Tensor | None = None
    frame_video_embeds: torch.Tensor | None = None
    frame_index: torch.Tensor | None = None
    image_mask: torch.Tensor | None = None


class CrossVideoMAEPreTrainedModel(MIMPreTrainedModel):
    config_class = CrossVideoMAEConfig
    input_modalities = ("video",)


class CrossVideoMAEModel(CrossVideoMAEPreTrainedModel, Videomae2Model):
    """The video encoder (features out): VideoMAE's tubelet ViT, see :class:`Videomae2Model`."""


class ProjectionHead(nn.Sequential):
    """Linear - GELU - Linear from pooled tokens to the contrastive space."""

    def __init__(self, dim: int, projection_dim: int):
        super().__init__(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, projection_dim))


class CrossVideoMAEForPreTraining(CrossVideoMAEPreTrainedModel, Videomae2ForPreTraining):
    """Video MAE (two views) + image branch + intra-video, video-frame and frame-slice NT-Xent terms."""

    encoder_class = CrossVideoMAEModel

    def __init__(self, config: CrossVideoMAEConfig):
        super().__init__(config)  # the video branch: encoder, decoder, tube (and running-cell) masks
        self.image_encoder = MIMViTModel(config)
        self.video_projection = ProjectionHead(config.hidden_size, config.projection_dim)
        self.image_projection = ProjectionHead(config.hidden_size, config.projection_dim)
        if config.freeze_image_encoder:
            self.image_encoder.requires_grad_(False)
        self.post_init()

    def image_mask(self, batch_size: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """MAE random masking of the sampled frames at ``image_mask_ratio``: ``[B, H'*W']``."""
        num_patches = self.image_encoder.patch_embed.num_patches
        return mask_from_noise(random_noise(batch_size, num_patches, device, generator), self.config.image_mask_ratio).mask

    def frame_slice_embedding(self, encoded, frame_index: torch.Tensor) -> torch.Tensor:
        """Mean of the visible tokens of the temporal slice (tubelet) holding each clip's sampled frame."""
        per_slice = self.config.num_patches // self.config.grid_size[0]
        in_slice = (encoded.ids_keep // per_slice == (frame_index // self.config.tubelet_size)[:, None]).float()
        counts = in_slice.sum(1)
        if not bool((counts > 0).all()):
            raise ValueError(
                "the video mask leaves no cube visible in the time slice of the sampled frame for clip(s) "
                f"{(counts == 0).nonzero().flatten().tolist()}: use tube masks (every slice keeps the same positions)"
            )
        return (encoded.last_hidden_state * in_slice[..., None]).sum(1) / counts[:, None]

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        augmented_pixel_values: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        augmented_bool_masked_pos: torch.Tensor | None = None,
        frame_index: torch.Tensor | None = None,
        image_bool_masked_pos: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CrossVideoMAEPreTrainingOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, frames, channels, height, width)`): processed clips.
        augmented_pixel_values (same shape): an augmented view of the same clips (the `crossvideomae` transform
            makes it: its own crop and a colour jitter of the same frames).
        bool_masked_pos / augmented_bool_masked_pos (`torch.BoolTensor` of shape `(batch, T'*H'*W')`, *optional*):
            video masks of the two views, True = hidden (default: independent tube masks from `mask_rng`).
        frame_index (`torch.LongTensor` of shape `(batch,)`, *optional*): which frame of each clip the image
            branch sees (default: uniform from `mask_rng`).
        image_bool_masked_pos (`torch.BoolTensor` of shape `(batch, H'*W')`, *optional*): mask of the sampled
            frames (default: random at `image_mask_ratio` from `mask_rng`).
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        if augmented_pixel_values is None:
            raise ValueError(
                "augmented_pixel_values is required: CrossVideoMAE contrasts each clip with an augmented view of it "
                "(prepare the data with the crossvideomae transform, METHOD.make_transform)"
            )
        if augmented_pixel_values.shape != pixel_values.shape:
            raise ValueError(
                f"augmented_pixel_values {tuple(augmented_pixel_values.shape)} must have the shape of pixel_values "
                f"{tuple(pixel_values.shape)}"
            )
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        batch, frames, device = pixel_values.shape[0], pixel_values.shape[1], pixel_values.device
        config = self.config

        original, encoded = self.reconstruct(
            pixel_values, bool_masked_pos, output_hidden_states=output_hidden_states,
            output_attentions=output_attentions, **kwargs,
        )
        augmented, augmented_encoded = self.reconstruct(augmented_pixel_values, augmented_bool_masked_pos, **kwargs)
        reconstruction = (original.loss + augmented.loss) / 2 if config.reconstruct_augmented_view else original.loss

        if frame_index is None:
            frame_index = torch.randint(frames, (batch,), generator=self.mask_rng)
        frame_index = frame_index.to(device=device, dtype=torch.long)
        if frame_index.shape != (batch,) or bool(((frame_index < 0) | (frame_index >= frames)).any()):
            raise ValueError(f"frame_index must hold one frame in [0, {frames}) per clip, got {frame_index.tolist()}")
        if image_bool_masked_pos is None:
            image_bool_masked_pos = self.image_mask(batch, self.mask_rng, device)
        image_bool_masked_pos = check_mask(image_bool_masked_pos.to(device))
        images = pixel_values[torch.arange(batch, device=device), frame_index]  # [B, C, H, W]
        image_tokens = self.image_encoder(images, bool_masked_pos=image_bool_masked_pos, return_dict=True)

        video_embeds = self.video_projection(encoded.last_hidden_state.mean(1))
        augmented_embeds = self.video_projection(augmented_encoded.last_hidden_state.mean(1))
        frame_video_embeds = self.video_projection(self.frame_slice_embedding(encoded, frame_index))
        image_embeds = self.image_projection(image_tokens.last_hidden_state.mean(1))
        video_target = (video_embeds + augmented_embeds) / 2 if config.cross_video_target == "mean" else video_embeds

        terms = {
            "reconstruction": reconstruction,
            "intra_video": nt_xent(video_embeds, augmented_embeds, config.temperature),
            "cross_video": nt_xent(image_embeds, video_target, config.temperature),
            "cross_frame": nt_xent(image_embeds, frame_video_embeds, config.temperature),
        }
        weights = {
            "reconstruction": config.reconstruction_weight, "intra_video": config.intra_video_weight,
            "cross_video": config.cross_video_weight, "cross_frame": config.cross_frame_weight,
        }
        loss = sum(weights[name] * value for name, value in terms.items())
        output = CrossVideoMAEPreTrainingOutput(
            loss=loss, logits=original.logits, mask=original.mask, ids_restore=original.ids_restore,
            loss_terms={name: value.detach() for name, value in terms.items()},
            hidden_states=original.hidden_states, attentions=original.attentions, video_embeds=video_embeds,
            augmented_video_embeds=augmented_embeds, image_embeds=image_embeds,
            frame_video_embeds=frame_video_embeds, frame_index=frame_index, image_mask=image_bool_masked_pos,
        )
        return output if return_dict else output.to_tuple()


class CrossVideoMAEForVideoClassification(CrossVideoMAEPreTrainedModel, MIMViTForImageClassification):
    """Video encoder + mean of the last block's tokens + ``fc_norm`` + linear head (VideoMAE's fine-tuning head,
    which the paper uses); the image branch is not part of it."""

    encoder_class = CrossVideoMAEModel
