"""MixedAE: mix ``r`` images patch-wise into one, encode the mixed image, reconstruct every source MAE-style
from its own positions, and recognise homologous patches (patches of the same source).

There is NO official code (the paper, arXiv 2303.17152, says it will be released; the unofficial
Natyren/MixedAE lacks homologous recognition and was not used). This follows the paper's description; every
point the paper leaves open is a choice made here and marked below:

* Mixing [paper]: groups of ``r = 4`` consecutive images of the batch; each patch position of the mixed image is
  taken from one source, a random equal partition (``L / r`` positions per source), drawn per group. Mixing
  happens on patch-embedded tokens with their position embeddings, which equals patch-embedding the pixel-mixed
  image (``mix_images``) because the patch embedding acts on each patch separately.
* Encoder [paper]: a ViT on all ``L`` mixed tokens plus one cls token. Homologous attention: in the chosen blocks
  (default: all [unverified]) each query keeps only its ``K = max(1, int(N * 1/r))`` largest attention logits
  (per head, over the ``N = L + 1`` tokens, cls included [unverified]); the others are set to -inf before the
  softmax. It is implemented as an additive -inf bias built from the block's own ``qkv`` projection, so the
  weights are plain ViT weights and ``AutoModel`` / fine-tuning use global attention, as the paper does.
* Un-mixing + reconstruction [paper]: for source ``i`` the decoder (MAE's) receives the cls output and the encoder
  outputs at source ``i``'s positions, mask tokens elsewhere, and regresses image ``i``; the loss is MAE's
  norm-pix MSE on the positions NOT supplied by ``i`` (averaged over all images, i.e. the mean of the per-source
  losses).
* Homologous contrastive loss [paper: supervised contrastive on patches, positives = same source]: on the
  final-norm patch outputs of the encoder, cosine similarity, negatives = the other sources' patches of the SAME
  mixed image [unverified], no projection head [unverified], temperature 0.07 and weight 0.1 [unverified: not in
  the paper's text available here].
* Segment embeddings (mentioned by third-party summaries) are not used: added at the encoder input they would
  reveal the source of every patch and make homologous recognition trivial.
"""

import torch

from hf_mim.layers.decoder import MAEDecoder
from hf_mim.masking.core import gather_tokens, mask_from_bool, random_noise
from hf_mim.modeling_utils import (
    MIMEncoderOutput,
    MIMPreTrainedModel,
    MIMPreTrainingOutput,
    MIMViTForImageClassification,
    MIMViTModel,
    PixelTargetMixin,
)
from hf_mim.models.mae.modeling_mae import masked_mse
from hf_mim.models.mixedae.configuration_mixedae import MixedAEConfig
from hf_mim.models.mixedae.mixing_mixedae import (
    check_source_ids,
    homologous_contrastive_loss,
    mix_tokens,
    source_ids_from_noise,
    topk_attention_bias,
    unmix_mask,
)


class MixedAEPreTrainedModel(MIMPreTrainedModel):
    config_class = MixedAEConfig


class MixedAEModel(MixedAEPreTrainedModel, MIMViTModel):
    """The MixedAE encoder (a plain ViT with global attention). :meth:`encode_mixed` runs it on mixed images with
    homologous TopK attention, as in pre-training."""

    _keys_to_ignore_on_load_unexpected = [r"^decoder\."]

    def topk_layers(self) -> set[int]:
        layers = self.config.homologous_attention_layers
        return set(range(len(self.blocks))) if layers is None else set(layers)

    def encode_mixed(
        self,
        pixel_values: torch.Tensor,
        source_ids: torch.Tensor,
        homologous_attention: bool | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        **kwargs,
    ) -> MIMEncoderOutput:
        """Mix groups of ``r`` images by ``source_ids [B / r, L]`` and encode them: ``last_hidden_state`` is
        ``[B / r, (cls) + L, D]`` in raster order."""
        r = self.config.mixing_num_sources
        tokens, cls, grid = self.embed(pixel_values)
        mixed = mix_tokens(tokens, source_ids, r)
        hidden = mixed if cls is None else torch.cat([cls[: mixed.shape[0]], mixed], dim=1)
        use_topk = self.config.homologous_attention if homologous_attention is None else homologous_attention
        topk_layers = self.topk_layers() if use_topk else set()
        k = max(1, int(hidden.shape[1] * self.config.topk_ratio))
        all_hidden = (hidden,) if output_hidden_states else None
        all_attn = () if output_attentions else None
        for index, block in enumerate(self.blocks):
            bias = None
            if index in topk_layers:
                bias = self.homologous_bias(block, hidden, k)
            hidden, weights = block(hidden, bias, output_attentions=output_attentions, **kwargs)
            if output_hidden_states:
                all_hidden = all_hidden + (hidden,)
            if output_attentions:
                all_attn = all_attn + (weights,)
        return MIMEncoderOutput(
            last_hidden_state=self.norm(hidden), hidden_states=all_hidden, attentions=all_attn
        )

    @staticmethod
    @torch.no_grad()
    def homologous_bias(block, hidden: torch.Tensor, k: int) -> torch.Tensor:
        """TopK mask of ``block``'s attention logits for input ``hidden`` (a selection, so no gradient)."""
        attn = block.attn
        batch, length, _ = hidden.shape
        qkv = attn.project_qkv(block.norm1(hidden)).reshape(batch, length, 3, attn.num_heads, attn.head_dim)
        query, key, _ = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        logits = torch.matmul(query, key.transpose(2, 3)) * attn.scaling
        return topk_attention_bias(logits, k).to(hidden.dtype)


class MixedAEForPreTraining(PixelTargetMixin, MixedAEPreTrainedModel):
    def __init__(self, config: MixedAEConfig):
        super().__init__(config)
        self.encoder = MixedAEModel(config)
        self.decoder = MAEDecoder.from_config(config)
        self.post_init()

    def draw_source_ids(self, num_groups: int, num_patches: int, device) -> torch.Tensor:
        noise = random_noise(num_groups, num_patches, device=device, generator=self.mask_rng)
        return source_ids_from_noise(noise, self.config.mixing_num_sources)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        source_ids: torch.Tensor | None = None,
        homologous_attention: bool | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MIMPreTrainingOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, channels, height, width)`): batch a multiple of
            `config.mixing_num_sources`; images `g*r .. g*r + r - 1` are mixed together.
        noise (`torch.FloatTensor` of shape `(batch / r, num_patches)`, *optional*): fixes the mixing (see
            `source_ids_from_noise`). source_ids (`torch.LongTensor` of the same shape, *optional*): the source of
            every position of every mixed image, given directly. Without either, the mixing is drawn from
            `self.mask_rng`.
        homologous_attention (`bool`, *optional*): overrides `config.homologous_attention` for this call.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        r = self.config.mixing_num_sources
        batch = pixel_values.shape[0]
        if batch % r:
            raise ValueError(
                f"MixedAE mixes groups of mixing_num_sources={r} images: the batch size ({batch}) must be a "
                f"multiple of {r} (use drop_last or a batch size divisible by {r})"
            )
        self.encoder.patch_embed.check_input(pixel_values)
        groups, length = batch // r, self.config.num_patches
        if noise is not None and source_ids is not None:
            raise ValueError("pass either noise or source_ids, not both")
        if noise is not None:
            if noise.shape != (groups, length):
                raise ValueError(f"noise must have shape [batch / {r}, num_patches] = [{groups}, {length}], got {tuple(noise.shape)}")
            source_ids = source_ids_from_noise(noise.to(pixel_values.device), r)
        elif source_ids is None:
            source_ids = self.draw_source_ids(groups, length, pixel_values.device)
        source_ids = source_ids.to(pixel_values.device)
        check_source_ids(source_ids, r, groups, length)

        encoded = self.encoder.encode_mixed(
            pixel_values, source_ids, homologous_attention, output_hidden_states, output_attentions, **kwargs
        )
        prefix = self.encoder.num_prefix_tokens
        latent = encoded.last_hidden_state
        patch_latent = latent[:, prefix:]

        # un-mix: image g*r+i keeps the encoder outputs at its own positions (raster order), masks the rest
        mask = unmix_mask(source_ids, r)
        info = mask_from_bool(mask)
        per_image = patch_latent.repeat_interleave(r, dim=0)
        visible = gather_tokens(per_image, info.ids_keep)
        if prefix:
            visible = torch.cat([latent[:, :prefix].repeat_interleave(r, dim=0), visible], dim=1)
        logits = self.decoder(visible, info.ids_restore, self.config.grid_size)

        reconstruction = masked_mse(logits, self.target(pixel_values), mask)
        homologous = homologous_contrastive_loss(patch_latent, source_ids, self.config.homologous_temperature)
        loss = reconstruction + self.config.homologous_loss_weight * homologous
        output = MIMPreTrainingOutput(
            loss=loss,
            logits=logits,
            mask=mask,
            ids_restore=info.ids_restore,
            loss_terms={"reconstruction": reconstruction.detach(), "homologous": homologous.detach()},
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


class MixedAEForImageClassification(MixedAEPreTrainedModel, MIMViTForImageClassification):
    encoder_class = MixedAEModel
