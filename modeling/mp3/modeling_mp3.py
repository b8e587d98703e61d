# Generated from hf_mim.models.mp3.modeling_mp3 by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""MP3 — Masked Patch Position Prediction (Zhai et al., ICML 2022, "Position Prediction as an Effective
Pretraining Strategy", https://arxiv.org/abs/2207.07611).

No official code exists (apple has no public repository for it; the unofficial timm/DeiT fork
``arshadshk/Position-Prediction-Pretraining`` keeps its core in unreadable submodules). What this follows, from the
paper / the hf_mim spec section 8:

* The patch tokens enter the ViT **without any position embedding** (``config.position_embedding_type`` must be
  "none" for pre-training and no relative position bias is allowed), so the encoder is permutation-equivariant.
* A random subset of ``int(L * (1 - eta))`` patches per image (MAE-style noise, lowest noise kept) are the
  *context*. In every attention layer **all** tokens are queries but only the context tokens (and the cls token,
  which carries no position) are keys / values. This is done with an additive attention bias ``[B, 1, T, T]``
  (0 for context keys, ``-inf`` for the others) handed to the shared blocks, i.e. the paper's
  ``Q = all, K = V = context`` formulation; context tokens attend to themselves. The bias is identical in every
  layer. The same attention could be computed more cheaply by gathering only the context keys; the masked form
  is kept so any hf_mim attention kernel (eager / sdpa) can run it.
* A linear head maps every output patch token to ``L`` logits and the loss is the cross-entropy against the
  patch's raster index, averaged over all patches (``loss_on_context=True``, our reading of the paper
  [unverified]) or over the non-context patches only.
* Whether the paper keeps a cls token in pre-training is unverified; we keep it (``use_cls_token=True``, like DeiT)
  as an always-visible key with no position embedding, so it cannot leak positions.
* Initialisation follows timm/DeiT (truncated-normal std 0.02 Linear weights, zero biases, PyTorch's default conv
  init for the patch embedding, normal(0.02) cls token), since the paper builds on the DeiT code base.
* Fine-tuning (``MP3ForImageClassification``) runs without the attention mask; load with
  ``position_embedding_type="learned"`` to add the position embeddings the paper adds for fine-tuning.
"""

import torch
from torch import nn
from transformers import initialization as init

from .mim_layers_patch_embed import PatchEmbed
from .mim_modeling_utils import ClassificationHead, MIMEncoderOutput, MIMPreTrainedModel, MIMPreTrainingOutput, MIMViTForImageClassification, MIMViTModel, torch_default_init_
from .configuration_mp3 import MP3Config


class MP3PreTrainedModel(MIMPreTrainedModel):
    """timm/DeiT initialisation (the paper's code base); classification heads as in MAE fine-tuning."""

    config_class = MP3Config

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear) and not isinstance(module, ClassificationHead):
            init.trunc_normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, PatchEmbed):
            torch_default_init_(module.proj)
        else:
            super()._init_weights(module)


def context_attention_bias(
    context_mask: torch.Tensor, num_prefix_tokens: int, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Additive attention bias ``[B, 1, T, T]`` (``T = prefix + L``) that lets every query attend only to the
    prefix (cls) tokens and to the context patches. ``context_mask``: bool ``[B, L]``, True = context."""
    batch = context_mask.shape[0]
    keys = torch.cat([context_mask.new_ones(batch, num_prefix_tokens), context_mask.bool()], dim=1)
    bias = torch.zeros(keys.shape, dtype=dtype, device=context_mask.device)
    bias = bias.masked_fill(~keys, float("-inf"))
    return bias[:, None, None, :].expand(-1, 1, keys.shape[1], -1)


class MP3Model(MP3PreTrainedModel, MIMViTModel):
    """The MP3 encoder: a ViT whose patch tokens carry no position embedding in pre-training.

    With masking input (``noise`` / ``bool_masked_pos`` / ``mask_ratio``) **no token is dropped**: the masked
    (non-context) patches are removed from the keys and values of every attention layer only. Without masking
    input it is a plain ViT over all patches (fine-tuning / feature extraction)."""

    _keys_to_ignore_on_load_unexpected = [r"^head\."]

    def attention_bias(
        self, ids_keep: torch.Tensor | None, grid: tuple[int, int], context_mask: torch.Tensor | None = None
    ) -> torch.Tensor | None:
        """Key mask of the context patches (``context_mask`` True = context), on top of the parent's bias."""
        bias = super().attention_bias(ids_keep, grid)
        if context_mask is None:
            return bias
        mp3_bias = context_attention_bias(context_mask, self.num_prefix_tokens)
        return mp3_bias if bias is None else bias + mp3_bias

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        interpolate_pos_encoding: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MIMEncoderOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, channels, height, width)`): normalised images.
        noise (`torch.FloatTensor` of shape `(batch, num_patches)`, *optional*): the `int(L * (1 - mask_ratio))`
            lowest-noise patches are the context (the only keys / values).
        bool_masked_pos (`torch.BoolTensor` of shape `(batch, num_patches)`, *optional*): True = not context
            (masked from the keys / values). Every row needs at least one context patch.
        mask_ratio (`float`, *optional*): draw a random context set with this eta.

        `last_hidden_state` always holds the cls token (if any) and **all** `L` patch tokens in raster order.
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        tokens, cls, grid = self.embed(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding)
        mask_info = self.compute_mask(tokens.shape[0], tokens.shape[1], tokens.device, noise, bool_masked_pos, mask_ratio)
        mask = None if mask_info is None else mask_info.mask.bool()
        if mask is not None and bool(mask.all(dim=1).any()):
            raise ValueError("every image needs at least one context patch (a row of bool_masked_pos is all True)")
        hidden = tokens if cls is None else torch.cat([cls, tokens], dim=1)
        bias = self.attention_bias(None, grid, None if mask is None else ~mask)
        if bias is not None:
            bias = bias.to(hidden.dtype)
        hidden, all_hidden, all_attn = self.run_blocks(hidden, bias, output_hidden_states, output_attentions, **kwargs)
        output = MIMEncoderOutput(
            last_hidden_state=hidden,
            mask=mask,
            ids_restore=None if mask_info is None else mask_info.ids_restore,
            ids_keep=None if mask_info is None else mask_info.ids_keep,
            hidden_states=all_hidden,
            attentions=all_attn,
        )
        return output if return_dict else output.to_tuple()


def position_cross_entropy(
    logits: torch.Tensor, loss_mask: torch.Tensor | None = None, label_smoothing: float = 0.0
) -> torch.Tensor:
    """Cross-entropy of ``logits [B, L, L]`` against the raster index of each patch, averaged over the patches
    selected by ``loss_mask`` (bool ``[B, L]``, all when None) of the whole batch."""
    batch, length, num_classes = logits.shape
    labels = torch.arange(length, device=logits.device).expand(batch, -1)
    per_token = nn.functional.cross_entropy(
        logits.float().reshape(-1, num_classes), labels.reshape(-1), reduction="none", label_smoothing=label_smoothing
    ).reshape(batch, length)
    if loss_mask is None:
        return per_token.mean()
    weight = loss_mask.to(per_token.dtype)
    return (per_token * weight).sum() / weight.sum().clamp(min=1.0)


class MP3ForPreTraining(MP3PreTrainedModel):
    """MP3 encoder + per-token linear position classifier (``hidden_size -> num_patches``)."""

    def __init__(self, config: MP3Config):
        super().__init__(config)
        if config.position_embedding_type != "none":
            raise ValueError(
                "MP3 pre-training must not give the encoder position embeddings (they are the prediction target): "
                f"set position_embedding_type='none', got {config.position_embedding_type!r}"
            )
        self.encoder = MP3Model(config)
        self.head = nn.Linear(config.hidden_size, config.num_patches)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MIMPreTrainingOutput | tuple:
        r"""
        noise (`torch.FloatTensor` of shape `(batch, num_patches)`, *optional*): fixes the context set (MAE
            semantics: the `int(L * (1 - mask_ratio))` lowest-noise patches are context).
        bool_masked_pos (`torch.BoolTensor`, *optional*): explicit mask, True = not context.
        mask_ratio (`float`, *optional*): overrides `config.mask_ratio` (eta) for this call.

        Returns `logits` `[B, L, L]` (position scores of every patch token, raster order) and `mask` (True = not
        context; None when eta = 0).
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        grid = self.encoder.patch_embed.check_input(pixel_values)
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        if noise is None and bool_masked_pos is None and ratio > 0:
            noise = self.draw_noise(pixel_values.shape[0], grid[0] * grid[1], pixel_values.device)
        encoded = self.encoder(
            pixel_values,
            noise=noise,
            bool_masked_pos=bool_masked_pos,
            mask_ratio=ratio,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        logits = self.head(encoded.last_hidden_state[:, self.encoder.num_prefix_tokens :])
        loss_mask = None if (self.config.loss_on_context or encoded.mask is None) else encoded.mask
        loss = position_cross_entropy(logits, loss_mask, self.config.label_smoothing)
        output = MIMPreTrainingOutput(
            loss=loss,
            logits=logits,
            mask=encoded.mask,
            ids_restore=encoded.ids_restore,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


class MP3ForImageClassification(MP3PreTrainedModel, MIMViTForImageClassification):
    """Fine-tuning / linear probing without the attention mask. The paper fine-tunes with position embeddings
    added: load with ``position_embedding_type="learned"`` (the new ``encoder.pos_embed`` is then initialised)."""

    encoder_class = MP3Model
