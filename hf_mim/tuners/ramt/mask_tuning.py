"""R-AMT's mask tuning: learnable binary masks on the frozen weights of a CLIP, offered like a peft tuner.

Regularized Mask Tuning (Zheng et al., ICCV 2023; official code wuw2019/R-AMT, ``code/modules/masklayers.py``) adapts
a frozen vision-language model by *removing* weights instead of adding any: every chosen weight matrix ``W`` gets a
real-valued score tensor ``S`` of its shape (fp32, constant ``score_init`` = 1e-2), the forward uses
``(S > threshold) * W`` (threshold 5e-3, so every mask starts all-ones) and the binarisation passes its gradient
straight through to ``S`` (the official ``Binarizer``). Only the scores train.

Why this is not a registered peft type: peft 0.21's ``register_peft_method`` refuses any name that is not a member
of its closed ``PeftType`` enum ("Unknown PEFT type ..., please add an entry to peft.utils.peft_types.PeftType"),
and peft's SHiRA is a different, additive sparse method. So :func:`apply_mask_tuning` returns hf_mim's own
:class:`MaskTunedModel` with peft's verbs: ``save_pretrained`` (only the masks, bit-packed, or the scores, as
safetensors + a JSON config naming the base model), ``MaskTunedModel.from_pretrained(model, path)`` and
``merge_and_unload``.

Where the official code differs from the paper's description, hf_mim follows the code:

* the official ViT also masks the patch embedding (``conv1`` is an ``ElementWiseConv2d``), so the default
  ``target_modules`` include ``patch_embedding`` besides the attention projections; the MLP (``fc1``/``fc2``) is off
  as in ``configs/trainers/MASK/vit_b16.yaml`` (``MASK_MLP: False``);
* OpenAI's CLIP packs q/k/v into one ``in_proj_weight`` with one score tensor; transformers' CLIP has three
  ``nn.Linear``, whose masks are the three row blocks of that packed mask (same elements, same gradients);
* masks loaded from the bit-packed form get scores ``score_init`` (kept) or 0 (dropped): the binary masks are
  exact, further training starts from the initial margin (the official loader writes 1/0).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

CONFIG_NAME = "ramt_config.json"
MASKS_NAME = "ramt_masks.safetensors"
ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
MLP_TARGETS = ("fc1", "fc2")


@dataclass
class MaskTuningConfig:
    """What :func:`apply_mask_tuning` masks and how :class:`~hf_mim.tuners.ramt.MaskTuningTrainer` trains it.

    Defaults are the official ``configs/trainers/MASK/vit_b16.yaml`` with ``train.py``'s ``MASK`` defaults.

    Args:
        target_modules: last names of the ``nn.Linear`` / ``nn.Conv2d`` layers to mask (add ``MLP_TARGETS`` for
            the MLP, as ``MASK_MLP: True``).
        tower: only layers under this submodule are masked (``"vision_model"``: the image encoder; ``None``: all).
        score_init: initial score of every weight (``MASK.SCALE``); must exceed ``threshold``.
        threshold: a weight is kept while its score is above it (``MASK.THRESHOLD``).
        gradient_dropout: drop score gradients of the task loss that disagree with the zero-shot teacher's
            (``MASK.GDR``); ``gradient_dropout_lambda`` is ``MASK.GDR_LAMBDA`` (1: dropped entries become 0).
            Off, the scores follow the task loss alone (the official ``forward_backward`` then never calls
            backward, so ``GDR: False`` does not train there).
        teacher_temperature: temperature of the soft cross-entropy to the zero-shot teacher (``MASK.GDR_T``).
        score_l2_weight: weight of the sum of the scores' L2 norms added to the task loss (``MASK.LOSS_WEIGHT``
            with ``MASK_LOSS: True``); 0 turns it off.
        base_model_name_or_path: the model the masks belong to (filled from the model's config when empty).
    """

    target_modules: tuple[str, ...] = ATTENTION_TARGETS + ("patch_embedding",)
    tower: str | None = "vision_model"
    score_init: float = 1e-2
    threshold: float = 5e-3
    gradient_dropout: bool = True
    gradient_dropout_lambda: float = 1.0
    teacher_temperature: float = 1.0
    score_l2_weight: float = 1e-4
    base_model_name_or_path: str | None = None
    layer_shapes: dict[str, list[int]] = field(default_factory=dict)  # filled by apply_mask_tuning

    def __post_init__(self):
        self.target_modules = tuple(self.target_modules)
        if not self.target_modules:
            raise ValueError("target_modules is empty: name the layers to mask, e.g. ('q_proj', 'k_proj', 'v_proj')")
        if self.score_init <= self.threshold:
            raise ValueError(f"score_init={self.score_init} must exceed threshold={self.threshold}, otherwise the "
                             "masks start by dropping every weight; raise score_init or lower threshold")
        if not 0.0 <= self.gradient_dropout_lambda <= 1.0:
            raise ValueError(f"gradient_dropout_lambda={self.gradient_dropout_lambda} must lie in [0, 1]")

    def save(self, directory: str) -> None:
        with open(os.path.join(directory, CONFIG_NAME), "w") as f:
            json.dump({"tuner": "ramt", **asdict(self)}, f, indent=2)

    @classmethod
    def load(cls, directory: str) -> MaskTuningConfig:
        path = os.path.join(directory, CONFIG_NAME)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} does not exist: pass a folder written by MaskTunedModel.save_pretrained")
        with open(path) as f:
            values = json.load(f)
        values.pop("tuner", None)
        return cls(**values)


class _BinarizeStraightThrough(torch.autograd.Function):
    """``scores > threshold`` as 0/1 whose backward hands the gradient to the scores unchanged (official
    ``Binarizer``: ``le`` -> 0, ``gt`` -> 1, ``backward`` returns ``gradOutput``)."""

    @staticmethod
    def forward(ctx, scores, threshold):
        return (scores > threshold).to(scores.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, None


class MaskedLinear(nn.Module):
    """A frozen ``nn.Linear`` whose weight is multiplied by the binarised trainable fp32 ``mask_scores``.

    The scores stay fp32 whatever the weight's dtype: Adam's small steps (official lr 8e-5) on values near 1e-2
    would vanish in half precision.
    """

    def __init__(self, base_layer: nn.Module, score_init: float = 1e-2, threshold: float = 5e-3):
        super().__init__()
        self.base_layer = base_layer.requires_grad_(False)
        self.threshold = threshold
        self.masks_enabled = True
        weight = base_layer.weight
        self.mask_scores = nn.Parameter(torch.full(weight.shape, score_init, dtype=torch.float32, device=weight.device))

    @property
    def weight(self) -> torch.Tensor:  # models read e.g. ``patch_embedding.weight.dtype``
        return self.base_layer.weight

    def mask(self) -> torch.Tensor:
        """The binary mask (0/1, fp32), straight-through to the scores."""
        return _BinarizeStraightThrough.apply(self.mask_scores, self.threshold)

    def masked_weight(self) -> torch.Tensor:
        weight = self.base_layer.weight
        return weight * self.mask().to(weight.dtype)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        weight = self.masked_weight() if self.masks_enabled else self.base_layer.weight
        return self._forward_with(hidden_states, weight)

    def _forward_with(self, hidden_states, weight):
        return F.linear(hidden_states, weight, self.base_layer.bias)


class MaskedConv2d(MaskedLinear):
    """:class:`MaskedLinear` for an ``nn.Conv2d`` (the official ``ElementWiseConv2d`` of the patch embedding)."""

    def _forward_with(self, hidden_states, weight):
        return self.base_layer._conv_forward(hidden_states, weight, self.base_layer.bias)


_MASKED_CLASSES = {nn.Linear: MaskedLinear, nn.Conv2d: MaskedConv2d}


def masked_layers(module: nn.Module) -> dict[str, MaskedLinear]:
    """Every masked layer under ``module``, by name."""
    return {name: layer for name, layer in module.named_modules() if isinstance(layer, MaskedLinear)}


@contextlib.contextmanager
def masks_disabled(module: nn.Module):
    """Run ``module`` with its original weights (the zero-shot teacher of gradient dropout)."""
    layers = masked_layers(module).values()
    for layer in layers:
        layer.masks_enabled = False
    try:
        yield
    finally:
        for layer in layers:
            layer.masks_enabled = True


def pack_mask(mask: torch.Tensor) -> torch.Tensor:
    """A boolean tensor as uint8 bytes, 8 elements per byte, most significant bit first (as the official saver)."""
    bits = mask.flatten().to(torch.uint8)
    bits = F.pad(bits, (0, -bits.numel() % 8)).view(-1, 8)
    return (bits << torch.arange(7, -1, -1, dtype=torch.uint8)).sum(1, dtype=torch.uint8)


def unpack_mask(packed: torch.Tensor, shape) -> torch.Tensor:
    """Inverse of :func:`pack_mask`."""
    bits = (packed.view(-1, 1) >> torch.arange(7, -1, -1, dtype=torch.uint8)) & 1
    numel = torch.Size(shape).numel()
    return bits.flatten()[:numel].view(shape).bool()


class MaskTunedModel(nn.Module):
    """A transformers model whose chosen layers are :class:`MaskedLinear`; attributes fall through to it."""

    def __init__(self, model: nn.Module, config: MaskTuningConfig):
        super().__init__()
        self.base_model = model
        self.ramt_config = config

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.base_model, name)

    def forward(self, *args, **kwargs):
        return self.base_model(*args, **kwargs)

    def masked_layers(self) -> dict[str, MaskedLinear]:
        return masked_layers(self.base_model)

    def masks(self) -> dict[str, torch.Tensor]:
        """The boolean mask of every masked layer."""
        return {name: layer.mask_scores.detach() > layer.threshold for name, layer in self.masked_layers().items()}

    def dropped_fraction(self) -> float:
        """Fraction of the masked weights that are dropped (the paper's ~2.5%)."""
        masks = self.masks().values()
        return 1.0 - sum(int(m.sum()) for m in masks) / sum(m.numel() for m in masks)

    def save_pretrained(self, directory: str, packed: bool = True) -> None:
        """Write ``ramt_config.json`` and ``ramt_masks.safetensors``: the masks bit-packed (``packed``: 1 bit per
        weight), or the fp32 scores (to resume training)."""
        from safetensors.torch import save_file

        os.makedirs(directory, exist_ok=True)
        self.ramt_config.save(directory)
        if packed:
            tensors = {f"{name}.mask_bits": pack_mask(mask) for name, mask in self.masks().items()}
        else:
            tensors = {f"{name}.mask_scores": layer.mask_scores.detach().contiguous()
                       for name, layer in self.masked_layers().items()}
        save_file({k: v.cpu() for k, v in tensors.items()}, os.path.join(directory, MASKS_NAME),
                  metadata={"format": "packed" if packed else "scores"})

    @classmethod
    def from_pretrained(cls, model: nn.Module, directory: str) -> MaskTunedModel:
        """Wrap ``model`` as the saved config says and load its masks (``PeftModel.from_pretrained``'s order)."""
        tuned = apply_mask_tuning(model, MaskTuningConfig.load(directory))
        tuned.load_masks(directory)
        return tuned

    def load_masks(self, directory: str) -> None:
        """Load masks or scores saved by :meth:`save_pretrained`; other shapes or layers give a one-line error."""
        from safetensors import safe_open

        saved = MaskTuningConfig.load(directory)
        layers = self.masked_layers()
        mine = {name: list(layer.mask_scores.shape) for name, layer in layers.items()}
        if saved.layer_shapes != mine:
            raise ValueError(f"the masks in {directory} were trained for {saved.base_model_name_or_path!r} and do "
                             f"not fit this model ({_first_difference(saved.layer_shapes, mine)}); load them onto "
                             "that model")
        with safe_open(os.path.join(directory, MASKS_NAME), framework="pt") as f:
            packed = f.metadata().get("format") == "packed"
            with torch.no_grad():
                for name, layer in layers.items():
                    scores = layer.mask_scores
                    if packed:
                        keep = unpack_mask(f.get_tensor(f"{name}.mask_bits"), scores.shape).to(scores.device)
                        scores.copy_(keep.float() * self.ramt_config.score_init)
                    else:
                        scores.copy_(f.get_tensor(f"{name}.mask_scores"))

    def merge_and_unload(self) -> nn.Module:
        """Multiply every mask into its weight and put the plain layers back: the returned transformers model
        computes what the masked model computes, with no trace of the tuner."""
        model = self.base_model
        for name, layer in self.masked_layers().items():
            base = layer.base_layer
            with torch.no_grad():
                base.weight.copy_(layer.masked_weight())
            model.set_submodule(name, base)
        return model


def _first_difference(saved: dict, mine: dict) -> str:
    for name in sorted(set(saved) | set(mine)):
        if name not in mine:
            return f"it has no masked layer {name}"
        if name not in saved:
            return f"no mask was saved for its layer {name}"
        if list(saved[name]) != list(mine[name]):
            return f"{name} has shape {tuple(mine[name])}, the saved mask {tuple(saved[name])}"
    return "same layers"


def apply_mask_tuning(model: nn.Module, config: MaskTuningConfig | None = None) -> MaskTunedModel:
    """Freeze ``model`` (a ``CLIPModel``, ``CLIPVisionModel`` or any model with matching layers) and replace its
    target layers by masked ones whose masks start all-ones; only the scores are trainable."""
    if isinstance(model, MaskTunedModel):
        raise ValueError("the model is already mask-tuned; pass its base_model or keep training this one")
    config = MaskTuningConfig(**asdict(config)) if config is not None else MaskTuningConfig()
    targets = {}
    for name, module in model.named_modules():
        in_tower = config.tower is None or f".{config.tower}." in f".{name}."
        if in_tower and name.rsplit(".", 1)[-1] in config.target_modules:
            masked_class = _MASKED_CLASSES.get(type(module))
            if masked_class is None:
                raise ValueError(f"{name} is a {type(module).__name__}; mask tuning masks nn.Linear and nn.Conv2d "
                                "layers only: remove its name from target_modules")
            targets[name] = masked_class
    if not targets:
        where = f" under {config.tower!r}" if config.tower else ""
        raise ValueError(f"no layer of {type(model).__name__}{where} is named one of {list(config.target_modules)}; "
                         "pass target_modules naming its nn.Linear layers (e.g. q_proj) or another tower")
    model.requires_grad_(False)
    for name, masked_class in targets.items():
        model.set_submodule(name, masked_class(model.get_submodule(name), config.score_init, config.threshold))
    if not config.base_model_name_or_path:
        config.base_model_name_or_path = getattr(getattr(model, "config", None), "_name_or_path", None) or None
    config.layer_shapes = {name: list(model.get_submodule(name).mask_scores.shape) for name in targets}
    return MaskTunedModel(model, config)
