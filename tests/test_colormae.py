import pytest
import torch

import hf_mim
from hf_mim.masking.colored_noise import (
    ColorNoiseBank,
    colored_noise,
    crop_and_flip,
    extract_windows,
    mask_from_windows,
    radial_power,
)
from hf_mim.models.mae.modeling_mae import masked_mse
from tests.conftest import real_images, tiny_config


def band_fractions(color: str) -> tuple[float, float, float]:
    """Fraction of the spectral power below 0.1, between 0.1 and 0.3, above 0.35 cycles/pixel."""
    patterns = colored_noise(64, 32, color, torch.Generator().manual_seed(0))
    power, radius = radial_power(patterns)
    total = power.sum()
    low = power[radius < 0.1].sum() / total
    mid = power[(radius >= 0.1) & (radius < 0.3)].sum() / total
    high = power[radius > 0.35].sum() / total
    return low.item(), mid.item(), high.item()


def test_spectra_of_each_color():
    white, red, blue, green, purple = (band_fractions(c) for c in ("white", "red", "blue", "green", "purple"))
    # red = low-pass: far more low-frequency power than white, almost no high-frequency power
    assert red[0] > 3 * white[0] and red[2] < 0.1 * white[2]
    # blue = high-pass: less low-frequency, more high-frequency power than white
    assert blue[0] < 0.5 * white[0] and blue[2] > 1.1 * white[2]
    # green = band-pass: its mid band dominates, more than in white, and more than its high band
    assert green[1] > 1.3 * white[1] and green[1] > green[0] and green[1] > 3 * green[2]
    # purple = band-stop: less mid-band power than white
    assert purple[1] < 0.8 * white[1]


def test_patterns_are_standardised_and_seeded():
    a = colored_noise(8, 16, "green", torch.Generator().manual_seed(3))
    b = colored_noise(8, 16, "green", torch.Generator().manual_seed(3))
    c = colored_noise(8, 16, "green", torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert torch.allclose(a.mean(dim=(1, 2)), torch.zeros(8), atol=1e-5)
    assert torch.allclose(a.std(dim=(1, 2)), torch.ones(8), atol=1e-5)


def test_mask_keeps_exactly_the_largest_values():
    windows = torch.randn(5, 14, 14, generator=torch.Generator().manual_seed(0))
    info = mask_from_windows(windows, 0.75)
    assert info.ids_keep.shape == (5, 49)
    assert (~info.mask).sum(dim=1).tolist() == [49] * 5
    top = windows.flatten(1).topk(49, dim=1).indices
    expected = torch.ones(5, 196, dtype=torch.bool).scatter_(1, top, False)
    assert torch.equal(info.mask, expected)
    # ids_keep is the descending order of the official argsort, ids_restore inverts [keep, masked]
    assert torch.equal(info.ids_keep, windows.flatten(1).argsort(dim=1, descending=True)[:, :49])
    assert torch.equal(info.ids_restore.argsort(dim=1)[:, :49], info.ids_keep)


def test_crop_is_shared_by_the_whole_bank_and_slices_are_max_normalised():
    base = torch.randn(9, 9, generator=torch.Generator().manual_seed(0)).exp()  # positive, all values distinct
    bank = torch.stack([base * (k + 1) for k in range(6)])  # slices equal up to a positive scale
    seen = set()
    for seed in range(12):
        out = crop_and_flip(bank, 4, torch.Generator().manual_seed(seed))
        assert out.shape == (6, 4, 4)
        assert torch.allclose(out.amax(dim=(1, 2)), torch.ones(6))
        # same offset and flips for every slice: after slice-max normalisation all slices coincide
        assert torch.allclose(out, out[:1].expand_as(out))
        seen.add(tuple(out[0].flatten().tolist()))
    assert len(seen) > 4  # but the crop / flips change from draw to draw


def test_windows_match_the_official_torchvision_chain():
    """Same global RNG state, same bank: our windows equal RandomCrop + both flips + slice-max normalisation."""
    transforms = pytest.importorskip("torchvision.transforms")
    bank = colored_noise(10, 20, "green", torch.Generator().manual_seed(0))
    chain = transforms.Compose(
        [transforms.RandomCrop(14), transforms.RandomHorizontalFlip(p=0.5), transforms.RandomVerticalFlip(p=0.5)]
    )
    for seed in range(4):
        torch.manual_seed(seed)
        full = chain(bank)
        part = chain(bank)[:3]
        official = torch.cat([full, part]) / torch.cat([full, part]).amax(dim=(1, 2), keepdim=True)
        torch.manual_seed(seed)
        ours = extract_windows(bank, 13, 14)  # one full pass over the 10 slices + the first 3 of a new crop
        assert torch.equal(ours, official)


def test_first_batch_slices_are_used():
    bank = colored_noise(16, 10, "red", torch.Generator().manual_seed(0))
    few = extract_windows(bank, 5, 6, torch.Generator().manual_seed(2))
    all_ = crop_and_flip(bank, 6, torch.Generator().manual_seed(2))
    assert torch.equal(few, all_[:5])


def adjacency(colors) -> tuple[float, ...]:
    """Mean number of horizontally/vertically adjacent visible pairs per mask."""
    counts = []
    for color in colors:
        bank = ColorNoiseBank(64, 28, color=color, seed=0)
        visible = ~mask_from_windows(bank.windows(64, 14, torch.Generator().manual_seed(0)), 0.75).mask
        grid = visible.reshape(64, 14, 14)
        pairs = (grid[:, 1:] & grid[:, :-1]).sum() + (grid[:, :, 1:] & grid[:, :, :-1]).sum()
        counts.append(pairs.item() / 64)
    return tuple(counts)


def test_red_masks_are_blobs_and_blue_masks_are_scattered():
    white, red, blue = adjacency(("white", "red", "blue"))
    # random 49-of-196 masks have about 2 * 14 * 13 * (49/196)^2 ~= 22.75 adjacent visible pairs
    assert 18 < white < 28
    assert red > 2 * white and blue < 0.9 * white


def test_forward_draws_the_color_mask_from_mask_rng():
    config = tiny_config("colormae", image_size=64)
    torch.manual_seed(0)
    model = hf_mim.get_method("colormae").pretraining_class(config).eval()
    images = real_images(4, 64)
    model.mask_rng = torch.Generator().manual_seed(7)
    first = model(images)
    model.mask_rng = torch.Generator().manual_seed(7)
    again = model(images)
    model.mask_rng = torch.Generator().manual_seed(8)
    other = model(images)
    assert torch.equal(first.mask, again.mask) and torch.equal(first.loss, again.loss)
    assert not torch.equal(first.mask, other.mask)
    windows = model.color_noise.windows(4, 8, torch.Generator().manual_seed(7))
    expected = mask_from_windows(windows, config.mask_ratio)
    assert torch.equal(first.mask, expected.mask)
    assert first.mask.sum(dim=1).tolist() == [48] * 4  # 64 patches, int(64 * 0.25) = 16 visible
    # the loss is MAE's: norm-pix MSE averaged over the masked patches
    assert torch.allclose(first.loss, masked_mse(first.logits, model.target(images), first.mask))


def test_default_patterns_give_each_batch_slot_many_distinct_masks():
    # official ColorMasking crops grid-side windows and flips them: a pattern of side S gives 4 (S - g + 1)^2 masks
    # per batch slot; the default 4x-grid patterns give 4 * 13^2 = 676 at the tiny 4x4 grid (2x gave 100)
    config = tiny_config("colormae", color_noise_num_patterns=1)
    assert config.noise_pattern_size == 4 * config.grid_size[0]
    model = hf_mim.ColorMAEForPreTraining(config)
    generator = torch.Generator().manual_seed(0)
    draws = torch.cat([model.color_noise_input(1, config.grid_size, generator) for _ in range(1500)])
    assert len(torch.unique(draws, dim=0)) > 400


def test_bank_is_not_saved_and_is_rebuilt_on_load(tmp_path):
    spec = hf_mim.get_method("colormae")
    model = spec.pretraining_class(tiny_config("colormae", noise_color="blue", color_noise_seed=5))
    assert not any("color_noise" in key for key in model.state_dict())
    model.save_pretrained(tmp_path)
    loaded = spec.pretraining_class.from_pretrained(tmp_path)
    assert loaded.config.noise_color == "blue"
    assert torch.equal(loaded.color_noise.patterns, model.color_noise.patterns)
    fresh = ColorNoiseBank(256, 16, color="blue", seed=5)  # default pattern side: 4x the 4x4 grid
    assert torch.equal(loaded.color_noise.patterns, fresh.patterns)


def test_config_errors():
    with pytest.raises(ValueError, match="noise_color"):
        tiny_config("colormae", noise_color="pink")
    with pytest.raises(ValueError, match="color_noise_pattern_size"):
        tiny_config("colormae", color_noise_pattern_size=2)
    with pytest.raises(ValueError, match="sigma_inner"):
        tiny_config("colormae", color_noise_sigma_inner=3.0, color_noise_sigma_outer=2.0)
    with pytest.raises(ValueError, match="larger color_noise_pattern_size"):
        crop_and_flip(torch.zeros(2, 4, 4), 6)
