# Generated from hf_mim.processing.image_processing_mim by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Image processor shared by every hf_mim image model: resize, rescale, normalise with per-channel statistics
for any number of channels (RGB, grayscale, multispectral), and optionally draw a mask per image."""

import numpy as np
import torch
from PIL import Image
from transformers.image_processing_backends import TorchvisionBackend
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling
from transformers.processing_utils import ImagesKwargs

from .mim_masking_generators import RandomMaskGenerator, SimMIMMaskGenerator
from .remote_code_saving import SavesRemoteCode

WIDE_MODES = ("I", "I;16", "I;16L", "I;16B", "I;16N", "F")


def to_8bit(image: "Image.Image") -> "Image.Image":
    """16- and 32-bit grayscale images as 8-bit "L": PIL's ``convert`` clips their values at 255 (all white).
    ``I;16`` (and ``I`` holding 16-bit values) scale by 255 / 65535, float images in [0, 1] by 255, anything
    wider by 255 / its maximum."""
    if image.mode not in WIDE_MODES:
        return image
    array = np.asarray(image, dtype=np.float64)
    top = float(array.max(initial=0.0))
    if image.mode == "F":
        scale = 1.0 if top <= 1.0 else top
    else:
        scale = 65535.0 if image.mode.startswith("I;16") or top <= 65535 else top
    return Image.fromarray(np.clip(np.rint(array / scale * 255.0), 0, 255).astype(np.uint8), "L")

MASK_TYPES = ("random", "simmim")


class MIMImageProcessorKwargs(ImagesKwargs, total=False):
    r"""
    num_channels (`int`): channels the model expects; PIL images are converted to RGB (3) or L (1).
    mask_type (`str`): "random" (MAE) or "simmim"; used when `return_bool_masked_pos=True`.
    mask_ratio (`float`): masking ratio for the generated mask.
    patch_size (`int`): the model's patch size. mask_patch_size (`int`): SimMIM cell size.
    return_bool_masked_pos (`bool`): also return a `bool_masked_pos` tensor `[batch, num_patches]`.
    """

    num_channels: int
    mask_type: str | None
    mask_ratio: float
    patch_size: int
    mask_patch_size: int
    return_bool_masked_pos: bool


class MIMImageProcessor(SavesRemoteCode, TorchvisionBackend):
    valid_kwargs = MIMImageProcessorKwargs

    resample = PILImageResampling.BICUBIC
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"height": 224, "width": 224}
    do_resize = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = False
    num_channels = 3
    mask_type = "random"
    mask_ratio = 0.75
    patch_size = 16
    mask_patch_size = 32
    return_bool_masked_pos = False

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        for name in ("image_mean", "image_std"):
            stats = getattr(self, name)
            count = 1 if isinstance(stats, (int, float)) else len(stats)
            if self.do_normalize and count != self.num_channels:
                raise ValueError(
                    f"{name} has {count} value(s) but num_channels={self.num_channels}; give one value per channel "
                    f"(e.g. image_mean=[0.5] * {self.num_channels})"
                )
        if self.mask_type is not None and self.mask_type not in MASK_TYPES:
            raise ValueError(f"mask_type must be None or one of {MASK_TYPES}, got {self.mask_type!r}")

    def process_image(self, image, *args, num_channels: int | None = None, **kwargs):
        num_channels = num_channels or self.num_channels
        if hasattr(image, "convert") and hasattr(image, "mode"):  # PIL: make the mode match the model
            image = to_8bit(image)
            target = {3: "RGB", 1: "L"}.get(num_channels)
            if target is not None and image.mode != target:
                image = image.convert(target)
        kwargs["do_convert_rgb"] = False
        tensor = super().process_image(image, *args, **kwargs)
        if tensor.shape[0] != num_channels:
            raise ValueError(
                f"image has {tensor.shape[0]} channel(s) but the processor is set to num_channels={num_channels}"
            )
        return tensor

    def mask_generator(self, height: int, width: int, mask_type: str, mask_ratio: float, patch_size: int, mask_patch_size: int):
        if mask_type == "simmim":
            if height != width:
                raise ValueError("SimMIM masks need square images")
            return SimMIMMaskGenerator(height, mask_patch_size, patch_size, mask_ratio)
        return RandomMaskGenerator((height // patch_size) * (width // patch_size), mask_ratio)

    def _preprocess(self, images, *args, return_tensors=None, **kwargs):
        batch = super()._preprocess(images, *args, return_tensors=return_tensors, **kwargs)
        if kwargs.get("return_bool_masked_pos"):
            pixel_values = batch["pixel_values"]
            height, width = pixel_values[0].shape[-2:]
            generator = self.mask_generator(
                height,
                width,
                kwargs.get("mask_type") or "random",
                kwargs["mask_ratio"],
                kwargs["patch_size"],
                kwargs["mask_patch_size"],
            )
            mask = generator(len(pixel_values))
            batch["bool_masked_pos"] = mask if return_tensors == "pt" else list(mask)
        return batch

    def unnormalize(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Inverse of rescale + normalise: ``[..., C, H, W]`` normalised values back to ``[0, 1]``."""
        mean = torch.as_tensor(self.image_mean, dtype=pixel_values.dtype, device=pixel_values.device).reshape(-1, 1, 1)
        std = torch.as_tensor(self.image_std, dtype=pixel_values.dtype, device=pixel_values.device).reshape(-1, 1, 1)
        values = pixel_values * std + mean if self.do_normalize else pixel_values
        return values.clamp(0, 1)
