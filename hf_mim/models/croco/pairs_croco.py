"""Synthetic image pairs for CroCo from single images.

CroCo v1 pre-trains on pairs of rendered views of one scene (Habitat) with ``--transforms crop224+acolor``: an
independent random crop of each view and an independent ("asymmetric", probability 1) colour jitter of
brightness / contrast / saturation in [0.6, 1.4], no hue, no flip (naver/croco ``datasets/transforms.py``). Without
multi-view data hf_mim makes the second viewpoint from the same image: a shared random-resized crop gives a
"scene" canvas ``context_scale`` times the model size, and two independent random crops of it are the two views
(a translation of up to a quarter of the image), each colour-jittered on its own. This pair generator is hf_mim's
choice (the paper's data are real second views); pass real pairs as ``pixel_values`` / ``pixel_values_ref`` when
you have them.
"""

import torch
from torchvision.transforms import v2

JITTER = (0.6, 1.4)


class CroCoPairTransform:
    """PIL image -> ``{"pixel_values": view 1 (masked and completed), "pixel_values_ref": view 2 (reference)}``.

    Evaluation (``train=False``) is deterministic: the canvas is the resized image, view 1 its top-left crop and
    view 2 its bottom-right crop, without jitter, so held-out losses are comparable between runs.
    """

    def __init__(self, processor, train: bool = True, scale=(0.2, 1.0), context_scale: float = 1.25, jitter=JITTER):
        if context_scale < 1.0:
            raise ValueError(
                f"context_scale must be >= 1 (the canvas the two views are cropped from), got {context_scale}"
            )
        self.size = (processor.size["height"], processor.size["width"])
        self.canvas = tuple(int(round(s * context_scale)) for s in self.size)
        self.mode = {1: "L", 3: "RGB"}.get(processor.num_channels)
        self.train = train
        interpolation = v2.InterpolationMode.BICUBIC
        if train:
            self.to_canvas = v2.RandomResizedCrop(self.canvas, scale=scale, interpolation=interpolation, antialias=True)
        else:
            self.to_canvas = v2.Resize(self.canvas, interpolation=interpolation, antialias=True)
        self.crop = v2.RandomCrop(self.size)
        self.jitter = v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter) if jitter else None
        finish = [v2.ToDtype(torch.float32, scale=True)]
        if processor.do_normalize:
            finish.append(v2.Normalize(list(processor.image_mean), list(processor.image_std)))
        self.finish = v2.Compose(finish)

    def views(self, canvas: torch.Tensor) -> list[torch.Tensor]:
        if not self.train:
            height, width = self.size
            dy, dx = canvas.shape[-2] - height, canvas.shape[-1] - width
            return [canvas[..., :height, :width], canvas[..., dy : dy + height, dx : dx + width]]
        views = [self.crop(canvas) for _ in range(2)]  # independent crops: the two "viewpoints"
        return [self.jitter(view) for view in views] if self.jitter is not None else views

    def __call__(self, image) -> dict[str, torch.Tensor]:
        if self.mode and image.mode != self.mode:
            image = image.convert(self.mode)
        canvas = self.to_canvas(v2.functional.pil_to_tensor(image))
        first, second = (self.finish(view) for view in self.views(canvas))
        return {"pixel_values": first, "pixel_values_ref": second}


def make_pair_transform(processor, train: bool = True, scale=(0.2, 1.0)) -> CroCoPairTransform:
    return CroCoPairTransform(processor, train=train, scale=scale)


def shifted_reference(pixel_values: torch.Tensor, patch_size: int, generator: torch.Generator) -> torch.Tensor:
    """A deterministic synthetic second view of a tensor batch: the images shifted (cyclically) by 1 to
    ``patch_size`` pixels along each axis, so patches of the two views do not align. Used for fixed test and
    benchmark inputs where no PIL images are at hand."""
    dy, dx = (int(v) for v in torch.randint(1, patch_size + 1, (2,), generator=generator))
    return torch.roll(pixel_values, shifts=(dy, dx), dims=(-2, -1))
