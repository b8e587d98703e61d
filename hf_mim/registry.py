"""Method registry: every ``hf_mim/models/<method>/__init__.py`` defines ``METHOD = MethodSpec(...)``.

:func:`discover` imports each method package and registers its classes with the transformers Auto classes, so
``import hf_mim`` is all a user needs before ``AutoModel.from_pretrained(path)``. Adding a method never touches
a shared file.
"""

import importlib
import inspect
import pkgutil
from dataclasses import dataclass, field

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoVideoProcessor,
)
from transformers.video_processing_utils import BaseVideoProcessor

from hf_mim.modalities import Modality, get_modality


@dataclass(frozen=True)
class MethodSpec:
    """What hf_mim needs to know about a method.

    name: CLI name (``hf-mim pretrain --method <name>``). paper / paper_url: for docs and model cards.
    license: Hub licence id of the official code / weights (e.g. "cc-by-nc-4.0", "mit", "apache-2.0").
    tiny_config: overrides that make a seconds-to-train model (tests, demo, smoke runs); together with
    ``demo_config`` (a small model that still learns something in minutes on a CPU).
    collator: optional factory ``(config, processor) -> collator`` for methods with special inputs.
    transform: optional factory ``(processor, train, scale) -> callable(PIL image)`` returning a tensor or a dict
    of tensors (e.g. two views for CroCo, a global and a local crop for CropMAE); default: one augmented view.
    example_inputs: optional ``(model, pixel_values, generator) -> dict`` of deterministic ``forward`` kwargs
    (fixed masks) for tests and benchmarks; default: ``noise`` for token-dropping models, else ``bool_masked_pos``.
    processor_class: image/video processor (the shared MIMImageProcessor by default).
    modality: "image" (default), "video", ...: how data is loaded and prepared, which Auto classes load the
    processor and the classification head, and the Hub tags (see :mod:`hf_mim.modalities`).
    load_dataset / prepare_dataset: optional overrides of the modality's loader and preparer (same signatures).
    callbacks: optional factory ``() -> list[TrainerCallback]`` of training rules the method needs beyond the loss
    (QuickSelection's sparse evolutionary training), added by ``hf-mim pretrain``.
    training_defaults: the official optimiser recipe as ``MIMTrainingArguments`` overrides (used by the CLI
    for flags the user did not give), e.g. SimMIM's base lr 1e-4 per 512 images and gradient clipping at 5.
    auto_pretraining: the transformers Auto class that loads ``--model_name_or_path`` for training.

    A method whose classes are transformers' own (MEAP trains any causal LM; its package defines ``RECIPE``
    instead of ``METHOD``) is a *recipe*: ``hf-mim pretrain`` finds it like a method, but nothing is registered
    with the Auto classes (transformers already maps its classes) and no remote code is exported for it.
    """

    name: str
    config_class: type
    model_class: type
    pretraining_class: type
    classification_class: type | None = None
    paper: str = ""
    paper_url: str = ""
    license: str = ""
    tiny_config: dict = field(default_factory=dict)
    demo_config: dict = field(default_factory=dict)
    collator: object = None
    transform: object = None
    example_inputs: object = None
    processor_class: type | None = None
    training_defaults: dict = field(default_factory=dict)
    modality: str = "image"
    load_dataset: object = None
    prepare_dataset: object = None
    auto_pretraining: str = "AutoModelForPreTraining"
    callbacks: object = None

    @property
    def data(self) -> Modality:
        return get_modality(self.modality)

    def load_data(self, source, split: str = "train", streaming: bool = False):
        """One split of ``source`` (None = the demo set of the modality)."""
        return (self.load_dataset or self.data.load_dataset)(source, split, streaming)

    def prepare_data(self, dataset, processor, train: bool = True, **kwargs):
        """Attach the per-sample transform: samples become ``pixel_values`` (and ``labels`` with ``with_labels``)."""
        return (self.prepare_dataset or self.data.prepare_dataset)(dataset, processor, train=train, **kwargs)

    @property
    def model_type(self) -> str:
        return self.config_class.model_type

    @property
    def classes(self) -> list[type]:
        extra = [self.classification_class] if self.classification_class else []
        return [self.config_class, self.model_class, self.pretraining_class, *extra]

    def make_config(self, size: str = "base", **overrides):
        """``size``: "base" (paper defaults), "demo" or "tiny"."""
        presets = {"base": {}, "demo": self.demo_config, "tiny": self.tiny_config}
        if size not in presets:
            raise ValueError(f"size must be one of {sorted(presets)}, got {size!r}")
        check_config_fields(self.config_class, overrides)
        return self.config_class(**{**presets[size], **overrides})

    def make_inputs(self, model, pixel_values, generator=None) -> dict:
        """Deterministic ``forward`` kwargs for ``model`` (an instance of ``pretraining_class``)."""
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        if self.example_inputs is not None:
            return self.example_inputs(model, pixel_values, generator)
        inputs = {"pixel_values": pixel_values}
        if "noise" in inspect.signature(model.forward).parameters:
            patches = pixel_values.shape[-2] // model.config.patch_size * (pixel_values.shape[-1] // model.config.patch_size)
            inputs["noise"] = torch.rand(pixel_values.shape[0], patches, generator=generator)
        elif hasattr(model, "mask_generator"):
            inputs["bool_masked_pos"] = model.mask_generator(pixel_values.shape[0], generator)
        return inputs

    def make_transform(self, processor, train: bool = True, scale=(0.2, 1.0)):
        if self.transform is not None:
            return self.transform(processor, train=train, scale=scale)
        return self.data.build_transform(processor, train=train, scale=scale)

    def make_processor(self, config, **kwargs):
        from hf_mim.processing import processor_for_config

        if self.processor_class is not None:
            return self.processor_class.from_model_config(config, **kwargs)
        return processor_for_config(config, **kwargs)


# keyword arguments PretrainedConfig consumes without storing them under that name
CONFIG_KEYWORDS = ("num_labels", "attn_implementation")


def check_config_fields(config_class, overrides: dict) -> None:
    """Refuse fields ``config_class`` does not have: PretrainedConfig stores any keyword, so a typo or another
    method's field (JEPA, MultiMAE, MixedAE and Hybrid Distillation have no ``mask_ratio``) would be kept and
    silently ignored."""
    known = set(config_class().to_dict()) | set(CONFIG_KEYWORDS)
    unknown = sorted(set(overrides) - known)
    if unknown:
        import difflib

        hints = {name: difflib.get_close_matches(name, sorted(known), n=1) for name in unknown}
        hint = "; ".join(f"did you mean {close[0]!r} for {name!r}?" for name, close in hints.items() if close)
        raise ValueError(
            f"{config_class.model_type} has no config field(s) {unknown}" + (f" ({hint})" if hint else "")
            + f"; its fields are listed in the {config_class.__name__} docstring"
        )


METHODS: dict[str, MethodSpec] = {}
RECIPES: dict[str, MethodSpec] = {}  # methods built on transformers' own classes (see MethodSpec)


def register(spec: MethodSpec) -> None:
    if spec.name in METHODS:
        return
    AutoConfig.register(spec.model_type, spec.config_class, exist_ok=True)
    AutoModel.register(spec.config_class, spec.model_class, exist_ok=True)
    AutoModelForPreTraining.register(spec.config_class, spec.pretraining_class, exist_ok=True)
    if spec.classification_class is not None:
        spec.data.auto_class("classification").register(spec.config_class, spec.classification_class, exist_ok=True)
    from hf_mim.processing import MIMImageProcessor

    processor = spec.processor_class or MIMImageProcessor
    auto_processor = spec.data.auto_class("processor")
    if spec.data.auto_processor == "AutoImageProcessor":
        auto_processor.register(spec.config_class, image_processor_classes={"torchvision": processor}, exist_ok=True)
    else:
        auto_processor.register(spec.config_class, processor, exist_ok=True)
    if not issubclass(processor, BaseVideoProcessor):
        # say locally that the method has no video processor: otherwise pipeline() reads the image processor's
        # auto_map as a remote video processor and asks for trust_remote_code
        AutoVideoProcessor.register(spec.config_class, video_processor_classes={}, exist_ok=True)
    METHODS[spec.name] = spec


def discover() -> dict[str, MethodSpec]:
    import hf_mim.models

    for info in sorted(pkgutil.iter_modules(hf_mim.models.__path__), key=lambda item: item.name):
        if not info.ispkg:
            continue
        module = importlib.import_module(f"hf_mim.models.{info.name}")
        spec = getattr(module, "METHOD", None)
        if spec is not None:
            register(spec)
        recipe = getattr(module, "RECIPE", None)
        if recipe is not None:
            RECIPES[recipe.name] = recipe
    return METHODS


def get_method(name: str) -> MethodSpec:
    """Look a method up by CLI name or by ``model_type``."""
    if not METHODS:
        discover()
    if name in METHODS or name in RECIPES:
        return METHODS.get(name) or RECIPES[name]
    for spec in METHODS.values():
        if spec.model_type == name:
            return spec
    raise ValueError(f"unknown method {name!r}; available: {', '.join(sorted({**METHODS, **RECIPES}))}")


RECIPE_FIELD = "hf_mim_recipe"  # config field naming the recipe a transformers model was trained with


def method_for_config(config) -> MethodSpec:
    for spec in METHODS.values():
        if isinstance(config, spec.config_class) and type(config) is spec.config_class:
            return spec
    return get_method(getattr(config, RECIPE_FIELD, None) or config.model_type)
