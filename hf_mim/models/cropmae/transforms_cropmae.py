"""CropMAE's two views of one image: a global crop, then a local crop taken INSIDE the (resized) global crop.

Follows alexandre-eymael/CropMAE @5d0dab2 ``data/util/CropMAEStrategies.py`` (``GlobalToLocal``) and
``data/util/image_utils.py`` (``RRC``):
* The crops are torchvision's standard RandomResizedCrop: up to ten tries of area fraction ~ U(scale), log aspect
  ratio ~ U(log ratio), ``w, h = round(sqrt(area * r)), round(sqrt(area / r))``, kept when they fit, then top and
  left offsets uniformly; after ten misses the centre crop of the image clamped to the ratio range.
  :func:`sample_crop_box` makes the same draws in the same order. The official ``RRC`` subclass overrides
  ``get_params`` with BYOL's single draw, but ``torchvision.transforms.v2.RandomResizedCrop`` never calls
  ``get_params`` (it draws in ``make_params``), so the code that runs is torchvision's; hf_mim follows the code.
* The global crop (area 0.10-1 in the release script, here the ``scale`` given to the transform) is cut from the
  image and resized to the model size; the local crop (area 0.3-0.6, ratio 3/4-4/3) is cut from that RESIZED
  global view and resized to the model size. Bilinear, antialiased.
* Each view is then h-flipped independently with p = 0.5 and normalised; the global view is the first one drawn
  (global crop, local crop, global flip, local flip), as officially.
Not implemented: the optional colour jitter / blur / elastic transforms of the global view (all off by default).
Evaluation (``train=False``) has no official counterpart: the global view is the whole image and the local view
its central crop of area 0.45 (the middle of the local range), no flips, so held-out losses are deterministic.
"""

import math

import torch
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

LOCAL_SCALE = (0.3, 0.6)
ASPECT_RATIO = (3 / 4, 4 / 3)
HFLIP_P = 0.5
EVAL_LOCAL_AREA = 0.45
INTERPOLATION = v2.InterpolationMode.BILINEAR


def sample_crop_box(
    height: int, width: int, scale=(0.2, 1.0), ratio=ASPECT_RATIO, generator: torch.Generator | None = None
) -> tuple[int, int, int, int]:
    """``(top, left, h, w)`` of torchvision's RandomResizedCrop (``v2.RandomResizedCrop.make_params``) of a
    ``height x width`` image, drawn from ``generator``."""
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"crop scale must satisfy 0 < min <= max <= 1, got {scale}")
    log_ratio = torch.log(torch.tensor(ratio))
    for _ in range(10):
        target_area = height * width * torch.empty(1).uniform_(scale[0], scale[1], generator=generator).item()
        aspect = torch.exp(torch.empty(1).uniform_(float(log_ratio[0]), float(log_ratio[1]), generator=generator)).item()
        w, h = int(round(math.sqrt(target_area * aspect))), int(round(math.sqrt(target_area / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(torch.randint(0, height - h + 1, (1,), generator=generator).item())
            left = int(torch.randint(0, width - w + 1, (1,), generator=generator).item())
            return top, left, h, w
    # ten misses: the centre crop, the whole image clamped to the ratio range
    in_ratio = width / height
    h, w = height, width
    if in_ratio < min(ratio):
        h = int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        w = int(round(height * max(ratio)))
    return (height - h) // 2, (width - w) // 2, h, w


def center_box(height: int, width: int, area: float) -> tuple[int, int, int, int]:
    side = math.sqrt(area)
    h, w = max(1, int(round(height * side))), max(1, int(round(width * side)))
    return (height - h) // 2, (width - w) // 2, h, w


def resized_crop(image: torch.Tensor, box: tuple[int, int, int, int], size: tuple[int, int]) -> torch.Tensor:
    return F.resized_crop(image, *box, size=list(size), interpolation=INTERPOLATION, antialias=True)


def local_views(
    images: torch.Tensor, generator: torch.Generator | None = None, scale=LOCAL_SCALE, ratio=ASPECT_RATIO
) -> tuple[torch.Tensor, list[tuple[int, int, int, int]]]:
    """Local crops of a batch of (already global) views ``[B, C, H, W]``, resized back to ``H x W``; returns the
    crops and their boxes. Used for deterministic example inputs (no flips)."""
    height, width = images.shape[-2:]
    boxes = [sample_crop_box(height, width, scale, ratio, generator) for _ in range(images.shape[0])]
    crops = torch.stack([resized_crop(image, box, (height, width)) for image, box in zip(images, boxes)])
    return crops, boxes


class CropMAETransform:
    """PIL image -> ``{"pixel_values": local view, "pixel_values_global": global view}`` (processor-normalised).

    ``views`` also returns the crop boxes: the global box in image pixels, the local box in pixels of the resized
    global view (so ``0 <= top, top + h <= H`` etc. says the local crop lies inside the global one)."""

    def __init__(self, processor, train: bool = True, scale=(0.2, 1.0), local_scale=LOCAL_SCALE, ratio=ASPECT_RATIO, hflip_p=HFLIP_P):
        self.size = (processor.size["height"], processor.size["width"])
        self.mode = {1: "L", 3: "RGB"}.get(processor.num_channels)
        self.train = train
        self.scale, self.local_scale, self.ratio, self.hflip_p = tuple(scale), tuple(local_scale), tuple(ratio), hflip_p
        self.normalize = (
            v2.Normalize(list(processor.image_mean), list(processor.image_std)) if processor.do_normalize else None
        )

    def finish(self, view: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        if self.train and torch.rand(1, generator=generator).item() < self.hflip_p:
            view = F.horizontal_flip(view)
        view = F.to_dtype(view, torch.float32, scale=True)
        return self.normalize(view) if self.normalize is not None else view

    def views(self, image, generator: torch.Generator | None = None):
        """``(global_view, local_view, global_box, local_box)`` for one PIL image or ``[C, H, W]`` uint8 tensor."""
        if not torch.is_tensor(image):
            if self.mode and image.mode != self.mode:
                image = image.convert(self.mode)
            image = F.pil_to_tensor(image)
        height, width = image.shape[-2:]
        if self.train:
            global_box = sample_crop_box(height, width, self.scale, self.ratio, generator)
            global_view = resized_crop(image, global_box, self.size)
            local_box = sample_crop_box(*self.size, self.local_scale, self.ratio, generator)
        else:
            global_box = (0, 0, height, width)
            global_view = resized_crop(image, global_box, self.size)
            local_box = center_box(*self.size, EVAL_LOCAL_AREA)
        local_view = resized_crop(global_view, local_box, self.size)
        global_view = self.finish(global_view, generator)
        local_view = self.finish(local_view, generator)
        return global_view, local_view, global_box, local_box

    def __call__(self, image) -> dict:
        global_view, local_view, _, _ = self.views(image)
        return {"pixel_values": local_view, "pixel_values_global": global_view}


def build_cropmae_transform(processor, train: bool = True, scale=(0.2, 1.0)):
    """``MethodSpec.transform`` factory; ``scale`` is the GLOBAL crop's area range (release script: 0.1-1)."""
    return CropMAETransform(processor, train=train, scale=scale)
