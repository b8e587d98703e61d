"""Reconstruction images: original / masked / reconstruction / reconstruction pasted into the visible patches.

Predictions are mapped back to pixels correctly also for ``norm_pix_loss`` models: the model's
``logits_to_pixels`` re-applies each patch's own mean and variance (taken from the input image), which is the
only way MAE-style reconstructions look like images (facebookresearch/mae#12, transformers#29416).
"""

import math
from dataclasses import dataclass

import torch
from PIL import Image, ImageDraw

COLUMNS = ("original", "masked", "reconstruction", "recon. + visible")


@dataclass
class Reconstruction:
    """All tensors ``[B, C, H, W]`` in the processor's normalised space; ``pixel_mask`` is ``[B, 1, H, W]``."""

    original: torch.Tensor
    masked: torch.Tensor
    reconstruction: torch.Tensor
    pasted: torch.Tensor
    pixel_mask: torch.Tensor
    loss: float


def mask_to_pixels(mask: torch.Tensor, image_size: tuple[int, int]) -> torch.Tensor:
    """``[B, L]`` patch mask on a square-patch grid -> ``[B, 1, H, W]`` float pixel mask."""
    height, width = image_size
    length = mask.shape[1]
    patch = int(math.sqrt(height * width / length))
    grid_h, grid_w = height // patch, width // patch
    if grid_h * grid_w != length:
        raise ValueError(f"cannot place a mask of {length} patches on a {height}x{width} image")
    pixel = mask.reshape(-1, grid_h, grid_w).repeat_interleave(patch, 1).repeat_interleave(patch, 2)
    return pixel.unsqueeze(1).float()


@torch.no_grad()
def reconstruct(model, pixel_values: torch.Tensor, **mask_inputs) -> Reconstruction:
    """Run ``model`` (an ``*ForPreTraining``) and assemble the reconstruction images."""
    was_training = model.training
    model.eval()
    try:
        outputs = model(pixel_values=pixel_values, **mask_inputs)
    finally:
        model.train(was_training)
    if outputs.reconstruction is not None:
        prediction = outputs.reconstruction
    elif outputs.logits is not None and hasattr(model, "logits_to_pixels"):
        prediction = model.logits_to_pixels(outputs.logits, pixel_values)
    else:
        raise ValueError(f"{type(model).__name__} returns no pixel reconstruction to visualise")
    pixel_mask = mask_to_pixels(outputs.mask, pixel_values.shape[-2:]).to(pixel_values)
    prediction = prediction.to(pixel_values)
    return Reconstruction(
        original=pixel_values,
        masked=pixel_values * (1 - pixel_mask),
        reconstruction=prediction,
        pasted=pixel_values * (1 - pixel_mask) + prediction * pixel_mask,
        pixel_mask=pixel_mask,
        loss=float(outputs.loss),
    )


def _to_image(tensor: torch.Tensor, scale: int) -> Image.Image:
    array = (tensor.clamp(0, 1) * 255).round().byte()
    mode = "L" if array.shape[0] == 1 else "RGB"
    if array.shape[0] not in (1, 3):  # show the first three channels of multispectral data
        array = array[:3]
    image = Image.fromarray(array.permute(1, 2, 0).squeeze(-1).cpu().numpy(), mode=mode)
    return image.resize((image.width * scale, image.height * scale), Image.NEAREST).convert("RGB")


def reconstruction_grid(recon: Reconstruction, processor, min_side: int = 96, masked_fill: float = 0.5) -> Image.Image:
    """One row per image, the four columns of :data:`COLUMNS`, un-normalised with the processor's mean/std;
    masked patches are shown grey in the "masked" column."""
    rows = []
    for index in range(recon.original.shape[0]):
        mask = recon.pixel_mask[index]
        masked = processor.unnormalize(recon.masked[index]) * (1 - mask) + masked_fill * mask
        rows.append(
            [
                processor.unnormalize(recon.original[index]),
                masked,
                processor.unnormalize(recon.reconstruction[index]),
                processor.unnormalize(recon.pasted[index]),
            ]
        )
    height, width = recon.original.shape[-2:]
    scale = max(1, math.ceil(min_side / min(height, width)))
    cell_w, cell_h, pad, header = width * scale, height * scale, 4, 14
    canvas = Image.new("RGB", (len(COLUMNS) * (cell_w + pad) + pad, header + len(rows) * (cell_h + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for col, title in enumerate(COLUMNS):
        draw.text((pad + col * (cell_w + pad), 1), title[: max(4, cell_w // 6)], fill="black")
    for row, images in enumerate(rows):
        for col, tensor in enumerate(images):
            canvas.paste(_to_image(tensor, scale), (pad + col * (cell_w + pad), header + pad + row * (cell_h + pad)))
    return canvas


def evaluation_inputs(model, processor, images) -> dict:
    """Stacked ``forward`` inputs for PIL ``images`` through the method's own evaluation transform, so methods with
    a second view (CroCo's reference, CropMAE's global crop) get it too."""
    from hf_mim.registry import method_for_config

    transform = method_for_config(model.config).make_transform(processor, train=False)
    items = [transform(image) for image in images]
    if isinstance(items[0], dict):
        return {key: torch.stack([item[key] for item in items]) for key in items[0]}
    return {"pixel_values": torch.stack(items)}


def save_reconstruction_grid(model, processor, pixel_values: torch.Tensor, path, **mask_inputs) -> Reconstruction:
    recon = reconstruct(model, pixel_values, **mask_inputs)
    reconstruction_grid(recon, processor).save(path)
    return recon


def collect_images(sources: list[str], limit: int, seed: int = 0):
    """``limit`` PIL images from image files, folders and datasets (parquet, name, ...): a seeded random sample
    across all of them, since the first files of a sorted folder or the first rows of a dataset are often all
    one class."""
    from pathlib import Path

    from hf_mim.data import (
        IMAGE_COLUMN_CANDIDATES,
        IMAGE_SUFFIXES,
        find_column,
        load_image_dataset,
        read_image,
        undecoded,
    )

    segments = []  # per source: (number of images, reader of its i-th image)
    for source in sources:
        path = Path(source)
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            files = [str(path)]
        elif path.is_dir() and not any(path.glob("*.parquet")):
            files = [str(p) for p in sorted(path.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
        else:
            dataset = load_image_dataset(source, split="test" if source == "demo" else "train")
            column = find_column(dataset, IMAGE_COLUMN_CANDIDATES, "image")
            dataset = undecoded(dataset, column)
            segments.append((len(dataset), lambda i, d=dataset, c=column: read_image(d[i][c])))
            continue
        segments.append((len(files), lambda i, f=files: read_image(f[i])))
    total = sum(size for size, _ in segments)
    if total == 0:
        raise ValueError(f"no images found in {sources}")
    picks = range(total)
    if total > limit:
        picks = sorted(torch.randperm(total, generator=torch.Generator().manual_seed(seed))[:limit].tolist())
    images = []
    for index in picks:  # index over all sources -> (source, position in it)
        source = 0
        while index >= segments[source][0]:
            index, source = index - segments[source][0], source + 1
        images.append(segments[source][1](index))
    images = [image for image in images if image is not None]  # unreadable files are skipped (and logged)
    if not images:
        raise ValueError(f"no readable images found in {sources}")
    return images


def visualize_checkpoint(checkpoint, sources, output, mask_ratio=None, max_images=8, seed=0):
    """Load a pre-training checkpoint and its processor, reconstruct ``max_images`` images sampled across
    ``sources`` (``seed`` picks them and the masks), save the grid."""
    import inspect

    from transformers import AutoImageProcessor, AutoModelForPreTraining

    from hf_mim.data import check_local_path

    check_local_path(str(checkpoint), "a saved checkpoint folder or a Hub model id")
    model = AutoModelForPreTraining.from_pretrained(checkpoint).eval()
    processor = AutoImageProcessor.from_pretrained(checkpoint)
    inputs = evaluation_inputs(model, processor, collect_images(list(sources), max_images, seed))
    pixel_values = inputs.pop("pixel_values")
    model.mask_rng = torch.Generator().manual_seed(seed)
    if mask_ratio is not None:
        if "mask_ratio" not in inspect.signature(model.forward).parameters:
            raise ValueError(f"{type(model).__name__} has no mask_ratio argument; change the config instead")
        inputs["mask_ratio"] = mask_ratio
    save_reconstruction_grid(model, processor, pixel_values, output, **inputs)
    return output
