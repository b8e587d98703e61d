"""MR-MAE ("Mimic before Reconstruct", Gao et al. 2023): MAE whose encoder output at the VISIBLE tokens is also
regressed, through one linear head per teacher, onto frozen teacher features (CLIP and DINO) of the intact image
at the same positions; the decoder still reconstructs the pixels of the MASKED tokens. The two targets act on
disjoint token sets, so they do not compete.

The MR-MAE pre-training code was never released (Alpha-VL/ConvMAE holds only ConvMAE-v1), so the mimic branch
follows the paper and is marked unverified where it had to be guessed:

* student features: "multi-layer fusion" (paper Sec. 3): the outputs of the encoder blocks in
  ``mimic_fusion_layers`` (default: all) at the visible patch tokens, averaged and passed through the encoder's
  final norm, cls excluded [unverified which blocks and how they are combined; a sum gives the same result after
  the norm]; ``[num_hidden_layers]`` is the plain last-layer output;
* heads: one ``nn.Linear(hidden_size, teacher_hidden_size)`` per teacher [unverified];
* targets: teacher ``hidden_states[mimic_target_layer]`` (last block by default) of the full image, whitened
  per token by a parameter-free LayerNorm (as MaskAlign from the same lab) [unverified], cls / register tokens
  dropped, gathered at the student's visible ids;
* loss: ``pixel + w_clip * MSE + w_dino * MSE`` with weights 1:1:1 [unverified];
* "focused mimicking" (paper Sec. 3): the visible set is chosen from the first (CLIP) teacher's last-layer cls
  attention, the most attended patches staying visible (``visible_selection="teacher_attention_topk"``, the
  default) [unverified: top-k rather than attention-weighted sampling, which is also offered]; explicit
  ``noise`` / ``bool_masked_pos`` override it.

The pixel branch is exactly hf_mim's MAE (facebookresearch/mae ``forward_decoder`` / ``forward_loss``).
The teachers are NOT part of the module tree (see ``hf_mim.teacher.TeacherHolderMixin``): they are absent from
``state_dict()`` and ``model.safetensors`` and rebuilt from the config by ``from_pretrained``.
"""

import torch
from torch import nn

from hf_mim.layers.decoder import MAEDecoder
from hf_mim.modeling_utils import (
    MIMPreTrainedModel,
    MIMPreTrainingOutput,
    MIMViTForImageClassification,
    MIMViTModel,
    PixelTargetMixin,
)
from hf_mim.models.mae.modeling_mae import masked_mse
from hf_mim.models.mrmae.configuration_mrmae import MRMAEConfig
from hf_mim.teacher import (
    TeacherHolderMixin,
    cls_attention_importance,
    feature_loss,
    gather_patches,
    guided_permutation,
    normalize_features,
    permutation_to_noise,
)


class MRMAEPreTrainedModel(MIMPreTrainedModel):
    config_class = MRMAEConfig


class MRMAEModel(MRMAEPreTrainedModel, MIMViTModel):
    """The MR-MAE encoder (a plain ViT, as MAE's)."""

    _keys_to_ignore_on_load_unexpected = [r"^decoder\.", r"^mimic_heads\.", r"^frozen_"]


class MRMAEForPreTraining(TeacherHolderMixin, PixelTargetMixin, MRMAEPreTrainedModel):
    """MAE + feature mimicking. Optional constructor arguments ``teacher`` / ``second_teacher`` (modules, paths
    or config dicts) override the config's teachers for this instance (they are not saved)."""

    teacher_names = ("teacher", "second_teacher")

    def __init__(self, config: MRMAEConfig, teacher=None, second_teacher=None):
        super().__init__(config)
        self.encoder = MRMAEModel(config)
        self.decoder = MAEDecoder.from_config(config)
        heads = {"teacher": nn.Linear(config.hidden_size, config.teacher_hidden_size)}
        if config.second_teacher_name_or_path is not None or second_teacher is not None:
            heads["second_teacher"] = nn.Linear(config.hidden_size, config.second_teacher_hidden_size)
        self.mimic_heads = nn.ModuleDict(heads)
        self.post_init()
        self._setup_teachers(**{k: v for k, v in (("teacher", teacher), ("second_teacher", second_teacher)) if v is not None})

    def teacher_kwargs(self, name: str) -> dict:
        guided = name == "teacher" and self.config.visible_selection != "random"
        return {"need_attentions": guided}

    def active_teachers(self) -> list[str]:
        return list(self.mimic_heads.keys())

    def teacher_targets(self, teacher_output, ids_keep: torch.Tensor, num_patches: int) -> torch.Tensor:
        """Whitened teacher features of the full image at the visible patches ``[B, K, D_t]``."""
        features = teacher_output.hidden_states[self.config.mimic_target_layer]
        features = normalize_features(features, self.config.mimic_target_norm)[:, teacher_output.num_prefix_tokens :]
        if features.shape[1] != num_patches:
            raise ValueError(
                f"teacher has {features.shape[1]} patch tokens but the student has {num_patches}: the teacher's "
                "patch grid must equal the student's (set teacher_image_size, or use a teacher with the same patch grid)"
            )
        return gather_patches(features, ids_keep)

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
        num_patches = grid[0] * grid[1]
        # one teacher forward each (full image), before masking: focused mimicking needs the attention maps
        teacher_outputs = {name: self.get_teacher(name)(pixel_values) for name in self.active_teachers()}
        if bool_masked_pos is None and ratio == 0:
            raise ValueError("MR-MAE pre-training needs a mask: set mask_ratio > 0 or pass bool_masked_pos")
        if noise is None and bool_masked_pos is None:
            if self.config.visible_selection == "random":
                noise = self.draw_noise(pixel_values.shape[0], num_patches, pixel_values.device)
            else:
                first = teacher_outputs["teacher"]
                importance = cls_attention_importance(first.attentions[-1], first.num_prefix_tokens)
                mode = "sample" if self.config.visible_selection == "teacher_attention_sample" else "topk"
                noise = permutation_to_noise(guided_permutation(importance, mode, self.mask_rng))
        fusion = self.config.mimic_fusion_layers or range(1, self.config.num_hidden_layers + 1)
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
        fused = torch.stack([encoded.hidden_states[layer] for layer in fusion]).mean(dim=0)
        visible = self.encoder.norm(fused)[:, self.encoder.num_prefix_tokens :]
        weights = {"teacher": self.config.mimic_loss_weight, "second_teacher": self.config.second_mimic_loss_weight}
        loss_terms = {}
        mimic_total = 0.0
        for name, out in teacher_outputs.items():
            target = self.teacher_targets(out, encoded.ids_keep, num_patches)
            prediction = self.mimic_heads[name](visible)
            if prediction.shape[-1] != target.shape[-1]:
                raise ValueError(
                    f"{name} features have {target.shape[-1]} channels but the mimic head outputs "
                    f"{prediction.shape[-1]}: set {name}_hidden_size={target.shape[-1]} in the config"
                )
            term = feature_loss(prediction, target, self.config.mimic_loss)
            loss_terms[f"mimic_{name}"] = term.detach()
            mimic_total = mimic_total + weights[name] * term
        logits = self.decoder(encoded.last_hidden_state, encoded.ids_restore, grid)
        pixel_loss = masked_mse(logits, self.target(pixel_values), encoded.mask)
        loss_terms = {"pixel": pixel_loss.detach(), **loss_terms}
        loss = pixel_loss + mimic_total
        output = MIMPreTrainingOutput(
            loss=loss,
            logits=logits,
            mask=encoded.mask,
            ids_restore=encoded.ids_restore,
            loss_terms=loss_terms,
            hidden_states=encoded.hidden_states if output_hidden_states else None,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


class MRMAEForImageClassification(MRMAEPreTrainedModel, MIMViTForImageClassification):
    encoder_class = MRMAEModel
