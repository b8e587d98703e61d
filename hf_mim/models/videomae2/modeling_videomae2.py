"""VideoMAE V2: a video MAE whose decoder is masked too (dual masking).

The encoder sees the ~10% of tubelets a *tube* mask leaves visible (``TubeMaskGenerator``, 90%); the decoder gets
the encoder outputs plus mask tokens only at the positions a *running-cell* mask leaves visible
(``RunningCellMaskGenerator``, 50%), and the loss counts only cubes that are encoder-masked AND decoder-visible.

Faithful to OpenGVLab/VideoMAEv2 (``models/modeling_pretrain.py``, ``engine_for_pretraining.py``), including its
quirks: mask tokens go to *every* decoder-visible position, also those the encoder already saw (they are decoded
and dropped by the loss mask); the loss is one masked mean over the whole batch; targets are un-normalised with the
ImageNet statistics (3 channels) before the per-patch, per-channel normalisation (for which any per-channel
affine normalisation cancels). With ``decoder_mask_ratio=0`` this is exactly VideoMAE (= transformers'
``VideoMAEForPreTraining`` on the same weights and ``bool_masked_pos``).
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.utils.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from hf_mim.layers.decoder import MAEDecoder
from hf_mim.layers.patch_embed import TubeletEmbed, tubelet_patchify
from hf_mim.layers.pos_embed import sinusoid_table
from hf_mim.masking.core import check_mask, gather_tokens
from hf_mim.masking.video import RunningCellMaskGenerator, TubeMaskGenerator
from hf_mim.modeling_utils import (
    MIMEncoderOutput,
    MIMPreTrainedModel,
    MIMPreTrainingOutput,
    MIMViTForImageClassification,
    MIMViTModel,
)
from hf_mim.models.videomae2.configuration_videomae2 import Videomae2Config


@dataclass
class Videomae2PreTrainingOutput(MIMPreTrainingOutput):
    """``logits [B, Q, t*p*p*C]`` are the predictions at ``decoder_positions [B, Q]`` (the decoder-visible cubes,
    ascending); ``mask`` is the encoder mask, ``loss_mask [B, Q]`` marks the predictions the loss counts."""

    decoder_positions: torch.Tensor | None = None
    loss_mask: torch.Tensor | None = None


class Videomae2PreTrainedModel(MIMPreTrainedModel):
    config_class = Videomae2Config
    input_modalities = ("video",)


class Videomae2Model(Videomae2PreTrainedModel, MIMViTModel):
    """Video ViT encoder: tubelet embedding, fixed VideoMAE sinusoid positions, q/v-bias blocks, final norm.

    ``pixel_values [B, T, C, H, W]``; without a mask every tubelet is encoded (features), with ``bool_masked_pos
    [B, T'*H'*W']`` (True = masked) or ``noise`` / ``mask_ratio`` the masked tubelets are dropped."""

    @staticmethod
    def build_patch_embed(config) -> nn.Module:
        return TubeletEmbed(config.image_size, config.patch_size, config.num_frames, config.tubelet_size,
                            config.num_channels, config.hidden_size)

    def sincos_table(self, grid_size=None) -> torch.Tensor:
        return sinusoid_table(self.patch_embed.num_patches, self.config.hidden_size).unsqueeze(0)


class TubeletDecoder(MAEDecoder):
    """VideoMAE decoder: projection without bias, mask tokens only at the queried positions, predictions only for
    them. Parameter names as :class:`MAEDecoder` (``embed``, ``mask_token``, ``pos_embed``, ``blocks``, ``norm``,
    ``pred``)."""

    def __init__(self, config):
        super().__init__(
            config, encoder_dim=config.hidden_size, dim=config.decoder_hidden_size,
            depth=config.decoder_num_hidden_layers, num_heads=config.decoder_num_attention_heads,
            intermediate_size=config.decoder_intermediate_size, grid_size=(config.num_patches, 1),
            output_dim=config.tubelet_size * config.patch_size**2 * config.num_channels, has_cls_token=False,
            layer_norm_eps=config.layer_norm_eps, qkv_bias=config.qkv_bias,
        )
        self.embed = nn.Linear(config.hidden_size, config.decoder_hidden_size, bias=False)

    def sincos_table(self, grid_size=None) -> torch.Tensor:
        return sinusoid_table(self.grid_size[0], self.pos_embed.shape[-1]).unsqueeze(0)

    def forward(self, latent: torch.Tensor, ids_keep: torch.Tensor, query_positions: torch.Tensor) -> torch.Tensor:
        """``latent [B, K, D]`` at raster positions ``ids_keep [B, K]``; returns ``[B, Q, out]`` for
        ``query_positions [B, Q]``."""
        pos = self.pos_embed.expand(latent.shape[0], -1, -1)
        visible = self.embed(latent) + gather_tokens(pos, ids_keep)
        queries = self.mask_token.to(visible.dtype) + gather_tokens(pos, query_positions)
        x = torch.cat([visible, queries], dim=1)
        for block in self.blocks:
            x = block(x)[0]
        return self.pred(self.norm(x[:, -query_positions.shape[1] :]))


def positions_of(mask: torch.Tensor) -> torch.Tensor:
    """Raster indices of the True entries of ``mask [B, L]`` (same count per row), ascending: ``[B, N]``."""
    counts = mask.sum(1)
    if not bool((counts == counts[0]).all()):
        raise ValueError(f"every clip must select the same number of cubes, got {counts.tolist()}")
    return torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, : int(counts[0])]


class Videomae2ForPreTraining(Videomae2PreTrainedModel):
    """VideoMAE V2 pre-training: tube-masked encoder, running-cell-masked decoder, normalised-pixel MSE on
    encoder-masked AND decoder-visible cubes."""

    encoder_class: type[Videomae2Model] = Videomae2Model

    def __init__(self, config: Videomae2Config):
        super().__init__(config)
        self.encoder = self.encoder_class(config)
        self.decoder = TubeletDecoder(config)
        self.tube_mask = TubeMaskGenerator(config.grid_size, config.mask_ratio)
        self.decoder_mask_generator = (
            RunningCellMaskGenerator(config.grid_size, config.decoder_mask_ratio) if config.decoder_mask_ratio > 0 else None
        )
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, TubeletDecoder):  # official: trunc_normal_(std=.02, a=-std, b=std)
            std = self.config.initializer_range
            init.trunc_normal_(module.mask_token, std=std, a=-std, b=std)

    def mask_generator(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The encoder's tube mask (used by ``MethodSpec.make_inputs`` and collators)."""
        return self.tube_mask(batch_size, generator)

    def target(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, L, t*p*p*C]`` regression target as the official engine builds it."""
        frames = pixel_values.float()
        if self.config.num_channels == 3:
            mean = torch.tensor(IMAGENET_DEFAULT_MEAN, device=frames.device).reshape(1, 1, 3, 1, 1)
            std = torch.tensor(IMAGENET_DEFAULT_STD, device=frames.device).reshape(1, 1, 3, 1, 1)
            frames = frames * std + mean
        patches = tubelet_patchify(frames, self.config.tubelet_size, self.config.patch_size)  # [B, L, t*p*p, C]
        if self.config.norm_pix_loss:
            patches = (patches - patches.mean(dim=-2, keepdim=True)) / (
                patches.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6
            )
        return patches.flatten(2)

    def reconstruct(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        decoder_mask: torch.Tensor | None = None,
        **encoder_kwargs,
    ) -> tuple[Videomae2PreTrainingOutput, MIMEncoderOutput]:
        """One masked-reconstruction pass (what ``forward`` computes), also returning the encoder output so that
        methods built on this branch (CrossVideoMAE) can pool the visible tokens. Missing masks are drawn from
        ``mask_rng``."""
        grid = self.encoder.patch_embed.check_input(pixel_values)
        batch, length = pixel_values.shape[0], self.config.num_patches
        if bool_masked_pos is None:
            bool_masked_pos = self.tube_mask(batch, self.mask_rng, pixel_values.device)
        bool_masked_pos = bool_masked_pos.to(pixel_values.device)
        if bool_masked_pos.shape != (batch, length):
            raise ValueError(f"bool_masked_pos must have shape [{batch}, {length}] for a {grid} grid, got {tuple(bool_masked_pos.shape)}")
        check_mask(bool_masked_pos)  # bool, hiding some but not all cubes of every clip
        if decoder_mask is None and self.decoder_mask_generator is not None:
            decoder_mask = self.decoder_mask_generator(batch, self.mask_rng, pixel_values.device)
        decoder_visible = bool_masked_pos if decoder_mask is None else ~decoder_mask.to(pixel_values.device).bool()

        encoded = self.encoder(
            pixel_values, bool_masked_pos=bool_masked_pos, return_dict=True, **encoder_kwargs
        )
        queries = positions_of(decoder_visible)
        logits = self.decoder(encoded.last_hidden_state, encoded.ids_keep, queries)
        loss_mask = torch.gather(bool_masked_pos, 1, queries)
        if not bool(loss_mask.any()):
            raise ValueError("no encoder-masked cube is decoder-visible: the loss would be empty")
        # no no_grad here: training inputs carry no gradient anyway, and guidance (VideoMAEGuidance) needs the
        # energy's gradient through the target too (a predictable clip is what makes the loss small)
        labels = gather_tokens(self.target(pixel_values), queries)
        per_cube = (logits.float() - labels).square().mean(dim=-1)
        weights = loss_mask.to(per_cube.dtype)
        loss = (per_cube * weights).sum() / weights.sum()
        output = Videomae2PreTrainingOutput(
            loss=loss, logits=logits, mask=bool_masked_pos, ids_restore=encoded.ids_restore,
            hidden_states=encoded.hidden_states, attentions=encoded.attentions, decoder_positions=queries,
            loss_mask=loss_mask,
        )
        return output, encoded

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        decoder_mask: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> Videomae2PreTrainingOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, frames, channels, height, width)`): processed clips.
        bool_masked_pos (`torch.BoolTensor` of shape `(batch, T'*H'*W')`, *optional*): encoder mask, True =
            hidden from the encoder (default: a tube mask at `config.mask_ratio` from `mask_rng`).
        decoder_mask (`torch.BoolTensor` of shape `(batch, T'*H'*W')`, *optional*): True = not reconstructed
            (the official `decode_mask`; default: running cell at `config.decoder_mask_ratio`, or, when that is
            0, the complement of the encoder mask, i.e. plain VideoMAE).
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output, _ = self.reconstruct(
            pixel_values, bool_masked_pos, decoder_mask, output_hidden_states=output_hidden_states,
            output_attentions=output_attentions, **kwargs,
        )
        return output if return_dict else output.to_tuple()


class Videomae2ForVideoClassification(Videomae2PreTrainedModel, MIMViTForImageClassification):
    """Encoder + mean of the last block's tokens + ``fc_norm`` + linear head (VideoMAE's fine-tuning head)."""

    encoder_class = Videomae2Model
