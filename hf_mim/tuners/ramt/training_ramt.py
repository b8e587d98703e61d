"""R-AMT training: CLIP's zero-shot classifier head and the gradient-dropout update (``code/trainers/masktuning.py``).

Importing this module loads transformers' Trainer stack, so :mod:`hf_mim.tuners.ramt` resolves its names on first
use.
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Trainer
from transformers.modeling_outputs import ImageClassifierOutput

from hf_mim.tuners.ramt.mask_tuning import MaskTunedModel, masked_layers, masks_disabled

DEFAULT_TEMPLATES = ("a photo of a {}.",)
PACKED_PROJECTIONS = ("q_proj", "k_proj", "v_proj")  # one in_proj_weight in OpenAI's CLIP


class CLIPZeroShotClassifier(nn.Module):
    """Logits ``exp(logit_scale) * norm(image features) @ class embeddings.T`` of a (mask-tuned) ``CLIPModel``.

    The text side is frozen and used once: each class embedding is the mean of the text features of its prompts
    (class name lower-cased, ``_`` -> space, put into every template), then L2-normalised, as the official
    ``TextEncoder``.
    """

    def __init__(self, clip, tokenizer, class_names, templates=DEFAULT_TEMPLATES):
        super().__init__()
        if not class_names:
            raise ValueError("class_names is empty: pass the names of the classes to tell apart")
        self.clip = clip
        model = self.clip_model
        embeddings = []
        with torch.no_grad():
            for name in class_names:
                texts = [template.format(name.replace("_", " ").lower()) for template in templates]
                tokens = tokenizer(texts, padding=True, return_tensors="pt").to(model.logit_scale.device)
                features = model.text_projection(model.text_model(**tokens).pooler_output).mean(0)
                embeddings.append(features / features.norm())
        self.register_buffer("class_embeddings", torch.stack(embeddings), persistent=False)
        self.class_names = list(class_names)

    @property
    def clip_model(self):
        return self.clip.base_model if isinstance(self.clip, MaskTunedModel) else self.clip

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        model = self.clip_model
        features = model.visual_projection(model.vision_model(pixel_values=pixel_values).pooler_output)
        return features / features.norm(dim=-1, keepdim=True)

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None) -> ImageClassifierOutput:
        logits = self.clip_model.logit_scale.exp() * self.image_features(pixel_values) @ self.class_embeddings.t()
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        return ImageClassifierOutput(loss=loss, logits=logits)


def soft_cross_entropy(student_logits, teacher_logits, temperature: float = 1.0) -> torch.Tensor:
    """The official ``KLLoss`` (``FUSE_ALPHA`` = 1): cross-entropy to the teacher's softened distribution, T²-scaled.

    It includes the teacher's entropy, so it is KL(teacher || student) plus a constant: same gradient."""
    teacher = F.softmax(teacher_logits / temperature, dim=-1)
    return -(teacher * F.log_softmax(student_logits / temperature, dim=-1)).sum(1).mean() * temperature**2


def gradient_dropout(task_grad, teacher_grad, lambda_: float = 1.0, uniform=None, eps: float = 1e-8):
    """Keep each entry of ``task_grad`` with probability ``P = (sign(g) (g + g_t) / (|g| + |g_t| + eps) + 1) / 2``.

    ``P`` is 1 where both gradients share a sign, below 1/2 where the teacher's gradient opposes the task's (0 when
    it dominates). A dropped entry is scaled by ``1 - lambda_`` (0 with the default). ``uniform`` (``U`` of the
    official ``graddrop_backward_and_update``, kept where ``P > U``) is drawn with ``torch.rand`` when not given.
    """
    keep_prob = (torch.sign(task_grad) * (task_grad + teacher_grad) / (task_grad.abs() + teacher_grad.abs() + eps)
                 + 1) / 2
    if uniform is None:
        uniform = torch.rand(task_grad.shape, device=task_grad.device)
    return ((1.0 - lambda_) + lambda_ * (keep_prob > uniform)) * task_grad


def score_norms(layers: dict) -> torch.Tensor:
    """Sum of the L2 norms of the score tensors (the official ``RegLoss(param, 2)``), the q/k/v scores of one
    attention counted as one tensor: OpenAI's CLIP packs them in one ``in_proj`` score, whose norm is not the sum
    of its three blocks' norms."""
    groups = {}
    for name, layer in layers.items():
        parent, _, last = name.rpartition(".")
        key = parent if last in PACKED_PROJECTIONS else name
        groups[key] = groups.get(key, 0) + layer.mask_scores.square().sum()
    return sum(total.sqrt() for total in groups.values())


def mask_tuning_gradients(model: nn.Module, inputs: dict, config) -> tuple[torch.Tensor, list]:
    """Task loss and score gradients of one R-AMT step on ``inputs`` (``pixel_values``, ``labels``).

    Task loss = cross-entropy + ``score_l2_weight`` x the sum of the scores' L2 norms. With gradient dropout the
    teacher is the same model with its masks off (the zero-shot CLIP); both gradients are taken from one forward
    and no optimizer step happens between them, as in ``graddrop_backward_and_update``.
    """
    layers = masked_layers(model)
    scores = [layer.mask_scores for layer in layers.values()]
    inputs = dict(inputs)
    labels = inputs.pop("labels")
    logits = model(**inputs).logits
    loss = F.cross_entropy(logits, labels)
    if config.score_l2_weight:
        loss = loss + config.score_l2_weight * score_norms(layers)
    if not config.gradient_dropout:
        return loss, list(torch.autograd.grad(loss, scores))
    with torch.no_grad(), masks_disabled(model):
        teacher_logits = model(**inputs).logits
    teacher_loss = soft_cross_entropy(logits, teacher_logits, config.teacher_temperature)
    teacher_grads = torch.autograd.grad(teacher_loss, scores, retain_graph=True)
    task_grads = torch.autograd.grad(loss, scores)
    return loss, [gradient_dropout(g, t, config.gradient_dropout_lambda) for g, t in zip(task_grads, teacher_grads)]


class MaskTuningTrainer(Trainer):
    """``Trainer`` whose step is R-AMT's: gradients of the scores only, filtered by gradient dropout.

    ``model`` is a :class:`CLIPZeroShotClassifier` (or any classifier returning ``.logits``) around a
    :class:`MaskTunedModel`. Checkpoints and ``save_model`` hold the tuner's config and fp32 scores only (exact
    resume); ``MaskTunedModel.save_pretrained`` writes the 1-bit masks to share. Gradients are taken with
    ``torch.autograd.grad`` and set directly: one device, no fp16 loss scaling (bf16 autocast works; the scores
    stay fp32).
    """

    def _mask_tuned(self) -> MaskTunedModel:
        tuned = [m for m in self.model.modules() if isinstance(m, MaskTunedModel)]
        if not tuned:
            raise ValueError("the model holds no MaskTunedModel: wrap its CLIP with apply_mask_tuning first")
        return tuned[0]

    def training_step(self, model, inputs, num_items_in_batch=None):
        model.train()
        inputs = self._prepare_inputs(inputs)
        with self.compute_loss_context_manager():
            loss, grads = mask_tuning_gradients(model, inputs, self._mask_tuned().ramt_config)
        steps = self.current_gradient_accumulation_steps
        for layer, grad in zip(masked_layers(model).values(), grads):
            scores = layer.mask_scores
            scores.grad = grad / steps if scores.grad is None else scores.grad + grad / steps
        return loss.detach() / steps

    def _save(self, output_dir: str | None = None, state_dict=None) -> None:
        output_dir = output_dir or self.args.output_dir
        self._mask_tuned().save_pretrained(output_dir, packed=False)
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None) -> None:
        self._mask_tuned().load_masks(resume_from_checkpoint)
