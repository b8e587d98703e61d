# Generated from hf_mim.teacher by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""A frozen teacher network for distillation-style masked modeling (MR-MAE, DMAE, MaskAlign, G2SD, ...).

:class:`FrozenTeacher` wraps any vision backbone that returns HF-style ``hidden_states`` / ``attentions``:
transformers ``ViTModel``, ``CLIPVisionModel``, ``Dinov2Model``, ``ViTMAEModel`` (and their pre-training /
classification wrappers, reduced to their base model) and hf_mim encoders (``MIMViTModel`` subclasses, or an
hf_mim pre-training model, reduced to its ``encoder``).

Conventions (the same for every backbone):

* ``hidden_states[0]`` is the embedding output and ``hidden_states[k]`` the output of block ``k`` (1-based),
  *before* any final LayerNorm; ``last_hidden_state`` is the backbone's own final output (after the final norm
  for ViT / Dinov2 / ViTMAE / hf_mim, equal to ``hidden_states[-1]`` for CLIP). Every sequence starts with the
  prefix tokens (cls, and register tokens for Dinov2 with registers), then the patch tokens.
* The teacher is frozen (``requires_grad=False``), always in eval mode (``train()`` is overridden, so
  ``Trainer`` calling ``model.train()`` never turns teacher dropout on) and runs under ``torch.no_grad()``. Under
  an autocast context it runs in the autocast dtype.
* Attention maps need eager attention (SDPA returns none): build with ``need_attentions=True``.
* ``ids_keep`` runs the teacher on a subset of the patches (DMAE): hf_mim encoders gather the embedded tokens,
  ``ViTMAEModel`` gets a noise tensor whose argsort starts with ``ids_keep``; other backbones cannot drop tokens.

How a student model holds it: see :func:`build_teacher` and the ``teacher`` attribute of the MR-MAE / DMAE /
MaskAlign pre-training models. By default the teacher is kept OUT of the student's module tree (stored in the
instance ``__dict__``), so it is neither in ``state_dict()`` / ``model.safetensors`` nor in ``parameters()``;
``from_pretrained`` rebuilds it from the config field that names it.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
FEATURE_NORMS = ("none", "whiten", "layernorm", "l2", "batch")


def normalize_features(features: torch.Tensor, mode: str = "none", eps: float = 1e-5) -> torch.Tensor:
    """Target normalisation used by the teacher-guided methods.

    * ``"none"``: unchanged.
    * ``"whiten"`` / ``"layernorm"``: parameter-free LayerNorm over channels (``F.layer_norm`` without affine, eps
      1e-5 by default), i.e. per-token whitening (MaskAlign ``target_norm="whiten"``).
    * ``"l2"``: unit L2 norm per token (DMAE, MaskAlign ``"l2"``).
    * ``"batch"``: one mean / variance over the whole tensor (MaskAlign ``"bn"``; eps 1e-6 as there).
    """
    if mode == "none":
        return features
    if mode in ("whiten", "layernorm"):
        return nn.functional.layer_norm(features, (features.shape[-1],), eps=eps)
    if mode == "l2":
        return nn.functional.normalize(features, dim=-1)
    if mode == "batch":
        return (features - features.mean()) / (features.var() + 1e-6) ** 0.5
    raise ValueError(f"unknown feature normalisation {mode!r}; choose one of {FEATURE_NORMS}")


@dataclass
class TeacherOutput(ModelOutput):
    """``hidden_states``: embeddings then every block output (pre final norm), each ``[B, prefix + N, D]``.
    ``attentions``: per block ``[B, heads, T, T]`` (only when asked for). ``features``: outputs of the hooked
    submodules, by name. ``num_prefix_tokens``: cls / register tokens in front of the patch tokens."""

    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None
    features: dict[str, torch.Tensor] | None = None
    num_prefix_tokens: int | None = None


def _config_from_dict(values: dict):
    """Build a transformers config from a dict with ``model_type`` (hf_mim model types need hf_mim imported)."""
    from transformers import AutoConfig

    values = dict(values)
    model_type = values.pop("model_type", None)
    if model_type is None:
        raise ValueError("a teacher config dict needs a 'model_type' (e.g. 'vit', 'clip_vision_model', 'dinov2')")
    try:
        return AutoConfig.for_model(model_type, **values)
    except ValueError:
        try:  # an hf_mim model type: importing hf_mim registers it with the Auto classes
            import hf_mim  # noqa: F401
        except ImportError:
            raise
        return AutoConfig.for_model(model_type, **values)


def load_backbone(
    source, need_attentions: bool = False, seed: int = 0, reduce_to_base: bool = True, **from_pretrained_kwargs
) -> nn.Module:
    """The backbone behind a teacher spec: an ``nn.Module`` (used as is), a local path or Hub id
    (``AutoModel.from_pretrained``), or a config dict with ``model_type`` (a RANDOM model, initialised under
    ``torch.manual_seed(seed)`` so the same dict always gives the same weights: for tests and smoke runs).
    With ``reduce_to_base`` (default) a wrapper (pre-training / classification model) is reduced to its backbone;
    ``reduce_to_base=False`` keeps e.g. a transformers ``ViTMAEForPreTraining`` whole, so forward hooks can read
    its decoder blocks (G2SD)."""
    from transformers import AutoModel

    attn = {"attn_implementation": "eager"} if need_attentions else {}
    if isinstance(source, FrozenTeacher):
        return source.model
    if isinstance(source, nn.Module):
        model = source
        if need_attentions and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation("eager")
    elif isinstance(source, str):
        model = AutoModel.from_pretrained(source, **attn, **from_pretrained_kwargs)
    elif isinstance(source, dict):
        config = _config_from_dict(source)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AutoModel.from_config(config, **attn)
    else:
        raise TypeError(
            f"a teacher must be an nn.Module, a path / Hub id or a config dict with 'model_type', got {type(source)}"
        )
    # a pre-training / classification wrapper is reduced to its backbone (ViTMAEForPreTraining.vit, hf_mim .encoder)
    if not reduce_to_base:
        return model
    if hasattr(model, "encoder") and hasattr(model.encoder, "run_blocks"):
        model = model.encoder
    elif not hasattr(model, "run_blocks") and isinstance(getattr(model, "base_model", None), nn.Module):
        model = model.base_model
    return model


def block_list(model: nn.Module) -> nn.ModuleList:
    """The ModuleList of transformer blocks of a supported backbone (hf_mim ``blocks``; transformers ``layers``,
    ``encoder.layer`` or ``encoder.layers`` depending on model and version), else the only ModuleList whose length
    is ``config.num_hidden_layers``."""
    paths = ("blocks", "layers", "encoder.layer", "encoder.layers", "vision_model.encoder.layers", "vit.layers")
    for path in paths + ("vit.encoder.layer", "encoder.blocks"):
        module = model
        for part in path.split("."):
            module = module._modules.get(part) if isinstance(module, nn.Module) else None
            if module is None:
                break
        if isinstance(module, nn.ModuleList):
            return module
    depth = getattr(getattr(model, "config", None), "num_hidden_layers", None)
    found = [m for m in model.modules() if isinstance(m, nn.ModuleList) and len(m) == depth]
    if len(found) == 1:
        return found[0]
    raise ValueError(f"cannot find the transformer blocks of {type(model).__name__}")


class FrozenTeacher(nn.Module):
    r"""A frozen backbone that returns per-layer features for distillation targets.

    Args:
        source: an ``nn.Module``, a local path or Hub id (``AutoModel.from_pretrained``), or a config dict with
            ``model_type`` (a random teacher, seeded by ``seed``).
        need_attentions (`bool`): load / switch the backbone to eager attention so attention maps are returned.
        num_layers (`int`, *optional*): keep only the first ``num_layers`` blocks (DMAE's efficiency trick: the
            target is an intermediate block, so the rest is never run). ``hidden_states`` indices are unchanged.
        hook_modules (`list[str]`): names of submodules (``model.named_modules()``) whose outputs are recorded by
            forward hooks into ``TeacherOutput.features`` (e.g. a ViTMAE decoder block for G2SD).
        input_mean / input_std: the normalisation of the ``pixel_values`` the student receives (ImageNet by
            default). teacher_mean / teacher_std: the normalisation the teacher was trained with; when given the
            input is re-normalised (MaskAlign's ImageNet -> CLIP step). ``None`` = feed the pixels unchanged.
        image_size (`int`, *optional*): resize the input (bicubic) to this side first (CLIP-L/14 at 196 px).
        reduce_to_base (`bool`, defaults to True): reduce wrappers to their backbone (see `load_backbone`).
    """

    def __init__(
        self,
        source,
        need_attentions: bool = False,
        num_layers: int | None = None,
        hook_modules=(),
        input_mean=IMAGENET_MEAN,
        input_std=IMAGENET_STD,
        teacher_mean=None,
        teacher_std=None,
        image_size: int | None = None,
        seed: int = 0,
        reduce_to_base: bool = True,
        **from_pretrained_kwargs,
    ):
        super().__init__()
        self.model = load_backbone(source, need_attentions, seed, reduce_to_base, **from_pretrained_kwargs)
        self.need_attentions = need_attentions
        self.is_hf_mim = hasattr(self.model, "run_blocks")
        self.is_vit_mae = type(self.model).__name__ in ("ViTMAEModel", "ViTMAEForPreTraining")
        encoder = getattr(self.model, "encoder", None)
        self.is_hf_mim_pretraining = not self.is_hf_mim and hasattr(encoder, "run_blocks")
        if num_layers is not None:
            blocks = block_list(self.model)
            if not 1 <= num_layers <= len(blocks):
                raise ValueError(f"num_layers must be in [1, {len(blocks)}], got {num_layers}")
            del blocks[num_layers:]
        self.num_layers = len(block_list(self.model))
        self.hook_modules = list(hook_modules)
        self._hooked: dict[str, torch.Tensor] = {}
        modules = dict(self.model.named_modules())
        for name in self.hook_modules:
            if name not in modules:
                raise ValueError(f"teacher has no submodule {name!r}")
            modules[name].register_forward_hook(self._make_hook(name))
        if (teacher_mean is None) != (teacher_std is None):
            raise ValueError("give both teacher_mean and teacher_std (or neither)")
        self.renormalize = teacher_mean is not None
        self.register_buffer("input_mean", torch.tensor(input_mean, dtype=torch.float32), persistent=False)
        self.register_buffer("input_std", torch.tensor(input_std, dtype=torch.float32), persistent=False)
        self.register_buffer("teacher_mean", torch.tensor(teacher_mean or (0.0,), dtype=torch.float32), persistent=False)
        self.register_buffer("teacher_std", torch.tensor(teacher_std or (1.0,), dtype=torch.float32), persistent=False)
        self.image_size = image_size
        self.model.requires_grad_(False)
        self.train(False)

    # ------------------------------------------------------------------ frozen, always eval
    def train(self, mode: bool = True) -> "FrozenTeacher":
        """Always eval: the teacher's dropout / drop-path / batch-norm statistics never switch to training."""
        return super().train(False)

    def _make_hook(self, name: str):
        def hook(module, args, output):
            self._hooked[name] = output[0] if isinstance(output, (tuple, list)) else output

        return hook

    @property
    def config(self):
        return getattr(self.model, "config", None)

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def num_channels(self) -> int:
        return int(getattr(self.model.config, "num_channels", 3))

    @property
    def num_prefix_tokens(self) -> int:
        if self.is_hf_mim:
            return int(self.model.num_prefix_tokens)
        if self.is_hf_mim_pretraining:
            return int(self.model.encoder.num_prefix_tokens)
        return 1 + int(getattr(self.model.config, "num_register_tokens", 0) or 0)

    # ------------------------------------------------------------------ inputs
    def prepare_pixels(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Re-normalise / expand grey to RGB / resize the student's pixels for the teacher."""
        x = pixel_values
        if self.renormalize:
            mean = self.input_mean.to(x).reshape(1, -1, 1, 1)
            std = self.input_std.to(x).reshape(1, -1, 1, 1)
            x = x * std + mean
        if x.shape[1] != self.num_channels:
            if x.shape[1] != 1:
                raise ValueError(f"the teacher expects {self.num_channels} channels, got {x.shape[1]}")
            x = x.expand(-1, self.num_channels, -1, -1)
        if self.renormalize:
            x = (x - self.teacher_mean.to(x).reshape(1, -1, 1, 1)) / self.teacher_std.to(x).reshape(1, -1, 1, 1)
        if self.image_size is not None and tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = nn.functional.interpolate(x, size=(self.image_size, self.image_size), mode="bicubic", align_corners=False)
        parameter = next(self.model.parameters(), None)
        if parameter is not None and not torch.is_autocast_enabled(x.device.type):
            x = x.to(parameter.dtype)
        return x

    def _move_to(self, device: torch.device) -> None:
        parameter = next(self.model.parameters(), None)
        if parameter is not None and parameter.device != device:
            self.to(device)

    # ------------------------------------------------------------------ forward
    @torch.no_grad()
    def forward(
        self,
        pixel_values: torch.Tensor,
        ids_keep: torch.Tensor | None = None,
        output_attentions: bool | None = None,
        interpolate_pos_encoding: bool = False,
    ) -> TeacherOutput:
        r"""
        pixel_values: the student's (processor-normalised) images ``[B, C, H, W]``.
        ids_keep (`torch.LongTensor` ``[B, K]``, *optional*): run on these patches only, in this order (the
            output's patch tokens follow ``ids_keep``).
        output_attentions: return attention maps (needs ``need_attentions=True``).
        """
        output_attentions = self.need_attentions if output_attentions is None else output_attentions
        if output_attentions and not self.need_attentions:
            raise ValueError("build the FrozenTeacher with need_attentions=True to get attention maps (eager attention)")
        self._move_to(pixel_values.device)
        self._hooked = {}
        x = self.prepare_pixels(pixel_values)
        if self.is_hf_mim:
            out = self._forward_hf_mim(x, ids_keep, output_attentions, interpolate_pos_encoding)
        elif self.is_vit_mae:
            out = self._forward_vit_mae(x, ids_keep, output_attentions, interpolate_pos_encoding)
        elif self.is_hf_mim_pretraining:
            out = self._forward_hf_mim_pretraining(x, ids_keep, output_attentions, interpolate_pos_encoding)
        else:
            if ids_keep is not None:
                raise ValueError(
                    f"{type(self.model).__name__} cannot run on a subset of patches; use an MAE teacher "
                    "(transformers ViTMAEModel or an hf_mim encoder) or the full image"
                )
            kwargs = {"interpolate_pos_encoding": True} if interpolate_pos_encoding else {}
            out = self.model(pixel_values=x, output_hidden_states=True, output_attentions=output_attentions, **kwargs)
        attentions = out.attentions if output_attentions else None
        if output_attentions and not attentions:
            raise RuntimeError("the teacher returned no attention maps: it must use eager attention")
        return TeacherOutput(
            last_hidden_state=getattr(out, "last_hidden_state", None),
            hidden_states=tuple(out.hidden_states),
            attentions=None if attentions is None else tuple(attentions),
            features=dict(self._hooked),
            num_prefix_tokens=self.num_prefix_tokens,
        )

    def _forward_hf_mim(self, x, ids_keep, output_attentions, interpolate_pos_encoding):
        model = self.model
        tokens, cls, grid = model.embed(x, interpolate_pos_encoding=interpolate_pos_encoding, ids_keep=ids_keep)
        hidden = tokens if cls is None else torch.cat([cls, tokens], dim=1)
        last, all_hidden, all_attn = model.run_blocks(
            hidden, model.attention_bias(ids_keep, grid), output_hidden_states=True, output_attentions=output_attentions
        )
        return TeacherOutput(last_hidden_state=last, hidden_states=all_hidden, attentions=all_attn)

    @staticmethod
    def keep_noise(ids_keep: torch.Tensor | None, batch: int, num_patches: int, device) -> tuple[torch.Tensor, float]:
        """MAE ``noise`` whose ascending argsort starts with ``ids_keep`` (in that order; the other patches follow
        in raster order), and a ratio for which ``int(L * (1 - ratio)) == K``. ``ids_keep=None``: every patch."""
        if ids_keep is None:
            ids_keep = torch.arange(num_patches, device=device).expand(batch, -1)
        keep = ids_keep.shape[1]
        noise = 1.0 + torch.arange(num_patches, device=device, dtype=torch.float32).expand(batch, -1) / num_patches
        ranks = torch.arange(keep, device=device, dtype=torch.float32).expand(batch, -1) / (2 * num_patches)
        noise = noise.scatter(1, ids_keep.to(device), ranks)
        ratio = (num_patches - keep - 0.5) / num_patches if keep < num_patches else 0.0
        return noise, ratio

    def _forward_vit_mae(self, x, ids_keep, output_attentions, interpolate_pos_encoding):
        """transformers ViTMAEModel / ViTMAEForPreTraining: the visible set goes in as ``noise``; the mask ratio
        lives in the config, so it is set for the call and restored."""
        config = self.model.config
        num_patches = (x.shape[-2] // config.patch_size) * (x.shape[-1] // config.patch_size)
        noise, ratio = self.keep_noise(ids_keep, x.shape[0], num_patches, x.device)
        saved_ratio = config.mask_ratio
        config.mask_ratio = ratio
        try:
            kwargs = {"interpolate_pos_encoding": True} if interpolate_pos_encoding else {}
            return self.model(
                pixel_values=x, noise=noise, output_hidden_states=True, output_attentions=output_attentions, **kwargs
            )
        finally:
            config.mask_ratio = saved_ratio

    def _forward_hf_mim_pretraining(self, x, ids_keep, output_attentions, interpolate_pos_encoding):
        """A whole hf_mim MAE-style pre-training model (``reduce_to_base=False``, e.g. to hook its decoder)."""
        patch = self.model.config.patch_size
        num_patches = (x.shape[-2] // patch) * (x.shape[-1] // patch)
        noise, ratio = self.keep_noise(ids_keep, x.shape[0], num_patches, x.device)
        if ratio == 0.0:
            raise ValueError("a whole hf_mim pre-training model needs ids_keep (it always masks)")
        kwargs = {"interpolate_pos_encoding": True} if interpolate_pos_encoding else {}
        out = self.model(
            pixel_values=x, noise=noise, mask_ratio=ratio, output_hidden_states=True, output_attentions=output_attentions, **kwargs
        )
        return TeacherOutput(last_hidden_state=None, hidden_states=out.hidden_states, attentions=out.attentions)


def build_teacher(
    config, source=None, field: str = "teacher", need_attentions: bool = False, num_layers: int | None = None, **kwargs
) -> FrozenTeacher:
    """The :class:`FrozenTeacher` a student config asks for. ``source`` (a module given to the model's
    constructor) wins over ``config.<field>_name_or_path`` (path / Hub id / config dict). Re-normalisation comes
    from ``config.<field>_image_mean/std`` (the teacher's statistics; None = no re-normalisation) and
    ``config.image_mean/std`` (the student's pixels; ImageNet when absent), the resize from
    ``config.<field>_image_size`` and the random-teacher seed from ``config.teacher_seed``."""
    source = source if source is not None else getattr(config, f"{field}_name_or_path", None)
    if source is None:
        raise ValueError(
            f"{type(config).__name__}.{field}_name_or_path is not set: give a Hub id / local path of the teacher "
            "(e.g. 'openai/clip-vit-base-patch16'), a config dict with 'model_type' for a random teacher, or pass "
            f"{field}=<module> to the model"
        )
    options = dict(
        need_attentions=need_attentions,
        num_layers=num_layers,
        input_mean=getattr(config, "image_mean", None) or IMAGENET_MEAN,
        input_std=getattr(config, "image_std", None) or IMAGENET_STD,
        teacher_mean=getattr(config, f"{field}_image_mean", None),
        teacher_std=getattr(config, f"{field}_image_std", None),
        image_size=getattr(config, f"{field}_image_size", None),
        seed=getattr(config, "teacher_seed", 0),
    )
    options.update(kwargs)
    return FrozenTeacher(source, **options)


class TeacherHolderMixin:
    """For pre-training models with frozen teachers (one per name in ``teacher_names``; the config field naming
    teacher ``t`` is ``<t>_name_or_path``).

    ``config.save_teacher`` False (default): each teacher lives in the instance ``__dict__`` (not a registered
    submodule), so it is absent from ``state_dict()``, ``parameters()``, ``model.safetensors``, ``.to()`` and
    ``.train()``; it is built lazily on first use (``from_pretrained`` never builds it on the meta device and
    rebuilds it from the config) and follows the input's device. ``config.save_teacher`` True: teachers are
    registered submodules ``frozen_<name>`` built at construction, saved in and loaded from the student
    checkpoint (then ``from_pretrained`` overwrites them with the saved weights).
    Subclasses override ``teacher_kwargs(name)`` (need_attentions, num_layers, hook_modules, ...).
    """

    teacher_names: tuple[str, ...] = ("teacher",)

    def _setup_teachers(self, **sources) -> None:
        unknown = set(sources) - set(self.teacher_names)
        if unknown:
            raise TypeError(f"unknown teacher argument(s) {sorted(unknown)}; expected {self.teacher_names}")
        self.__dict__["_teacher_sources"] = dict(sources)
        self.__dict__["_teachers"] = {}
        if getattr(self.config, "save_teacher", False):
            for name in self.teacher_names:
                if self._teacher_source(name) is not None:
                    self.add_module(f"frozen_{name}", build_teacher(self.config, sources.get(name), name, **self.teacher_kwargs(name)))

    def _teacher_source(self, name: str):
        given = self.__dict__.get("_teacher_sources", {}).get(name)
        return given if given is not None else getattr(self.config, f"{name}_name_or_path", None)

    def teacher_kwargs(self, name: str) -> dict:
        return {}

    def has_teacher(self, name: str) -> bool:
        return self._teacher_source(name) is not None

    def get_teacher(self, name: str = "teacher") -> FrozenTeacher:
        registered = self._modules.get(f"frozen_{name}")
        if registered is not None:
            return registered
        cache = self.__dict__.setdefault("_teachers", {})
        if cache.get(name) is None:
            source = self.__dict__.get("_teacher_sources", {}).get(name)
            cache[name] = build_teacher(self.config, source, name, **self.teacher_kwargs(name))
        return cache[name]

    @property
    def teacher(self) -> FrozenTeacher:
        return self.get_teacher("teacher")

    def set_teacher(self, source, name: str = "teacher") -> None:
        """Replace a teacher (a module, path / Hub id or config dict) without touching the student."""
        self.__dict__.setdefault("_teacher_sources", {})[name] = source
        self.__dict__.setdefault("_teachers", {})[name] = None
        if f"frozen_{name}" in self._modules:
            self.add_module(f"frozen_{name}", build_teacher(self.config, source, name, **self.teacher_kwargs(name)))


# ---------------------------------------------------------------------- helpers shared by the teacher methods
FEATURE_LOSSES = ("l2", "l1", "smoothl1")


def feature_loss(prediction: torch.Tensor, target: torch.Tensor, loss_type: str = "l2") -> torch.Tensor:
    """Mean over every element: ``"l2"`` squared error, ``"l1"`` absolute error, ``"smoothl1"`` 2 x smooth-L1
    with beta 1 (MaskAlign's ``2 * F.smooth_l1_loss``). Computed in float32."""
    prediction, target = prediction.float(), target.float()
    if loss_type == "l2":
        return (prediction - target).pow(2).mean()
    if loss_type == "l1":
        return (prediction - target).abs().mean()
    if loss_type == "smoothl1":
        return 2 * nn.functional.smooth_l1_loss(prediction, target)
    raise ValueError(f"unknown feature loss {loss_type!r}; choose one of {FEATURE_LOSSES}")


def gather_patches(tokens: torch.Tensor, ids_keep: torch.Tensor) -> torch.Tensor:
    """``tokens [B, L, D]`` at ``ids_keep [B, K]`` -> ``[B, K, D]``."""
    return torch.gather(tokens, 1, ids_keep.to(tokens.device).unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def cls_attention_importance(attentions: torch.Tensor, num_prefix_tokens: int = 1) -> torch.Tensor:
    """``[B, L]``: the cls token's attention to every patch token in ONE attention map ``[B, heads, T, T]``,
    averaged over heads (MaskAlign ``attentions[-1][:, :, 0, 1:].mean(1)``)."""
    return attentions[:, :, 0, num_prefix_tokens:].mean(dim=1)


def guided_permutation(importance: torch.Tensor, mode: str = "sample", generator: torch.Generator | None = None) -> torch.Tensor:
    """A per-sample permutation of the patches, most-likely-visible first: ``"sample"`` draws it with
    ``torch.multinomial(importance, L, replacement=False)`` (MaskAlign ``attention_masking``), ``"topk"`` sorts by
    importance (descending). With a CPU ``generator`` the draw happens on the CPU (device-independent masks)."""
    if mode == "topk":
        return torch.argsort(importance, dim=1, descending=True)
    if mode != "sample":
        raise ValueError(f"mode must be 'sample' or 'topk', got {mode!r}")
    weights = importance.float().clamp(min=0)
    if generator is not None and generator.device != weights.device:
        return torch.multinomial(weights.cpu(), weights.shape[1], replacement=False, generator=generator).to(importance.device)
    return torch.multinomial(weights, weights.shape[1], replacement=False, generator=generator)


def permutation_to_noise(ids_shuffle: torch.Tensor) -> torch.Tensor:
    """MAE-style noise whose ascending argsort is ``ids_shuffle`` (so ``noise`` + ``mask_ratio`` reproduce a
    given visible set and order through the ordinary ``noise`` path)."""
    length = ids_shuffle.shape[1]
    ranks = torch.arange(length, device=ids_shuffle.device, dtype=torch.float32).expand_as(ids_shuffle) / length
    return torch.empty_like(ranks).scatter_(1, ids_shuffle, ranks)


def teacher_hidden_size(source, default: int) -> int:
    """Hidden size of a teacher spec when it is a config dict (else ``default``)."""
    if isinstance(source, dict) and "hidden_size" in source:
        return int(source["hidden_size"])
    return default
