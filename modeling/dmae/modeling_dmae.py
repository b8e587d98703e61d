# Generated from hf_mim.models.dmae.modeling_dmae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""DMAE (Bai et al., CVPR 2023): an MAE student trained with the MAE pixel loss on masked patches plus a feature
distillation loss that aligns an intermediate student block (cls + visible tokens, before the final norm, through a
projection) with an intermediate block of a larger MAE-pretrained teacher run on the SAME visible patches, so only
the teacher's first blocks are needed.

Follows UCSC-VLAA/DMAE ``models_mae_distill.py``: the teacher's ``forward_encoder_customized`` draws the mask and
hands ``ids_keep`` to the student's ``forward_encoder_student``; ``forward_distillation_loss_embedding`` computes
``criterion(F.normalize(teacher.detach(), dim=-1), F.normalize(head(student), dim=-1))`` per aligned block with
``nn.L1Loss`` (mean over batch x tokens x channels); ``forward_loss`` is the MAE pixel loss (raw pixels,
``--norm_pix_loss`` off in ``pretrain.sh``); the total is pixel + sum of the distillation terms. Here the student
draws the mask (same MAE semantics: ``noise`` -> ``ids_keep``) and the teacher gets the same ``ids_keep``.
The official teacher runs its full encoder and decoder; here it is truncated after the deepest aligned block, which
gives the same target (the paper's efficiency argument).
"""

import torch
from torch import nn

from .mim_layers_decoder import MAEDecoder
from .mim_modeling_utils import MIMPreTrainedModel, MIMPreTrainingOutput, MIMViTForImageClassification, MIMViTModel, PixelTargetMixin
from .configuration_dmae import DMAEConfig
from .modeling_mae import masked_mse
from .mim_teacher import TeacherHolderMixin, feature_loss


class DMAEPreTrainedModel(MIMPreTrainedModel):
    config_class = DMAEConfig


class DMAEModel(DMAEPreTrainedModel, MIMViTModel):
    """The DMAE student encoder (a plain ViT)."""

    _keys_to_ignore_on_load_unexpected = [r"^decoder\.", r"^projections\.", r"^frozen_"]


class DMAEMlp(nn.Module):
    """timm ``Mlp``: Linear -> GELU -> Linear (the official ``mlp-1layer`` head, dropout 0)."""

    def __init__(self, in_features: int, hidden_features: int, out_features: int):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def build_projection(kind: str, student_dim: int, teacher_dim: int) -> nn.Module:
    if kind == "fc-1layer":
        return nn.Linear(student_dim, teacher_dim)
    if kind == "mlp-1layer":
        return DMAEMlp(student_dim, teacher_dim, teacher_dim)
    return nn.Sequential(DMAEMlp(student_dim, teacher_dim, teacher_dim), DMAEMlp(teacher_dim, teacher_dim, teacher_dim))


class DMAEForPreTraining(TeacherHolderMixin, PixelTargetMixin, DMAEPreTrainedModel):
    """MAE + intermediate-feature distillation. Optional ``teacher`` (module / path / config dict) overrides the
    config's teacher for this instance (not saved)."""

    teacher_names = ("teacher",)

    def __init__(self, config: DMAEConfig, teacher=None):
        super().__init__(config)
        self.encoder = DMAEModel(config)
        self.decoder = MAEDecoder.from_config(config)
        self.projections = nn.ModuleList(
            [
                build_projection(config.projection_type, config.hidden_size, config.teacher_hidden_size)
                for _ in config.student_align_layers
            ]
        )
        self.post_init()
        self._setup_teachers(**({"teacher": teacher} if teacher is not None else {}))

    def teacher_kwargs(self, name: str) -> dict:
        return {"num_layers": max(self.config.teacher_align_layers)}

    def distillation_terms(self, student_hidden, teacher_hidden) -> dict[str, torch.Tensor]:
        """One term per aligned pair: loss(normalize(T_j), normalize(P_j(S_i))) over cls + visible tokens."""
        terms = {}
        for projection, s_idx, t_idx in zip(self.projections, self.config.student_align_layers, self.config.teacher_align_layers):
            student = projection(student_hidden[s_idx])
            teacher = teacher_hidden[t_idx].detach()
            if teacher.shape[:2] != student.shape[:2]:
                raise ValueError(
                    f"teacher tokens {tuple(teacher.shape[:2])} do not match student tokens {tuple(student.shape[:2])}: "
                    "the teacher must have one cls token and the student's patch grid"
                )
            if teacher.shape[-1] != student.shape[-1]:
                raise ValueError(
                    f"teacher features have {teacher.shape[-1]} channels, projection outputs {student.shape[-1]}: "
                    f"set teacher_hidden_size={teacher.shape[-1]}"
                )
            terms[f"distill_{s_idx}_{t_idx}"] = feature_loss(
                nn.functional.normalize(student.float(), dim=-1),
                nn.functional.normalize(teacher.float(), dim=-1),
                self.config.distill_loss,
            )
        return terms

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
            semantics). bool_masked_pos (`torch.BoolTensor`, *optional*): explicit mask, True = masked.
        mask_ratio (`float`, *optional*): overrides `config.mask_ratio` for this call.
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        grid = self.patch_grid(pixel_values)
        noise = self.noise_or_draw(
            noise, bool_masked_pos, ratio, pixel_values.shape[0], grid[0] * grid[1], pixel_values.device
        )
        encoded = self.encoder(
            pixel_values,
            noise=noise,
            bool_masked_pos=bool_masked_pos,
            mask_ratio=ratio,
            output_hidden_states=True,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        teacher_out = self.teacher(pixel_values, ids_keep=encoded.ids_keep)
        terms = self.distillation_terms(encoded.hidden_states, teacher_out.hidden_states)
        logits = self.decoder(encoded.last_hidden_state, encoded.ids_restore, grid)
        pixel_loss = masked_mse(logits, self.target(pixel_values), encoded.mask)
        distill = sum(terms.values())
        loss = pixel_loss + self.config.distill_loss_weight * distill
        want_hidden = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        output = MIMPreTrainingOutput(
            loss=loss,
            logits=logits,
            mask=encoded.mask,
            ids_restore=encoded.ids_restore,
            loss_terms={"pixel": pixel_loss.detach(), **{k: v.detach() for k, v in terms.items()}},
            hidden_states=encoded.hidden_states if want_hidden else None,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


class DMAEForImageClassification(DMAEPreTrainedModel, MIMViTForImageClassification):
    encoder_class = DMAEModel
