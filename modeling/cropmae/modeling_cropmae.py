# Generated from hf_mim.models.cropmae.modeling_cropmae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""CropMAE: SiamMAE on two crops of one still image instead of two video frames.

A global crop is encoded whole by a shared ViT and becomes the decoder's memory; a local crop taken INSIDE the
global crop is masked at 98.5% (2 of 196 patches visible) and encoded by the same ViT; a post-norm
cross-attention decoder rebuilds the local crop from its 2 visible tokens plus mask tokens (queries) attending to
the global view's tokens. With so few visible patches the pixels must come from the global view, so the encoder
learns where the local content sits in the global one (correspondence / object-centric features).

Follows alexandre-eymael/CropMAE @5d0dab2:
* ``models/SiamMAE.py`` ``SiameseMAE.forward``: the FIRST view (global under ``GlobalToLocal``) goes through
  ``forward_encoder_no_masking``; the second through MAE ``forward_encoder`` (pos-embed added before MAE
  ``random_masking``); ``forward_decoder``: both views through ``decoder_embed``; the masked view gets mask tokens,
  is unshuffled and gets the fixed sin-cos ``decoder_pos_embed`` (cls slot zero); the memory (cls included) gets
  NO decoder position embedding; ``decoder_norm``, ``decoder_pred``, cls output dropped.
* ``models/components/DecoderBlock.py``: post-norm ``TransformerDecoderLayer`` in the order cross-attention ->
  feed-forward -> self-attention, ``x = LN(x + dropout(branch(x)))`` each, FFN width 2048, GELU, dropout 0.1 on
  attention weights and every branch, LayerNorm eps 1e-6. Here the attentions are hf_mim's ``CrossAttention``
  (separate q/k/v projections: split ``multihead_attn.in_proj_weight`` in three to convert) and ``Attention``
  (fused ``qkv`` = ``self_attn.in_proj_weight`` as is), so every attention backend works.
* Loss: MAE ``forward_loss`` on the local view with ``norm_pix_loss`` (the release script sets it): per-patch
  MSE averaged over the masked patches of the batch.
"""

import math

import torch
from torch import nn
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.modeling_layers import GradientCheckpointingLayer

from .mim_layers_attention import Attention, CrossAttention
from .mim_layers_decoder import MAEDecoder
from .mim_masking_core import restore_sequence
from .mim_modeling_utils import MIMPreTrainingOutput
from .configuration_cropmae import CropMAEConfig
from .modeling_mae import MAEForImageClassification, MAEForPreTraining, MAEModel, MAEPreTrainedModel, masked_mse


class CropMAEDecoderBlock(GradientCheckpointingLayer):
    """Post-norm block: ``x = norm2(x + CA(x, memory))``, ``x = norm3(x + FFN(x))``, ``x = norm1(x + SA(x))``.

    Names follow the official ``DecoderBlock`` (``multihead_attn`` is the cross-attention, ``linear1/2`` the FFN),
    so the official norm numbering (norm2 after cross-attention) is kept."""

    def __init__(self, config, dim: int, num_heads: int, intermediate_size: int, dropout: float, eps: float):
        super().__init__()
        self.multihead_attn = CrossAttention(config, dim, num_heads, qkv_bias=True, attn_drop=dropout)
        self.self_attn = Attention(config, dim, num_heads, qkv_bias=True, attn_drop=dropout)
        for linear in (self.multihead_attn.q, self.multihead_attn.k, self.multihead_attn.v):
            linear.xavier_stacked_rows = 3  # see CropMAEPreTrainedModel._init_weights
        self.linear1 = nn.Linear(dim, intermediate_size)
        self.activation = ACT2FN["gelu"]
        self.linear2 = nn.Linear(intermediate_size, dim)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.norm3 = nn.LayerNorm(dim, eps=eps)

    def forward(self, hidden_states: torch.Tensor, memory: torch.Tensor, **kwargs) -> torch.Tensor:
        cross, _ = self.multihead_attn(hidden_states, memory, **kwargs)
        hidden_states = self.norm2(hidden_states + self.dropout2(cross))
        ffn = self.linear2(self.dropout(self.activation(self.linear1(hidden_states))))
        hidden_states = self.norm3(hidden_states + self.dropout3(ffn))
        attn, _ = self.self_attn(hidden_states, **kwargs)
        return self.norm1(hidden_states + self.dropout1(attn))


class CropMAEDecoder(MAEDecoder):
    """MAE's decoder pieces (``embed``, ``mask_token``, fixed sin-cos ``pos_embed``, ``norm``, ``pred``) with the
    self-attention blocks replaced by :class:`CropMAEDecoderBlock` that also read the global view."""

    def __init__(self, config: CropMAEConfig):
        super().__init__(config, **{**self.config_arguments(config), "depth": 0})  # blocks built below
        self.blocks = nn.ModuleList(
            [
                CropMAEDecoderBlock(
                    config,
                    config.decoder_hidden_size,
                    config.decoder_num_attention_heads,
                    config.decoder_intermediate_size,
                    config.decoder_dropout,
                    config.layer_norm_eps,
                )
                for _ in range(config.decoder_num_hidden_layers)
            ]
        )

    def forward(
        self,
        latent: torch.Tensor,
        ids_restore: torch.Tensor,
        memory_latent: torch.Tensor,
        grid_size: tuple[int, int] | None = None,
    ) -> torch.Tensor:
        """``latent``: encoded local view ``[B, (cls) + K, D_enc]``; ``memory_latent``: encoded global view
        ``[B, (cls) + L, D_enc]``. Returns local-view predictions ``[B, L, output_dim]`` in raster order."""
        memory = self.embed(memory_latent)  # no decoder position embedding on the memory (official)
        x = self.embed(latent)
        if self.has_cls_token:
            x = torch.cat([x[:, :1], restore_sequence(x[:, 1:], self.mask_token, ids_restore)], dim=1)
        else:
            x = restore_sequence(x, self.mask_token, ids_restore)
        x = x + self.position_embeddings(grid_size or self.grid_size)
        for block in self.blocks:
            x = block(x, memory)
        x = self.pred(self.norm(x))
        return x[:, 1:] if self.has_cls_token else x


class CropMAEPreTrainedModel(MAEPreTrainedModel):
    config_class = CropMAEConfig

    @torch.no_grad()
    def _init_weights(self, module) -> None:
        super()._init_weights(module)
        stacked = getattr(module, "xavier_stacked_rows", None)
        if isinstance(module, nn.Linear) and stacked:
            # the official cross-attention is nn.MultiheadAttention: xavier-uniform over the stacked [3D, D]
            # in_proj_weight, a smaller bound than xavier on each [D, D] projection separately
            out_dim, in_dim = module.weight.shape
            bound = math.sqrt(6.0 / (stacked * out_dim + in_dim))
            init.uniform_(module.weight, -bound, bound)


class CropMAEModel(CropMAEPreTrainedModel, MAEModel):
    """The CropMAE encoder: a plain ViT (MAE's), shared by both views during pre-training."""


class CropMAEForPreTraining(CropMAEPreTrainedModel, MAEForPreTraining):
    """CropMAE pre-training. ``pixel_values`` is the LOCAL view (masked, reconstructed); ``pixel_values_global``
    is the global crop that contains it (encoded unmasked, used as cross-attention memory). Build both with
    ``hf_mim.get_method("cropmae").make_transform(processor)``."""

    def __init__(self, config: CropMAEConfig):
        # skip MAEForPreTraining.__init__ (it would build, then throw away, a self-attention-only decoder)
        super(MAEForPreTraining, self).__init__(config)
        self.encoder = CropMAEModel(config)
        self.decoder = CropMAEDecoder(config)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        pixel_values_global: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        interpolate_pos_encoding: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MIMPreTrainingOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, channels, height, width)`): the local view.
        pixel_values_global (`torch.FloatTensor` of the same shape): the global view the local one was cropped
            from. Pass ``pixel_values_global=pixel_values`` for the official ``SameViews`` ablation; in eval mode
            that is also what happens when it is omitted (so one-image tools work); in training it is an error.
        noise (`torch.FloatTensor` of shape `(batch, num_patches)`, *optional*): fixes the local view's mask (MAE
            semantics: the ``int(L * (1 - mask_ratio))`` lowest-noise patches stay visible).
        bool_masked_pos (`torch.BoolTensor`, *optional*): explicit local-view mask, True = masked.
        mask_ratio (`float`, *optional*): overrides `config.mask_ratio` for this call.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if pixel_values is None:
            raise ValueError("pixel_values (the local view) is required")
        if pixel_values_global is None:
            if self.training:
                raise ValueError(
                    "CropMAE needs pixel_values_global, the global crop that contains the local view pixel_values; "
                    "build both with hf_mim.get_method('cropmae').make_transform(processor), or pass "
                    "pixel_values_global=pixel_values to reconstruct a view from itself (official SameViews)"
                )
            # eval only (reconstruction grids, generic tools that pass one image): the official SameViews strategy
            pixel_values_global = pixel_values
        if pixel_values_global.shape != pixel_values.shape:
            raise ValueError(
                f"the global view {tuple(pixel_values_global.shape)} and the local view {tuple(pixel_values.shape)} "
                "must have the same shape (both crops are resized to the model's image size)"
            )
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        grid = self.patch_grid(pixel_values)
        noise = self.noise_or_draw(
            noise, bool_masked_pos, ratio, pixel_values.shape[0], grid[0] * grid[1], pixel_values.device
        )
        memory = self.encoder(
            pixel_values_global, interpolate_pos_encoding=interpolate_pos_encoding, return_dict=True
        ).last_hidden_state
        encoded = self.encoder(
            pixel_values,
            noise=noise,
            bool_masked_pos=bool_masked_pos,
            mask_ratio=ratio,
            interpolate_pos_encoding=interpolate_pos_encoding,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        logits = self.decoder(encoded.last_hidden_state, encoded.ids_restore, memory, grid)
        loss = masked_mse(logits, self.target(pixel_values), encoded.mask)
        output = MIMPreTrainingOutput(
            loss=loss,
            logits=logits,
            mask=encoded.mask,
            ids_restore=encoded.ids_restore,
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


class CropMAEForImageClassification(CropMAEPreTrainedModel, MAEForImageClassification):
    encoder_class = CropMAEModel
