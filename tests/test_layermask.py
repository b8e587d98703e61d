"""Layer masking (Balasubramanian & Feizi 2023): the mask travels through every layer of a ResNet."""

import json

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForImageClassification, ResNetForImageClassification
from transformers.dynamic_module_utils import get_class_from_dynamic_module

from hf_mim.models.layermask import (
    LayerMaskConfig,
    LayerMaskedResNetForImageClassification,
    layer_masked_features,
    layer_masked_forward,
    random_block_mask,
)

TINY = dict(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3)


def tiny(layer_type="bottleneck", **overrides):
    torch.manual_seed(0)
    model = LayerMaskedResNetForImageClassification(LayerMaskConfig(layer_type=layer_type, **TINY, **overrides))
    for module in model.modules():  # non-trivial BN statistics, so that BN is no identity
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.bias.data.normal_(0, 0.2)
    return model.eval()


def inputs(batch=2, fraction=0.5):
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(batch, 3, 32, 32, generator=generator)
    return pixels, random_block_mask(batch, 32, 8, fraction, generator)


@pytest.mark.parametrize("layer_type", ["bottleneck", "basic"])
def test_all_ones_mask_is_the_plain_model_exactly(layer_type):
    model = tiny(layer_type)
    pixels, _ = inputs()
    with torch.no_grad():
        plain = model(pixels).logits
        masked = model(pixels, pixel_mask=torch.ones(2, 32, 32)).logits
        as_tuple = model(pixels, pixel_mask=torch.ones(2, 32, 32), return_dict=False)[0]
    assert torch.equal(plain, masked) and torch.equal(plain, as_tuple)


@pytest.mark.parametrize("layer_type", ["bottleneck", "basic"])
def test_masked_pixels_change_nothing_and_get_no_gradient(layer_type):
    model = tiny(layer_type)
    pixels, keep = inputs()
    assert 0 < keep.mean() < 1
    other = pixels + 5 * torch.randn_like(pixels) * (1 - keep[:, None])
    with torch.no_grad():
        logits = model(pixels, pixel_mask=keep).logits
        assert torch.equal(logits, model(other, pixel_mask=keep).logits)
        # a black (zero) fill through the plain model, in contrast, is not the same prediction
        assert not torch.allclose(logits, model(pixels * keep[:, None]).logits, atol=1e-4)
    pixels.requires_grad_(True)
    model(pixels, pixel_mask=keep).logits.square().sum().backward()
    hidden = (1 - keep[:, None]).expand_as(pixels).bool()
    assert pixels.grad[hidden].abs().max() == 0
    assert pixels.grad[~hidden].abs().max() > 0


def test_mask_dilates_with_each_convolution_kernel_stride_and_padding():
    model = tiny()
    pixels = torch.randn(1, 3, 32, 32)
    keep = torch.zeros(1, 32, 32)
    keep[0, 13, 21] = 1  # one visible pixel
    _, mask, _ = layer_masked_features(model, pixels, keep)
    stem = F.max_pool2d(F.max_pool2d(keep[:, None], 7, 2, 3), 3, 2, 1)  # conv 7x7/2 pad 3, max pool 3x3/2 pad 1
    # a residual add multiplies the branch masks: stage 1 (3x3 pad 1 dilates) meets its identity shortcut,
    # stage 2 (3x3/2 pad 1) meets its 1x1/2 shortcut
    stage1 = F.max_pool2d(stem, 3, 1, 1) * stem
    expected = F.max_pool2d(stage1, 3, 2, 1) * F.max_pool2d(stage1, 1, 2, 0)
    assert torch.equal(stage1, stem) and not torch.equal(F.max_pool2d(stem, 3, 1, 1), stem)
    assert torch.equal(mask, expected) and 0 < mask.sum() < mask.numel()
    # the visible output cells are exactly those whose receptive field covers the pixel (row test of layer one)
    first = F.max_pool2d(keep[:, None], 7, 2, 3)[0, 0]
    rows = [i for i in range(16) if 2 * i - 3 <= 13 <= 2 * i + 3]
    assert first.sum(1).nonzero().flatten().tolist() == rows


def test_partial_convolution_and_no_fill_modes_differ_from_the_fill():
    model = tiny()
    pixels, keep = inputs()
    with torch.no_grad():
        results = [layer_masked_forward(model, pixels, keep, it) for it in (1000, 0, -1)]
    assert not torch.allclose(results[0], results[1]) and not torch.allclose(results[0], results[2])


def test_torchvision_resnet_and_plain_transformers_weights():
    torchvision = pytest.importorskip("torchvision")
    net = torchvision.models.resnet18(num_classes=3).eval()
    pixels, keep = inputs()
    with torch.no_grad():
        assert torch.equal(layer_masked_forward(net, pixels, torch.ones(2, 32, 32)), net(pixels))
        other = pixels + (1 - keep[:, None]) * 3
        assert torch.equal(layer_masked_forward(net, pixels, keep), layer_masked_forward(net, other, keep))
        plain = tiny()
        plain = ResNetForImageClassification(plain.config).eval()  # any transformers ResNet works as it is
        plain.load_state_dict(tiny().state_dict())
        assert torch.equal(layer_masked_forward(plain, pixels, keep), tiny()(pixels, pixel_mask=keep).logits)


def test_bad_masks_are_one_line_errors():
    model = tiny()
    pixels, keep = inputs()
    for mask, message in [
        (torch.ones(2, 16, 16), "pixel_mask has shape"),
        (keep * 0.5, "must be binary"),
        (torch.cat([keep[:1], torch.zeros(1, 32, 32)]), "hides every pixel"),
    ]:
        with pytest.raises(ValueError, match=message) as error:
            model(pixels, pixel_mask=mask)
        assert "\n" not in str(error.value)


def test_save_load_auto_class_and_meta_device(tmp_path):
    model = tiny()
    model.save_pretrained(tmp_path)
    loaded = AutoModelForImageClassification.from_pretrained(tmp_path).eval()
    assert type(loaded) is LayerMaskedResNetForImageClassification and loaded.config.fill_iterations == 1000
    pixels, keep = inputs()
    with torch.no_grad():
        assert torch.equal(loaded(pixels, pixel_mask=keep).logits, model(pixels, pixel_mask=keep).logits)
    # the saved self-contained bundle (in-process: locally registered classes would win over auto_map)
    auto_map = json.loads((tmp_path / "config.json").read_text())["auto_map"]
    assert "\nfrom hf_mim" not in (tmp_path / "modeling_layermask.py").read_text()  # only lazy, guarded imports
    remote_class = get_class_from_dynamic_module(auto_map["AutoModelForImageClassification"], str(tmp_path))
    assert not remote_class.__module__.startswith("hf_mim")
    remote = remote_class.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(remote(pixels, pixel_mask=keep).logits, model(pixels, pixel_mask=keep).logits)
    with torch.device("meta"):
        meta = LayerMaskedResNetForImageClassification(LayerMaskConfig(**TINY))
    assert meta.classifier[1].weight.is_meta


def test_random_block_mask_removes_the_asked_fraction_of_blocks():
    keep = random_block_mask(3, 32, 8, 0.25, torch.Generator().manual_seed(0))
    cells = keep[:, ::8, ::8]
    assert torch.equal(cells.flatten(1).sum(1), torch.full((3,), 12.0))
    assert torch.equal(keep, cells.repeat_interleave(8, 1).repeat_interleave(8, 2))


def test_trainer_fine_tunes_on_layer_masked_images(tmp_path):
    from transformers import Trainer, TrainingArguments

    model = tiny()
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(32, 3, 32, 32, generator=generator)
    labels = torch.arange(32) % 3
    pixels += labels.view(-1, 1, 1, 1) * torch.tensor([1.0, -1.0, 0.0]).view(1, 3, 1, 1)  # learnable colour cue
    keep = random_block_mask(32, 32, 8, 0.5, generator)
    rows = [{"pixel_values": p, "pixel_mask": k, "labels": y} for p, k, y in zip(pixels, keep, labels)]
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=16, num_train_epochs=8,
                             learning_rate=1e-2, logging_steps=1, report_to=[], save_strategy="no", seed=0,
                             use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=rows)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert sum(losses[-3:]) / 3 < 0.7 * sum(losses[:3]) / 3
