"""NeRF-MAE: masked modeling of NeRF radiance grids with a 3-D Swin Transformer.

A ``[B, 4, S, S, S]`` grid (RGB + alpha, zero-padded to the cube, with a validity mask) is cut into cubic patches
by a strided ``Conv3d`` + LayerNorm; the fixed 3-D sin-cos table is added; the tokens of masked blocks are
*replaced* by a learnable mask token (SimMIM style: the whole grid is encoded); four Swin stages (patch merging
between them) give four feature maps; a UNETR-style decoder (transposed convolutions + residual conv blocks with
instance norm, skips from stages 3, 2, 1, a last x``patch_size`` upsampling) predicts the four channels of every
voxel. Loss = RGB MSE + alpha MSE.

Faithful to zubair-irshad/NeRF-MAE, the class its training script really uses (``SwinTransformer_MAE3D_New`` in
``nerf_mae/model/mae/swin_mae3d.py``, imported by ``run_swin_mae3d.py`` under the old name; decoder blocks from
``nerf_mae/model/mae/unetr_block.py``), including what differs from the paper's description:

* the RGB loss covers *every* occupied voxel (target alpha > 0.01), masked or not; only the alpha loss (on the
  sigmoid of the prediction) is restricted to valid (non-padding) voxels of masked tokens;
* the RGB loss sums the squared errors of the three channels and divides by the number of occupied voxels;
* the mask token replaces the token *after* the position embedding was added (masked tokens carry no position);
* one block mask is drawn per batch and shared by its samples (Python ``random`` there, ``mask_rng`` here).

Deviations: a drawn mask that hides nothing or everything is redrawn (see ``BlockMaskGenerator3D``), and the loss
terms divide by at least one voxel (the official code returns NaN on a grid without occupied voxels).
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers import initialization as init
from transformers.utils import ModelOutput

from hf_mim.layers import drop_path_rates, sincos_1d
from hf_mim.layers.swin3d import PatchMerging3D, SwinBlock3D, WindowAttention3D
from hf_mim.masking import check_mask
from hf_mim.masking.volume import BlockMaskGenerator3D
from hf_mim.modeling_utils import MIMPreTrainedModel, torch_default_init_
from hf_mim.models.nerfmae.configuration_nerfmae import NeRFMAEConfig


def sincos_table_3d(grid: int, dim: int) -> torch.Tensor:
    """``[grid, grid, grid, dim]`` fixed table of the official ``get_3d_sincos_pos_embed``: three sin-cos parts of
    ``dim // 3`` channels; its ``np.meshgrid(w, h, l)`` ("xy" indexing) makes the first part encode the *second*
    axis and the second part the first."""
    axis = sincos_1d(torch.arange(grid), dim // 3)  # [grid, dim // 3], float64
    first, second, third = (axis.view(*shape, -1).expand(grid, grid, grid, -1)
                            for shape in ((1, grid, 1), (grid, 1, 1), (1, 1, grid)))
    return torch.cat([first, second, third], dim=-1).float()


@dataclass
class NeRFMAEModelOutput(ModelOutput):
    """``last_hidden_state [B, L4, C4]``: the last stage's tokens; ``feature_maps``: the four stages' maps
    ``[B, C_i, S_i, S_i, S_i]`` (multi-scale features for dense heads); ``mask [B, L]``: the masked tokens (if any);
    ``hidden_states``: the embedded (masked) tokens and the four maps, channels first."""

    last_hidden_state: torch.Tensor | None = None
    feature_maps: tuple[torch.Tensor, ...] | None = None
    mask: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


@dataclass
class NeRFMAEPreTrainingOutput(ModelOutput):
    """``loss`` = ``rgb_loss`` + ``alpha_loss``; ``logits [B, 4, S, S, S]``: the raw prediction of every voxel
    (alpha before its sigmoid); ``mask [B, L]``: True = masked token."""

    loss: torch.Tensor | None = None
    rgb_loss: torch.Tensor | None = None
    alpha_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    mask: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class ResidualConvBlock3D(nn.Module):
    """The official ``UnetResBlock``: conv3 -> InstanceNorm -> LeakyReLU(0.01) -> conv3 -> InstanceNorm, plus the
    input (through a 1x1 conv + InstanceNorm when the width changes), -> LeakyReLU."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, out_channels, 3, padding=1)
        self.conv2 = nn.Conv3d(out_channels, out_channels, 3, padding=1)
        self.norm1, self.norm2 = nn.InstanceNorm3d(out_channels), nn.InstanceNorm3d(out_channels)
        self.activation = nn.LeakyReLU(0.01)
        self.shortcut = None
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv3d(in_channels, out_channels, 1), nn.InstanceNorm3d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm2(self.conv2(self.activation(self.norm1(self.conv1(x)))))
        return self.activation(out + (x if self.shortcut is None else self.shortcut(x)))


class UpBlock3D(nn.Module):
    """The official ``UnetrUpBlock`` (residual): transposed conv (kernel = stride = ``scale``), concatenation with
    the skip map when there is one, :class:`ResidualConvBlock3D`."""

    def __init__(self, in_channels: int, out_channels: int, scale: int, skip: bool = True):
        super().__init__()
        self.upsample = nn.ConvTranspose3d(in_channels, out_channels, scale, stride=scale)
        self.block = ResidualConvBlock3D(2 * out_channels if skip else out_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        x = self.upsample(x)
        return self.block(x if skip is None else torch.cat([x, skip], dim=1))


class NeRFMAEStage(nn.Module):
    """Patch merging (all stages but the first), then Swin blocks alternating plain and half-shifted windows."""

    def __init__(self, config: NeRFMAEConfig, index: int, drop_paths: list[float]):
        super().__init__()
        dim = config.embed_dim * 2**index
        eps = config.layer_norm_eps
        self.downsample = PatchMerging3D(dim // 2, dim, eps) if index > 0 else None
        self.blocks = nn.ModuleList(
            SwinBlock3D(dim, config.num_heads[index], config.window_size,
                        0 if i % 2 == 0 else config.window_size // 2, config.mlp_ratio, drop_paths[i],
                        config.hidden_dropout_prob, config.attention_probs_dropout_prob, eps)
            for i in range(config.depths[index])
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.downsample is not None:
            x = self.downsample(x)
        for block in self.blocks:
            x = block(x)
        return x


class NeRFMAEPreTrainedModel(MIMPreTrainedModel):
    config_class = NeRFMAEConfig
    main_input_name = "grid_values"
    input_modalities = ("grid",)
    _no_split_modules = ["SwinBlock3D"]
    _supports_sdpa = False
    _supports_flash_attn = False
    _supports_attention_backend = False
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Official init: every Linear truncated-normal(0.02) (cut at +-2) with zero bias, relative-position
        tables truncated-normal(0.02), mask token normal(0.02), convolutions PyTorch's default, the fixed
        sin-cos table."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, (nn.Conv3d, nn.ConvTranspose3d)):
            torch_default_init_(module)
        elif isinstance(module, WindowAttention3D):
            init.trunc_normal_(module.relative_position_bias_table, std=std)
            init.copy_(module.relative_position_index, module.build_index(module.window))
        elif isinstance(module, NeRFMAEModel):
            init.normal_(module.mask_token, std=std)
            init.copy_(module.position_embeddings, sincos_table_3d(self.config.token_grid, self.config.embed_dim))

    def check_grid(self, grid_values: torch.Tensor | None) -> None:
        size, channels = self.config.grid_size, self.config.num_channels
        if grid_values is None or grid_values.dim() != 5 or tuple(grid_values.shape[1:]) != (channels, size, size, size):
            shape = None if grid_values is None else tuple(grid_values.shape)
            raise ValueError(f"grid_values must have shape [batch, {channels}, {size}, {size}, {size}] (RGB + alpha, "
                             f"config.grid_size a side), got {shape}; pad or crop grids with the NeRF-MAE feature extractor")


class NeRFMAEModel(NeRFMAEPreTrainedModel):
    """3-D Swin encoder: patch partition, fixed sin-cos positions, mask token on ``bool_masked_pos``, 4 stages."""

    def __init__(self, config: NeRFMAEConfig):
        super().__init__(config)
        self.patch_embed = nn.Conv3d(config.num_channels, config.embed_dim, config.patch_size, stride=config.patch_size)
        self.patch_norm = nn.LayerNorm(config.embed_dim, eps=config.layer_norm_eps)
        grid = config.token_grid
        self.register_buffer("position_embeddings", sincos_table_3d(grid, config.embed_dim), persistent=False)
        self.mask_token = nn.Parameter(torch.zeros(config.embed_dim))
        rates = drop_path_rates(config.drop_path_rate, sum(config.depths))
        starts = [sum(config.depths[:i]) for i in range(len(config.depths))]
        self.stages = nn.ModuleList(
            NeRFMAEStage(config, i, rates[start : start + depth]) for i, (start, depth) in enumerate(zip(starts, config.depths))
        )
        self.post_init()

    def forward(
        self,
        grid_values: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> NeRFMAEModelOutput | tuple:
        r"""
        grid_values (`torch.FloatTensor` of shape `(batch_size, 4, S, S, S)`): RGB + alpha grids, `S =
            config.grid_size` (see `NeRFMAEFeatureExtractor`).
        bool_masked_pos (`torch.BoolTensor` of shape `(batch_size, (S / patch_size) ** 3)`, *optional*): tokens
            replaced by the mask token, (d, h, w) raster order; none when omitted (features for probes).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        self.check_grid(grid_values)
        x = self.patch_norm(self.patch_embed(grid_values).permute(0, 2, 3, 4, 1))
        x = x + self.position_embeddings.to(x.dtype)
        if bool_masked_pos is not None:
            if bool_masked_pos.shape != (x.shape[0], self.config.num_patches):
                raise ValueError(f"bool_masked_pos must have shape [{x.shape[0]}, {self.config.num_patches}], got "
                                 f"{tuple(bool_masked_pos.shape)}")
            masked = bool_masked_pos.to(x.device).view(*x.shape[:4], 1)
            x = torch.where(masked, self.mask_token.to(x.dtype), x)
        hidden_states, maps = [x.permute(0, 4, 1, 2, 3)], []
        for stage in self.stages:
            x = stage(x)
            maps.append(x.permute(0, 4, 1, 2, 3).contiguous())
        output = NeRFMAEModelOutput(
            last_hidden_state=x.flatten(1, 3), feature_maps=tuple(maps), mask=bool_masked_pos,
            hidden_states=tuple(hidden_states + maps) if output_hidden_states else None,
        )
        return output if return_dict else output.to_tuple()

    def pooled_features(self, grid_values: torch.Tensor, pooling: str | None = None, **kwargs) -> torch.Tensor:
        """``[B, C4]``: the last stage's tokens averaged (features for probes)."""
        return self(grid_values, return_dict=True).last_hidden_state.mean(1)


class NeRFMAEForPreTraining(NeRFMAEPreTrainedModel):
    """Encoder + the official UNETR-style decoder; RGB loss on occupied voxels, alpha loss on valid voxels of
    masked tokens (see the module docstring)."""

    def __init__(self, config: NeRFMAEConfig):
        super().__init__(config)
        self.encoder = NeRFMAEModel(config)
        e = config.embed_dim
        self.decoder = nn.ModuleList([
            UpBlock3D(8 * e, 4 * e, 2), UpBlock3D(4 * e, 2 * e, 2), UpBlock3D(2 * e, e, 2),
            UpBlock3D(e, e // 2, config.patch_size, skip=False),
        ])
        self.decoder_head = nn.Conv3d(e // 2, config.num_channels, 1)
        self.mask_generator = BlockMaskGenerator3D(config.token_grid, config.mask_block_size, config.mask_ratio)
        self.post_init()

    def decode(self, feature_maps: tuple[torch.Tensor, ...]) -> torch.Tensor:
        x = feature_maps[3]
        for block, skip in zip(self.decoder, (feature_maps[2], feature_maps[1], feature_maps[0], None)):
            x = block(x, skip)
        return self.decoder_head(x)

    def voxel_mask(self, bool_masked_pos: torch.Tensor) -> torch.Tensor:
        """Token mask ``[B, L]`` -> voxel mask ``[B, S, S, S]`` (each token covers ``patch_size**3`` voxels)."""
        p, g = self.config.patch_size, self.config.token_grid
        grid = bool_masked_pos.view(-1, g, g, g)
        return grid.repeat_interleave(p, 1).repeat_interleave(p, 2).repeat_interleave(p, 3)

    def reconstruction_loss(self, logits, grid_values, valid_mask, bool_masked_pos):
        """``(rgb_loss, alpha_loss)`` as the official ``forward_loss``."""
        dtype = torch.promote_types(logits.dtype, torch.float32)
        logits, target = logits.to(dtype), grid_values.to(dtype)
        occupied = (target[:, 3] > self.config.alpha_threshold).unsqueeze(1)
        rgb_loss = ((logits[:, :3] - target[:, :3]) ** 2 * occupied).sum() / occupied.sum().clamp(min=1)
        scored = (valid_mask & self.voxel_mask(bool_masked_pos)).unsqueeze(1)
        alpha_error = (torch.sigmoid(logits[:, 3:]) - target[:, 3:]) ** 2
        alpha_loss = (alpha_error * scored).sum() / scored.sum().clamp(min=1)
        return rgb_loss, alpha_loss

    def forward(
        self,
        grid_values: torch.Tensor | None = None,
        valid_mask: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> NeRFMAEPreTrainingOutput | tuple:
        r"""
        grid_values (`torch.FloatTensor` of shape `(batch_size, 4, S, S, S)`): RGB + alpha grids.
        valid_mask (`torch.BoolTensor` of shape `(batch_size, S, S, S)`, *optional*): True inside the original grid,
            False on the zero padding (default: all valid).
        bool_masked_pos (`torch.BoolTensor` of shape `(batch_size, (S / patch_size) ** 3)`, *optional*): masked
            tokens; default: one block mask per batch from `mask_rng` (`config.mask_block_size`,
            `config.mask_ratio`). Must hide some but not all tokens of every sample.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        self.check_grid(grid_values)
        batch, size = grid_values.shape[0], self.config.grid_size
        if valid_mask is None:
            valid_mask = torch.ones(batch, size, size, size, dtype=torch.bool, device=grid_values.device)
        elif valid_mask.shape != (batch, size, size, size) or valid_mask.dtype != torch.bool:
            raise ValueError(f"valid_mask must be a bool tensor of shape [{batch}, {size}, {size}, {size}], got "
                             f"{valid_mask.dtype} {tuple(valid_mask.shape)}")
        if bool_masked_pos is None:
            bool_masked_pos = self.mask_generator(batch, self.mask_rng)
        bool_masked_pos = bool_masked_pos.to(grid_values.device)
        if bool_masked_pos.device.type != "meta":
            check_mask(bool_masked_pos)
        encoded = self.encoder(grid_values, bool_masked_pos, output_hidden_states=output_hidden_states, return_dict=True)
        logits = self.decode(encoded.feature_maps)
        rgb_loss, alpha_loss = self.reconstruction_loss(logits, grid_values, valid_mask.to(grid_values.device), bool_masked_pos)
        output = NeRFMAEPreTrainingOutput(
            loss=rgb_loss + alpha_loss, rgb_loss=rgb_loss, alpha_loss=alpha_loss, logits=logits, mask=bool_masked_pos,
            hidden_states=encoded.hidden_states,
        )
        return output if return_dict else output.to_tuple()

    def reconstruct(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits -> a grid in the input's units (alpha through its sigmoid, as the loss reads it)."""
        return torch.cat([logits[:, :3], torch.sigmoid(logits[:, 3:])], dim=1)
