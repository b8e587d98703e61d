import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor

import hf_mim
from hf_mim.processing import MIMImageProcessor


def test_resizes_and_normalises_with_imagenet_statistics():
    processor = MIMImageProcessor(size={"height": 32, "width": 32})
    image = Image.fromarray(np.full((50, 70, 3), (255, 0, 128), dtype=np.uint8))
    out = processor(image, return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 3, 32, 32)
    expected = (torch.tensor([1.0, 0.0, 128 / 255]) - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(out[0, :, 16, 16], expected, atol=1e-2)
    assert torch.allclose(processor.unnormalize(out[0])[:, 16, 16], torch.tensor([1.0, 0.0, 128 / 255]), atol=1e-2)


def test_grayscale_and_multichannel():
    gray = MIMImageProcessor(size={"height": 16, "width": 16}, num_channels=1, image_mean=[0.3], image_std=[0.2])
    rgb_image = Image.fromarray(np.full((20, 20, 3), 100, dtype=np.uint8))
    out = gray(rgb_image, return_tensors="pt")["pixel_values"]
    assert out.shape == (1, 1, 16, 16)
    assert torch.allclose(out, torch.full_like(out, (100 / 255 - 0.3) / 0.2), atol=1e-2)
    multi = MIMImageProcessor(size={"height": 8, "width": 8}, num_channels=4, image_mean=[0.5] * 4, image_std=[0.25] * 4)
    bands = np.random.default_rng(0).integers(0, 255, size=(12, 12, 4), dtype=np.uint8)
    assert multi(bands, return_tensors="pt")["pixel_values"].shape == (1, 4, 8, 8)
    with pytest.raises(ValueError, match="image_mean has 3 value"):
        MIMImageProcessor(num_channels=1)


def test_optional_masks():
    processor = MIMImageProcessor(size={"height": 32, "width": 32}, patch_size=8, mask_ratio=0.75)
    images = [Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8))] * 3
    out = processor(images, return_bool_masked_pos=True, return_tensors="pt")
    assert out["bool_masked_pos"].shape == (3, 16) and (out["bool_masked_pos"].sum(1) == 12).all()
    simmim = MIMImageProcessor(size={"height": 32, "width": 32}, patch_size=4, mask_type="simmim", mask_patch_size=16, mask_ratio=0.5)
    mask = simmim(images, return_bool_masked_pos=True, return_tensors="pt")["bool_masked_pos"]
    assert mask.shape == (3, 64) and (mask.sum(1) == 32).all()


def test_processor_for_config_and_save_load(tmp_path):
    config = hf_mim.get_method("simmim").make_config("tiny", num_channels=1)
    processor = hf_mim.processor_for_config(config, image_mean=[0.28], image_std=[0.35])
    assert processor.num_channels == 1 and processor.mask_type == "simmim" and processor.size["height"] == 32
    processor.save_pretrained(tmp_path)
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, MIMImageProcessor)
    assert tuple(loaded.image_mean) == (0.28,) and loaded.num_channels == 1 and loaded.mask_patch_size == 16
