# Generated from hf_mim.models.hpm.modeling_hpm by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""HPM: MAE plus a *loss predictor* that learns which patches are hard to reconstruct, and an easy-to-hard mask
that hides a growing share of the patches an EMA teacher predicts to be hardest.

Follows Haochen-Wang409/HPM ``models_mae_learn_loss.py`` and ``engine_pretrain.py`` (run with
``--learning_loss --relative``):

* ``MaskedAutoencoderViT.forward_encoder``: MAE encoder on the visible patches ``x[~mask]`` (raster order).
* ``forward_decoder``: ``decoder_embed``, then the sequence ``[cls + pos_0, visible + pos, mask_token + pos]``
  (visible first, then masked, each in raster order; no unshuffle). Two parallel branches read that same
  sequence: the reconstructor (blocks, norm, pred) and the loss predictor (``decoder_blocks_losspred``,
  ``decoder_norm_losspred``, ``decoder_pred_losspred`` to ``p*p*C`` outputs, then the MEAN over those outputs, one
  scalar per token). Here both branches live in :class:`HPMDecoder` (``blocks_losspred``, ``norm_losspred``,
  ``pred_losspred``).
* ``forward_loss``: per-patch MSE on the masked patches (``'matrix'``) and its mean (``'mean'``).
* ``forward_learning_loss(relative=True)``: over all ordered pairs (i, j) of masked patches of a sample,
  ``s = pred_j - pred_i``, label 1 if ``l_j > l_i`` and 0 if ``l_j < l_i`` (ties ignored), BCE with ``+1e-6`` in
  the logs, summed over the batch and divided by the number of non-tied pairs; ``l`` is the DETACHED ``'matrix'``.
  Total loss = reconstruction + 1.0 * this.
* ``engine_pretrain.train_one_epoch`` + ``generate_mask``: a timm ``ModelEma`` teacher runs on the UNMASKED image
  (all-False mask) under no_grad; ``n_hard = int(n_masked * keep_ratio)`` patches with the highest teacher-predicted
  loss are masked and the remaining ``n_masked - n_hard`` masked patches are drawn uniformly from the rest
  (fully random when ``n_hard == 0``), with ``keep_ratio = 0.5 * (epoch + 1) / total_epochs``. The teacher's decay
  is set at the start of each epoch, ``0.999 + epoch / 100 * (0.9999 - 0.999)`` for the first 100 epochs (whatever
  the run length) and 0.9999 after, and the teacher is updated after every optimizer step. Both schedules are held
  for a whole epoch: :meth:`HPMForPreTraining.begin_training_epoch` sets them (``MIMTrainer`` calls it at every
  epoch start, resumed epochs included, with the epoch counted in optimizer steps of the training dataloader).

Deviations / unverified points:
* Without a dataloader length (streaming data) the trainer counts the whole run as one epoch, so the official
  definitions give ``hard_patch_max_fraction`` hard patches and decay ``ema_decay[0]`` throughout.
* The random remainder of the mask comes from ``self.draw_noise`` (``mask_rng``) instead of ``np.random.shuffle``:
  same distribution (a uniform subset of the non-hard patches), different random stream. ``torch.topk`` picks the
  hard patches; with tied predicted losses it may pick a different tied patch than the official ``argsort``.
* The teacher holds the encoder and the loss-predictor half of the decoder (the official EMA copies the whole
  model, but only its ``loss_pred`` is used); it is saved with the checkpoint (``teacher_encoder.*``,
  ``teacher_decoder.*``) so resumed runs continue the same EMA. A checkpoint without teacher weights should call
  :meth:`HPMForPreTraining.reset_teacher` after loading.
* If every pair of masked patches is tied the ranking loss divides by 1 instead of 0 (the official code gives NaN).
* With explicit ``noise`` or ``bool_masked_pos`` the teacher is not run (deterministic masks for tests / parity).
"""

from dataclasses import dataclass

import torch
from torch import nn

from .mim_layers_block import TransformerBlock
from .mim_layers_decoder import MAEDecoder
from .mim_masking_core import check_mask, mask_from_noise, num_visible_patches
from .mim_modeling_utils import MIMPreTrainingOutput
from .configuration_hpm import HPMConfig
from .modeling_mae import MAEForImageClassification, MAEForPreTraining, MAEModel, MAEPreTrainedModel


@dataclass
class HPMPreTrainingOutput(MIMPreTrainingOutput):
    """[`MIMPreTrainingOutput`] plus ``loss_prediction`` (the student's predicted per-patch loss ``[B, L]``, raster
    order) and ``teacher_loss_prediction`` (the EMA teacher's ``[B, L]`` scores that built the mask, or None when
    the mask was given)."""

    loss_prediction: torch.Tensor | None = None
    teacher_loss_prediction: torch.Tensor | None = None


# ---------------------------------------------------------------------------------------------- mechanism pieces
def hard_patch_fraction(epoch: int, num_epochs: int, max_fraction: float = 0.5) -> float:
    """Share of the masked patches chosen by predicted loss during epoch ``epoch`` (0-based) of ``num_epochs``:
    official ``keep_ratio = 0.5 * (epoch + 1) / total_epoch``."""
    if num_epochs <= 0:
        return 0.0
    return max_fraction * min(1.0, (epoch + 1) / num_epochs)


def ema_decay_at(epoch: int, start: float, end: float, warmup_epochs: int = 100) -> float:
    """Teacher decay during epoch ``epoch`` (0-based): official ``0.999 + epoch / 100 * (0.9999 - 0.999)`` for the
    first 100 epochs, then ``0.9999``, whatever the run length."""
    if epoch >= warmup_epochs:
        return end
    return start + epoch / warmup_epochs * (end - start)


def num_hard_patches(num_patches: int, mask_ratio: float, fraction: float) -> int:
    """Official ``int((L - len_keep) * keep_ratio)`` with ``len_keep = int(L * (1 - mask_ratio))``."""
    return int((num_patches - num_visible_patches(num_patches, mask_ratio)) * fraction)


def hard_patch_mask(loss_prediction: torch.Tensor, mask_ratio: float, fraction: float, noise: torch.Tensor) -> torch.Tensor:
    """Official ``generate_mask``: mask the ``n_hard`` patches with the largest predicted loss, then fill the
    remaining masked slots with a uniform random subset of the other patches (the ones with the largest ``noise``).
    ``noise`` is uniform ``[B, L]``; with ``n_hard == 0`` this is MAE's random mask. Returns bool ``[B, L]``."""
    if loss_prediction.shape != noise.shape:
        raise ValueError(f"loss_prediction {tuple(loss_prediction.shape)} and noise {tuple(noise.shape)} must match")
    n_hard = num_hard_patches(loss_prediction.shape[1], mask_ratio, fraction)
    noise = noise.float().clone()
    if n_hard > 0:
        hard = loss_prediction.detach().float().topk(n_hard, dim=1).indices
        noise.scatter_(1, hard, float("inf"))  # sorted last, i.e. always masked
    return mask_from_noise(noise, mask_ratio).mask


def relative_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Official ``forward_learning_loss(relative=True)`` on the masked patches: ``prediction`` and ``target``
    ``[B, M]``; pairs (i, j) with ``s = pred_j - pred_i``; summed BCE over the batch / number of non-tied pairs."""
    prediction, target = prediction.float(), target.float()
    positive = target.unsqueeze(1) > target.unsqueeze(2)  # [b, i, j]: l_j > l_i
    negative = target.unsqueeze(1) < target.unsqueeze(2)
    score = torch.sigmoid(prediction.unsqueeze(1) - prediction.unsqueeze(2))
    loss = -positive.float() * torch.log(score + 1e-6) - negative.float() * torch.log(1 - score + 1e-6)
    return loss.sum() / (positive | negative).sum().clamp(min=1)


def standardized_loss(prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Official ``forward_learning_loss(relative=False)``: MSE to the per-image z-scored (unbiased var) losses."""
    prediction, target = prediction.float(), target.float()
    target = (target - target.mean(dim=1, keepdim=True)) / (target.var(dim=1, keepdim=True) + 1e-6) ** 0.5
    return (prediction - target).pow(2).mean()


# ---------------------------------------------------------------------------------------------- modules
class HPMDecoder(MAEDecoder):
    """MAE decoder in HPM's token order with a parallel loss-predictor branch (``blocks_losspred``,
    ``norm_losspred``, ``pred_losspred``: official ``decoder_*_losspred``). With ``reconstructor=False`` (the EMA
    teacher) the pixel branch is left out."""

    def __init__(self, config, reconstructor: bool = True, **kwargs):
        super().__init__(config, **kwargs)
        dim, output_dim = kwargs["dim"], kwargs["output_dim"]
        self.blocks_losspred = nn.ModuleList(
            [
                TransformerBlock(
                    config,
                    dim,
                    kwargs["num_heads"],
                    kwargs["intermediate_size"],
                    qkv_bias=kwargs.get("qkv_bias", True),
                    layer_norm_eps=kwargs.get("layer_norm_eps", 1e-6),
                )
                for _ in range(kwargs["depth"])
            ]
        )
        self.norm_losspred = nn.LayerNorm(dim, eps=kwargs.get("layer_norm_eps", 1e-6))
        self.pred_losspred = nn.Linear(dim, output_dim)
        self.reconstructor = reconstructor
        if not reconstructor:
            self.blocks, self.norm, self.pred = nn.ModuleList(), nn.Identity(), nn.Identity()

    def forward(
        self, latent: torch.Tensor, mask: torch.Tensor, grid_size: tuple[int, int] | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``latent`` ``[B, (cls) + K, D_enc]`` (visible tokens in raster order), ``mask`` bool ``[B, L]``.
        Returns the pixel predictions ``[B, L, p*p*C]`` and predicted losses ``[B, L]``, both in the order
        ``[visible..., masked...]`` (each in raster order); the pixels are None without a reconstructor."""
        x = self.embed(latent)
        batch, dim = x.shape[0], x.shape[-1]
        pos = self.position_embeddings(grid_size or self.grid_size)
        prefix = int(self.has_cls_token)
        patch_pos = pos[:, prefix:].expand(batch, -1, -1)
        pos_visible = patch_pos[~mask].reshape(batch, -1, dim)
        pos_masked = patch_pos[mask].reshape(batch, -1, dim)
        x_patches = torch.cat([x[:, prefix:] + pos_visible, self.mask_token.to(x.dtype) + pos_masked], dim=1)
        x = torch.cat([x[:, :1] + pos[:, :1], x_patches], dim=1) if prefix else x_patches

        loss_pred = x
        for block in self.blocks_losspred:
            loss_pred = block(loss_pred)[0]
        loss_pred = self.pred_losspred(self.norm_losspred(loss_pred))[:, prefix:].mean(dim=-1)

        pixels = None
        if self.reconstructor:
            for block in self.blocks:
                x = block(x)[0]
            pixels = self.pred(self.norm(x))[:, prefix:]
        return pixels, loss_pred


class HPMPreTrainedModel(MAEPreTrainedModel):
    config_class = HPMConfig


class HPMModel(HPMPreTrainedModel, MAEModel):
    """The HPM encoder: MAE's ViT. Without masking input it encodes every patch in order."""

    _keys_to_ignore_on_load_unexpected = [r"^(decoder|teacher_encoder|teacher_decoder)\."]



class HPMForPreTraining(HPMPreTrainedModel, MAEForPreTraining):
    """MAE + loss predictor + EMA teacher. ``begin_training_epoch`` sets the share of hard patches in the mask and
    the teacher's decay for the epoch, ``end_training_step`` updates the teacher (both called by MIMTrainer)."""

    def __init__(self, config: HPMConfig):
        super(MAEForPreTraining, self).__init__(config)  # MAEForPreTraining.__init__ would build MAE's decoder
        self.encoder = HPMModel(config)
        self.decoder = HPMDecoder.from_config(config)
        # EMA teacher (official timm ModelEma): updated by end_training_step, never by the optimizer
        self.teacher_encoder = HPMModel(config)
        self.teacher_decoder = HPMDecoder.from_config(config, reconstructor=False)
        self.teacher_encoder.requires_grad_(False)
        self.teacher_decoder.requires_grad_(False)
        # epoch schedules, set by begin_training_epoch (epoch 0 of an unknown length until then)
        self.hard_patch_fraction = 0.0
        self.teacher_decay = config.ema_decay[0]
        self.post_init()
        # the teacher starts as a copy of the student (ModelEma deep-copies the model); from_pretrained builds on
        # the meta device and then loads both from the checkpoint
        if not any(p.is_meta for p in self.encoder.parameters()):
            self.reset_teacher()

    def _teacher_pairs(self):
        student = {**{f"encoder.{k}": v for k, v in self.encoder.state_dict(keep_vars=True).items()},
                   **{f"decoder.{k}": v for k, v in self.decoder.state_dict(keep_vars=True).items()}}
        teacher = {**{f"encoder.{k}": v for k, v in self.teacher_encoder.state_dict(keep_vars=True).items()},
                   **{f"decoder.{k}": v for k, v in self.teacher_decoder.state_dict(keep_vars=True).items()}}
        names = sorted(k for k in teacher if teacher[k].is_floating_point())
        return [teacher[k] for k in names], [student[k].detach() for k in names]

    @torch.no_grad()
    def reset_teacher(self) -> None:
        """Copy the student's encoder and loss predictor into the teacher."""
        targets, sources = self._teacher_pairs()
        torch._foreach_copy_(targets, sources)

    def begin_training_epoch(self, epoch: int, num_epochs: int) -> None:
        """Official per-epoch schedules: hard-patch share ``(epoch + 1) / num_epochs * hard_patch_max_fraction``
        and teacher decay ramped over the first ``ema_decay_warmup_epochs`` epochs."""
        self.hard_patch_fraction = hard_patch_fraction(epoch, num_epochs, self.config.hard_patch_max_fraction)
        self.teacher_decay = ema_decay_at(epoch, *self.config.ema_decay, self.config.ema_decay_warmup_epochs)

    @torch.no_grad()
    def end_training_step(self, step: int, total_steps: int) -> None:
        targets, sources = self._teacher_pairs()
        torch._foreach_mul_(targets, self.teacher_decay)
        torch._foreach_add_(targets, sources, alpha=1.0 - self.teacher_decay)

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher_encoder.eval()  # ModelEma's copy stays in eval mode
        self.teacher_decoder.eval()
        return self

    @torch.no_grad()
    def teacher_loss_prediction(self, pixel_values: torch.Tensor, interpolate_pos_encoding: bool = False) -> torch.Tensor:
        """The EMA teacher's predicted loss ``[B, L]`` for every patch of the unmasked image (raster order)."""
        encoded = self.teacher_encoder(pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, return_dict=True)
        batch, length = encoded.last_hidden_state.shape[0], encoded.last_hidden_state.shape[1] - self.teacher_encoder.num_prefix_tokens
        grid = self.patch_grid(pixel_values)
        visible = torch.zeros(batch, length, dtype=torch.bool, device=pixel_values.device)
        return self.teacher_decoder(encoded.last_hidden_state, visible, grid)[1]

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        hard_patch_fraction: float | None = None,
        interpolate_pos_encoding: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> HPMPreTrainingOutput | tuple:
        r"""
        noise (`torch.FloatTensor` of shape `(batch, num_patches)`, *optional*): a fixed random mask (MAE semantics);
            the teacher is not used. bool_masked_pos (`torch.BoolTensor`, *optional*): explicit mask, same count per
            row. Without either, the mask is built from the EMA teacher's predicted losses (official
            ``generate_mask``) with the random remainder from ``mask_rng``.
        mask_ratio (`float`, *optional*): overrides `config.mask_ratio`.
        hard_patch_fraction (`float`, *optional*): overrides the scheduled share of hard patches (0 = random mask).
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        if noise is not None and bool_masked_pos is not None:
            raise ValueError("pass either noise or bool_masked_pos, not both")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        batch = pixel_values.shape[0]
        grid = self.patch_grid(pixel_values)
        length = grid[0] * grid[1]
        teacher_prediction = None
        if bool_masked_pos is not None:
            if bool_masked_pos.shape != (batch, length):
                raise ValueError(f"bool_masked_pos must have shape [{batch}, {length}], got {tuple(bool_masked_pos.shape)}")
            mask = check_mask(bool_masked_pos).to(pixel_values.device)
        elif noise is not None:
            if noise.shape != (batch, length):
                raise ValueError(f"noise must have shape [{batch}, {length}], got {tuple(noise.shape)}")
            mask = mask_from_noise(noise.to(pixel_values.device), ratio).mask
        else:
            fraction = self.hard_patch_fraction if hard_patch_fraction is None else hard_patch_fraction
            if not 0.0 <= fraction <= 1.0:
                raise ValueError(f"hard_patch_fraction must be in [0, 1], got {fraction}")
            random = self.draw_noise(batch, length, pixel_values.device)
            if num_hard_patches(length, ratio, fraction) > 0:
                teacher_prediction = self.teacher_loss_prediction(pixel_values, interpolate_pos_encoding)
                mask = hard_patch_mask(teacher_prediction, ratio, fraction, random)
            else:  # official: argsort of random noise when no patch is picked by loss
                mask = mask_from_noise(random, ratio).mask
        if not mask.any(dim=1).all():
            raise ValueError("every sample needs at least one masked patch (mask_ratio > 0)")

        encoded = self.encoder(
            pixel_values,
            bool_masked_pos=mask,
            interpolate_pos_encoding=interpolate_pos_encoding,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        pixels, loss_prediction = self.decoder(encoded.last_hidden_state, mask, grid)
        num_masked = int(mask[0].sum())
        target = self.target(pixel_values)
        target = target[mask].reshape(batch, num_masked, -1)
        per_patch = (pixels[:, -num_masked:].float() - target.float()).pow(2).mean(dim=-1)  # official 'matrix'
        reconstruction_loss = per_patch.mean()
        learn = relative_loss if self.config.relative_loss else standardized_loss
        predictor_loss = learn(loss_prediction[:, -num_masked:], per_patch.detach())
        loss = reconstruction_loss + self.config.loss_predictor_weight * predictor_loss

        # back to raster order for the outputs ([visible..., masked...] -> grid)
        restore = encoded.ids_restore
        logits = torch.gather(pixels, 1, restore.unsqueeze(-1).expand(-1, -1, pixels.shape[-1]))
        output = HPMPreTrainingOutput(
            loss=loss,
            logits=logits,
            mask=mask,
            ids_restore=restore,
            loss_terms={"reconstruction": reconstruction_loss.detach(), "loss_prediction": predictor_loss.detach()},
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
            loss_prediction=torch.gather(loss_prediction, 1, restore),
            teacher_loss_prediction=teacher_prediction,
        )
        return output if return_dict else output.to_tuple()


class HPMForImageClassification(HPMPreTrainedModel, MAEForImageClassification):
    encoder_class = HPMModel
