# Generated from hf_mim.models.maskalign.modeling_maskalign by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""MaskAlign ("Stare at What You See", Xue et al., CVPR 2023): masked image modeling WITHOUT reconstruction. The
student ViT encodes only the visible patches (no decoder, no mask token); its per-block features at cls + visible
tokens, mixed across blocks by a learnable Dynamic Alignment matrix and passed through one head per teacher layer,
are aligned with a frozen teacher's per-layer features of the INTACT image at the same positions. The visible set
is sampled from the teacher's last-layer cls attention, so the student "stares at" salient patches.

Follows OpenDriveLab/maskalign ``models_pretrain.py``:

* ``forward_clip``: the teacher sees the whole image, re-normalised ImageNet -> CLIP statistics, with
  ``output_hidden_states`` and ``output_attentions`` (eager attention here, since SDPA returns no maps);
* ``attention_masking``: importance = ``attentions[-1][:, :, 0, 1:].mean(1)``; ``ids_shuffle =
  multinomial(importance, L, replacement=False)``; the first ``int(L * (1 - mask_ratio))`` stay visible (drawn from
  the model's ``mask_rng``, then passed to the encoder as the equivalent ``noise``);
* ``forward_encoder``: every block output before the final norm (cls + visible);
* ``get_student``: ``einsum('ab,bcde->acde', distill_weights, stack(blocks))`` then ``distill_heads[i]``;
* ``get_teacher``: ``hidden_states[1:]`` each normalised (``"whiten"``: ``F.layer_norm`` without affine, eps 1e-5),
  cls kept, patches gathered at ``ids_keep``;
* ``forward_loss``: ``sum_i w_i * 2 * smooth_l1(teacher_i, student_i)`` with ``top5`` weights.

The official code hard-codes teacher width/depth from the teacher name; here they are config fields (read from a
config-dict teacher). Teachers with register tokens (Dinov2 with registers) keep only the cls token of the prefix.
"""

import torch
from torch import nn
from transformers import initialization as init

from .mim_modeling_utils import MIMPreTrainedModel, MIMPreTrainingOutput, MIMViTForImageClassification, MIMViTModel
from .configuration_maskalign import MaskAlignConfig, loss_weight_list
from .mim_teacher import TeacherHolderMixin, cls_attention_importance, feature_loss, gather_patches, guided_permutation, normalize_features, permutation_to_noise


class MaskAlignPreTrainedModel(MIMPreTrainedModel):
    config_class = MaskAlignConfig


class MaskAlignModel(MaskAlignPreTrainedModel, MIMViTModel):
    """The MaskAlign student encoder (MAE-style ViT with fixed sin-cos positions and a cls token)."""

    _keys_to_ignore_on_load_unexpected = [r"^distill_heads\.", r"^distill_weights$", r"^frozen_"]


def build_head(kind: str, dim: int, target_dim: int, eps: float) -> nn.Module:
    if kind == "linear":
        return nn.Linear(dim, target_dim)
    if kind == "norm_linear":
        return nn.Sequential(nn.LayerNorm(dim, eps=eps), nn.Linear(dim, target_dim))
    if kind == "mlp":
        return nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.Linear(dim, target_dim))
    return nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim, eps=eps), nn.Linear(dim, target_dim))


class MaskAlignForPreTraining(TeacherHolderMixin, MaskAlignPreTrainedModel):
    """Student encoder + Dynamic Alignment + per-layer heads; the teacher is held outside the module tree (see
    ``hf_mim.teacher.TeacherHolderMixin``). Optional ``teacher`` (module / path / config dict) overrides the
    config's teacher for this instance (not saved)."""

    teacher_names = ("teacher",)

    def __init__(self, config: MaskAlignConfig, teacher=None):
        super().__init__(config)
        self.encoder = MaskAlignModel(config)
        depth, teacher_depth = config.num_hidden_layers, config.teacher_num_hidden_layers
        self.distill_heads = nn.ModuleList(
            [
                build_head(config.head_type, config.hidden_size, config.teacher_hidden_size, config.layer_norm_eps)
                for _ in range(teacher_depth)
            ]
        )
        self.distill_weights = None
        if config.fusion_type == "linear":
            self.distill_weights = nn.Parameter(torch.eye(depth) + 0.01)
        elif config.fusion_type == "sum":
            self.distill_weights = nn.Parameter(torch.ones(teacher_depth, depth) / depth)
        self.post_init()
        self._setup_teachers(**({"teacher": teacher} if teacher is not None else {}))

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        super()._init_weights(module)
        if isinstance(module, MaskAlignForPreTraining) and module.distill_weights is not None:
            weights = module.distill_weights
            if module.config.fusion_type == "linear":
                init.copy_(weights, torch.eye(weights.shape[0]) + 0.01)
            else:
                init.constant_(weights, 1.0 / weights.shape[1])

    def teacher_kwargs(self, name: str) -> dict:
        return {"need_attentions": self.config.mask_type == "attention"}

    def attention_noise(self, teacher_output) -> torch.Tensor:
        """Noise encoding the teacher-attention-guided permutation (official ``attention_masking``)."""
        importance = cls_attention_importance(teacher_output.attentions[-1], teacher_output.num_prefix_tokens)
        return permutation_to_noise(guided_permutation(importance, "sample", self.mask_rng))

    def fuse(self, student_hidden: list[torch.Tensor]) -> list[torch.Tensor]:
        """Dynamic Alignment (official ``get_student``): mix the student's blocks, then the per-layer heads."""
        if self.distill_weights is not None:
            stacked = torch.stack(student_hidden, dim=0)
            mixed = torch.einsum("ab,bcde->acde", self.distill_weights.to(stacked.dtype), stacked)
            student_hidden = list(mixed.unbind(0))
        return [head(x) for head, x in zip(self.distill_heads, student_hidden)]

    def teacher_targets(self, teacher_output, ids_keep: torch.Tensor, num_patches: int) -> list[torch.Tensor]:
        """Official ``get_teacher``: every block output, normalised, cls + patches at ``ids_keep``."""
        prefix = teacher_output.num_prefix_tokens
        targets = []
        for features in teacher_output.hidden_states[1:]:
            features = normalize_features(features, self.config.target_norm)
            patches = features[:, prefix:]
            if patches.shape[1] != num_patches:
                raise ValueError(
                    f"teacher has {patches.shape[1]} patch tokens but the student has {num_patches}: the patch grids "
                    "must match (set teacher_image_size, e.g. 196 for a CLIP-L/14 teacher of a /16 student at 224)"
                )
            targets.append(torch.cat([features[:, :1], gather_patches(patches, ids_keep)], dim=1))
        return targets

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
        noise (`torch.FloatTensor` of shape `(batch, num_patches)`, *optional*): fixes the mask (MAE semantics:
            the `int(L * (1 - mask_ratio))` lowest-noise patches stay visible), bypassing attention-guided
            sampling. bool_masked_pos (`torch.BoolTensor`, *optional*): explicit mask, True = masked.
        mask_ratio (`float`, *optional*): overrides `config.mask_ratio` for this call.
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        ratio = self.config.mask_ratio if mask_ratio is None else mask_ratio
        grid = self.patch_grid(pixel_values)
        num_patches = grid[0] * grid[1]
        teacher_out = self.teacher(pixel_values, interpolate_pos_encoding=self.config.teacher_image_size is not None)
        if len(teacher_out.hidden_states) - 1 != len(self.distill_heads):
            raise ValueError(
                f"the teacher has {len(teacher_out.hidden_states) - 1} blocks but the config says "
                f"teacher_num_hidden_layers={len(self.distill_heads)}"
            )
        if noise is None and bool_masked_pos is None:
            if self.config.mask_type == "attention":
                noise = self.attention_noise(teacher_out)
            else:
                noise = self.draw_noise(pixel_values.shape[0], num_patches, pixel_values.device)
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
        student = self.fuse(list(encoded.hidden_states[1:]))
        targets = self.teacher_targets(teacher_out, encoded.ids_keep, num_patches)
        weights = loss_weight_list(self.config.loss_weights, len(targets))
        loss = pixel_values.new_zeros((), dtype=torch.float32)
        loss_terms = {}
        for index, (prediction, target, weight) in enumerate(zip(student, targets, weights)):
            if weight > 0:
                if prediction.shape[-1] != target.shape[-1]:
                    raise ValueError(
                        f"teacher features have {target.shape[-1]} channels, heads output {prediction.shape[-1]}: "
                        f"set teacher_hidden_size={target.shape[-1]}"
                    )
                term = feature_loss(prediction, target, self.config.loss_type)
                loss_terms[f"align_{index + 1}"] = term.detach()
                loss = loss + weight * term
        want_hidden = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        output = MIMPreTrainingOutput(
            loss=loss,
            mask=encoded.mask,
            ids_restore=encoded.ids_restore,
            loss_terms=loss_terms,
            hidden_states=encoded.hidden_states if want_hidden else None,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


class MaskAlignForImageClassification(MaskAlignPreTrainedModel, MIMViTForImageClassification):
    encoder_class = MaskAlignModel
