"""MultiMAE: MAE over several aligned modalities at once. Each modality has its own input adapter (patch
projection + fixed row-first sin-cos positions); a fixed total of visible tokens is split over the modalities by a
per-image Dirichlet sample; one shared ViT encodes the visible tokens plus a global token appended at the end; one
cross-attention output adapter per task reconstructs its modality from all encoded tokens (cross-modal
predictive coding); per-task losses on masked patches are summed.

Follows EPFL-VILAB/MultiMAE: ``multimae/multimae.py`` (``MultiMAE.forward``, ``generate_random_masks``,
``sample_alphas``), ``multimae/input_adapters.py`` (``PatchedInputAdapter``, ``SemSegInputAdapter``),
``multimae/output_adapters.py`` (``SpatialOutputAdapter``), ``multimae/criterion.py`` (masked MSE / L1 / CE:
per-sample mean over masked pixels, then nanmean) and ``run_pretraining_multimae.py`` (DOMAIN_CONF, truncated depth
standardisation, extra ``norm_rgb`` head, task losses summed with weight 1).

Deviations / unverified points (code followed where paper and code differ):
* No separate learned modality embedding in the encoder: the official input adapters add none (each modality's own
  patch projection, bias included, identifies it); the learned per-modality ("task") embeddings live in the output
  adapters, added to the context tokens, as officially.
* When the Dirichlet counts do not add up to ``num_encoded_tokens`` after rounding, the surplus / missing tokens
  are chosen at random over all modalities by sorting the 0/1 mask plus uniform noise, exactly as the official
  ``generate_random_masks`` does; totals are exact.
* An image whose modality ends up fully visible is left out of that task's mean (the official ``nanmean`` drops its
  0/0 value too, but its NaN still reaches the gradients; here it never appears).
* Injected masks (``bool_masked_pos`` / ``task_masks``) must hide the same number of tokens in every row; the
  official code counts the visible tokens over the whole batch, which is only correct for batch size 1.
* At a resolution other than the configured one, sin-cos tables are regenerated (exact) instead of being
  bicubically / bilinearly interpolated.
* Only the decoders whose target is in the batch run by default (the official forward runs all of them); pass
  ``output_tasks`` to get e.g. depth predictions from RGB alone. Depth standardisation runs inside ``forward``.
* The Dirichlet sample uses ``torch.distributions.Dirichlet``; with ``mask_rng`` set it runs in a forked RNG
  seeded from ``mask_rng`` so masks are reproducible without touching the global RNG.
"""

import itertools
import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init

from hf_mim.layers.attention import Attention, CrossAttention
from hf_mim.layers.block import Mlp, TransformerBlock, drop_path_rates
from hf_mim.layers.patch_embed import normalize_patches, patchify, unpatchify
from hf_mim.layers.pos_embed import sincos_2d
from hf_mim.masking.core import MaskInfo, gather_tokens, mask_from_bool, restore_sequence
from hf_mim.modeling_utils import (
    MIMEncoderOutput,
    MIMPreTrainedModel,
    MIMPreTrainingOutput,
    MIMViTForImageClassification,
    is_loaded,
)
from hf_mim.models.multimae.configuration_multimae import MultiMAEConfig

# forward keyword of each modality (RGB is transformers' ``pixel_values``)
INPUT_KEYS = {"rgb": "pixel_values", "depth": "depth", "semseg": "semseg"}


# ---------------------------------------------------------------------------------------------- masking
def _forked_sample(fn, generator: torch.Generator | None):
    """Run ``fn()`` (which draws from the global RNG) reproducibly from ``generator`` without touching the global
    RNG; torch's Dirichlet sampler takes no generator."""
    if generator is None:
        return fn()
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return fn()


def sample_task_proportions(
    batch_size: int,
    num_tasks: int,
    alphas: float | list[float] = 1.0,
    sample_tasks_uniformly: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Per-image share of the visible tokens for each modality ``[B, T]`` (rows sum to 1): Dirichlet(alphas), or
    (``sample_tasks_uniformly``) first a uniform non-empty subset of modalities, then Dirichlet over it with
    ``eps = 1e-5`` for the others (official ``sample_alphas``)."""
    alphas = torch.tensor([float(alphas)] * num_tasks if isinstance(alphas, (int, float)) else alphas, dtype=torch.float)
    if alphas.numel() != num_tasks:
        raise ValueError(f"got {alphas.numel()} Dirichlet alphas for {num_tasks} modalities")
    if sample_tasks_uniformly:
        choices = torch.tensor(list(itertools.product([0, 1], repeat=num_tasks))[1:], dtype=torch.float)
        picks = torch.randint(0, len(choices), (batch_size,), generator=generator)
        concentration = choices[picks] * alphas + 1e-5
        return _forked_sample(lambda: torch.distributions.Dirichlet(concentration).sample(), generator)
    return _forked_sample(lambda: torch.distributions.Dirichlet(alphas).sample((batch_size,)), generator)


def generate_random_masks(
    num_tokens_per_task: list[int],
    batch_size: int,
    num_encoded_tokens: int,
    alphas: float | list[float] = 1.0,
    sample_tasks_uniformly: bool = False,
    generator: torch.Generator | None = None,
    device=None,
) -> tuple[MaskInfo, torch.Tensor]:
    """Official ``generate_random_masks``: per image, ``round(share_t * num_encoded_tokens)`` tokens are requested
    from modality ``t`` and picked uniformly inside it; the concatenated mask is then fixed so that exactly
    ``num_encoded_tokens`` are visible. Returns the mask over the concatenated tokens (True = masked, with
    ``ids_keep`` / ``ids_restore``) and the requested counts ``[B, T]``."""
    total = sum(num_tokens_per_task)
    if not 1 <= num_encoded_tokens <= total:
        raise ValueError(
            f"num_encoded_tokens={num_encoded_tokens} but the modalities present have {total} tokens in total; "
            "lower num_encoded_tokens or pass more modalities"
        )
    shares = sample_task_proportions(batch_size, len(num_tokens_per_task), alphas, sample_tasks_uniformly, generator)
    requested = (shares * num_encoded_tokens).round().long()
    masks = []
    for index, count in enumerate(num_tokens_per_task):
        # a random permutation of 0..n-1 per image; its ``requested`` smallest entries mark the visible tokens
        permutation = torch.argsort(torch.rand(batch_size, count, generator=generator), dim=1)
        masks.append(permutation >= requested[:, index : index + 1])
    mask_all = torch.cat(masks, dim=1)
    tie_break = torch.rand(batch_size, total, generator=generator)
    ids_shuffle = torch.argsort(mask_all.float() + tie_break, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(batch_size, total, dtype=torch.bool)
    mask[:, :num_encoded_tokens] = False
    mask = torch.gather(mask, 1, ids_restore)
    info = MaskInfo(mask=mask.to(device), ids_keep=ids_shuffle[:, :num_encoded_tokens].to(device), ids_restore=ids_restore.to(device))
    return info, requested


def standardize_depth(depth: torch.Tensor) -> torch.Tensor:
    """Per image: subtract the mean and divide by the std (eps 1e-6 on the variance) of the 10-90% truncated depth
    values (official training loop, ``standardize_depth: True``)."""
    flat = depth.flatten(1).sort(dim=1).values
    count = flat.shape[1]
    kept = flat[:, int(0.1 * count) : int(0.9 * count)]
    shape = (-1,) + (1,) * (depth.ndim - 1)
    return (depth - kept.mean(dim=1).reshape(shape)) / torch.sqrt(kept.var(dim=1).reshape(shape) + 1e-6)


# ---------------------------------------------------------------------------------------------- losses
def upsample_mask(mask: torch.Tensor, grid: tuple[int, int], size: tuple[int, int]) -> torch.Tensor:
    """``[B, L]`` token mask -> ``[B, H, W]`` float pixel mask (nearest), as the official criteria do."""
    mask = mask.reshape(-1, 1, grid[0], grid[1]).float()
    return nn.functional.interpolate(mask, size=size, mode="nearest").squeeze(1)


def masked_pixel_mean(per_pixel: torch.Tensor, mask: torch.Tensor | None, grid: tuple[int, int]) -> torch.Tensor:
    """Official reduction: mean over masked pixels per image, then mean over the images that have masked pixels in
    this modality (the official ``nanmean`` of 0/0 values, without their NaN gradients); all pixels when ``mask``
    is None; 0 when nothing is masked at all."""
    if mask is None:
        return per_pixel.mean()
    if not bool(mask.any()):
        return per_pixel.sum() * 0.0
    weight = upsample_mask(mask, grid, per_pixel.shape[-2:]).to(per_pixel.dtype)
    masked_pixels = weight.flatten(1).sum(1)
    counted = masked_pixels > 0
    per_sample = (per_pixel * weight).flatten(1).sum(1) / masked_pixels.clamp(min=1)
    return (per_sample * counted).sum() / counted.sum()


def task_loss(task: str, prediction: torch.Tensor, target: torch.Tensor, mask, grid, patch: int) -> torch.Tensor:
    """MSE for rgb, MSE on per-patch normalised pixels for norm_rgb, L1 for depth, cross-entropy for semseg."""
    prediction = prediction.float()
    if task == "semseg":
        per_pixel = nn.functional.cross_entropy(prediction, target.long(), reduction="none")
        return masked_pixel_mean(per_pixel, mask, grid)
    target = target.float()
    if task == "norm_rgb":
        target = unpatchify(normalize_patches(patchify(target, patch))[0], patch, grid, target.shape[1])
    if task == "depth":
        per_pixel = (prediction - target).abs().mean(dim=1)
    else:
        per_pixel = (prediction - target).pow(2).mean(dim=1)
    return masked_pixel_mean(per_pixel, mask, grid)


# ---------------------------------------------------------------------------------------------- adapters
class PatchedInputAdapter(nn.Module):
    """Official ``PatchedInputAdapter``: conv patch projection plus a fixed sin-cos table (``pos_embed``)."""

    def __init__(self, num_channels: int, patch_size: int, grid_size: tuple[int, int], dim: int, layout: str):
        super().__init__()
        self.patch_size = patch_size
        self.grid_size = tuple(grid_size)
        self.layout = layout
        self.proj = nn.Conv2d(num_channels, dim, kernel_size=patch_size, stride=patch_size)
        self.pos_embed = nn.Parameter(torch.zeros(1, grid_size[0] * grid_size[1], dim), requires_grad=False)

    def sincos_table(self, grid_size=None) -> torch.Tensor:
        return sincos_2d(grid_size or self.grid_size, self.pos_embed.shape[-1], self.layout).unsqueeze(0)

    def check_input(self, values: torch.Tensor, name: str, allow_other_size: bool) -> None:
        if values.ndim != 4 or values.shape[1] != self.proj.in_channels:
            raise ValueError(
                f"{name} must have shape [batch, {self.proj.in_channels}, height, width], got {tuple(values.shape)}"
            )

    def embed(self, values: torch.Tensor) -> torch.Tensor:
        return self.proj(values)

    def forward(self, values: torch.Tensor, name: str = "input", allow_other_size: bool = False):
        self.check_input(values, name, allow_other_size)
        height, width = values.shape[-2:]
        expected = (self.grid_size[0] * self.patch_size, self.grid_size[1] * self.patch_size)
        if (height, width) != expected:
            if not allow_other_size:
                raise ValueError(
                    f"{name} is {height}x{width} but the model expects {expected[0]}x{expected[1]}; resize it or "
                    "pass interpolate_pos_encoding=True"
                )
            if height % self.patch_size or width % self.patch_size:
                raise ValueError(f"{name} size {height}x{width} is not divisible by its patch size {self.patch_size}")
        features = self.embed(values)
        grid = tuple(features.shape[-2:])
        pos = self.pos_embed if grid == self.grid_size else self.sincos_table(grid).to(self.pos_embed)
        return features.flatten(2).transpose(1, 2) + pos, grid


class SemSegInputAdapter(PatchedInputAdapter):
    """Official ``SemSegInputAdapter``: class ids -> learned class embedding -> conv patch projection."""

    def __init__(self, num_classes: int, class_dim: int, patch_size: int, grid_size, dim: int, layout: str):
        super().__init__(class_dim, patch_size, grid_size, dim, layout)
        self.class_embed = nn.Embedding(num_classes, class_dim)

    def check_input(self, values: torch.Tensor, name: str, allow_other_size: bool) -> None:
        if values.ndim != 3 or values.is_floating_point():
            raise ValueError(
                f"{name} must be integer class ids of shape [batch, height, width] (at 1/semseg_stride of the image "
                f"resolution), got dtype {values.dtype} and shape {tuple(values.shape)}"
            )

    def embed(self, values: torch.Tensor) -> torch.Tensor:
        return self.proj(self.class_embed(values.long()).permute(0, 3, 1, 2))


def build_input_adapter(config: MultiMAEConfig, modality: str) -> PatchedInputAdapter:
    dim, grid, layout = config.hidden_size, config.grid_size, config.pos_embed_layout
    if modality == "semseg":
        patch = config.patch_size // config.semseg_stride
        return SemSegInputAdapter(config.semseg_num_classes, config.semseg_class_embed_dim, patch, grid, dim, layout)
    channels = config.num_channels if modality == "rgb" else 1
    return PatchedInputAdapter(channels, config.patch_size, grid, dim, layout)


def task_geometry(config: MultiMAEConfig, task: str) -> tuple[int, int]:
    """(output channels, output patch side) of a task's prediction."""
    if task == "semseg":
        return config.semseg_num_classes, config.patch_size // config.semseg_stride
    return (1 if task == "depth" else config.num_channels), config.patch_size


class SpatialOutputAdapter(nn.Module):
    """Official ``SpatialOutputAdapter`` (use_task_queries, use_xattn): project the encoder tokens, refill masked
    slots with a mask token, add per-modality task embeddings and sin-cos positions; queries = this task's
    modality slice (visible slots keep their encoded token), context = the visible tokens plus global tokens;
    ``x = CrossAttn(LN(q), LN(ctx))`` with no residual, ``x = x + MLP(LN(x))``, a few self-attention blocks, then a
    linear map to ``C * p * p`` values per patch in (channel, row, col) order."""

    def __init__(self, config: MultiMAEConfig, task: str):
        super().__init__()
        dim = config.decoder_hidden_size
        self.task = "rgb" if task == "norm_rgb" else task
        self.num_channels, self.patch_size = task_geometry(config, self.task)
        self.layout = config.pos_embed_layout
        self.grid_size = config.grid_size
        self.num_global_tokens = config.num_global_tokens
        self.task_embeddings = nn.ParameterDict({m: nn.Parameter(torch.zeros(1, 1, dim)) for m in config.input_modalities})
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.num_patches, dim), requires_grad=False)
        self.proj_context = nn.Linear(config.hidden_size, dim)
        eps = config.layer_norm_eps
        self.query_norm = nn.LayerNorm(dim, eps=eps)
        self.context_norm = nn.LayerNorm(dim, eps=eps)
        self.cross_attn = CrossAttention(config, dim, config.decoder_num_attention_heads, qkv_bias=True)
        self.out_norm = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, config.decoder_intermediate_size, config.hidden_act)
        self.blocks = nn.ModuleList(
            [
                TransformerBlock(config, dim, config.decoder_num_attention_heads, config.decoder_intermediate_size,
                                 qkv_bias=True, layer_norm_eps=eps, hidden_act=config.hidden_act)
                for _ in range(config.decoder_num_hidden_layers)
            ]
        )
        self.out_proj = nn.Linear(dim, self.num_channels * self.patch_size**2)

    def sincos_table(self, grid_size=None) -> torch.Tensor:
        return sincos_2d(grid_size or self.grid_size, self.pos_embed.shape[-1], self.layout).unsqueeze(0)

    def forward(
        self,
        encoder_tokens: torch.Tensor,
        modalities: dict[str, int],
        grid: tuple[int, int],
        ids_keep: torch.Tensor,
        ids_restore: torch.Tensor,
    ) -> torch.Tensor:
        """``encoder_tokens`` ``[B, K + G, D]``; ``modalities``: the encoded modalities and their token counts, in
        concatenation order. Returns the prediction ``[B, C, H_t, W_t]`` for this task."""
        batch = encoder_tokens.shape[0]
        x = self.proj_context(encoder_tokens)
        num_visible = x.shape[1] - self.num_global_tokens
        visible, global_tokens = x[:, :num_visible], x[:, num_visible:]
        full = restore_sequence(visible, self.mask_token, ids_restore)
        pos = self.pos_embed if tuple(grid) == self.grid_size else self.sincos_table(grid).to(self.pos_embed)
        embeddings = []
        for name, count in modalities.items():
            task_emb = self.task_embeddings[name] if name in self.task_embeddings else torch.zeros_like(self.mask_token)
            embeddings.append((task_emb + pos).expand(batch, count, -1))
        full = full + torch.cat(embeddings, dim=1).to(full.dtype)
        if self.task in modalities:
            names = list(modalities)
            start = sum(modalities[m] for m in names[: names.index(self.task)])
            queries = full[:, start : start + modalities[self.task]]
        else:
            queries = self.mask_token + pos
            if self.task in self.task_embeddings:
                queries = queries + self.task_embeddings[self.task]
            queries = queries.expand(batch, -1, -1).to(full.dtype)
        context = torch.cat([gather_tokens(full, ids_keep), global_tokens], dim=1)
        x = self.cross_attn(self.query_norm(queries), self.context_norm(context))[0]
        x = x + self.mlp(self.out_norm(x))
        for block in self.blocks:
            x = block(x)[0]
        x = self.out_proj(x)
        p, channels = self.patch_size, self.num_channels
        x = x.reshape(batch, grid[0], grid[1], channels, p, p).permute(0, 3, 1, 4, 2, 5)
        return x.reshape(batch, channels, grid[0] * p, grid[1] * p)


# ---------------------------------------------------------------------------------------------- models
@dataclass
class MultiMAEEncoderOutput(MIMEncoderOutput):
    """``last_hidden_state`` is ``[B, K + G, D]``: the encoded modality tokens (in ``ids_keep`` order; all tokens
    of the present modalities in config order when nothing is masked) then the ``G`` global tokens.
    ``mask`` is over the concatenated modality tokens; ``task_masks`` splits it per modality."""

    task_masks: dict[str, torch.Tensor] | None = None
    grid_size: tuple[int, int] | None = None


@dataclass
class MultiMAEPreTrainingOutput(MIMPreTrainingOutput):
    """``reconstruction`` / ``mask``: the RGB prediction and RGB token mask (when RGB is an input / task);
    ``predictions``: every decoded task's output ``[B, C, H_t, W_t]``; ``task_masks``: per-modality token masks."""

    predictions: dict[str, torch.Tensor] | None = None
    task_masks: dict[str, torch.Tensor] | None = None


class MultiMAEPreTrainedModel(MIMPreTrainedModel):
    """Official initialisation: xavier Linear (q, k, v treated as separate matrices), xavier patch projections
    viewed as matrices, trunc-normal(0.02) global tokens / class embeddings / task embeddings, zero mask tokens,
    fixed sin-cos tables."""

    config_class = MultiMAEConfig
    _no_split_modules = ["TransformerBlock", "SpatialOutputAdapter"]

    @torch.no_grad()
    def _init_weights(self, module) -> None:
        super()._init_weights(module)
        if isinstance(module, Attention) and not is_loaded(module.qkv.weight):
            # official MultiMAE: each of q, k, v gets its own xavier bound
            dim = module.qkv.weight.shape[1]
            bound = math.sqrt(6.0 / float(module.qkv.weight.shape[0] // 3 + dim))
            init.uniform_(module.qkv.weight, -bound, bound)
        elif isinstance(module, PatchedInputAdapter):
            weight = module.proj.weight
            if not is_loaded(weight):
                torch.nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
            init.copy_(module.pos_embed, module.sincos_table())
            if isinstance(module, SemSegInputAdapter):
                init.trunc_normal_(module.class_embed.weight, std=0.02)
        elif isinstance(module, SpatialOutputAdapter):
            for embedding in module.task_embeddings.values():
                init.trunc_normal_(embedding, std=0.02)
            init.zeros_(module.mask_token)
            init.copy_(module.pos_embed, module.sincos_table())
        elif isinstance(module, MultiMAEModel):
            init.trunc_normal_(module.global_tokens, std=0.02)


class MultiMAEModel(MultiMAEPreTrainedModel):
    """The shared MultiMAE encoder (official ``MultiViT`` without output adapters). RGB comes in as
    ``pixel_values``; ``depth`` and ``semseg`` are optional. There is no final norm (the official encoder is a bare
    stack of blocks); ``norm`` is an identity kept for the shared classification head."""

    _keys_to_ignore_on_load_unexpected = [r"^decoders\."]
    num_prefix_tokens = 0

    def __init__(self, config: MultiMAEConfig):
        super().__init__(config)
        dim = config.hidden_size
        self.input_adapters = nn.ModuleDict({m: build_input_adapter(config, m) for m in config.input_modalities})
        self.global_tokens = nn.Parameter(torch.zeros(1, config.num_global_tokens, dim))
        rates = drop_path_rates(config.drop_path_rate, config.num_hidden_layers)
        self.blocks = nn.ModuleList(
            [
                TransformerBlock(
                    config, dim, config.num_attention_heads, config.intermediate_size, qkv_bias=config.qkv_bias,
                    layer_norm_eps=config.layer_norm_eps, layer_scale_init_value=config.layer_scale_init_value,
                    drop_path_rate=rates[i], hidden_act=config.hidden_act,
                    attn_drop=config.attention_probs_dropout_prob, proj_drop=config.hidden_dropout_prob,
                )
                for i in range(config.num_hidden_layers)
            ]
        )
        self.norm = nn.Identity()
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return next(iter(self.input_adapters.values())).proj

    def tokenize(self, inputs: dict, interpolate_pos_encoding: bool = False) -> tuple[dict, tuple[int, int]]:
        """Tokens ``[B, L, D]`` of every given modality (config order) and the shared patch grid."""
        given = {m: inputs.get(m) for m in self.config.input_modalities if inputs.get(m) is not None}
        unknown = [m for m, v in inputs.items() if v is not None and m not in self.input_adapters]
        if unknown:
            raise ValueError(
                f"got {', '.join(INPUT_KEYS[m] for m in unknown)} but the model has no input adapter for "
                f"{unknown}; add them to config.input_modalities or drop them from the batch"
            )
        if not given:
            raise ValueError(
                f"no input given: pass at least one of {[INPUT_KEYS[m] for m in self.config.input_modalities]}"
            )
        tokens, grids = {}, {}
        for name, values in given.items():
            tokens[name], grids[name] = self.input_adapters[name](values, INPUT_KEYS[name], interpolate_pos_encoding)
        if len(set(grids.values())) > 1:
            raise ValueError(f"the modalities give different patch grids {grids}; they must be spatially aligned")
        return tokens, next(iter(grids.values()))

    def resolve_mask(self, tokens: dict, task_masks=None, bool_masked_pos=None, num_encoded_tokens=None, generator=None):
        counts = [t.shape[1] for t in tokens.values()]
        batch, device = next(iter(tokens.values())).shape[0], next(iter(tokens.values())).device
        if task_masks is not None:
            if bool_masked_pos is not None:
                raise ValueError("pass either task_masks or bool_masked_pos, not both")
            missing = [m for m in tokens if m not in task_masks]
            if missing:
                raise ValueError(f"task_masks has no mask for the given modalities {missing}")
            bool_masked_pos = torch.cat([task_masks[m].bool() for m in tokens], dim=1)
        if bool_masked_pos is not None:
            if bool_masked_pos.shape != (batch, sum(counts)):
                raise ValueError(
                    f"bool_masked_pos must have shape [{batch}, {sum(counts)}] (the tokens of {list(tokens)} "
                    f"concatenated), got {tuple(bool_masked_pos.shape)}"
                )
            return mask_from_bool(bool_masked_pos.to(device))
        if num_encoded_tokens is None:
            return None
        return generate_random_masks(
            counts, batch, num_encoded_tokens, self.config.dirichlet_alphas_for(list(tokens)),
            self.config.sample_tasks_uniformly, generator if generator is not None else self.mask_rng, device,
        )[0]

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        depth: torch.Tensor | None = None,
        semseg: torch.Tensor | None = None,
        task_masks: dict[str, torch.Tensor] | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        num_encoded_tokens: int | None = None,
        mask_generator: torch.Generator | None = None,
        interpolate_pos_encoding: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MultiMAEEncoderOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` `(batch, channels, height, width)`, *optional*): the RGB modality.
        depth (`torch.FloatTensor` `(batch, 1, height, width)`, *optional*): depth (standardise it first if the
            model was trained with ``standardize_depth``; the pre-training model does this itself).
        semseg (`torch.LongTensor` `(batch, height / semseg_stride, width / semseg_stride)`, *optional*): class ids.
        task_masks (`dict[str, torch.BoolTensor]`, *optional*): per-modality ``[batch, num_patches]`` masks, True =
            masked (official ``task_masks`` injection). bool_masked_pos (`torch.BoolTensor`, *optional*): the same
            masks concatenated over the given modalities in config order.
        num_encoded_tokens (`int`, *optional*): draw a Dirichlet-split random mask keeping this many tokens.
            Without any masking input every token is encoded. mask_generator (`torch.Generator`, *optional*): RNG
            of that random mask (default ``self.mask_rng``).
        """
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        tokens, grid = self.tokenize({"rgb": pixel_values, "depth": depth, "semseg": semseg}, interpolate_pos_encoding)
        info = self.resolve_mask(tokens, task_masks, bool_masked_pos, num_encoded_tokens, mask_generator)
        hidden = torch.cat(list(tokens.values()), dim=1)
        if info is not None:
            hidden = gather_tokens(hidden, info.ids_keep)
        hidden = torch.cat([hidden, self.global_tokens.to(hidden.dtype).expand(hidden.shape[0], -1, -1)], dim=1)
        all_hidden = (hidden,) if output_hidden_states else None
        all_attn = () if output_attentions else None
        for block in self.blocks:
            hidden, weights = block(hidden, None, output_attentions=output_attentions, **kwargs)
            if output_hidden_states:
                all_hidden = all_hidden + (hidden,)
            if output_attentions:
                all_attn = all_attn + (weights,)
        per_task = None
        if info is not None:
            per_task = dict(zip(tokens, torch.split(info.mask, [t.shape[1] for t in tokens.values()], dim=1)))
        output = MultiMAEEncoderOutput(
            last_hidden_state=hidden,
            mask=None if info is None else info.mask,
            ids_restore=None if info is None else info.ids_restore,
            ids_keep=None if info is None else info.ids_keep,
            hidden_states=all_hidden,
            attentions=all_attn,
            task_masks=per_task,
            grid_size=tuple(grid),
        )
        return output if return_dict else output.to_tuple()

    def pooled_features(self, pixel_values: torch.Tensor, pooling: str = "mean") -> torch.Tensor:
        """``mean``: average of all output tokens, global token included (official ``LinearOutputAdapter``);
        ``cls``: the (last) global token."""
        hidden = self(pixel_values=pixel_values).last_hidden_state
        if pooling == "cls":
            if self.config.num_global_tokens < 1:
                raise ValueError("pooling='cls' needs a global token (num_global_tokens >= 1); use pooling='mean'")
            return hidden[:, -1]
        return hidden.mean(dim=1)


class MultiMAEForPreTraining(MultiMAEPreTrainedModel):
    """Encoder + one :class:`SpatialOutputAdapter` per task (``decoders``) + the per-task masked losses, summed."""

    def __init__(self, config: MultiMAEConfig):
        super().__init__(config)
        self.encoder = MultiMAEModel(config)
        self.decoders = nn.ModuleDict({task: SpatialOutputAdapter(config, task) for task in config.decoder_tasks})
        self.post_init()

    def logits_to_pixels(self, logits: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        """The RGB head predicts (processor-normalised) pixels directly: only reshape ``[B, L, p*p*C]`` patches."""
        p = self.config.patch_size
        grid = (pixel_values.shape[2] // p, pixel_values.shape[3] // p)
        return unpatchify(logits, p, grid, self.config.num_channels)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        depth: torch.Tensor | None = None,
        semseg: torch.Tensor | None = None,
        task_masks: dict[str, torch.Tensor] | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        num_encoded_tokens: int | None = None,
        output_tasks: list[str] | None = None,
        interpolate_pos_encoding: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MultiMAEPreTrainingOutput | tuple:
        r"""
        pixel_values / depth / semseg: the modalities present in this batch (see [`MultiMAEModel`]); each one is
            an input if it is in ``config.input_modalities`` and a target if it is in ``config.output_tasks``.
        task_masks / bool_masked_pos (*optional*): fixed masks (see [`MultiMAEModel`]). Without them
            ``num_encoded_tokens`` (default ``config.num_encoded_tokens``) tokens are kept, split per image over
            the given modalities by a Dirichlet sample (drawn with ``self.mask_rng``).
        output_tasks (`list[str]`, *optional*): decoders to run; default: every decoder whose target is given.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if depth is not None and self.config.standardize_depth:
            depth = standardize_depth(depth.float()).to(depth.dtype)
        given = {"rgb": pixel_values, "depth": depth, "semseg": semseg}
        inputs = {m: given[m] for m in self.config.input_modalities}
        has_masks = task_masks is not None or bool_masked_pos is not None
        encoded = self.encoder(
            **{INPUT_KEYS[m]: v for m, v in inputs.items()},
            task_masks=task_masks,
            bool_masked_pos=bool_masked_pos,
            num_encoded_tokens=None if has_masks else (num_encoded_tokens or self.config.num_encoded_tokens),
            mask_generator=self.mask_rng,
            interpolate_pos_encoding=interpolate_pos_encoding,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=True,
            **kwargs,
        )
        targets = {**given, "norm_rgb": pixel_values}
        if output_tasks is None:
            output_tasks = [t for t in self.config.decoder_tasks if targets[t] is not None]
        unknown = [t for t in output_tasks if t not in self.decoders]
        if unknown:
            raise ValueError(f"no output adapter for {unknown}; available: {list(self.decoders)}")
        modalities = {m: mask.shape[1] for m, mask in encoded.task_masks.items()}
        grid = encoded.grid_size
        predictions, losses = {}, {}
        for task in output_tasks:
            predictions[task] = self.decoders[task](
                encoded.last_hidden_state, modalities, grid, encoded.ids_keep, encoded.ids_restore
            )
            target = targets[task]
            if target is None:
                continue
            source = "rgb" if task == "norm_rgb" else task
            mask = None if self.config.loss_on_unmasked else encoded.task_masks.get(source)
            losses[task] = task_loss(task, predictions[task], target, mask, grid, self.decoders[task].patch_size)
        loss = sum(losses.values()) if losses else None
        output = MultiMAEPreTrainingOutput(
            loss=loss,
            reconstruction=predictions.get("rgb"),
            mask=encoded.task_masks.get("rgb", encoded.mask),
            ids_restore=encoded.ids_restore,
            loss_terms={f"{task}_loss": value.detach() for task, value in losses.items()},
            hidden_states=encoded.hidden_states,
            attentions=encoded.attentions,
            predictions=predictions,
            task_masks=encoded.task_masks,
        )
        return output if return_dict else output.to_tuple()


class MultiMAEForImageClassification(MultiMAEPreTrainedModel, MIMViTForImageClassification):
    """Fine-tuning head of the official ``LinearOutputAdapter``: mean of all encoder tokens (global token included;
    the encoder has no final norm), LayerNorm (``fc_norm``), linear classifier. RGB only."""

    encoder_class = MultiMAEModel

    def pool(self, encoder_output) -> torch.Tensor:
        return self.fc_norm(encoder_output.last_hidden_state.mean(dim=1))
