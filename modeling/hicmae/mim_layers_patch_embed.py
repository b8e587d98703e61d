# Generated from hf_mim.layers.patch_embed by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Patch embedding and the patchify / unpatchify pair used by every pixel-reconstruction target."""

import torch
from torch import nn

from .mim_masking_core import gather_tokens


def to_2tuple(value: int | tuple[int, int] | list[int]) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    if len(value) != 2:
        raise ValueError(f"expected an int or a pair, got {value!r}")
    return (int(value[0]), int(value[1]))


def is_plain_module(module: nn.Module, cls: type) -> bool:
    """True when ``module`` is exactly ``cls`` with no hooks, so using its weights directly (a cheaper but equal
    computation) skips nothing: a wrapper (e.g. a LoRA layer) or a hook means it must run as a module."""
    return type(module) is cls and not module._forward_hooks and not module._forward_pre_hooks


class PatchEmbed(nn.Module):
    """Non-overlapping ``patch_size`` convolution: ``[B, C, H, W] -> [B, (H/p)*(W/p), D]`` in raster order."""

    def __init__(self, image_size, patch_size, num_channels: int, hidden_size: int):
        super().__init__()
        self.image_size = to_2tuple(image_size)
        self.patch_size = to_2tuple(patch_size)
        self.num_channels = num_channels
        self.grid_size = (self.image_size[0] // self.patch_size[0], self.image_size[1] // self.patch_size[1])
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(num_channels, hidden_size, kernel_size=self.patch_size, stride=self.patch_size)

    def check_input(self, pixel_values: torch.Tensor, allow_other_size: bool = False) -> tuple[int, int]:
        """Validate ``pixel_values`` and return its patch grid; errors name the problem and the fix."""
        if pixel_values.ndim != 4:
            raise ValueError(
                f"pixel_values must have shape [batch, channels, height, width], got {tuple(pixel_values.shape)}"
            )
        batch, channels, height, width = pixel_values.shape
        if batch == 0:
            raise ValueError("pixel_values is an empty batch (0 images): pass at least one image")
        if not pixel_values.is_floating_point():
            raise ValueError(
                f"pixel_values must be a float tensor of normalised images, got {pixel_values.dtype}; "
                "run the image processor (or divide by 255 and normalise)"
            )
        if channels != self.num_channels:
            raise ValueError(
                f"pixel_values has {channels} channel(s) but the model expects {self.num_channels} "
                f"(config.num_channels). Convert the images (e.g. RGB vs grayscale) or build the model with "
                f"num_channels={channels}."
            )
        if (height, width) != self.image_size:
            if not allow_other_size:
                raise ValueError(
                    f"input image size {height}x{width} does not match the model ({self.image_size[0]}x"
                    f"{self.image_size[1]}). Resize the images (the image processor does this) or pass "
                    f"interpolate_pos_encoding=True."
                )
            if height % self.patch_size[0] or width % self.patch_size[1]:
                raise ValueError(
                    f"input image size {height}x{width} is not divisible by the patch size {self.patch_size}"
                )
        return height // self.patch_size[0], width // self.patch_size[1]

    def forward(self, pixel_values: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
        """``[B, C, H, W] -> [B, L, D]``, or only the patches ``ids_keep [B, K]`` names, ``[B, K, D]``.

        The stride-``p`` convolution is a linear map of each patch on its own, so embedding just the kept patches
        gives the same tokens as embedding all and gathering, at ``K/L`` of the cost (a quarter for MAE). A wrapped
        or hooked ``proj`` keeps the convolution path so that its own forward runs.
        """
        if ids_keep is None or not is_plain_module(self.proj, nn.Conv2d):
            tokens = self.proj(pixel_values).flatten(2).transpose(1, 2)
            return tokens if ids_keep is None else gather_tokens(tokens, ids_keep)
        batch, channels, height, width = pixel_values.shape
        (patch_h, patch_w), grid_w = self.patch_size, width // self.patch_size[1]
        blocks = pixel_values.reshape(batch, channels, height // patch_h, patch_h, grid_w, patch_w)
        blocks = blocks.permute(0, 2, 4, 1, 3, 5)  # [B, rows, cols, C, p, p]: the convolution's weight order
        rows = torch.arange(batch, device=ids_keep.device).unsqueeze(1)
        patches = blocks[rows, ids_keep // grid_w, ids_keep % grid_w].flatten(2)  # [B, K, C*p*p]
        return nn.functional.linear(patches, self.proj.weight.flatten(1), self.proj.bias)


class TubeletEmbed(nn.Module):
    """Video patch embedding: a ``tubelet_size x p x p`` stride-equal ``Conv3d`` over ``[B, T, C, H, W]`` clips,
    giving ``[B, (T/t)*(H/p)*(W/p), D]`` tokens in (time, row, col) raster order (VideoMAE's layout).

    Not a :class:`PatchEmbed` subclass on purpose: VideoMAE initialises this convolution with PyTorch's default,
    not with MAE's xavier rule."""

    def __init__(self, image_size, patch_size: int, num_frames: int, tubelet_size: int, num_channels: int, hidden_size: int):
        super().__init__()
        if num_frames % tubelet_size:
            raise ValueError(
                f"num_frames {num_frames} is not divisible by tubelet_size {tubelet_size}: use a multiple of "
                f"{tubelet_size} frames"
            )
        self.image_size = to_2tuple(image_size)
        self.patch_size = to_2tuple(patch_size)
        self.num_frames, self.tubelet_size, self.num_channels = num_frames, tubelet_size, num_channels
        self.grid_size = (num_frames // tubelet_size, self.image_size[0] // self.patch_size[0], self.image_size[1] // self.patch_size[1])
        self.num_patches = self.grid_size[0] * self.grid_size[1] * self.grid_size[2]
        kernel = (tubelet_size, *self.patch_size)
        self.proj = nn.Conv3d(num_channels, hidden_size, kernel_size=kernel, stride=kernel)

    def check_input(self, pixel_values: torch.Tensor, allow_other_size: bool = False) -> tuple[int, int, int]:
        """Validate a ``[B, T, C, H, W]`` clip and return its ``(T', H', W')`` tubelet grid."""
        if pixel_values.ndim != 5:
            raise ValueError(
                f"pixel_values must be a video batch [batch, frames, channels, height, width], got "
                f"{tuple(pixel_values.shape)} (the video processor returns this layout)"
            )
        _, frames, channels, height, width = pixel_values.shape
        if channels != self.num_channels:
            raise ValueError(f"pixel_values has {channels} channel(s) but the model expects {self.num_channels}")
        if frames % self.tubelet_size:
            raise ValueError(
                f"{frames} frames are not divisible by the tubelet size {self.tubelet_size}: sample a multiple of "
                f"{self.tubelet_size} frames"
            )
        if (frames, height, width) != (self.num_frames, *self.image_size):
            raise ValueError(
                f"clip of {frames} frames of {height}x{width} does not match the model ({self.num_frames} frames of "
                f"{self.image_size[0]}x{self.image_size[1]}); process the clips with the model's video processor"
            )
        return self.grid_size

    def forward(self, pixel_values: torch.Tensor, ids_keep: torch.Tensor | None = None) -> torch.Tensor:
        tokens = self.proj(pixel_values.transpose(1, 2)).flatten(2).transpose(1, 2)
        return tokens if ids_keep is None else gather_tokens(tokens, ids_keep)


def tubelet_patchify(pixel_values: torch.Tensor, tubelet_size: int, patch_size: int) -> torch.Tensor:
    """``[B, T, C, H, W] -> [B, L, t*p*p, C]``: the pixels of each tubelet, (time, row, col) inside it and the
    channel last, the layout of VideoMAE's ``b c (t p0) (h p1) (w p2) -> b (t h w) (p0 p1 p2) c`` target."""
    batch, frames, channels, height, width = pixel_values.shape
    x = pixel_values.reshape(
        batch, frames // tubelet_size, tubelet_size, channels, height // patch_size, patch_size, width // patch_size, patch_size
    )
    x = x.permute(0, 1, 4, 6, 2, 5, 7, 3)
    return x.reshape(batch, -1, tubelet_size * patch_size * patch_size, channels)


def patchify(pixel_values: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``[B, C, H, W] -> [B, L, p*p*C]``; within a patch the order is (row, col, channel), channel fastest,
    exactly as the official MAE ``patchify``."""
    batch, channels, height, width = pixel_values.shape
    if height % patch_size or width % patch_size:
        raise ValueError(f"image size {height}x{width} is not divisible by patch size {patch_size}")
    grid_h, grid_w = height // patch_size, width // patch_size
    x = pixel_values.reshape(batch, channels, grid_h, patch_size, grid_w, patch_size)
    x = x.permute(0, 2, 4, 3, 5, 1)
    return x.reshape(batch, grid_h * grid_w, patch_size * patch_size * channels)


def unpatchify(patches: torch.Tensor, patch_size: int, grid_size: tuple[int, int], num_channels: int) -> torch.Tensor:
    """Inverse of :func:`patchify`: ``[B, L, p*p*C] -> [B, C, H, W]``."""
    batch = patches.shape[0]
    grid_h, grid_w = grid_size
    if grid_h * grid_w != patches.shape[1]:
        raise ValueError(f"{patches.shape[1]} patches do not fill a {grid_h}x{grid_w} grid")
    x = patches.reshape(batch, grid_h, grid_w, patch_size, patch_size, num_channels)
    x = x.permute(0, 5, 1, 3, 2, 4)
    return x.reshape(batch, num_channels, grid_h * patch_size, grid_w * patch_size)


def normalize_patches(target: torch.Tensor, eps: float = 1e-6) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """MAE's ``norm_pix_loss`` target: per-patch mean and *unbiased* variance, eps inside the square root.

    Returns ``(normalized, mean, var)`` so reconstructions can be mapped back to pixels for visualisation.
    """
    mean = target.mean(dim=-1, keepdim=True)
    centered = target - mean
    # two passes (mean, then squares of the centred values) equal torch.var at a third of its Welford cost
    var = centered.square().sum(dim=-1, keepdim=True) / (target.shape[-1] - 1)
    return centered / (var + eps) ** 0.5, mean, var
