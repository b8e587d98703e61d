# Generated from hf_mim.models.hicmae.modeling_hicmae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""HiCMAE: audio-visual masked autoencoding with hierarchical skip connections and hierarchical InfoNCE.

A video MAE (tube mask, 90%) and an audio MAE over log-mel filter banks (random patch mask, 80%) encode their
visible tokens; a fusion encoder of cross+self-attention blocks mixes the two; each decoder's block 0 is plain
self-attention and its block ``i > 0`` also cross-attends to the (normed, projected, position-tagged) visible
tokens of encoder block ``skip_connection_layers[-i]`` (layers 9, 6, 3 in the base model); InfoNCE between mean
pooled video and audio tokens at those same layers uses the other clips of the batch as negatives.

Faithful to sunlicai/HiCMAE (``modeling_pretrain_av.py``, ``modeling_finetune_av.py``,
``engine_for_pretraining_av.py``), including: the intermediate features are each block's output through the
encoder's *final* norm; mask tokens and visible tokens are not unshuffled (positions travel with them); targets are
normalised per patch with the eps *outside* the square root; the frame-difference target is taken on the
normalised patches; the MSE losses are plain means over the masked tokens of the batch. Differences: the video
patch embedding follows ``num_frames`` (the official one hard-wires 16 frames); video input is ``[B, T, C, H, W]``
(the processor's layout) and audio ``[B, time, mel]`` (the feature extractor's); the cross-attention key bias is a
parameter that starts (and, having no gradient, stays) at zero, where the official code fixes it at zero.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import ModelOutput
from transformers.utils.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from .mim_layers_attention import Attention, CrossAttention, normalize_qkv_bias
from .mim_layers_block import Mlp, TransformerBlock
from .mim_layers_patch_embed import TubeletEmbed, patchify, tubelet_patchify
from .mim_layers_pos_embed import sinusoid_table
from .mim_masking_core import check_mask, gather_tokens, mask_from_bool, no_mask
from .mim_masking_generators import RandomMaskGenerator
from .mim_masking_video import TubeMaskGenerator
from .mim_modeling_utils import MIMPreTrainedModel, MIMPreTrainingOutput, classification_head
from .configuration_hicmae import HiCMAEConfig


@dataclass
class HiCMAEModelOutput(ModelOutput):
    """``last_hidden_state [B, K, D]`` / ``audio_last_hidden_state [B, Ka, Da]``: the fused visible tokens of each
    modality. ``video_layers`` / ``audio_layers``: every encoder block's visible tokens through the encoder's final
    norm (before fusion). ``mask`` / ``audio_mask``: the masks used (True = masked)."""

    last_hidden_state: torch.Tensor | None = None
    audio_last_hidden_state: torch.Tensor | None = None
    video_layers: tuple[torch.Tensor, ...] | None = None
    audio_layers: tuple[torch.Tensor, ...] | None = None
    mask: torch.Tensor | None = None
    audio_mask: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class HiCMAEPreTrainingOutput(MIMPreTrainingOutput):
    """``logits [B, Nv, t*p*p*C]`` and ``audio_logits [B, Na, p*p]`` predict the masked tokens (ascending raster
    order); ``logits_per_video`` / ``logits_per_audio`` hold one ``[B, B]`` InfoNCE matrix per skip layer."""

    audio_logits: torch.Tensor | None = None
    audio_mask: torch.Tensor | None = None
    logits_per_video: tuple[torch.Tensor, ...] | None = None
    logits_per_audio: tuple[torch.Tensor, ...] | None = None


class AudioPatchEmbed(nn.Module):
    """Non-overlapping ``p x p`` patches of a ``[B, time, mel]`` filter bank (official ``PatchEmbed2D`` with
    stride = patch), tokens in (time, mel) raster order."""

    def __init__(self, config: HiCMAEConfig):
        super().__init__()
        self.num_patches = config.audio_num_patches
        self.shape = (config.audio_length, config.num_mel_bins)
        size = config.audio_patch_size
        self.proj = nn.Conv2d(1, config.audio_hidden_size, kernel_size=size, stride=size)

    def check_input(self, input_values: torch.Tensor) -> None:
        if input_values.ndim != 3 or tuple(input_values.shape[1:]) != self.shape:
            raise ValueError(
                f"input_values must be filter banks [batch, {self.shape[0]} frames, {self.shape[1]} mel bins], got "
                f"{tuple(input_values.shape)}; make them with the model's processor (audio at its sampling rate)"
            )

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.proj(input_values.unsqueeze(1)).flatten(2).transpose(1, 2)


class CrossSelfBlock(nn.Module):
    """Official ``CSBlock``: ``x + cross_attn(cross_norm1(x), cross_norm2(context))``, then self-attention, then
    MLP (all pre-norm)."""

    def __init__(self, config, dim: int, context_dim: int, num_heads: int, intermediate_size: int):
        super().__init__()
        eps, bias = config.layer_norm_eps, config.qkv_bias
        self.cross_norm1 = nn.LayerNorm(dim, eps=eps)
        self.cross_norm2 = nn.LayerNorm(context_dim, eps=eps)
        self.cross_attn = CrossAttention(config, dim, num_heads, qkv_bias=normalize_qkv_bias(bias) != "none", kv_dim=context_dim)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(config, dim, num_heads, qkv_bias=bias)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, intermediate_size, config.hidden_act)

    def forward(self, x: torch.Tensor, context: torch.Tensor, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = x + self.cross_attn(self.cross_norm1(x), self.cross_norm2(context), **kwargs)[0]
        attended, weights = self.attn(self.norm1(x), **kwargs)
        x = x + attended
        return x + self.mlp(self.norm2(x)), weights


def encoder_blocks(config, dim: int, depth: int, heads: int, intermediate: int) -> nn.ModuleList:
    return nn.ModuleList(
        TransformerBlock(config, dim, heads, intermediate, qkv_bias=config.qkv_bias, layer_norm_eps=config.layer_norm_eps,
                         layer_scale_init_value=config.layer_scale_init_value, drop_path_rate=rate, hidden_act=config.hidden_act)
        for rate in torch.linspace(0, config.drop_path_rate, depth, device="cpu").tolist()
    )


class ModalityEncoder(nn.Module):
    """One tower: patch embedding + fixed sinusoid positions, blocks on the visible tokens, final norm applied to
    every block's output (the official ``intermediate_features``)."""

    def __init__(self, config, patch_embed: nn.Module, dim: int, depth: int, heads: int, intermediate: int):
        super().__init__()
        self.patch_embed = patch_embed
        self.register_buffer("pos_embed", sinusoid_table(patch_embed.num_patches, dim).unsqueeze(0), persistent=False)
        self.blocks = encoder_blocks(config, dim, depth, heads, intermediate)
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)

    def forward(self, inputs, ids_keep, hidden_states: list | None, attentions: list | None, **kwargs) -> tuple:
        x = gather_tokens(self.patch_embed(inputs) + self.pos_embed.to(inputs.dtype), ids_keep)
        layers = []
        for block in self.blocks:
            if hidden_states is not None:
                hidden_states.append(x)
            x, weights = block(x, **kwargs)
            if attentions is not None:
                attentions.append(weights)
            layers.append(self.norm(x))
        if hidden_states is not None:
            hidden_states.append(x)
        return tuple(layers)


class FusionEncoder(nn.Module):
    """Official ``PretrainVisionTransformerEncoderForFusion``: per block, video cross-attends to audio and audio to
    video (both from the previous block's outputs), then a norm per modality."""

    def __init__(self, config: HiCMAEConfig):
        super().__init__()
        video, audio, heads = config.hidden_size, config.audio_hidden_size, config.fusion_num_attention_heads
        depth = config.fusion_num_hidden_layers
        self.blocks = nn.ModuleList(CrossSelfBlock(config, video, audio, heads, config.intermediate_size) for _ in range(depth))
        self.blocks_audio = nn.ModuleList(
            CrossSelfBlock(config, audio, video, heads, config.audio_intermediate_size) for _ in range(depth)
        )
        self.norm = nn.LayerNorm(video, eps=config.layer_norm_eps)
        self.norm_audio = nn.LayerNorm(audio, eps=config.layer_norm_eps)

    def forward(self, video, audio, attentions: list | None, **kwargs):
        for block, block_audio in zip(self.blocks, self.blocks_audio):
            (video, weights), (audio, weights_audio) = block(video, audio, **kwargs), block_audio(audio, video, **kwargs)
            if attentions is not None:
                attentions += [weights, weights_audio]
        return self.norm(video), self.norm_audio(audio)


class SkipDecoder(nn.Module):
    """Official ``PretrainVisionTransformerDecoder`` plus its input assembly: ``embed`` (``encoder_to_decoder``, no
    bias) of the visible tokens + their positions, then mask tokens + the masked positions; block 0 self-attends,
    block ``i > 0`` also cross-attends to ``skips[-i]`` (embedded encoder layers + visible positions)."""

    def __init__(self, config: HiCMAEConfig, encoder_dim: int, num_patches: int, output_dim: int):
        super().__init__()
        dim, heads = config.decoder_hidden_size, config.decoder_num_attention_heads
        self.embed = nn.Linear(encoder_dim, dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("pos_embed", sinusoid_table(num_patches, dim).unsqueeze(0), persistent=False)
        first = encoder_blocks(config, dim, 1, heads, config.decoder_intermediate_size)
        self.blocks = nn.ModuleList([
            *first, *(CrossSelfBlock(config, dim, dim, heads, config.decoder_intermediate_size)
                      for _ in range(config.decoder_num_hidden_layers - 1))
        ])
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.pred = nn.Linear(dim, output_dim)

    def forward(self, latent, skips, mask_info, **kwargs) -> torch.Tensor:
        pos = self.pos_embed.expand(latent.shape[0], -1, -1).to(latent.dtype)
        num_visible = mask_info.ids_keep.shape[1]
        visible_pos = gather_tokens(pos, mask_info.ids_keep)
        masked_pos = gather_tokens(pos, positions_of(mask_info.mask))
        x = torch.cat([self.embed(latent) + visible_pos, self.mask_token.to(latent.dtype) + masked_pos], dim=1)
        skips = [self.embed(layer) + visible_pos for layer in skips]
        for i, block in enumerate(self.blocks):
            x = block(x, **kwargs)[0] if i == 0 else block(x, skips[-i], **kwargs)[0]
        return self.pred(self.norm(x[:, num_visible:]))


def positions_of(mask: torch.Tensor) -> torch.Tensor:
    """Raster indices of the True entries of ``mask [B, L]`` (same count per row), ascending."""
    return torch.argsort((~mask).to(torch.int8), dim=1, stable=True)[:, : int(mask[0].sum())]


def normalise_patches(patches: torch.Tensor) -> torch.Tensor:
    """HiCMAE's per-patch target normalisation over dim -2 (pixels of a patch), unbiased std, eps outside the root."""
    return (patches - patches.mean(dim=-2, keepdim=True)) / (patches.var(dim=-2, unbiased=True, keepdim=True).sqrt() + 1e-6)


class HiCMAEPreTrainedModel(MIMPreTrainedModel):
    config_class = HiCMAEConfig
    main_input_name = "pixel_values"
    input_modalities = ("video", "audio")
    _no_split_modules = ["TransformerBlock", "CrossSelfBlock"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)  # xavier Linear, zero biases, unit LayerNorm, PyTorch-default convolutions
        if isinstance(module, ModalityEncoder):
            init.copy_(module.pos_embed, sinusoid_table(*module.pos_embed.shape[1:]).unsqueeze(0))
        elif isinstance(module, SkipDecoder):  # official: trunc_normal_(std=.02, a=-std, b=std)
            std = self.config.initializer_range
            init.trunc_normal_(module.mask_token, std=std, a=-std, b=std)
            init.copy_(module.pos_embed, sinusoid_table(*module.pos_embed.shape[1:]).unsqueeze(0))
        elif isinstance(module, HiCMAEForAudioVisualClassification):
            init.constant_(module.video_layer_weights, 1.0 / module.video_layer_weights.numel())
            init.constant_(module.audio_layer_weights, 1.0 / module.audio_layer_weights.numel())


def require_both(pixel_values, input_values) -> None:
    """A batch missing one modality is a one-line error naming it."""
    for name, value, what in (("pixel_values", pixel_values, "video clips"), ("input_values", input_values, "audio filter banks")):
        if value is None:
            raise ValueError(
                f"HiCMAE needs both modalities but the batch has no {name} ({what}); pass pixel_values and "
                "input_values (the HiCMAE processor makes both from a clip and its audio track)"
            )


class HiCMAEModel(HiCMAEPreTrainedModel):
    """Video and audio encoders plus the fusion encoder. ``pixel_values [B, T, C, H, W]`` and ``input_values [B,
    time, mel]``; without masks every token is encoded (features), with ``bool_masked_pos`` / ``audio_bool_masked_pos``
    (True = masked) only the visible ones. Returns the fused tokens of both modalities and every block's normed
    output per tower."""

    def __init__(self, config: HiCMAEConfig):
        super().__init__(config)
        c = config
        self.video = ModalityEncoder(
            c, TubeletEmbed(c.image_size, c.patch_size, c.num_frames, c.tubelet_size, c.num_channels, c.hidden_size),
            c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.intermediate_size,
        )
        self.audio = ModalityEncoder(
            c, AudioPatchEmbed(c), c.audio_hidden_size, c.audio_num_hidden_layers, c.audio_num_attention_heads,
            c.audio_intermediate_size,
        )
        self.fusion = FusionEncoder(c)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.video.patch_embed

    def pooled_features(self, pixel_values=None, input_values=None, pooling: str = "mean") -> torch.Tensor:
        """``[B, D + Da]`` clip features for kNN / linear probes: the mean fused video token and the mean fused
        audio token, concatenated (every token encoded, no masking)."""
        if pooling != "mean":
            raise ValueError("HiCMAE has no cls token: use pooling='mean'")
        encoded = self(pixel_values, input_values, return_dict=True)
        return torch.cat([encoded.last_hidden_state.mean(1), encoded.audio_last_hidden_state.mean(1)], dim=-1)

    @staticmethod
    def _mask_info(mask, batch: int, length: int, name: str, device):
        if mask is None:
            return no_mask(batch, length, device)
        if mask.shape != (batch, length):
            raise ValueError(f"{name} must have shape [{batch}, {length}], got {tuple(mask.shape)}")
        return mask_from_bool(check_mask(mask.to(device)))

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        audio_bool_masked_pos: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> HiCMAEModelOutput | tuple:
        require_both(pixel_values, input_values)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        self.video.patch_embed.check_input(pixel_values)
        self.audio.patch_embed.check_input(input_values)
        if pixel_values.shape[0] != input_values.shape[0]:
            raise ValueError(f"{pixel_values.shape[0]} clips but {input_values.shape[0]} audio tracks: pair each clip with its audio")
        batch, device = pixel_values.shape[0], pixel_values.device
        video_mask = self._mask_info(bool_masked_pos, batch, self.config.num_patches, "bool_masked_pos", device)
        audio_mask = self._mask_info(audio_bool_masked_pos, batch, self.config.audio_num_patches, "audio_bool_masked_pos", device)
        hidden = [] if output_hidden_states else None
        attentions = [] if output_attentions else None
        if output_attentions:
            kwargs["output_attentions"] = True
        video_layers = self.video(pixel_values, video_mask.ids_keep, hidden, attentions, **kwargs)
        audio_layers = self.audio(input_values.to(pixel_values.dtype), audio_mask.ids_keep, hidden, attentions, **kwargs)
        video, audio = self.fusion(video_layers[-1], audio_layers[-1], attentions, **kwargs)
        if hidden is not None:
            hidden += [video, audio]
        output = HiCMAEModelOutput(
            last_hidden_state=video, audio_last_hidden_state=audio, video_layers=video_layers, audio_layers=audio_layers,
            mask=video_mask.mask, audio_mask=audio_mask.mask, hidden_states=tuple(hidden) if hidden is not None else None,
            attentions=tuple(attentions) if attentions is not None else None,
        )
        return output if return_dict else output.to_tuple()


class HiCMAEForPreTraining(HiCMAEPreTrainedModel):
    """HiCMAE pre-training: masked video + audio reconstruction through skip-connected decoders plus the
    hierarchical InfoNCE (``engine_for_pretraining_av.py``'s loss)."""

    def __init__(self, config: HiCMAEConfig):
        super().__init__(config)
        self.encoder = HiCMAEModel(config)
        c = config
        self.decoder = SkipDecoder(c, c.hidden_size, c.num_patches, c.tubelet_size * c.patch_size**2 * c.num_channels)
        self.audio_decoder = SkipDecoder(c, c.audio_hidden_size, c.audio_num_patches, c.audio_patch_size**2)
        self.tube_mask = TubeMaskGenerator(c.grid_size, c.mask_ratio)
        self.audio_random_mask = RandomMaskGenerator(c.audio_num_patches, c.audio_mask_ratio)
        self.post_init()

    def mask_generator(self, batch_size: int, generator: torch.Generator | None = None, device=None) -> dict:
        """Both masks: ``{"bool_masked_pos": tube mask, "audio_bool_masked_pos": random mask}``."""
        return {
            "bool_masked_pos": self.tube_mask(batch_size, generator, device),
            "audio_bool_masked_pos": self.audio_random_mask(batch_size, generator, device),
        }

    def video_target(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, L, t*p*p*C]``: pixels un-normalised with the ImageNet statistics (3 channels), per-tubelet
        normalised, and with ``use_frame_diff_as_target`` frame ``k > 0`` of each tubelet minus frame 0."""
        frames = pixel_values.float()
        if self.config.num_channels == 3:
            mean = torch.tensor(IMAGENET_DEFAULT_MEAN, device=frames.device).reshape(1, 1, 3, 1, 1)
            std = torch.tensor(IMAGENET_DEFAULT_STD, device=frames.device).reshape(1, 1, 3, 1, 1)
            frames = frames * std + mean
        t = self.config.tubelet_size
        patches = tubelet_patchify(frames, t, self.config.patch_size)  # [B, L, t*p*p, C]
        if self.config.norm_pix_loss:
            patches = normalise_patches(patches)
        if self.config.use_frame_diff_as_target:
            batch, length, pixels, channels = patches.shape
            patches = patches.reshape(batch, length, t, pixels // t, channels)
            patches = torch.cat([patches[:, :, :1], patches[:, :, 1:] - patches[:, :, :1]], dim=2)
        return patches.flatten(2)

    def audio_target(self, input_values: torch.Tensor) -> torch.Tensor:
        """``[B, La, p*p]`` per-patch normalised filter-bank patches."""
        size = self.config.audio_patch_size
        patches = patchify(input_values.float().unsqueeze(1), size).unsqueeze(-1)  # [B, La, p*p, 1]
        return (normalise_patches(patches) if self.config.norm_pix_loss else patches).flatten(2)

    def contrastive_logits(self, video_layers, audio_layers) -> tuple[list, list]:
        """Per skip layer: mean-pooled, L2-normalised visible tokens, ``video @ audio.T / tau`` and its transpose."""
        per_video, per_audio = [], []
        for layer in self.config.skip_connection_layers:
            video = nn.functional.normalize(video_layers[layer].mean(dim=1), dim=-1)
            audio = nn.functional.normalize(audio_layers[layer].mean(dim=1), dim=-1)
            logits = video @ audio.t() / self.config.contrastive_temperature
            per_video.append(logits)
            per_audio.append(logits.t())
        return per_video, per_audio

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        audio_bool_masked_pos: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> HiCMAEPreTrainingOutput | tuple:
        r"""
        pixel_values (`[batch, frames, channels, height, width]`), input_values (`[batch, time, mel]`): a clip and
            its filter bank; both are required.
        bool_masked_pos (`[batch, T'*H'*W']`, *optional*): video mask, True = masked (default: tube mask at
            `config.mask_ratio` from `mask_rng`). audio_bool_masked_pos (`[batch, La]`, *optional*): audio mask
            (default: random at `config.audio_mask_ratio`).
        """
        require_both(pixel_values, input_values)
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        batch, device = pixel_values.shape[0], pixel_values.device
        if bool_masked_pos is None:
            bool_masked_pos = self.tube_mask(batch, self.mask_rng, device)
        if audio_bool_masked_pos is None:
            audio_bool_masked_pos = self.audio_random_mask(batch, self.mask_rng, device)
        encoded = self.encoder(
            pixel_values, input_values, bool_masked_pos, audio_bool_masked_pos, output_hidden_states=output_hidden_states,
            output_attentions=output_attentions, return_dict=True, **kwargs,
        )
        video_mask, audio_mask = mask_from_bool(encoded.mask), mask_from_bool(encoded.audio_mask)
        skips = self.config.skip_connection_layers
        logits = self.decoder(encoded.last_hidden_state, [encoded.video_layers[i] for i in skips], video_mask)
        audio_logits = self.audio_decoder(
            encoded.audio_last_hidden_state, [encoded.audio_layers[i] for i in skips], audio_mask
        )
        labels = gather_tokens(self.video_target(pixel_values), positions_of(video_mask.mask))
        audio_labels = gather_tokens(self.audio_target(input_values), positions_of(audio_mask.mask))
        loss_video = nn.functional.mse_loss(logits.float(), labels)
        loss_audio = nn.functional.mse_loss(audio_logits.float(), audio_labels)
        per_video, per_audio = self.contrastive_logits(encoded.video_layers, encoded.audio_layers)
        targets = torch.arange(batch, device=device)
        loss_contrastive = sum(
            0.5 * (nn.functional.cross_entropy(v.float(), targets) + nn.functional.cross_entropy(a.float(), targets))
            for v, a in zip(per_video, per_audio)
        )
        loss = loss_video + loss_audio + self.config.contrastive_weight * loss_contrastive
        output = HiCMAEPreTrainingOutput(
            loss=loss, logits=logits, mask=video_mask.mask, audio_logits=audio_logits, audio_mask=audio_mask.mask,
            logits_per_video=tuple(per_video), logits_per_audio=tuple(per_audio),
            loss_terms={"video": loss_video.detach(), "audio": loss_audio.detach(), "contrastive": loss_contrastive.detach()},
            hidden_states=encoded.hidden_states, attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


class HiCMAEForAudioVisualClassification(HiCMAEPreTrainedModel):
    """The official fine-tuning model (``AudioVisionTransformer``): every encoder block's normed tokens are
    mean-pooled and mixed with softmax-ed learnable layer weights per tower, the fusion encoder's tokens are
    mean-pooled per modality, and the four vectors, concatenated, go through ``fc_norm`` and a linear head."""

    def __init__(self, config: HiCMAEConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.encoder = HiCMAEModel(config)
        self.video_layer_weights = nn.Parameter(torch.empty(config.num_hidden_layers))
        self.audio_layer_weights = nn.Parameter(torch.empty(config.audio_num_hidden_layers))
        width = 2 * (config.hidden_size + config.audio_hidden_size)
        self.fc_norm = nn.LayerNorm(width, eps=config.layer_norm_eps)
        self.classifier = classification_head(width, config.num_labels)
        self.post_init()

    def pooled_features(self, encoded: HiCMAEModelOutput) -> torch.Tensor:
        def mix(layers, weights):
            pooled = torch.stack([layer.mean(dim=1) for layer in layers], dim=1)  # [B, L, D]
            return (pooled * weights.softmax(dim=0).view(1, -1, 1)).sum(dim=1)

        features = [
            mix(encoded.video_layers, self.video_layer_weights), mix(encoded.audio_layers, self.audio_layer_weights),
            encoded.last_hidden_state.mean(dim=1), encoded.audio_last_hidden_state.mean(dim=1),
        ]
        return self.fc_norm(torch.cat(features, dim=-1))

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        input_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        encoded = self.encoder(
            pixel_values, input_values, output_hidden_states=output_hidden_states, output_attentions=output_attentions,
            return_dict=True, **kwargs,
        )
        logits = self.classifier(self.pooled_features(encoded))
        loss = None
        if labels is not None:
            loss = nn.functional.cross_entropy(logits.float(), labels.to(logits.device))
        output = ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=encoded.hidden_states, attentions=encoded.attentions
        )
        return output if return_dict else output.to_tuple()
