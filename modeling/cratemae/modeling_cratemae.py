# Generated from hf_mim.models.cratemae.modeling_cratemae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""CRATE-MAE: a masked autoencoder whose blocks are unrolled steps of sparse rate reduction.

Each encoder block compresses the tokens with multi-head subspace self-attention (MSSA: one bias-free projection
``U`` serves as query, key and value) and then sparsifies them with one ISTA step against a square dictionary ``D``;
each decoder block approximately inverts one: a linear map by a square dictionary, then *subtracts* an MSSA step.
Masked patches enter the encoder as mask tokens (masked completion), unlike MAE which drops them.

Follows Ma-Lab-Berkeley/CRATE ``model/crate_ae/crate_ae.py`` (``forward_encoder``, ``forward_decoder``,
``forward_loss``), ``crate_encoder.py`` and ``crate_decoder.py`` where they differ from the paper:

* the ISTA step starts from the normalised input ``u = LN(z)``, with no skip from the un-normalised ``z``:
  ``z <- ReLU(u + eta * (u D - u D^T D) - eta * lambda)``;
* the fixed 2-D sin-cos positions (the official ``decoder_pos_embed``, cls slot zero) are added once, in the
  encoder, after the mask tokens are put in place; the decoder reads the normalised encoder output as is;
* the block LayerNorms use PyTorch's default eps (1e-5), the final ones 1e-6.

The official model also creates ``pos_embed`` and ``decoder_embed``, which its forward never uses; hf_mim does not
create these dead parameters (the converter drops them), so nothing needs ``find_unused_parameters``. Weights start
as officially (xavier-uniform Linear and patch projection, kaiming-uniform dictionaries, normal(0.02) cls and mask
tokens), except the patch projection's bias, zero as in hf_mim's MAE (officially PyTorch's default).
"""

import torch
from torch import nn
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer

from .mim_layers_attention import Attention, dispatch_attention
from .mim_modeling_utils import MIMEncoderOutput, MIMPreTrainedModel, MIMPreTrainingOutput, MIMViTForImageClassification, MIMViTModel, PixelTargetMixin, is_loaded
from .configuration_cratemae import CRATEMAEConfig
from .modeling_mae import masked_mse


class SubspaceAttention(Attention):
    """Multi-head subspace self-attention (MSSA): one bias-free projection ``U`` gives the heads' subspace
    coordinates ``w = U z``, used as query, key and value alike (``softmax(w w^T / sqrt(d)) w``), then an output
    projection with bias (absent with one head, as officially: ``project_out``)."""

    def __init__(self, config, dim: int, num_heads: int):
        super().__init__(config, dim, num_heads, qkv_bias=False, attn_drop=config.attention_probs_dropout_prob)
        self.qkv = nn.Linear(dim, dim, bias=False)
        if num_heads == 1:
            self.proj = nn.Identity()

    def forward(self, hidden_states: torch.Tensor, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch, length, _ = hidden_states.shape
        coordinates = self.qkv(hidden_states).reshape(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        output, weights = dispatch_attention(self, coordinates, coordinates, coordinates, None, **kwargs)
        return self.proj(output), weights


class SquareDictionary(nn.Module):
    """A bias-free square map ``x D^T`` (``F.linear(x, D)``), kaiming-uniform initialised as the official
    ``FeedForward.weight``; the decoder's dictionary step."""

    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim, dim))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(hidden_states, self.weight)


class ISTAStep(SquareDictionary):
    """One ISTA step of sparse coding against the dictionary, from the normalised tokens ``u``:
    ``ReLU(u + eta * (u D - u D^T D) - eta * lambda)`` (the official ``grad_2 - grad_1``, computed here as
    ``(u - u D^T) D``). Its output is non-negative: the sparse codes."""

    def __init__(self, dim: int, step_size: float, lambd: float):
        super().__init__(dim)
        self.step_size = step_size
        self.lambd = lambd

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        residual = hidden_states - super().forward(hidden_states)
        gradient = nn.functional.linear(residual, self.weight.t())
        return nn.functional.relu(hidden_states + self.step_size * gradient - self.step_size * self.lambd)


class CRATEEncoderBlock(GradientCheckpointingLayer):
    """Compression then sparsification: ``z <- z + MSSA(LN(z))``, then ``z <- ISTA(LN(z))`` (no skip around ISTA)."""

    def __init__(self, config: CRATEMAEConfig):
        super().__init__()
        dim = config.hidden_size
        self.norm1 = nn.LayerNorm(dim, eps=config.block_norm_eps)
        self.attn = SubspaceAttention(config, dim, config.num_attention_heads)
        self.norm2 = nn.LayerNorm(dim, eps=config.block_norm_eps)
        self.ista = ISTAStep(dim, config.ista_step_size, config.ista_lambda)

    def forward(self, hidden_states, attention_bias=None, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        compressed, weights = self.attn(self.norm1(hidden_states), **kwargs)
        return self.ista(self.norm2(hidden_states + compressed)), weights


class CRATEDecoderBlock(GradientCheckpointingLayer):
    """The approximate inverse of an encoder block: ``y = LN(x) D^T``, then ``x <- y - MSSA(LN(y))`` (the
    attention step is *subtracted*: anti-compression)."""

    def __init__(self, config: CRATEMAEConfig):
        super().__init__()
        dim = config.decoder_hidden_size
        self.norm1 = nn.LayerNorm(dim, eps=config.block_norm_eps)
        self.dictionary = SquareDictionary(dim)
        self.norm2 = nn.LayerNorm(dim, eps=config.block_norm_eps)
        self.attn = SubspaceAttention(config, dim, config.decoder_num_attention_heads)

    def forward(self, hidden_states, **kwargs) -> tuple[torch.Tensor, torch.Tensor | None]:
        expanded = self.dictionary(self.norm1(hidden_states))
        compressed, weights = self.attn(self.norm2(expanded), **kwargs)
        return expanded - compressed, weights


class CRATEDecoder(nn.Module):
    """Decoder blocks, final norm and the pixel head, on the whole encoder output (cls included, no projection)."""

    def __init__(self, config: CRATEMAEConfig):
        super().__init__()
        dim = config.decoder_hidden_size
        self.blocks = nn.ModuleList([CRATEDecoderBlock(config) for _ in range(config.decoder_num_hidden_layers)])
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.pred = nn.Linear(dim, config.patch_size**2 * config.num_channels)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            hidden_states = block(hidden_states)[0]
        return self.pred(self.norm(hidden_states))


class CRATEMAEPreTrainedModel(MIMPreTrainedModel):
    config_class = CRATEMAEConfig
    _no_split_modules = ["CRATEEncoderBlock", "CRATEDecoderBlock"]

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, SquareDictionary):
            if not is_loaded(module.weight):  # official: init.kaiming_uniform_(weight), PyTorch's defaults
                init.kaiming_uniform_(module.weight)
        else:
            super()._init_weights(module)


class CRATEMAEModel(CRATEMAEPreTrainedModel, MIMViTModel):
    """The white-box CRATE encoder. Without masking input it encodes every patch; with ``noise`` (MAE semantics),
    ``bool_masked_pos`` or ``mask_ratio`` the masked patches are *replaced* by the mask token (build it with
    ``use_mask_token=True``, as the pre-training model does) and stay in the sequence."""

    _keys_to_ignore_on_load_unexpected = [r"^decoder\.", r"^mask_token$"]

    @staticmethod
    def build_blocks(config: CRATEMAEConfig) -> nn.ModuleList:
        return nn.ModuleList([CRATEEncoderBlock(config) for _ in range(config.num_hidden_layers)])

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MIMEncoderOutput | tuple:
        r"""
        noise (`torch.FloatTensor` of shape `(batch, num_patches)`, *optional*): MAE-style noise; the
            `int(L * (1 - mask_ratio))` lowest-noise patches stay visible, the others become mask tokens.
        bool_masked_pos (`torch.BoolTensor` of shape `(batch, num_patches)`, *optional*): explicit mask, True = masked.
        mask_ratio (`float`, *optional*): ratio for `noise` (default `config.mask_ratio`), or draw a random mask.
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        mask_info = None
        if noise is not None or (bool_masked_pos is None and mask_ratio):
            grid = self.patch_grid(pixel_values)
            mask_info = self.compute_mask(
                pixel_values.shape[0], grid[0] * grid[1], pixel_values.device, noise, bool_masked_pos, mask_ratio
            )
            bool_masked_pos = mask_info.mask
        output = super().forward(
            pixel_values, bool_masked_pos=bool_masked_pos, replace_masked=bool_masked_pos is not None,
            return_dict=True, **kwargs,
        )
        if mask_info is not None:
            output.ids_restore = mask_info.ids_restore
        return output if return_dict else output.to_tuple()


class CRATEMAEForPreTraining(PixelTargetMixin, CRATEMAEPreTrainedModel):
    def __init__(self, config: CRATEMAEConfig):
        super().__init__(config)
        self.encoder = CRATEMAEModel(config, use_mask_token=True)
        self.decoder = CRATEDecoder(config)
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
        noise (`torch.FloatTensor` of shape `(batch, num_patches)`, *optional*): fixes the random mask (MAE
            semantics). bool_masked_pos (`torch.BoolTensor`, *optional*): explicit mask (rows may mask different
            numbers of patches: nothing is dropped). mask_ratio (`float`, *optional*): overrides `config.mask_ratio`.

        The loss is the per-patch MSE averaged over the masked patches of the batch; `logits` are `[B, L, p*p*C]`.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        grid = self.patch_grid(pixel_values)
        noise = self.noise_or_draw(
            noise, bool_masked_pos, ratio, pixel_values.shape[0], grid[0] * grid[1], pixel_values.device
        )
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
        logits = self.decoder(encoded.last_hidden_state)[:, self.encoder.num_prefix_tokens :]
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


class CRATEMAEForImageClassification(CRATEMAEPreTrainedModel, MIMViTForImageClassification):
    """Linear probe / fine-tuning head on the CRATE encoder: the normalised cls token by default (the official
    CRATE classifiers' ``pool="cls"``), or ``pooling="mean"`` (MAE fine-tuning: mean of the patch tokens + LN)."""

    encoder_class = CRATEMAEModel
