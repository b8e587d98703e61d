"""Hybrid Distillation (Shi et al., ICLR 2024): a ViT student distilled from TWO frozen teachers at once.

* Token relations from a MIM teacher (MAE): at the ``relation_layers`` the student's attention maps
  ``softmax(q k^T / sqrt(d))`` imitate the MIM teacher's attention maps by ``KL(teacher || student)`` per query
  row (mean over batch, heads and rows), summed over the layers. This keeps the diverse, local attention of MIM.
* Features from a supervised / contrastive teacher (CLIP or DeiT): the student's final output (after its final
  LayerNorm) goes through a projection head and regresses the teacher's last-block features (whitened), at the
  cls token and the patch tokens the student still holds. This gives discrimination. Both teachers see the whole
  image and the student gets the same (symmetric) input: no decoder, no mask token (the paper's thesis).
* Progressive redundant-token masking: the patch tokens are ranked by a teacher's [CLS] attention (head mean,
  ``importance_layer``); the least attended are redundant. Before each block in ``drop_layers`` the student drops
  the least important tokens it still holds until a cumulative ``drop_ratios[i] * s`` of the patches is gone, so
  the token set shrinks with depth; the scale ``s`` grows over training (``mask_schedule``), set from the training
  step by :meth:`HybridDistillForPreTraining.begin_training_step` (called by ``MIMTrainer``).
  Relation targets are the teacher's maps re-indexed to the tokens the student still holds at that block, on the
  query AND key axes, rows renormalised (equal to the softmax over the kept keys).

No official code was released (no repository found): the layer set, stages, ratios, schedule, weights, target
normalisation and loss are our reading of the paper text and are all config switches (see the config docstring).
"""

import math
from dataclasses import dataclass

import torch
from torch import nn

from hf_mim.masking.core import check_mask
from hf_mim.modeling_utils import (
    MIMPreTrainedModel,
    MIMPreTrainingOutput,
    MIMViTForImageClassification,
    MIMViTModel,
)
from hf_mim.models.hybriddistill.configuration_hybriddistill import HybridDistillConfig
from hf_mim.teacher import (
    TeacherHolderMixin,
    cls_attention_importance,
    feature_loss,
    gather_patches,
    normalize_features,
)


def schedule_scale(progress: float, schedule: str, start: float = 0.0, end: float = 1.0) -> float:
    """The factor ``s`` on the drop ratios at training ``progress`` in [0, 1]: from ``start`` at 0 to 1 at ``end``
    (linearly or along a half cosine), 1 afterwards; always 1 for "constant"."""
    if schedule == "constant":
        return 1.0
    t = min(max(progress / end, 0.0), 1.0)
    if schedule == "cosine":
        t = 0.5 * (1.0 - math.cos(math.pi * t))
    return start + (1.0 - start) * t


def keep_counts(num_patches: int, depth: int, drop_layers, ratios) -> list[int]:
    """Patch tokens entering each of the ``depth`` blocks: ``int(L * (1 - r))`` (MAE rounding) from each drop
    stage on, at least 1."""
    counts, keep = [], num_patches
    stages = dict(zip(drop_layers, ratios))
    for block in range(depth):
        if block in stages:
            keep = min(keep, max(1, int(num_patches * (1.0 - stages[block]))))
        counts.append(keep)
    return counts


def relation_kl(teacher_probs: torch.Tensor, student_log_probs: torch.Tensor) -> torch.Tensor:
    """``KL(teacher || student)`` summed over keys, averaged over batch, heads and query rows (float32)."""
    teacher_probs = teacher_probs.float()
    kl = torch.xlogy(teacher_probs, teacher_probs) - teacher_probs * student_log_probs.float()
    return kl.sum(-1).mean()


def restrict_relation(attention: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """A teacher attention map ``[B, H, T, T]`` (cls first, patches in raster order) restricted to ``token_ids``
    ``[B, K]`` (positions in that map) on both axes, each row renormalised over the kept keys."""
    heads = attention.shape[1]
    index = token_ids[:, None, :, None].expand(-1, heads, -1, attention.shape[-1])
    rows = torch.gather(attention, 2, index)
    cols = torch.gather(rows, 3, token_ids[:, None, None, :].expand(-1, heads, token_ids.shape[1], -1))
    return cols / cols.sum(-1, keepdim=True).clamp_min(1e-12)


@dataclass
class HybridDistillPreTrainingOutput(MIMPreTrainingOutput):
    """Adds ``ids_shuffle`` ``[B, L]`` (patches, most important first: the student holds the first
    ``keep_counts[b]`` of them in block ``b``) and ``keep_counts`` (per block)."""

    ids_shuffle: torch.Tensor | None = None
    keep_counts: tuple[int, ...] | None = None


class HybridDistillPreTrainedModel(MIMPreTrainedModel):
    config_class = HybridDistillConfig


class HybridDistillModel(HybridDistillPreTrainedModel, MIMViTModel):
    """The Hybrid Distillation student encoder (ViT with fixed sin-cos positions and a cls token)."""

    _keys_to_ignore_on_load_unexpected = [r"^feature_head\.", r"^frozen_"]


class HybridDistillForPreTraining(TeacherHolderMixin, HybridDistillPreTrainedModel):
    """Student encoder + projection head; the MIM and CL teachers are held outside the module tree (not saved, see
    ``hf_mim.teacher.TeacherHolderMixin``). Optional ``mim_teacher`` / ``cl_teacher`` (modules, paths or config
    dicts) override the config's teachers for this instance."""

    teacher_names = ("mim_teacher", "cl_teacher")

    def __init__(self, config: HybridDistillConfig, mim_teacher=None, cl_teacher=None):
        super().__init__(config)
        self.encoder = HybridDistillModel(config)
        dim, target = config.hidden_size, config.cl_teacher_hidden_size
        if config.head_type == "linear":
            self.feature_head = nn.Linear(dim, target)
        else:
            self.feature_head = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, target))
        # training progress in [0, 1] driving the drop-ratio schedule; 1 (final ratios) until the trainer sets it
        self.mask_progress = 1.0
        self.post_init()
        sources = {"mim_teacher": mim_teacher, "cl_teacher": cl_teacher}
        self._setup_teachers(**{name: source for name, source in sources.items() if source is not None})

    def teacher_kwargs(self, name: str) -> dict:
        needs = name == "mim_teacher" or self.config.token_importance == "cl_teacher"
        return {"need_attentions": needs}

    # ------------------------------------------------------------------ schedule (MIMTrainer step hooks)
    def begin_training_step(self, step: int, total_steps: int) -> None:
        self.mask_progress = step / max(int(total_steps), 1)

    def drop_ratios(self, progress: float | None = None) -> list[float]:
        """The cumulative drop ratio of every stage at training ``progress`` (the model's own by default)."""
        config = self.config
        progress = self.mask_progress if progress is None else progress
        scale = schedule_scale(progress, config.mask_schedule, config.mask_schedule_start, config.mask_schedule_end)
        return [ratio * scale for ratio in config.drop_ratios]

    # ------------------------------------------------------------------ pieces
    def token_order(self, teacher_outputs: dict, batch: int, num_patches: int, device) -> torch.Tensor:
        """Patches ranked most important first (least-attended = redundant last), from the chosen teacher's
        [CLS] attention; "random" uses ``mask_rng`` noise."""
        choice = self.config.token_importance
        if choice == "random":
            return torch.argsort(self.draw_noise(batch, num_patches, device), dim=1)
        out = teacher_outputs[choice]
        attention = out.attentions[self.config.importance_layer]
        importance = cls_attention_importance(attention, out.num_prefix_tokens)
        if importance.shape[1] != num_patches:
            raise ValueError(f"the {choice} has {importance.shape[1]} patch tokens, the student {num_patches}: the patch grids must match")
        return torch.argsort(importance, dim=1, descending=True, stable=True)

    @staticmethod
    def student_relation(block: nn.Module, hidden: torch.Tensor, attention_bias: torch.Tensor | None) -> torch.Tensor:
        """``log softmax(q k^T / sqrt(d))`` of ``block`` on ``hidden`` ``[B, H, T, T]`` (float32), recomputed from
        its own ``norm1`` and ``qkv`` so it works with any attention kernel (SDPA returns no maps)."""
        attn = block.attn
        batch, length, _ = hidden.shape
        qkv = attn.project_qkv(block.norm1(hidden)).reshape(batch, length, 3, attn.num_heads, attn.head_dim)
        query, key = qkv[:, :, 0].transpose(1, 2), qkv[:, :, 1].transpose(1, 2)
        logits = torch.matmul(query.float(), key.float().transpose(-2, -1)) * attn.scaling
        if attention_bias is not None:
            logits = logits + attention_bias.float()
        return torch.log_softmax(logits, dim=-1)

    def relation_target(self, attention: torch.Tensor, token_ids: torch.Tensor, prefix: int) -> torch.Tensor:
        """MIM-teacher map at the student's tokens: cls (position 0) + patches ``token_ids`` (offset by the
        teacher's prefix tokens; register tokens are left out)."""
        positions = torch.cat([token_ids.new_zeros(token_ids.shape[0], 1), token_ids + prefix], dim=1)
        return restrict_relation(attention, positions)

    def feature_target(self, teacher_output, token_ids: torch.Tensor, num_patches: int) -> torch.Tensor:
        """Whitened CL-teacher features (``feature_target_layer``), cls + patches at ``token_ids``."""
        features = normalize_features(teacher_output.hidden_states[self.config.feature_target_layer], self.config.feature_target_norm)
        patches = features[:, teacher_output.num_prefix_tokens :]
        if patches.shape[1] != num_patches:
            raise ValueError(
                f"the CL teacher has {patches.shape[1]} patch tokens but the student has {num_patches}: the patch "
                "grids must match (set cl_teacher_image_size, or use a teacher with the student's patch grid)"
            )
        return torch.cat([features[:, :1], gather_patches(patches, token_ids)], dim=1)

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mask_progress: float | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> HybridDistillPreTrainingOutput | tuple:
        r"""
        noise (`torch.FloatTensor` of shape `(batch, num_patches)`, *optional*): fixes the token ranking instead
            of the teacher attention (ascending noise = most important, MAE semantics); the progressive stages
            still apply. bool_masked_pos (`torch.BoolTensor`, *optional*): explicit input mask (True = dropped,
            same count per row) used for every block, without further stages.
        mask_progress (`float`, *optional*): training progress in [0, 1] for the drop-ratio schedule (default: the
            value set by `begin_training_step`, 1.0 before any).
        output_attentions: return the student's relation maps at `relation_layers` (probabilities).
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        if noise is not None and bool_masked_pos is not None:
            raise ValueError("pass either noise or bool_masked_pos, not both")
        config = self.config
        return_dict = return_dict if return_dict is not None else config.return_dict
        encoder = self.encoder
        batch = pixel_values.shape[0]
        tokens, cls, grid = encoder.embed(pixel_values)
        num_patches = tokens.shape[1]
        device = tokens.device

        teacher_outputs = {
            "mim_teacher": self.get_teacher("mim_teacher")(
                pixel_values, interpolate_pos_encoding=config.mim_teacher_image_size is not None
            ),
            "cl_teacher": self.get_teacher("cl_teacher")(
                pixel_values, interpolate_pos_encoding=config.cl_teacher_image_size is not None
            ),
        }

        depth = len(encoder.blocks)
        if bool_masked_pos is not None:
            if bool_masked_pos.shape != (batch, num_patches):
                raise ValueError(f"bool_masked_pos must have shape [{batch}, {num_patches}], got {tuple(bool_masked_pos.shape)}")
            visible = (~check_mask(bool_masked_pos)).sum(1)
            if (visible != visible[0]).any() or visible[0] == 0:
                raise ValueError("bool_masked_pos must keep the same (non-zero) number of patches in every row")
            # visible patches first (raster order within each group)
            ids_shuffle = torch.argsort(bool_masked_pos.to(device).int(), dim=1, stable=True)
            counts = [int(visible[0])] * depth
        else:
            if noise is not None:
                if noise.shape != (batch, num_patches):
                    raise ValueError(f"noise must have shape [{batch}, {num_patches}], got {tuple(noise.shape)}")
                ids_shuffle = torch.argsort(noise.to(device), dim=1, stable=True)
            else:
                ids_shuffle = self.token_order(teacher_outputs, batch, num_patches, device)
            counts = keep_counts(num_patches, depth, config.drop_layers, self.drop_ratios(mask_progress))

        # the student's token set: cls + the most important patches (dropping = truncating the ranked list)
        tokens = gather_patches(tokens, ids_shuffle)
        hidden = torch.cat([cls, tokens[:, : counts[0]]], dim=1)
        relation_at = dict(zip(config.relation_layers, config.relation_teacher_layers))
        mim = teacher_outputs["mim_teacher"]
        want_hidden = output_hidden_states if output_hidden_states is not None else config.output_hidden_states
        all_hidden = [hidden] if want_hidden else None
        relations = []
        loss_terms = {}
        relation_loss = pixel_values.new_zeros((), dtype=torch.float32)
        for index, block in enumerate(encoder.blocks):
            keep = counts[index]
            if hidden.shape[1] - 1 > keep:
                hidden = hidden[:, : 1 + keep]
            token_ids = ids_shuffle[:, :keep]
            bias = encoder.attention_bias(token_ids, grid)
            layer = index + 1
            if layer in relation_at:
                student = self.student_relation(block, hidden, bias)
                teacher = self.relation_target(mim.attentions[relation_at[layer] - 1], token_ids, mim.num_prefix_tokens)
                if config.relation_head_mode == "mean":
                    teacher = teacher.mean(1, keepdim=True)
                    student = torch.logsumexp(student, dim=1, keepdim=True) - math.log(student.shape[1])
                elif teacher.shape[1] != student.shape[1]:
                    raise ValueError(
                        f"the MIM teacher has {teacher.shape[1]} heads, the student {student.shape[1]}: use "
                        "relation_head_mode='mean' (head-averaged maps) or equal head counts"
                    )
                term = relation_kl(teacher, student)
                loss_terms[f"relation_{layer}"] = term.detach()
                relation_loss = relation_loss + term
                relations.append(student.exp())
            hidden, _ = block(hidden, bias)
            if want_hidden:
                all_hidden.append(hidden)

        final_ids = ids_shuffle[:, : counts[-1]]
        prediction = self.feature_head(encoder.norm(hidden))
        target = self.feature_target(teacher_outputs["cl_teacher"], final_ids, num_patches)
        if prediction.shape[-1] != target.shape[-1]:
            raise ValueError(
                f"CL-teacher features have {target.shape[-1]} channels, the head outputs {prediction.shape[-1]}: set "
                f"cl_teacher_hidden_size={target.shape[-1]}"
            )
        feat = feature_loss(prediction, target, config.feature_loss_type)
        loss_terms["feature"] = feat.detach()
        loss_terms["relation"] = relation_loss.detach()
        loss = config.feature_loss_weight * feat + config.relation_loss_weight * relation_loss

        mask = torch.ones(batch, num_patches, dtype=torch.bool, device=device).scatter(1, final_ids, False)
        output = HybridDistillPreTrainingOutput(
            loss=loss,
            mask=mask,
            ids_restore=torch.argsort(ids_shuffle, dim=1),
            loss_terms=loss_terms,
            hidden_states=tuple(all_hidden) if want_hidden else None,
            attentions=tuple(relations) if output_attentions else None,
            ids_shuffle=ids_shuffle,
            keep_counts=tuple(counts),
        )
        return output if return_dict else output.to_tuple()


class HybridDistillForImageClassification(HybridDistillPreTrainedModel, MIMViTForImageClassification):
    encoder_class = HybridDistillModel
