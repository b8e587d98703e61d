# Generated from hf_mim.models.cae.modeling_cae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""CAE: Context Autoencoder (Chen et al., IJCV 2023).

The encoder sees only the visible patches (plus cls). A *latent contextual regressor* of cross-attention blocks
predicts the latents of the masked patches: its queries start as a shared mask token (+ the masked positions), its
keys are LN(visible latents and current queries + positions) and its values LN(the same, without positions). Two
losses use these predictions:

* alignment: MSE against what the encoder itself outputs when it is run, under ``torch.no_grad``, on the masked
  patches only (plus cls, dropped afterwards);
* reconstruction: a decoder that sees *only* the predicted masked latents (+ positions) predicts the target of the
  masked patches.

Follows Atten4Vis/CAE ``models/modeling_cae.py`` (``ContextAutoencoderViT``), ``models/modeling_cae_helper.py``
(``VisionTransformerEncoder``, ``LatentRegresser``, ``RegressorBlock``, ``CrossAttention``, ``Decoder``) and
``furnace/engine_for_pretraining.py`` (losses), with these documented choices:

* Alignment encoder: the official code keeps a second encoder whose parameters are copied from the encoder at
  init and then *aliased* to the encoder's storage (``alignment_parameter_update`` sets ``param.data``), so it
  always has the encoder's current weights and gets no gradient. Here the encoder itself is run under
  ``torch.no_grad`` (same numbers, no duplicate weights; official ``alignment_encoder.*`` keys are dropped when
  converting). As officially it runs in the model's train/eval mode, so drop path is active in training.
* Target: the official target is DALL-E token ids (CE over 8192 classes). DALL-E tokenizer weights cannot be
  downloaded here, so hf_mim defaults to per-patch normalised pixels (MSE over masked patches, MAE reduction);
  ``reconstruction_target="tokens"`` keeps the official CE given precomputed ``visual_token_ids``.
* Init: the official model's final ``apply(_init_weights)`` (``fix_init_weight`` off in the released scripts)
  overwrites every Linear with xavier-uniform / zero bias, so no BEiT depth rescaling survives; the patch
  embedding, cls and mask tokens keep truncated-normal(0.02) truncated at +-std.
* Masks are drawn in ``forward`` (seedable ``mask_rng``) instead of the dataloader; same generator algorithm.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init

from .mim_layers_attention import CrossAttention, dispatch_attention, normalize_qkv_bias
from .mim_layers_block import Mlp, TransformerBlock, drop_path_rates, residual_extras
from .mim_layers_patch_embed import PatchEmbed, normalize_patches, patchify, unpatchify
from .mim_layers_pos_embed import sincos_2d
from .mim_masking_core import MaskInfo, gather_tokens, mask_from_bool, mask_from_noise
from .mim_modeling_utils import MIMPreTrainedModel, MIMPreTrainingOutput, MIMViTForImageClassification, MIMViTModel, PixelTargetMixin
from .configuration_cae import CAEConfig
from .masking_cae import BlockMaskGenerator, RandomMaskGenerator


@dataclass
class CAEPreTrainingOutput(MIMPreTrainingOutput):
    """Adds the regressor's predictions and the alignment targets, both ``[B, M, decoder_hidden_size]`` over the
    masked patches in raster order (``latent_target`` is detached)."""

    latent_predict: torch.Tensor | None = None
    latent_target: torch.Tensor | None = None


class CAEPreTrainedModel(MIMPreTrainedModel):
    """xavier-uniform Linear weights (official final ``apply``), truncated-normal(0.02, +-std) patch embedding and
    tokens (official ``trunc_normal_`` wrapper with ``a=-std, b=std``)."""

    config_class = CAEConfig
    init_style = "mae"
    trunc_bound = 1.0

    def _token_init(self, tensor: torch.Tensor) -> None:
        self._trunc_normal(tensor, self.config.initializer_range)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, PatchEmbed):
            self._trunc_normal(module.proj.weight, self.config.initializer_range)
            if module.proj.bias is not None:
                init.zeros_(module.proj.bias)
        elif isinstance(module, CAECrossAttention):
            init.zeros_(module.q_bias)
            init.zeros_(module.v_bias)
        elif isinstance(module, CAEForPreTraining):
            self._token_init(module.mask_token)
            init.copy_(module.rd_pos_embed, module.sincos_table())
        else:
            super()._init_weights(module)


class CAEModel(CAEPreTrainedModel, MIMViTModel):
    """The CAE encoder: a BEiT-style ViT (q/v bias, layer scale) with fixed row-first sin-cos positions. With
    ``bool_masked_pos`` it encodes only the visible patches, in raster order."""

    _keys_to_ignore_on_load_unexpected = [r"^(regressor|decoder|encoder_to_regressor|encoder_to_regressor_norm)\.",
                                          r"^(mask_token|rd_pos_embed)$"]


class CAECrossAttention(CrossAttention):
    """Cross-attention with separate key and value inputs (keys carry positions, values do not) and BEiT q/v
    biases (key bias fixed at 0), as the official ``CrossAttention``."""

    def __init__(self, config, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__(config, dim, num_heads, qkv_bias=False)
        self.q_bias = nn.Parameter(torch.zeros(dim)) if qkv_bias else None
        self.v_bias = nn.Parameter(torch.zeros(dim)) if qkv_bias else None

    def forward(self, queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, **kwargs):
        batch, length, _ = queries.shape

        def heads(x: torch.Tensor, layer: nn.Linear, bias) -> torch.Tensor:
            x = nn.functional.linear(x, layer.weight, bias)
            return x.reshape(batch, x.shape[1], self.num_heads, self.head_dim).transpose(1, 2)

        query = heads(queries, self.q, self.q_bias)
        key = heads(keys, self.k, None)
        value = heads(values, self.v, self.v_bias)
        output, weights = dispatch_attention(self, query, key, value, None, **kwargs)
        return self.proj(output), weights


class CAERegressorBlock(nn.Module):
    """Official ``RegressorBlock``: ``x = q + γ1·CrossAttn(LN_q(q + pos_q), LN_k(kv + pos_k), LN_v(kv))``, then a
    *post*-norm ``x = LN(x)``, then ``x = x + γ2·MLP(x)`` (no norm before the MLP)."""

    def __init__(self, config: CAEConfig, drop_path_rate: float = 0.0):
        super().__init__()
        dim, eps = config.decoder_hidden_size, config.layer_norm_eps
        self.norm1_q = nn.LayerNorm(dim, eps=eps)
        self.norm1_k = nn.LayerNorm(dim, eps=eps)
        self.norm1_v = nn.LayerNorm(dim, eps=eps)
        self.cross_attn = CAECrossAttention(
            config, dim, config.decoder_num_attention_heads, qkv_bias=normalize_qkv_bias(config.qkv_bias) != "none"
        )
        self.ls1, self.drop_path1 = residual_extras(dim, config.decoder_layer_scale_init_value, drop_path_rate)
        self.norm2_cross = nn.LayerNorm(dim, eps=eps)
        self.mlp_cross = Mlp(dim, config.decoder_intermediate_size, config.hidden_act)
        self.ls2, self.drop_path2 = residual_extras(dim, config.decoder_layer_scale_init_value, drop_path_rate)

    def forward(self, queries, context, pos_queries, pos_context, **kwargs) -> torch.Tensor:
        attn_out, _ = self.cross_attn(
            self.norm1_q(queries + pos_queries), self.norm1_k(context + pos_context), self.norm1_v(context), **kwargs
        )
        x = self.norm2_cross(queries + self.drop_path1(self.ls1(attn_out)))
        return x + self.drop_path2(self.ls2(self.mlp_cross(x)))


class CAERegressor(nn.Module):
    """Latent contextual regressor: every block's keys/values are ``[visible latents, current queries]`` (the
    queries attend to themselves too, as officially); a final LayerNorm gives ``latent_predict``."""

    def __init__(self, config: CAEConfig):
        super().__init__()
        rates = drop_path_rates(config.drop_path_rate, config.regressor_num_hidden_layers)
        self.blocks = nn.ModuleList([CAERegressorBlock(config, rate) for rate in rates])
        self.norm = nn.LayerNorm(config.decoder_hidden_size, eps=config.layer_norm_eps)

    def forward(self, queries, visible, pos_queries, pos_visible, **kwargs) -> torch.Tensor:
        pos_context = torch.cat([pos_visible, pos_queries], dim=1)
        for block in self.blocks:
            queries = block(queries, torch.cat([visible, queries], dim=1), pos_queries, pos_context, **kwargs)
        return self.norm(queries)


class CAEDecoder(nn.Module):
    """Official ``Decoder``: BEiT blocks over the predicted masked latents only (+ their positions), LayerNorm,
    linear head (``p*p*C`` pixels or the token vocabulary)."""

    def __init__(self, config: CAEConfig, output_dim: int):
        super().__init__()
        dim = config.decoder_hidden_size
        rates = drop_path_rates(config.drop_path_rate, config.decoder_num_hidden_layers)
        self.blocks = nn.ModuleList(
            [
                TransformerBlock(
                    config,
                    dim,
                    config.decoder_num_attention_heads,
                    config.decoder_intermediate_size,
                    qkv_bias=config.qkv_bias,
                    layer_norm_eps=config.layer_norm_eps,
                    layer_scale_init_value=config.decoder_layer_scale_init_value,
                    drop_path_rate=rate,
                    hidden_act=config.hidden_act,
                )
                for rate in rates
            ]
        )
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.head = nn.Linear(dim, output_dim)

    def forward(self, latent_masked: torch.Tensor, pos_masked: torch.Tensor, **kwargs) -> torch.Tensor:
        x = latent_masked + pos_masked
        for block in self.blocks:
            x = block(x, **kwargs)[0]
        return self.head(self.norm(x))


class CAEForPreTraining(PixelTargetMixin, CAEPreTrainedModel):
    def __init__(self, config: CAEConfig):
        super().__init__(config)
        self.encoder = CAEModel(config)
        dim = config.decoder_hidden_size
        if dim != config.hidden_size:  # official encoder_to_regresser (+ norm), borrowed from MAE
            self.encoder_to_regressor = nn.Linear(config.hidden_size, dim)
            self.encoder_to_regressor_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        else:
            self.encoder_to_regressor = self.encoder_to_regressor_norm = None
        # fixed row-first sin-cos table (zero cls slot) shared by regressor and decoder (official rd_pos_embed)
        self.rd_pos_embed = nn.Parameter(torch.zeros(1, config.num_patches + 1, dim), requires_grad=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.regressor = CAERegressor(config)
        out = config.vocab_size if config.reconstruction_target == "tokens" else config.patch_size**2 * config.num_channels
        self.decoder = CAEDecoder(config, out)
        grid = config.grid_size
        if config.mask_generator == "block":
            self.mask_generator = BlockMaskGenerator(
                grid,
                config.num_masking_patches,
                min_num_patches=config.min_mask_patches_per_block,
                max_num_patches=config.max_mask_patches_per_block,
                min_aspect=config.min_mask_aspect,
            )
        else:
            self.mask_generator = RandomMaskGenerator(grid, config.num_masking_patches)
        self.post_init()

    def sincos_table(self) -> torch.Tensor:
        return sincos_2d(self.config.grid_size, self.config.decoder_hidden_size, "mocov3", cls_token=True).unsqueeze(0)

    def project(self, latent: torch.Tensor) -> torch.Tensor:
        if self.encoder_to_regressor is None:
            return latent
        return self.encoder_to_regressor_norm(self.encoder_to_regressor(latent))

    def logits_to_pixels(self, logits: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        """Full-grid pixel predictions (zeros at visible patches) back to image space, undoing ``norm_pix_loss``."""
        if self.config.reconstruction_target != "pixel":
            raise ValueError("logits are visual-token scores (reconstruction_target='tokens'), not pixels")
        if self.config.norm_pix_loss:
            _, mean, var = normalize_patches(patchify(pixel_values, self.config.patch_size))
            logits = logits * (var + 1e-6) ** 0.5 + mean
        return unpatchify(logits, self.config.patch_size, self.config.grid_size, self.config.num_channels)

    def resolve_mask(self, pixel_values, bool_masked_pos, noise, batch: int) -> MaskInfo:
        """The mask with a masked count known before the mask's values (the generator's, the ratio's or, while
        ``torch.export`` traces, the config's), so every shape is static; given masks are checked against it."""
        num_patches = self.config.num_patches
        if bool_masked_pos is not None and noise is not None:
            raise ValueError("pass either noise or bool_masked_pos, not both")
        if noise is not None:
            if noise.shape != (batch, num_patches):
                raise ValueError(f"noise must have shape [{batch}, {num_patches}], got {tuple(noise.shape)}")
            return mask_from_noise(noise.to(pixel_values.device), self.config.mask_ratio)
        if bool_masked_pos is None:
            mask = self.mask_generator(batch, self.mask_rng, device=pixel_values.device)
            return mask_from_bool(mask, self.mask_generator.num_masking_patches)
        mask = bool_masked_pos.reshape(batch, -1).to(pixel_values.device)
        if mask.shape[1] != num_patches:
            raise ValueError(f"bool_masked_pos must have {num_patches} patches per image, got {mask.shape[1]}")
        # mask_from_bool refuses non-bool masks and rows that hide nothing or everything (export-safe checks)
        return mask_from_bool(mask, self.config.num_masking_patches if torch.compiler.is_exporting() else None)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        visual_token_ids: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> CAEPreTrainingOutput | tuple:
        r"""
        bool_masked_pos (`torch.BoolTensor` of shape `(batch, num_patches)`, *optional*): True = masked, the same
            count in every row. Default: drawn by the configured generator (block-wise, 98 of 196).
        noise (`torch.FloatTensor` of shape `(batch, num_patches)`, *optional*): MAE-style noise instead (the
            `int(L * (1 - mask_ratio))` lowest-noise patches stay visible).
        visual_token_ids (`torch.LongTensor` of shape `(batch, num_patches)`, *optional*): tokenizer ids of every
            patch (e.g. DALL-E codes); required when `reconstruction_target="tokens"`.
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        batch = pixel_values.shape[0]
        mask_info = self.resolve_mask(pixel_values, bool_masked_pos, noise, batch)
        mask, num_visible = mask_info.mask, mask_info.num_visible
        # visible then masked patches, each in raster order
        ids_shuffle = torch.argsort(mask.to(torch.int8), dim=1, stable=True)
        ids_visible, ids_masked = ids_shuffle[:, :num_visible], ids_shuffle[:, num_visible:]
        prefix = self.encoder.num_prefix_tokens

        # encoder on the visible patches (raster order), then the optional projection
        encoded = self.encoder(
            pixel_values,
            ids_keep=ids_visible,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        visible = self.project(encoded.last_hidden_state)[:, prefix:]

        # alignment target: the same encoder on the masked patches only, without gradient (official alignment
        # encoder, whose weights alias the encoder's); the cls output is dropped
        with torch.no_grad():
            latent_target = self.project(self.encoder(pixel_values, ids_keep=ids_masked, return_dict=True).last_hidden_state)
            latent_target = latent_target[:, prefix:].detach()

        # regressor: mask-token queries at the masked positions, keys/values from the visible latents
        pos = self.rd_pos_embed[:, 1:].expand(batch, -1, -1).to(visible.dtype)
        pos_masked, pos_visible = gather_tokens(pos, ids_masked), gather_tokens(pos, ids_visible)
        queries = self.mask_token.to(visible.dtype).expand(batch, ids_masked.shape[1], -1)
        latent_predict = self.regressor(queries, visible, pos_masked, pos_visible)

        # decoder on the predicted masked latents only
        logits_masked = self.decoder(latent_predict, pos_masked)
        if self.config.reconstruction_target == "tokens":
            if visual_token_ids is None:
                raise ValueError("reconstruction_target='tokens' needs visual_token_ids [batch, num_patches]")
            labels = torch.gather(visual_token_ids.reshape(batch, -1).to(mask.device), 1, ids_masked)
            reconstruction_loss = nn.functional.cross_entropy(
                logits_masked.float().reshape(-1, logits_masked.shape[-1]), labels.reshape(-1)
            )
        else:
            target = gather_tokens(self.target(pixel_values), ids_masked)
            reconstruction_loss = (logits_masked.float() - target.float()).pow(2).mean()
        alignment_loss = nn.functional.mse_loss(latent_predict.float(), latent_target.float())
        loss = reconstruction_loss + self.config.alignment_loss_weight * alignment_loss

        logits = logits_masked.new_zeros(batch, mask.shape[1], logits_masked.shape[-1])
        logits = logits.scatter(1, ids_masked.unsqueeze(-1).expand(-1, -1, logits.shape[-1]), logits_masked)
        output = CAEPreTrainingOutput(
            loss=loss,
            logits=logits,
            mask=mask,
            loss_terms={"reconstruction": reconstruction_loss.detach(), "alignment": alignment_loss.detach()},
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
            latent_predict=latent_predict,
            latent_target=latent_target,
        )
        return output if return_dict else output.to_tuple()


class CAEForImageClassification(CAEPreTrainedModel, MIMViTForImageClassification):
    encoder_class = CAEModel
