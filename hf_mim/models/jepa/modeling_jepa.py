"""JEPA: predict, in representation space, the target-encoder features of several masked blocks from a context
block (I-JEPA, Assran et al. CVPR 2023; the self-distillation setting analysed by Littwin et al., NeurIPS 2024).

Follows facebookresearch/ijepa (``src/train.py``, ``src/models/vision_transformer.py``, ``src/masks/
multiblock.py``): the target is ``layer_norm`` (no affine) of the EMA target encoder's output on the whole image,
under no_grad; the context encoder sees only the context patches; the predictor embeds the context, appends one
mask token plus fixed sin-cos position per target patch, and regresses the targets; loss ``smooth_l1`` (beta 1).
The EMA momentum goes linearly from 0.996 to 1.0 over the run (official ``ipe_scale`` 1.0).

Naming: the EMA *target* encoder is ``encoder`` (the base model), the online one ``context_encoder``. I-JEPA
evaluates and fine-tunes the target encoder, so ``AutoModel`` / ``AutoModelForImageClassification`` load it.
Official init, as training gets it: every Linear weight truncated normal std 0.02 (the official bounds are +-2
absolute, i.e. effectively untruncated), zero biases, LayerNorms 1/0. The official constructors also divide block
``i``'s ``attn.proj`` / ``mlp.fc2`` by ``sqrt(2 i)`` (``fix_init_weight``), but ``src/helper.py`` ``init_model``
then re-draws every Linear of encoder and predictor, so that rescaling never reaches training: hf_mim skips it.
Deviation: one seedable generator draws block sizes and positions (the official collator seeds sizes per step and
takes positions from the global RNG).
"""

import torch
from torch import nn
from torch.nn import functional as F
from transformers import initialization as init

from hf_mim.layers.block import TransformerBlock
from hf_mim.layers.pos_embed import sincos_2d
from hf_mim.masking.core import check_values, gather_tokens
from hf_mim.masking.multiblock import sample_multiblock_masks
from hf_mim.modeling_utils import (
    MIMPreTrainedModel,
    MIMPreTrainingOutput,
    MIMViTForImageClassification,
    MIMViTModel,
)
from hf_mim.models.jepa.configuration_jepa import JEPAConfig


class JEPAPreTrainedModel(MIMPreTrainedModel):
    config_class = JEPAConfig
    init_style = "beit"
    trunc_bound = 100.0  # official trunc_normal_(std=0.02, a=-2, b=2): bounds at 100 std
    depth_scaled_init = False  # official init_model re-draws every Linear after fix_init_weight

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, JEPAPredictor):
            self._token_init(module.mask_token)
            init.copy_(module.pos_embed, module.sincos_table())


class JEPAModel(JEPAPreTrainedModel, MIMViTModel):
    """The JEPA encoder (a ViT without cls token). Without masking input it encodes every patch in order."""

    _keys_to_ignore_on_load_unexpected = [r"^(context_encoder|predictor)\."]


class JEPAPredictor(nn.Module):
    """Narrow ViT: ``embed`` (encoder -> predictor width), ``mask_token``, fixed ``pos_embed``, ``blocks``,
    ``norm``, ``proj`` (back to the encoder width)."""

    def __init__(self, config: JEPAConfig):
        super().__init__()
        dim = config.predictor_hidden_size
        self.grid_size = config.grid_size
        self.embed = nn.Linear(config.hidden_size, dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches, dim), requires_grad=False)
        self.blocks = nn.ModuleList(
            [
                TransformerBlock(
                    config, dim, config.predictor_num_attention_heads, dim * config.intermediate_size // config.hidden_size,
                    qkv_bias=config.qkv_bias, layer_norm_eps=config.layer_norm_eps, hidden_act=config.hidden_act,
                )
                for _ in range(config.predictor_num_hidden_layers)
            ]
        )
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.proj = nn.Linear(dim, config.hidden_size)

    def sincos_table(self) -> torch.Tensor:
        return sincos_2d(self.grid_size, self.pos_embed.shape[-1], "mae", cls_token=False).unsqueeze(0)

    def forward(self, context: torch.Tensor, context_ids: torch.Tensor, target_ids: torch.Tensor) -> torch.Tensor:
        """``context [B, Nc, D]`` encoded context tokens -> predictions ``[B, M, Nt, D]`` for ``target_ids [B, M, Nt]``."""
        batch, num_targets, per_target = target_ids.shape
        pos = self.pos_embed.to(context.dtype).expand(batch, -1, -1)
        x = self.embed(context) + gather_tokens(pos, context_ids)
        num_context = x.shape[1]
        x = x.repeat_interleave(num_targets, dim=0)  # one copy of the context per target block
        target_pos = gather_tokens(pos.repeat_interleave(num_targets, dim=0), target_ids.reshape(-1, per_target))
        x = torch.cat([x, self.mask_token.to(x.dtype) + target_pos], dim=1)
        for block in self.blocks:
            x = block(x)[0]
        x = self.proj(self.norm(x[:, num_context:]))
        return x.reshape(batch, num_targets, per_target, -1)


class JEPAForPreTraining(JEPAPreTrainedModel):
    def __init__(self, config: JEPAConfig):
        super().__init__(config)
        self.context_encoder = JEPAModel(config)
        self.encoder = JEPAModel(config)  # EMA target: updated by end_training_step, never by the optimizer
        self.encoder.requires_grad_(False)
        self.predictor = JEPAPredictor(config)
        self.post_init()
        # the target encoder starts as a copy of the context encoder (official: copy.deepcopy); from_pretrained
        # builds on the meta device and then loads both from the checkpoint
        if not any(p.is_meta for p in self.context_encoder.parameters()):
            with torch.no_grad():
                for target, source in zip(self.encoder.parameters(), self.context_encoder.parameters()):
                    target.copy_(source)

    def sample_masks(self, batch_size: int, grid: tuple[int, int], generator: torch.Generator | None = None):
        """``context_ids [B, Nc]`` and ``target_ids [B, M, Nt]`` from the config's multi-block settings."""
        config = self.config
        if generator is None:
            generator = self.mask_rng if self.mask_rng is not None else torch.Generator().manual_seed(
                int(torch.randint(0, 2**31 - 1, (1,)))
            )
        return sample_multiblock_masks(
            batch_size, grid, generator, num_targets=config.num_target_blocks, target_scale=config.target_scale,
            target_aspect_ratio=config.target_aspect_ratio, context_scale=config.context_scale,
            min_keep=config.min_keep, allow_overlap=config.allow_overlap,
        )

    def momentum(self, step: int, total_steps: int) -> float:
        """EMA momentum after optimizer step ``step`` (1-based) of ``total_steps``."""
        start, end = self.config.ema_momentum
        return start + (end - start) * min(1.0, max(step - 1, 0) / max(total_steps, 1))

    @torch.no_grad()
    def end_training_step(self, step: int, total_steps: int) -> None:
        m = self.momentum(step, total_steps)
        targets = list(self.encoder.parameters())
        torch._foreach_mul_(targets, m)
        torch._foreach_add_(targets, [p.detach() for p in self.context_encoder.parameters()], alpha=1.0 - m)

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()  # the target encoder always runs in inference mode
        self.encoder.requires_grad_(False)  # again: from_pretrained creates fresh (trainable) parameters
        return self

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        context_ids: torch.Tensor | None = None,
        target_ids: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MIMPreTrainingOutput | tuple:
        r"""
        context_ids (`torch.LongTensor` of shape `(batch, num_context)`, *optional*): patches the context encoder
            sees. target_ids (`torch.LongTensor` of shape `(batch, num_target_blocks, num_per_block)`, *optional*):
            patches to predict. Give both (deterministic) or neither (multi-block masks from `mask_rng`).
        Hidden states and attentions are those of the context encoder (the one being trained) on the context tokens.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        if self.encoder.norm.weight.requires_grad:
            self.encoder.requires_grad_(False)
        grid = self.context_encoder.patch_embed.check_input(pixel_values)
        batch, num_patches = pixel_values.shape[0], grid[0] * grid[1]
        if (context_ids is None) != (target_ids is None):
            raise ValueError("pass both context_ids and target_ids, or neither")
        if context_ids is None:
            context_ids, target_ids = self.sample_masks(batch, grid)
        if context_ids.ndim != 2 or target_ids.ndim != 3 or len(context_ids) != batch or len(target_ids) != batch:
            raise ValueError(
                f"context_ids must be [batch, num_context] and target_ids [batch, blocks, per_block] for batch {batch}, "
                f"got {tuple(context_ids.shape)} and {tuple(target_ids.shape)}"
            )
        check_values(
            torch.cat([context_ids.flatten(), target_ids.flatten()]).max() < num_patches,
            f"mask indices must be < {num_patches} (the number of patches)",
        )
        context_ids, target_ids = context_ids.to(pixel_values.device), target_ids.to(pixel_values.device)

        with torch.no_grad():
            features = self.encoder(pixel_values, return_dict=True).last_hidden_state
            features = F.layer_norm(features, features.shape[-1:])
            batch_targets = features.repeat_interleave(target_ids.shape[1], dim=0)
            targets = gather_tokens(batch_targets, target_ids.reshape(-1, target_ids.shape[-1]))
            targets = targets.reshape(*target_ids.shape, -1)

        tokens, _, grid = self.context_encoder.embed(pixel_values, ids_keep=context_ids)
        context, all_hidden, all_attn = self.context_encoder.run_blocks(
            tokens, output_hidden_states=output_hidden_states, output_attentions=output_attentions, **kwargs
        )
        predictions = self.predictor(context, context_ids, target_ids)
        loss = F.smooth_l1_loss(predictions.float(), targets.float())

        mask = torch.ones(batch, num_patches, dtype=torch.bool, device=pixel_values.device)
        mask.scatter_(1, context_ids, False)
        output = MIMPreTrainingOutput(
            loss=loss, logits=predictions, mask=mask, hidden_states=all_hidden, attentions=all_attn
        )
        return output if return_dict else output.to_tuple()


class JEPAForImageClassification(JEPAPreTrainedModel, MIMViTForImageClassification):
    encoder_class = JEPAModel
