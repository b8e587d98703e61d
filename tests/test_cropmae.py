"""CropMAE mechanism tests: local crop inside the global crop, 2 visible patches at 98.5%, the global view reaching
the prediction only through cross-attention, the official post-norm decoder order and the loss by hand."""

import math

import pytest
import torch
from PIL import Image
from torch import nn
from torchvision.transforms import v2

import hf_mim
from hf_mim.data import MIMCollator, load_image_dataset, prepare_dataset
from hf_mim.layers.patch_embed import patchify
from hf_mim.masking.core import mask_from_noise
from hf_mim.models.cropmae.transforms_cropmae import CropMAETransform, sample_crop_box
from tests.conftest import real_images, tiny_config

SPEC = hf_mim.get_method("cropmae")


def small_224(**overrides):
    """The official geometry (224 px, patch 16 -> 196 patches, ratio 0.985) on a tiny network."""
    sizes = dict(
        hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64, decoder_hidden_size=32,
        decoder_num_hidden_layers=2, decoder_num_attention_heads=4, decoder_intermediate_size=48,
    )
    return SPEC.make_config("base", **{**sizes, **overrides})


def coordinate_image(height=180, width=240):
    """R = column, G = row (scaled to 0-255): every pixel value says where it came from."""
    cols = torch.linspace(0, 255, width).round().to(torch.uint8).expand(height, width)
    rows = torch.linspace(0, 255, height).round().to(torch.uint8)[:, None].expand(height, width)
    array = torch.stack([cols, rows, torch.zeros_like(cols)], dim=-1).numpy()
    return Image.fromarray(array, mode="RGB")


def plain_processor(size=64):
    config = SPEC.make_config("tiny", image_size=size)
    return SPEC.make_processor(config, image_mean=[0.0, 0.0, 0.0], image_std=[1.0, 1.0, 1.0])


def test_official_configuration():
    config = SPEC.make_config("base")
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (384, 12, 6)  # ViT-S
    assert (config.decoder_hidden_size, config.decoder_num_hidden_layers, config.decoder_num_attention_heads) == (256, 4, 8)
    assert config.decoder_intermediate_size == 2048 and config.decoder_dropout == 0.1
    assert config.mask_ratio == 0.985 and config.norm_pix_loss and config.patch_size == 16


@pytest.mark.parametrize("height, width, scale", [(224, 224, (0.3, 0.6)), (224, 224, (0.1, 1.0)), (60, 300, (0.5, 1.0)), (300, 40, (0.2, 1.0))])
def test_crop_box_draws_are_torchvisions_random_resized_crop(height, width, scale):
    """The official pipeline's crops come from ``v2.RandomResizedCrop.make_params``: ten tries, then the centre
    crop (wide / tall images with large areas miss often); same draws in the same order."""
    crop = v2.RandomResizedCrop(32, scale=scale, ratio=(3 / 4, 4 / 3))
    image = torch.zeros(3, height, width, dtype=torch.uint8)
    for seed in range(200):
        torch.manual_seed(seed)
        expected = crop.make_params([image])
        box = sample_crop_box(height, width, scale, (3 / 4, 4 / 3), torch.Generator().manual_seed(seed))
        assert box == (expected["top"], expected["left"], expected["height"], expected["width"]), seed


@pytest.mark.parametrize("seed", range(12))
def test_local_crop_lies_inside_the_global_crop(seed):
    transform = CropMAETransform(plain_processor(64), train=True, scale=(0.1, 1.0))
    image = coordinate_image()
    global_view, local_view, global_box, local_box = transform.views(image, torch.Generator().manual_seed(seed))
    # boxes: the global one inside the image, the local one inside the (resized) global view, areas in range
    g_top, g_left, g_h, g_w = global_box
    assert 0 <= g_top and g_top + g_h <= 180 and 0 <= g_left and g_left + g_w <= 240
    l_top, l_left, l_h, l_w = local_box
    assert 0 <= l_top and l_top + l_h <= 64 and 0 <= l_left and l_left + l_w <= 64
    assert 0.3 - 0.05 <= l_h * l_w / 64**2 <= 0.6 + 0.05
    # pixels: every local pixel comes from inside the global view (columns in R, rows in G; flips keep ranges)
    tol = 3 / 255  # bilinear / antialias spill at the borders
    for channel in (0, 1):
        g, loc = global_view[channel], local_view[channel]
        assert loc.min() >= g.min() - tol and loc.max() <= g.max() + tol
    # the local view is a zoom-in: it covers a strictly smaller span of the image than the global view
    assert (local_view[0].max() - local_view[0].min()) < (global_view[0].max() - global_view[0].min())


def test_views_flip_independently_and_evaluation_is_deterministic():
    transform = CropMAETransform(plain_processor(64), train=True, scale=(0.5, 1.0))
    image = coordinate_image()
    flips = set()
    for seed in range(40):
        global_view, local_view, _, _ = transform.views(image, torch.Generator().manual_seed(seed))
        # columns increase left to right unless the view was flipped
        flips.add((bool(global_view[0, :, 0].mean() > global_view[0, :, -1].mean()),
                   bool(local_view[0, :, 0].mean() > local_view[0, :, -1].mean())))
    assert flips == {(False, False), (False, True), (True, False), (True, True)}
    evaluation = CropMAETransform(plain_processor(64), train=False)
    first, second = evaluation(image), evaluation(image)
    assert set(first) == {"pixel_values", "pixel_values_global"}
    assert torch.equal(first["pixel_values"], second["pixel_values"])
    # evaluation: global = the whole image, local = its centre
    assert first["pixel_values_global"][0].min() < 0.02 and first["pixel_values_global"][0].max() > 0.98
    assert first["pixel_values"][0].min() > 0.1 and first["pixel_values"][0].max() < 0.9


def test_exactly_two_visible_patches_at_the_official_ratio():
    config = small_224()
    assert int(196 * (1 - config.mask_ratio)) == 2
    model = SPEC.pretraining_class(config).eval()
    images = torch.randn(3, 3, 224, 224)
    contexts = []
    model.decoder.blocks[0].multihead_attn.register_forward_hook(lambda m, args, out: contexts.append(args[1].shape))
    out = model(images, pixel_values_global=torch.randn(3, 3, 224, 224), output_hidden_states=True)
    assert out.mask.shape == (3, 196) and ((~out.mask).sum(dim=1) == 2).all()
    assert out.hidden_states[0].shape[1] == 1 + 2  # the encoder saw cls + 2 local patches
    assert contexts[0] == (3, 1 + 196, config.decoder_hidden_size)  # memory: every global token + cls, unmasked
    # fixed noise: the two lowest-noise patches are the visible ones (MAE semantics)
    noise = torch.rand(3, 196, generator=torch.Generator().manual_seed(0))
    out = model(images, pixel_values_global=images, noise=noise)
    expected = torch.ones(3, 196, dtype=torch.bool)
    expected.scatter_(1, noise.argsort(dim=1)[:, :2], False)
    assert torch.equal(out.mask, expected)


def test_small_presets_keep_the_official_visible_count():
    for size in ("tiny", "demo"):
        config = SPEC.make_config(size)
        assert mask_from_noise(torch.rand(1, config.num_patches), config.mask_ratio).num_visible == 2


def test_global_view_reaches_the_prediction_only_through_cross_attention():
    torch.manual_seed(0)
    model = SPEC.pretraining_class(tiny_config("cropmae")).eval()
    local = torch.randn(2, 3, 32, 32)
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(1))
    global_a, global_b = torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)
    out_a = model(local, pixel_values_global=global_a, noise=noise)
    out_b = model(local, pixel_values_global=global_b, noise=noise)
    assert torch.equal(out_a.mask, out_b.mask)
    assert (out_a.logits - out_b.logits).abs().amax(dim=-1).min() > 1e-4  # every patch depends on the global view
    # gradient path: d(loss)/d(global) is non-zero
    global_a.requires_grad_(True)
    model(local, pixel_values_global=global_a, noise=noise).loss.backward()
    assert global_a.grad.abs().sum() > 0
    # with the cross-attention branch cut, the global view has no effect at all
    for block in model.decoder.blocks:
        block.multihead_attn.register_forward_hook(lambda m, args, out: (torch.zeros_like(out[0]), out[1]))
    cut_a = model(local, pixel_values_global=global_a.detach(), noise=noise)
    cut_b = model(local, pixel_values_global=global_b, noise=noise)
    assert torch.equal(cut_a.logits, cut_b.logits)


def official_decoder_block(block, x, memory):
    """The official DecoderBlock (nn.MultiheadAttention, post-norm, cross -> FFN -> self) with our weights."""
    dim, heads = x.shape[-1], block.self_attn.num_heads
    cross = nn.MultiheadAttention(dim, heads, batch_first=True)
    cross.in_proj_weight.data = torch.cat([block.multihead_attn.q.weight, block.multihead_attn.k.weight, block.multihead_attn.v.weight])
    cross.in_proj_bias.data = torch.cat([block.multihead_attn.q.bias, block.multihead_attn.k.bias, block.multihead_attn.v.bias])
    cross.out_proj.weight.data, cross.out_proj.bias.data = block.multihead_attn.proj.weight, block.multihead_attn.proj.bias
    self_attn = nn.MultiheadAttention(dim, heads, batch_first=True)
    self_attn.in_proj_weight.data, self_attn.in_proj_bias.data = block.self_attn.qkv.weight, block.self_attn.qkv.bias
    self_attn.out_proj.weight.data, self_attn.out_proj.bias.data = block.self_attn.proj.weight, block.self_attn.proj.bias
    x = block.norm2(x + cross(x, memory, memory, need_weights=False)[0])
    x = block.norm3(x + block.linear2(nn.functional.gelu(block.linear1(x))))
    return block.norm1(x + self_attn(x, x, x, need_weights=False)[0])


def test_decoder_and_loss_equal_a_hand_computation():
    torch.manual_seed(0)
    config = tiny_config("cropmae", decoder_num_hidden_layers=2)
    model = SPEC.pretraining_class(config).eval()
    with torch.no_grad():  # non-trivial norms / mask token so their placement matters
        for name, param in model.decoder.named_parameters():
            if "norm" in name or name == "mask_token":
                param.add_(0.3 * torch.randn_like(param))
    images = real_images(4, 32, 3)
    inputs = SPEC.make_inputs(model, images, torch.Generator().manual_seed(5))
    local, global_view, noise = inputs["pixel_values"], inputs["pixel_values_global"], inputs["noise"]
    out = model(**inputs)

    with torch.no_grad():
        memory = model.decoder.embed(model.encoder(global_view).last_hidden_state)  # no decoder pos on memory
        encoded = model.encoder(local, noise=noise, mask_ratio=config.mask_ratio)
        latent = model.decoder.embed(encoded.last_hidden_state)
        keep = noise.argsort(dim=1)[:, :2]
        x = model.decoder.mask_token.expand(4, 16, -1).clone()
        for b in range(4):
            x[b, keep[b]] = latent[b, 1:]
        x = torch.cat([latent[:, :1], x], dim=1) + model.decoder.pos_embed
        for block in model.decoder.blocks:
            x = official_decoder_block(block, x, memory)
        prediction = model.decoder.pred(model.decoder.norm(x))[:, 1:]
        target = patchify(local, 8)
        mean, var = target.mean(-1, keepdim=True), target.var(-1, keepdim=True)  # unbiased, as torch.var
        target = (target - mean) / (var + 1e-6) ** 0.5
        masked = torch.ones(4, 16)
        masked.scatter_(1, keep, 0.0)
        loss = (((prediction - target) ** 2).mean(-1) * masked).sum() / masked.sum()

    torch.testing.assert_close(out.logits, prediction, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.loss, loss, rtol=1e-5, atol=1e-6)
    assert torch.equal(out.mask, masked.bool())


def test_decoder_dropout_only_in_training_and_global_view_required_for_training():
    torch.manual_seed(0)
    model = SPEC.pretraining_class(tiny_config("cropmae"))
    inputs = SPEC.make_inputs(model, torch.randn(2, 3, 32, 32))
    model.train()
    assert not torch.equal(model(**inputs).logits, model(**inputs).logits)
    with pytest.raises(ValueError, match="pixel_values_global"):
        model(inputs["pixel_values"], noise=inputs["noise"])
    model.eval()
    assert torch.equal(model(**inputs).logits, model(**inputs).logits)
    # eval without a global view = the official SameViews strategy
    same = model(inputs["pixel_values"], pixel_values_global=inputs["pixel_values"], noise=inputs["noise"])
    assert torch.equal(model(inputs["pixel_values"], noise=inputs["noise"]).logits, same.logits)


def test_cross_attention_init_matches_multihead_attention_in_proj():
    model = SPEC.pretraining_class(SPEC.make_config("base", num_hidden_layers=1))
    bound = math.sqrt(6 / (4 * 256))  # xavier over the stacked [3*256, 256] in_proj_weight
    q = model.decoder.blocks[0].multihead_attn.q.weight
    assert q.abs().max() <= bound and q.abs().max() > 0.95 * bound


def test_dataset_pipeline_gives_both_views_to_the_model():
    config = tiny_config("cropmae", num_channels=1)
    processor = SPEC.make_processor(config, image_mean=[0.286], image_std=[0.353])
    dataset = prepare_dataset(
        load_image_dataset(None, "train").select(range(6)), processor, transform=SPEC.make_transform(processor)
    )
    batch = MIMCollator()([dataset[i] for i in range(6)])
    assert batch["pixel_values"].shape == batch["pixel_values_global"].shape == (6, 1, 32, 32)
    model = SPEC.pretraining_class(config)
    assert torch.isfinite(model(**batch).loss)
