"""CroCo: cross-view completion. View 1 is masked heavily (90%) and only its visible patches are encoded; view 2
(the reference) is encoded *fully* by the same encoder; a decoder restores view 1 with self-attention over the
view-1 tokens (mask tokens filled in) and cross-attention to the view-2 tokens. The loss is the normalised-pixel
MSE over the masked patches of view 1. Ambiguity that single-view MIM cannot resolve must be resolved from the
second view, which is what makes the features geometric (depth, flow, stereo, pose).

Follows naver/croco @d7de070 (``models/croco.py`` ``CroCoNet`` with ``pos_embed='cosine'``, ``models/blocks.py``
``DecoderBlock``, ``models/masking.py`` ``RandomMask``, ``models/criterion.py`` ``MaskedMSE``), i.e. CroCo v1:
* fixed 2-D sin-cos position embeddings (MAE layout) added to the patch tokens of both views before masking, and
  a second sin-cos table (decoder width) added to *both* decoder sequences; no cls token. v2's RoPE is not
  implemented.
* ``decoder.embed`` projects both views to the decoder width; the view-2 sequence is the same in every block (only
  view 1 is updated), and each block LayerNorms it before cross-attention (``norm_im2_in_dec=True``).
* ``int(mask_ratio * L)`` patches are masked (176 of 196), not MAE's ``L - int(L * (1 - ratio))``.

Official parameter names map as: ``enc_blocks`` -> ``encoder.blocks``, ``enc_norm`` -> ``encoder.norm``,
``decoder_embed`` -> ``decoder.embed``, ``dec_blocks.i.{norm1, attn, norm2, cross_attn.proj{q,k,v}, norm_y, norm3,
mlp}`` -> ``decoder.blocks.i.{norm0, self_attn, norm_q, cross_attn.{q,k,v}, norm_kv, norm2, mlp}``, ``dec_norm`` ->
``decoder.norm``, ``prediction_head`` -> ``decoder.pred``, ``mask_token`` -> ``decoder.mask_token``.
"""

import torch
from torch import nn
from transformers import initialization as init

from hf_mim.layers.block import CrossAttentionBlock
from hf_mim.layers.pos_embed import sincos_2d
from hf_mim.masking.core import MaskInfo, restore_sequence
from hf_mim.modeling_utils import (
    MIMPreTrainedModel,
    MIMPreTrainingOutput,
    MIMViTForImageClassification,
    MIMViTModel,
    PixelTargetMixin,
)
from hf_mim.models.croco.configuration_croco import CroCoConfig
from hf_mim.models.mae.modeling_mae import masked_mse


def num_masked_patches(num_patches: int, mask_ratio: float) -> int:
    """CroCo's ``RandomMask`` rounding: ``int(ratio * L)`` masked (176 of 196 at 0.9; MAE's rule would mask 177)."""
    if not 0.0 < mask_ratio < 1.0:
        raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
    return int(mask_ratio * num_patches)


def croco_mask_from_noise(noise: torch.Tensor, mask_ratio: float) -> MaskInfo:
    """hf_mim noise semantics (the lowest-noise patches stay visible) with CroCo's masked count."""
    if noise.ndim != 2:
        raise ValueError(f"noise must have shape [batch, num_patches], got {tuple(noise.shape)}")
    batch, length = noise.shape
    len_keep = length - num_masked_patches(length, mask_ratio)
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(batch, length, dtype=torch.bool, device=noise.device)
    mask[:, :len_keep] = False
    mask = torch.gather(mask, 1, ids_restore)
    return MaskInfo(mask=mask, ids_keep=ids_shuffle[:, :len_keep], ids_restore=ids_restore)


def official_mask_from_noise(noise: torch.Tensor, mask_ratio: float) -> torch.Tensor:
    """The mask naver/croco's ``RandomMask`` makes from the same uniform ``noise``: ``argsort(noise) < int(r L)``.
    It maps noise to masks differently from hf_mim's ``noise`` argument (same distribution, different draw), so for
    parity with the official code pass this as ``bool_masked_pos``."""
    return torch.argsort(noise, dim=1) < num_masked_patches(noise.shape[1], mask_ratio)


class CroCoDecoder(nn.Module):
    """Cross-view decoder: ``embed`` both views, fill view 1's masked slots with ``mask_token``, add the fixed
    sin-cos table to both sequences, then blocks of [self-attention on view 1, cross-attention view 1 -> view 2,
    MLP], a final norm and the per-patch pixel head ``pred``."""

    def __init__(self, config: CroCoConfig):
        super().__init__()
        dim = config.decoder_hidden_size
        self.grid_size = tuple(config.grid_size)
        self.embed = nn.Linear(config.hidden_size, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches, dim), requires_grad=False)
        self.blocks = nn.ModuleList(
            [
                CrossAttentionBlock(
                    config,
                    dim,
                    config.decoder_num_attention_heads,
                    config.decoder_intermediate_size,
                    qkv_bias=True,
                    layer_norm_eps=config.layer_norm_eps,
                    hidden_act=config.hidden_act,
                    self_attention=True,
                )
                for _ in range(config.decoder_num_hidden_layers)
            ]
        )
        if not config.norm_ref_in_decoder:
            for block in self.blocks:
                block.norm_kv = nn.Identity()
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.pred = nn.Linear(dim, config.patch_size**2 * config.num_channels)

    def sincos_table(self, grid_size=None) -> torch.Tensor:
        return sincos_2d(grid_size or self.grid_size, self.pos_embed.shape[-1], "mae").unsqueeze(0)

    def position_embeddings(self, grid_size: tuple[int, int]) -> torch.Tensor:
        if tuple(grid_size) == self.grid_size:
            return self.pos_embed
        return self.sincos_table(grid_size).to(self.pos_embed)  # exact at any resolution

    def forward(
        self,
        latent: torch.Tensor,
        ids_restore: torch.Tensor,
        reference: torch.Tensor,
        grid_size: tuple[int, int] | None = None,
        **kwargs,
    ) -> torch.Tensor:
        """``latent``: encoded visible view-1 tokens ``[B, K, D_enc]``; ``reference``: all view-2 tokens
        ``[B, L, D_enc]``. Returns view-1 predictions ``[B, L, p*p*C]`` in raster order."""
        pos = self.position_embeddings(grid_size or self.grid_size)
        queries = restore_sequence(self.embed(latent), self.mask_token, ids_restore) + pos
        context = self.embed(reference) + pos
        for block in self.blocks:
            queries = block(queries, context, **kwargs)
        return self.pred(self.norm(queries))


class CroCoPreTrainedModel(MIMPreTrainedModel):
    config_class = CroCoConfig

    def compute_mask(
        self,
        batch_size: int,
        num_patches: int,
        device,
        noise: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mask_ratio: float | None = None,
    ) -> MaskInfo | None:
        """As the shared one, but masks drawn from ``noise`` / ``mask_ratio`` use CroCo's ``int(r L)`` count."""
        if bool_masked_pos is None and (noise is not None or mask_ratio):
            ratio = mask_ratio if mask_ratio is not None else self.config.mask_ratio
            if noise is None:
                noise = self.draw_noise(batch_size, num_patches, device)
            elif noise.shape != (batch_size, num_patches):
                raise ValueError(f"noise must have shape [{batch_size}, {num_patches}], got {tuple(noise.shape)}")
            return croco_mask_from_noise(noise.to(device), ratio)
        return super().compute_mask(batch_size, num_patches, device, noise, bool_masked_pos, mask_ratio)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)  # xavier Linear / patch embed, zero biases: CroCoNet.initialize_weights
        if isinstance(module, CroCoDecoder):
            self._token_init(module.mask_token)
            init.copy_(module.pos_embed, module.sincos_table())


class CroCoModel(CroCoPreTrainedModel, MIMViTModel):
    """The CroCo encoder (a plain ViT without cls token), shared by both views. Without masking input it encodes
    every patch in raster order (what CroCo's downstream heads use)."""

    _keys_to_ignore_on_load_unexpected = [r"^decoder\."]


class CroCoForPreTraining(PixelTargetMixin, CroCoPreTrainedModel):
    def __init__(self, config: CroCoConfig):
        super().__init__(config)
        self.encoder = CroCoModel(config)
        self.decoder = CroCoDecoder(config)
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        pixel_values_ref: torch.Tensor | None = None,
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
        pixel_values (`torch.FloatTensor` of shape `(batch, channels, height, width)`): view 1, the one masked and
            reconstructed. pixel_values_ref (`torch.FloatTensor`, same shape): view 2, the unmasked reference
            (another viewpoint of the same scene; the CroCo transform of hf_mim makes it from the same image).
        noise (`torch.FloatTensor` of shape `(batch, num_patches)`, *optional*): fixes view 1's mask (lowest noise
            stays visible). bool_masked_pos (`torch.BoolTensor`, *optional*): explicit view-1 mask, True = masked.
        mask_ratio (`float`, *optional*): overrides `config.mask_ratio` for this call.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if pixel_values is None:
            raise ValueError("pixel_values (view 1, the view to complete) is required")
        if pixel_values_ref is None:
            raise ValueError(
                "CroCo completes view 1 from a second view: pass pixel_values_ref (e.g. use the transform of "
                "hf_mim.get_method('croco').make_transform, which returns both views, or another image of the scene)"
            )
        if pixel_values_ref.shape != pixel_values.shape:
            raise ValueError(
                f"pixel_values_ref {tuple(pixel_values_ref.shape)} must have the shape of pixel_values "
                f"{tuple(pixel_values.shape)}: both views go through the same encoder and position table"
            )
        grid = self.patch_grid(pixel_values)
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        noise = self.noise_or_draw(
            noise, bool_masked_pos, ratio, pixel_values.shape[0], grid[0] * grid[1], pixel_values.device
        )
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
        if not encoded.mask.any():
            raise ValueError("the view-1 mask hides no patch, so there is nothing to complete; mask some patches")
        reference = self.encoder(
            pixel_values_ref, interpolate_pos_encoding=interpolate_pos_encoding, return_dict=True, **kwargs
        )
        logits = self.decoder(encoded.last_hidden_state, encoded.ids_restore, reference.last_hidden_state, grid)
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


class CroCoForImageClassification(CroCoPreTrainedModel, MIMViTForImageClassification):
    encoder_class = CroCoModel
