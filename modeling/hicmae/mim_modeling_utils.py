# Generated from hf_mim.modeling_utils by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Base classes shared by every hf_mim model: weight init, masking entry point, the ViT encoder and the
image-classification head that reuses it.

Every model has its encoder under the ``encoder`` prefix, so a pre-training checkpoint loads into
``AutoModel`` (the encoder alone) and ``AutoModelForImageClassification`` without spurious key warnings.
"""

import math
from dataclasses import dataclass

import torch
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.modeling_outputs import ImageClassifierOutput
from transformers.utils import ModelOutput

from .mim_configuration_utils import MIMViTConfig
from .mim_layers_attention import Attention, RelativePositionBias
from .mim_layers_block import LayerScale, TransformerBlock, drop_path_rates
from .mim_layers_decoder import MAEDecoder
from .mim_layers_patch_embed import PatchEmbed, normalize_patches, patchify, unpatchify
from .mim_layers_pos_embed import sincos_2d
from .mim_masking_core import MaskInfo, check_mask, gather_tokens, mask_from_bool, mask_from_noise, random_noise


@dataclass
class MIMEncoderOutput(ModelOutput):
    """Encoder output. ``last_hidden_state`` is ``[B, (cls) + K, D]``: the cls token (if any) then the ``K`` tokens
    the encoder saw, in ``ids_keep`` order (raster order when nothing was masked)."""

    last_hidden_state: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    ids_restore: torch.Tensor | None = None
    ids_keep: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class MIMPreTrainingOutput(ModelOutput):
    """Pre-training output shared by all methods.

    loss: scalar training loss. logits: per-patch predictions ``[B, L, p*p*C]`` (pixel methods).
    reconstruction: image-space prediction ``[B, C, H, W]`` where the method predicts images directly (SimMIM).
    mask: bool ``[B, L]``, True = masked. ids_restore: ``[B, L]`` unshuffle permutation (token-dropping methods).
    loss_terms: the named components of ``loss`` (for logging), detached.
    """

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    reconstruction: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    ids_restore: torch.Tensor | None = None
    loss_terms: dict[str, torch.Tensor] | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


def is_loaded(tensor: torch.Tensor) -> bool:
    """True when transformers already filled this tensor from a checkpoint (so init must leave it alone)."""
    return bool(getattr(tensor, "_is_hf_initialized", False))


def torch_default_init_(module: nn.Module) -> None:
    """PyTorch's own Linear/Conv default (kaiming-uniform(a=sqrt(5)) weights, fan-in uniform bias), made explicit
    so it also runs for weights that transformers creates on the meta device."""
    if is_loaded(module.weight):
        return
    init.kaiming_uniform_(module.weight, a=math.sqrt(5))
    if module.bias is not None:
        fan_in = module.weight[0].numel()
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(module.bias, -bound, bound)


class ClassificationHead(nn.Linear):
    """The linear layer of a fine-tuning classifier. Initialised as the official MAE fine-tuning does
    (``main_finetune.py``: ``trunc_normal_(model.head.weight, std=2e-5)``, zero bias): the first logits are ~0, so
    fine-tuning starts at loss ln(num_labels) instead of above it, and short (LoRA) runs start from chance. (The
    linear probe's head, :class:`~hf_mim.evaluation.probe.LinearProbe`, uses std 0.01 as ``main_linprobe.py``.)"""

    init_std = 2e-5


def classification_head(dim: int, num_labels: int) -> nn.Module:
    return ClassificationHead(dim, num_labels) if num_labels > 0 else nn.Identity()


class MIMPreTrainedModel(PreTrainedModel):
    """Base of every hf_mim model.

    ``init_style`` picks the official initialisation of the method family:
    * ``"mae"``: xavier-uniform Linear weights and patch embedding (viewed as a matrix), zero biases,
      normal(0.02) cls/mask tokens (facebookresearch/mae ``initialize_weights``).
    * ``"beit"``: truncated-normal Linear/Conv weights, then block ``i``'s ``attn.proj`` and ``mlp.fc2`` divided by
      ``sqrt(2 i)`` (BEiT/SimMIM ``fix_init_weight``; ``depth_scaled_init = False`` skips that step). ``trunc_bound``
      sets the truncation (SimMIM truncates at +-std because its ``_trunc_normal_`` override applies to every call).

    Masks drawn inside ``forward`` come from ``self.mask_rng`` when it is set (a ``torch.Generator``; the training
    callbacks reseed it per step so resumed runs see the same masks), else from the global RNG.
    """

    config_class = MIMViTConfig
    base_model_prefix = "encoder"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["TransformerBlock", "CrossAttentionBlock"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_attention_backend = True
    init_style = "mae"
    trunc_bound = 2.0
    depth_scaled_init = True
    mask_rng: torch.Generator | None = None

    def _trunc_normal(self, tensor: torch.Tensor, std: float) -> None:
        init.trunc_normal_(tensor, std=std, a=-self.trunc_bound * std, b=self.trunc_bound * std)

    def _token_init(self, tensor: torch.Tensor) -> None:
        std = self.config.initializer_range
        if self.init_style == "beit":
            self._trunc_normal(tensor, std)
        else:
            init.normal_(tensor, std=std)

    def _initialize_weights(self, module: nn.Module, is_custom_code: bool = False) -> None:
        # transformers treats hf_mim as custom code and then skips every module without parameters of its own
        # (``all([])`` is True), e.g. ``PatchEmbed``, whose branch below would never run and leave the patch
        # projection at PyTorch's default. hf_mim's init goes through ``transformers.initialization`` and
        # ``is_loaded``, which leave loaded tensors alone, so the plain path is safe.
        super()._initialize_weights(module, is_custom_code=False)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.initializer_range
        if isinstance(module, ClassificationHead):  # timm's trunc_normal_: cut at +-2 absolute, as the official code
            init.trunc_normal_(module.weight, std=module.init_std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            if self.init_style == "beit":
                self._trunc_normal(module.weight, std)
            else:
                init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm1d, nn.BatchNorm2d)):
            if module.weight is not None:
                init.ones_(module.weight)
                init.zeros_(module.bias)
            if getattr(module, "running_mean", None) is not None:
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, PatchEmbed):
            weight = module.proj.weight
            if not is_loaded(weight):
                if self.init_style == "beit":
                    self._trunc_normal(weight, std)
                else:  # as nn.Linear on the flattened kernel, as the official MAE does
                    torch.nn.init.xavier_uniform_(weight.view(weight.shape[0], -1))
            if module.proj.bias is not None:
                init.zeros_(module.proj.bias)
        elif isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            torch_default_init_(module)
        elif isinstance(module, LayerScale):
            init.constant_(module.gamma, module.init_value)
        elif isinstance(module, Attention) and module.q_bias is not None:
            init.zeros_(module.q_bias)
            init.zeros_(module.v_bias)
        elif isinstance(module, RelativePositionBias):
            init.zeros_(module.relative_position_bias_table)
            # non-persistent buffers are not in checkpoints: rebuild them (from_pretrained leaves them empty)
            init.copy_(module.relative_position_index, module.build_index(*module.grid_size))
        elif isinstance(module, MAEDecoder):
            self._token_init(module.mask_token)
            init.copy_(module.pos_embed, module.sincos_table())
        elif isinstance(module, MIMViTModel):
            module.init_encoder_weights()

    def patch_grid(self, pixel_values: torch.Tensor) -> tuple[int, int]:
        """The ``(rows, cols)`` patch grid of ``[..., H, W]`` images at ``config.patch_size``."""
        return pixel_values.shape[-2] // self.config.patch_size, pixel_values.shape[-1] // self.config.patch_size

    def draw_noise(self, batch_size: int, num_patches: int, device) -> torch.Tensor:
        return random_noise(batch_size, num_patches, device=device, generator=self.mask_rng)

    def noise_or_draw(self, noise, bool_masked_pos, ratio: float, batch_size: int, num_patches: int, device):
        """The ``noise`` a pre-training forward uses: a given mask (``noise`` or ``bool_masked_pos``) wins, else
        noise is drawn from ``mask_rng``; noise needs ``ratio > 0`` (a masked loss with nothing masked is an
        error, not a silent zero)."""
        if bool_masked_pos is not None:
            return noise
        if ratio == 0:
            raise ValueError(f"{type(self).__name__} needs a mask: set mask_ratio > 0 or pass bool_masked_pos")
        return noise if noise is not None else self.draw_noise(batch_size, num_patches, device)

    def compute_mask(
        self,
        batch_size: int,
        num_patches: int,
        device,
        noise: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mask_ratio: float | None = None,
    ) -> MaskInfo | None:
        """Resolve the masking inputs, in priority order: explicit ``bool_masked_pos``, explicit ``noise`` (MAE
        semantics with ``mask_ratio`` or the config's), a fresh random mask when ``mask_ratio > 0``, else none."""
        if bool_masked_pos is not None:
            if noise is not None:
                raise ValueError("pass either noise or bool_masked_pos, not both")
            if bool_masked_pos.shape != (batch_size, num_patches):
                raise ValueError(
                    f"bool_masked_pos must have shape [{batch_size}, {num_patches}], got {tuple(bool_masked_pos.shape)}"
                )
            return mask_from_bool(bool_masked_pos.to(device))
        if noise is not None:
            if noise.shape != (batch_size, num_patches):
                raise ValueError(f"noise must have shape [{batch_size}, {num_patches}], got {tuple(noise.shape)}")
            ratio = mask_ratio if mask_ratio is not None else getattr(self.config, "mask_ratio", None)
            if ratio is None:
                raise ValueError("noise was given but no mask_ratio (argument or config.mask_ratio)")
            return mask_from_noise(noise.to(device), ratio)
        if mask_ratio:
            return mask_from_noise(self.draw_noise(batch_size, num_patches, device), mask_ratio)
        return None

    def post_init(self):
        super().post_init()
        # FSDP auto-wrap (accelerate / transformers) wraps the classes named here and raises on a name the model
        # does not contain, so keep only the block classes this model has (MAE has no CrossAttentionBlock)
        present = {type(module).__name__ for module in self.modules()}
        self._no_split_modules = {name for name in self._no_split_modules if name in present}
        self.add_model_tags(["hf_mim", "masked-image-modeling", self.config.model_type])

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        """As transformers', except that a checkpoint of another method (its config's ``model_type`` differs)
        whose weights do not fit this class raises, naming both types and the unmatched weights, instead of
        warning and initialising them at random. A new task head's missing weights stay the usual report."""
        if kwargs.get("config") is not None:  # an explicit config (the Auto classes pass the matching one)
            return super().from_pretrained(pretrained_model_name_or_path, *args, **kwargs)
        hub = {k: kwargs[k] for k in ("cache_dir", "force_download", "local_files_only", "token", "revision", "subfolder") if k in kwargs}
        source_type = cls.config_class.get_config_dict(pretrained_model_name_or_path, **hub)[0].get("model_type")
        loading_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(pretrained_model_name_or_path, *args, output_loading_info=True, **kwargs)
        unmatched = {
            f"weights of {cls.__name__} missing from it": sorted(info["missing_keys"]),
            "of its weights unused": sorted(info["unexpected_keys"]),
        }
        if source_type not in (None, cls.config_class.model_type) and any(unmatched.values()):
            listed = "; ".join(
                f"{len(keys)} {what} ({', '.join(keys[:4])}{', ...' if len(keys) > 4 else ''})"
                for what, keys in unmatched.items() if keys
            )
            raise ValueError(
                f"{pretrained_model_name_or_path} is a {source_type} checkpoint, not {cls.config_class.model_type}: "
                f"{listed}. Load it with AutoModel / AutoModelForPreTraining, which pick the class of its model_type"
            )
        return (model, info) if loading_info else model

    def push_to_hub(self, repo_id: str, *args, **kwargs):
        """Push with an hf_mim model card (config, results, reconstruction image); extra keyword arguments:
        ``processor``, ``results`` (dict or JSON paths), ``dataset``, ``license``. From an exported bundle (hf_mim
        not installed) this is transformers' own ``push_to_hub``."""
        try:
            from hf_mim.hub.push import push_model
        except ImportError:
            return super().push_to_hub(repo_id, *args, **kwargs)
        return push_model(self, repo_id, *args, **kwargs)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """Save as transformers does, then add the self-contained remote-code bundle and ``auto_map`` so the
        checkpoint loads with ``trust_remote_code=True`` where hf_mim is not installed."""
        super().save_pretrained(save_directory, *args, **kwargs)
        if kwargs.get("is_main_process", True):
            try:
                from hf_mim.hub.remote_code import attach_remote_code
            except ImportError:  # running from an exported bundle: transformers copies the code itself
                return
            attach_remote_code(self, save_directory)


class PixelTargetMixin:
    """For models that regress (optionally per-patch normalised) pixels of patches, as MAE: the loss target and
    the way back from predictions to images (reconstruction grids), shared by every MAE-style method."""

    def target(self, pixel_values: torch.Tensor) -> torch.Tensor:
        patches = patchify(pixel_values, self.config.patch_size)
        return normalize_patches(patches)[0] if self.config.norm_pix_loss else patches

    def logits_to_pixels(self, logits: torch.Tensor, pixel_values: torch.Tensor) -> torch.Tensor:
        """Map predictions back to (processor-normalised) image space, undoing ``norm_pix_loss`` with the
        per-patch statistics of ``pixel_values``; used for reconstruction images."""
        if self.config.norm_pix_loss:
            _, mean, var = normalize_patches(patchify(pixel_values, self.config.patch_size))
            logits = logits * (var + 1e-6) ** 0.5 + mean
        grid = (pixel_values.shape[2] // self.config.patch_size, pixel_values.shape[3] // self.config.patch_size)
        return unpatchify(logits, self.config.patch_size, grid, self.config.num_channels)


class MIMViTModel(MIMPreTrainedModel):
    """ViT encoder on all or on a subset of the patches.

    Parameter names follow timm / the official MAE (``patch_embed.proj``, ``cls_token``, ``pos_embed``,
    ``blocks.N.{norm1,attn.qkv,attn.proj,norm2,mlp.fc1,mlp.fc2}``, ``norm``), so official checkpoints convert
    by prefix alone.

    ``forward`` without ``noise``/``bool_masked_pos``/``mask_ratio`` runs on every patch, in raster order
    (deterministic feature extraction, unlike transformers' ViTMAEModel which always shuffles). With masking
    input the masked patches are *dropped* (MAE style). Methods that instead replace masked patches by a mask
    token build the encoder with ``use_mask_token=True`` and pass ``replace_masked=True``.
    """

    def __init__(self, config: MIMViTConfig, use_mask_token: bool = False):
        super().__init__(config)
        dim = config.hidden_size
        self.patch_embed = self.build_patch_embed(config)
        self.num_prefix_tokens = int(config.use_cls_token)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if config.use_cls_token else None
        self.pos_embed = None
        if config.position_embedding_type != "none":
            learned = config.position_embedding_type == "learned"
            num_positions = self.patch_embed.num_patches + self.num_prefix_tokens
            self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, dim), requires_grad=learned)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim)) if use_mask_token else None
        self.rel_pos_bias = None
        if config.use_shared_relative_position_bias:
            if not config.use_cls_token:
                raise ValueError("the shared relative position bias expects a cls token (use_cls_token=True)")
            self.rel_pos_bias = RelativePositionBias(self.patch_embed.grid_size, config.num_attention_heads)
        self.blocks = self.build_blocks(config)
        self.norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
        self.post_init()

    @staticmethod
    def build_blocks(config) -> nn.ModuleList:
        """The encoder blocks (CRATE-MAE builds its white-box blocks here)."""
        rates = drop_path_rates(config.drop_path_rate, config.num_hidden_layers)
        return nn.ModuleList(
            [
                TransformerBlock(
                    config,
                    config.hidden_size,
                    config.num_attention_heads,
                    config.intermediate_size,
                    qkv_bias=config.qkv_bias,
                    layer_norm_eps=config.layer_norm_eps,
                    layer_scale_init_value=config.layer_scale_init_value,
                    drop_path_rate=rates[i],
                    hidden_act=config.hidden_act,
                    attn_drop=config.attention_probs_dropout_prob,
                    proj_drop=config.hidden_dropout_prob,
                )
                for i in range(config.num_hidden_layers)
            ]
        )

    @staticmethod
    def build_patch_embed(config) -> nn.Module:
        """The input embedding (a video encoder returns a tubelet embedding here)."""
        return PatchEmbed(config.image_size, config.patch_size, config.num_channels, config.hidden_size)

    # ------------------------------------------------------------------ init
    def sincos_table(self, grid_size=None) -> torch.Tensor:
        return sincos_2d(
            grid_size or self.patch_embed.grid_size,
            self.config.hidden_size,
            self.config.pos_embed_layout,
            cls_token=bool(self.num_prefix_tokens),
        ).unsqueeze(0)

    @torch.no_grad()
    def init_encoder_weights(self) -> None:
        if self.cls_token is not None:
            self._token_init(self.cls_token)
        if self.mask_token is not None:
            self._token_init(self.mask_token)
        if self.pos_embed is not None:
            if self.config.position_embedding_type == "sincos":
                init.copy_(self.pos_embed, self.sincos_table())
            else:
                self._trunc_normal(self.pos_embed, self.config.initializer_range)
        if self.init_style == "beit" and self.depth_scaled_init:  # BEiT/SimMIM fix_init_weight
            for layer_id, block in enumerate(self.blocks, start=1):
                for weight in (block.attn.proj.weight, block.mlp.fc2.weight):
                    if not is_loaded(weight):
                        weight.div_(math.sqrt(2.0 * layer_id))

    def get_input_embeddings(self) -> nn.Module:
        return self.patch_embed

    # ------------------------------------------------------------------ pieces used by the methods
    def position_embeddings(self, grid_size: tuple[int, int]) -> torch.Tensor | None:
        """Position table for ``grid_size``: the stored one at the training resolution, otherwise regenerated
        (sin-cos, exact) or bicubically interpolated (learned)."""
        if self.pos_embed is None or tuple(grid_size) == self.patch_embed.grid_size:
            return self.pos_embed
        if self.config.position_embedding_type == "sincos":
            return self.sincos_table(grid_size).to(self.pos_embed)
        prefix, patch_pos = self.pos_embed[:, : self.num_prefix_tokens], self.pos_embed[:, self.num_prefix_tokens :]
        old_h, old_w = self.patch_embed.grid_size
        patch_pos = patch_pos.reshape(1, old_h, old_w, -1).permute(0, 3, 1, 2)
        patch_pos = nn.functional.interpolate(patch_pos.float(), size=tuple(grid_size), mode="bicubic", align_corners=False)
        patch_pos = patch_pos.to(self.pos_embed.dtype).permute(0, 2, 3, 1).reshape(1, -1, self.pos_embed.shape[-1])
        return torch.cat([prefix, patch_pos], dim=1)

    def embed(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        ids_keep: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, tuple[int, int]]:
        """Patch tokens with position embeddings ``[B, L, D]``, the cls token with its position ``[B, 1, D]`` (or
        None) and the patch grid. With ``bool_masked_pos`` and a mask token, masked patch embeddings are replaced
        by the mask token *before* position embeddings are added (SimMIM / BEiT order). With ``ids_keep [B, K]``
        only those patches are embedded, ``[B, K, D]`` (MAE order: the dropped patches are never computed)."""
        grid = self.patch_embed.check_input(pixel_values, allow_other_size=interpolate_pos_encoding)
        tokens = self.patch_embed(pixel_values, ids_keep)
        if bool_masked_pos is not None:
            if self.mask_token is None:
                raise ValueError("this encoder was built without a mask token (use_mask_token=True)")
            masked = bool_masked_pos.reshape(tokens.shape[0], -1, 1).bool()
            tokens = torch.where(masked, self.mask_token.to(tokens.dtype), tokens)
        pos = self.position_embeddings(grid)
        if pos is not None:
            patch_pos = pos[:, self.num_prefix_tokens :]
            if ids_keep is not None:
                patch_pos = gather_tokens(patch_pos.expand(tokens.shape[0], -1, -1), ids_keep)
            tokens = tokens + patch_pos
        cls = None
        if self.cls_token is not None:
            cls = self.cls_token if pos is None else self.cls_token + pos[:, :1]
            cls = cls.expand(tokens.shape[0], -1, -1)
        return tokens, cls, grid

    def attention_bias(self, ids_keep: torch.Tensor | None, grid: tuple[int, int]) -> torch.Tensor | None:
        """Relative position bias for the tokens actually present (cls + kept patches)."""
        if self.rel_pos_bias is None:
            return None
        if tuple(grid) != self.rel_pos_bias.grid_size:
            raise ValueError("the relative position bias only supports the configured image size")
        bias = self.rel_pos_bias()
        if ids_keep is None:
            return bias
        positions = torch.cat([ids_keep.new_zeros(ids_keep.shape[0], 1), ids_keep + 1], dim=1)
        batch, count = positions.shape
        bias = bias.expand(batch, -1, -1, -1)
        rows = positions[:, None, :, None].expand(-1, bias.shape[1], -1, bias.shape[3])
        bias = torch.gather(bias, 2, rows)
        cols = positions[:, None, None, :].expand(-1, bias.shape[1], count, -1)
        return torch.gather(bias, 3, cols)

    def run_blocks(
        self,
        hidden_states: torch.Tensor,
        attention_bias: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        **kwargs,
    ) -> tuple[torch.Tensor, tuple | None, tuple | None]:
        """Transformer blocks then the final norm; hidden states are recorded before the norm (HF convention)."""
        all_hidden = (hidden_states,) if output_hidden_states else None
        all_attn = () if output_attentions else None
        for block in self.blocks:
            hidden_states, weights = block(hidden_states, attention_bias, output_attentions=output_attentions, **kwargs)
            if output_hidden_states:
                all_hidden = all_hidden + (hidden_states,)
            if output_attentions:
                all_attn = all_attn + (weights,)
        return self.norm(hidden_states), all_hidden, all_attn

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        replace_masked: bool = False,
        interpolate_pos_encoding: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        ids_keep: torch.Tensor | None = None,
        **kwargs,
    ) -> MIMEncoderOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, channels, height, width)`): normalised images.
        noise (`torch.FloatTensor` of shape `(batch, num_patches)`, *optional*): MAE-style noise; the
            `int(L * (1 - mask_ratio))` lowest-noise patches stay visible.
        bool_masked_pos (`torch.BoolTensor` of shape `(batch, num_patches)`, *optional*): explicit mask, True = masked.
        mask_ratio (`float`, *optional*): draw a random mask with this ratio. Without any masking input every patch
            is encoded, in raster order.
        replace_masked (`bool`): replace masked patches by the mask token instead of dropping them.
        ids_keep (`torch.LongTensor` of shape `(batch, num_kept)`, *optional*): encode exactly these patches, in this
            order (instead of a mask; shapes then never depend on mask values, as `torch.export` needs).
        """
        if pixel_values is None:
            raise ValueError("pixel_values is required")
        output_hidden_states = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        output_attentions = output_attentions if output_attentions is not None else self.config.output_attentions
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        batch = pixel_values.shape[0]

        if replace_masked:
            if bool_masked_pos is None:
                raise ValueError("replace_masked=True needs bool_masked_pos")
            check_mask(bool_masked_pos)
            tokens, cls, grid = self.embed(pixel_values, bool_masked_pos, interpolate_pos_encoding)
            mask_info = None
            ids_keep = None
        else:
            grid = self.patch_embed.check_input(pixel_values, allow_other_size=interpolate_pos_encoding)
            mask_info = None
            if ids_keep is None:
                mask_info = self.compute_mask(
                    batch, math.prod(grid), pixel_values.device, noise, bool_masked_pos, mask_ratio
                )
                ids_keep = None if mask_info is None else mask_info.ids_keep
            elif noise is not None or bool_masked_pos is not None:
                raise ValueError("pass ids_keep or a mask (noise / bool_masked_pos), not both")
            tokens, cls, grid = self.embed(
                pixel_values, interpolate_pos_encoding=interpolate_pos_encoding, ids_keep=ids_keep
            )
        hidden = tokens if cls is None else torch.cat([cls, tokens], dim=1)
        hidden, all_hidden, all_attn = self.run_blocks(
            hidden, self.attention_bias(ids_keep, grid), output_hidden_states, output_attentions, **kwargs
        )
        output = MIMEncoderOutput(
            last_hidden_state=hidden,
            mask=bool_masked_pos.bool() if replace_masked else (None if mask_info is None else mask_info.mask),
            ids_restore=None if mask_info is None else mask_info.ids_restore,
            ids_keep=ids_keep,
            hidden_states=all_hidden,
            attentions=all_attn,
        )
        return output if return_dict else output.to_tuple()


class MIMViTForImageClassification(MIMPreTrainedModel):
    """Encoder + pooling + linear head, for fine-tuning a pre-trained hf_mim encoder.

    ``config.pooling == "mean"`` follows the MAE fine-tuning recipe: average the patch tokens of the last block
    *before* the encoder's final norm, then a fresh ``fc_norm`` (so the encoder's ``norm`` is frozen and unused,
    as the official code deletes it). ``"cls"`` uses the normalised cls token (the linear-probe convention).
    Pre-training-only weights in the checkpoint (decoders, mask tokens, heads) are ignored on load.
    """

    encoder_class: type[MIMViTModel] = MIMViTModel
    _keys_to_ignore_on_load_unexpected = [r"^(?!encoder\.)", r"^encoder\.mask_token$"]

    def __init__(self, config: MIMViTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.encoder = self.encoder_class(config)
        dim = config.hidden_size
        if config.pooling == "mean":
            self.fc_norm = nn.LayerNorm(dim, eps=config.layer_norm_eps)
            self.encoder.norm.requires_grad_(False)
        else:
            self.fc_norm = nn.Identity()
        self.classifier = classification_head(dim, config.num_labels)
        self.post_init()

    def pool(self, encoder_output: MIMEncoderOutput) -> torch.Tensor:
        prefix = self.encoder.num_prefix_tokens
        if self.config.pooling == "cls":
            return encoder_output.last_hidden_state[:, 0]
        return self.fc_norm(encoder_output.hidden_states[-1][:, prefix:].mean(dim=1))

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        interpolate_pos_encoding: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> ImageClassifierOutput | tuple:
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        want_hidden = output_hidden_states if output_hidden_states is not None else self.config.output_hidden_states
        encoded = self.encoder(
            pixel_values,
            interpolate_pos_encoding=interpolate_pos_encoding,
            output_hidden_states=want_hidden or self.config.pooling == "mean",
            output_attentions=output_attentions,
            return_dict=True,
        )
        logits = self.classifier(self.pool(encoded))
        loss = None if labels is None else classification_loss(logits, labels, self.config)
        output = ImageClassifierOutput(
            loss=loss,
            logits=logits,
            hidden_states=encoded.hidden_states if want_hidden else None,
            attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


def classification_loss(logits: torch.Tensor, labels: torch.Tensor, config) -> torch.Tensor:
    """transformers' problem-type convention: regression, single-label or multi-label classification."""
    if config.problem_type is None:
        if config.num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    labels = labels.to(logits.device)
    if config.problem_type == "regression":
        return nn.functional.mse_loss(logits.squeeze(-1).float(), labels.float().reshape(logits.shape[0]))
    if config.problem_type == "single_label_classification":
        return nn.functional.cross_entropy(logits.float().view(-1, config.num_labels), labels.view(-1))
    return nn.functional.binary_cross_entropy_with_logits(logits.float(), labels.float())
