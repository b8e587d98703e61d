import inspect
import math

import pytest
import torch

import hf_mim
from hf_mim.data import MIMCollator
from hf_mim.masking import (
    RandomMaskGenerator,
    SimMIMMaskGenerator,
    gather_tokens,
    mask_from_bool,
    mask_from_noise,
    restore_sequence,
)
from tests.conftest import pixels_for, tiny_config


def test_random_masking_has_exact_mae_counts():
    info = mask_from_noise(torch.rand(5, 196), 0.75)
    assert info.mask.dtype == torch.bool
    assert (info.mask.sum(1) == 147).all()  # int(196 * 0.25) = 49 visible
    assert info.ids_keep.shape == (5, 49)
    # keep = the lowest-noise patches, exactly
    noise = torch.rand(2, 10)
    info = mask_from_noise(noise, 0.7)
    assert info.num_visible == 3
    assert set(info.ids_keep[0].tolist()) == set(noise[0].argsort()[:3].tolist())
    assert not info.mask[0, info.ids_keep[0]].any()


def test_ids_restore_inverts_the_shuffle():
    tokens = torch.randn(3, 16, 4)
    info = mask_from_noise(torch.rand(3, 16), 0.5)
    visible = gather_tokens(tokens, info.ids_keep)
    full = restore_sequence(visible, torch.zeros(1, 1, 4), info.ids_restore)
    assert torch.equal(full[~info.mask], tokens[~info.mask])
    assert (full[info.mask] == 0).all()


def test_generators_are_seedable_and_random_across_seeds():
    gen = RandomMaskGenerator(64, 0.75)
    a = gen(4, generator=torch.Generator().manual_seed(1))
    b = gen(4, generator=torch.Generator().manual_seed(1))
    c = gen(4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a.sum(1) == 48).all()
    # over many draws every patch is masked about 75% of the time (uniform masking)
    many = gen(4000, generator=torch.Generator().manual_seed(0)).float().mean(0)
    assert (many - 0.75).abs().max() < 0.04


def test_simmim_masks_coarse_cells_with_ceil_rounding():
    gen = SimMIMMaskGenerator(224, 32, 16, 0.6)
    mask = gen(6, generator=torch.Generator().manual_seed(0))
    assert mask.shape == (6, 196)
    assert (mask.sum(1) == 30 * 4).all()  # ceil(49 * 0.6) = 30 cells of 2x2 patches
    grid = mask.reshape(6, 14, 14)
    # every 2x2 block of patches is all masked or all visible
    blocks = grid.reshape(6, 7, 2, 7, 2).permute(0, 1, 3, 2, 4).reshape(6, 49, 4)
    assert ((blocks.sum(-1) == 0) | (blocks.sum(-1) == 4)).all()
    assert math.ceil(49 * 0.6) == gen.num_masked_cells


def test_mask_from_bool_requires_equal_counts():
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, :3] = True
    mask[1, 4:7] = True
    info = mask_from_bool(mask)
    assert info.ids_keep.tolist() == [[3, 4, 5, 6, 7], [0, 1, 2, 3, 7]]
    assert torch.equal(info.mask, mask)
    mask[1, 0] = True
    with pytest.raises(ValueError, match="same number"):
        mask_from_bool(mask)


def test_collator_masks_equal_in_model_masks(images_rgb32):
    """The collator and the model draw masks with the same generator code: same seed, same mask."""
    config = tiny_config("mae")
    model = hf_mim.MAEForPreTraining(config).eval()
    collator = MIMCollator(RandomMaskGenerator(config.num_patches, config.mask_ratio), torch.Generator().manual_seed(7))
    batch = collator([{"pixel_values": image} for image in images_rgb32])
    model.mask_rng = torch.Generator().manual_seed(7)
    with torch.no_grad():
        in_model = model(images_rgb32)
        from_collator = model(**batch)
    assert torch.equal(in_model.mask, batch["bool_masked_pos"])
    assert torch.allclose(in_model.loss, from_collator.loss, atol=1e-6)


def test_simmim_collator_masks_equal_in_model_masks(images_rgb32):
    config = tiny_config("simmim")
    model = hf_mim.SimMIMForPreTraining(config).eval()
    generator = SimMIMMaskGenerator(config.image_size, config.mask_patch_size, config.patch_size, config.mask_ratio)
    batch = MIMCollator(generator, torch.Generator().manual_seed(3))([{"pixel_values": x} for x in images_rgb32])
    model.mask_rng = torch.Generator().manual_seed(3)
    with torch.no_grad():
        assert torch.equal(model(images_rgb32).mask, batch["bool_masked_pos"])


def accepts_mask(method) -> bool:
    return "bool_masked_pos" in inspect.signature(hf_mim.get_method(method).pretraining_class.forward).parameters


def unmasked_inputs(spec, model, images) -> tuple[dict, int]:
    """The method's forward inputs without any masking input, and the mask length."""
    inputs = spec.make_inputs(model, images)
    given = inputs.get("bool_masked_pos", inputs.get("noise"))
    length = given.shape[1] if given is not None else model.config.num_patches
    return {k: v for k, v in inputs.items() if k not in ("noise", "bool_masked_pos")}, length


@pytest.mark.parametrize("method", [m for m in sorted(hf_mim.METHODS) if accepts_mask(m)])
def test_masks_that_hide_nothing_or_everything_or_are_not_bool_are_refused(method, images_rgb32):
    """A mask hiding nothing made SimMIM, ColorMAE, MTO, MAE, SparK and MultiMAE train on a loss of 0; a float
    tensor was read as a mask through .bool()."""
    spec = hf_mim.get_method(method)
    model = spec.pretraining_class(tiny_config(method)).eval()
    inputs, length = unmasked_inputs(spec, model, pixels_for(spec, model.config, images_rgb32[:2]))
    for mask, problem in (
        (torch.zeros(2, length, dtype=torch.bool), "hides no patch"),
        (torch.ones(2, length, dtype=torch.bool), "hides every patch"),
        (torch.rand(2, length), "must be a bool tensor"),
    ):
        with pytest.raises(ValueError, match=problem), torch.no_grad():
            model(**inputs, bool_masked_pos=mask)


# MP3 with nothing masked is the paper's ablation (every patch is context): a valid run, not a silent zero loss
@pytest.mark.parametrize("method", [m for m in sorted(hf_mim.METHODS) if m != "mp3" and hasattr(tiny_config(m), "mask_ratio")])
def test_mask_ratio_zero_is_refused(method, images_rgb32):
    spec = hf_mim.get_method(method)
    try:
        model = spec.pretraining_class(tiny_config(method, mask_ratio=0.0)).eval()
    except ValueError as error:  # refused by the config: fine
        assert "mask_ratio" in str(error)
        return
    inputs, length = unmasked_inputs(spec, model, pixels_for(spec, model.config, images_rgb32[:2]))
    with pytest.raises(ValueError, match="mask"), torch.no_grad():
        model(**inputs)
    if "noise" in inspect.signature(model.forward).parameters:  # given noise does not bypass the ratio
        with pytest.raises(ValueError, match="mask"), torch.no_grad():
            model(**inputs, noise=torch.rand(2, length))


@pytest.mark.parametrize("method", ["jepa", "multimae", "mixedae", "hybriddistill"])
def test_fields_a_method_does_not_have_are_refused(method):
    """PretrainedConfig stores any keyword: mask_ratio was kept and silently ignored by these four methods."""
    with pytest.raises(ValueError, match=r"has no config field\(s\) \['mask_ratio'\]"):
        hf_mim.get_method(method).make_config("tiny", mask_ratio=0.9)
    assert "no ``mask_ratio``" in hf_mim.get_method(method).config_class.__doc__
    with pytest.raises(ValueError, match="did you mean 'patch_size'"):
        hf_mim.get_method(method).make_config("tiny", patch_sise=4)
