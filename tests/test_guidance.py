"""Video-MAE guidance (WildVidFit): the energy and its gradient, the diffusion hook, and that guidance removes
injected flicker when (and only when) the frozen MAE has learned a temporal prior."""

import pytest
import torch

import hf_mim
from hf_mim.guidance import VideoMAEGuidance, brightness_flicker, resize_and_center_crop, temporal_difference
from hf_mim.masking.generators import RandomMaskGenerator

MEAN, STD = [0.45] * 3, [0.225] * 3
SMALL = dict(image_size=16, patch_size=4, num_frames=8, decoder_mask_ratio=0.0, norm_pix_loss=False, mask_ratio=0.7)


def squares(count: int, generator: torch.Generator, frames: int = 8, size: int = 16, side: int = 6) -> torch.Tensor:
    """Clips ``[count, T, 3, size, size]`` of one coloured square drifting over black, constant brightness."""
    clips = torch.zeros(count, frames, 3, size, size)
    start = torch.rand(count, 2, generator=generator) * (size - side)
    velocity = (torch.rand(count, 2, generator=generator) - 0.5) * 1.5
    colour = 0.3 + 0.7 * torch.rand(count, 3, generator=generator)
    for t in range(frames):
        corner = (start + velocity * t).clamp(0, size - side).round().long()
        for i in range(count):
            row, col = corner[i].tolist()
            clips[i, t, :, row : row + side, col : col + side] = colour[i].reshape(3, 1, 1)
    return clips


def flicker(clips: torch.Tensor, generator: torch.Generator, amount: float = 0.4) -> torch.Tensor:
    gains = 1 + amount * (2 * torch.rand(clips.shape[0], clips.shape[1], 1, 1, 1, generator=generator) - 1)
    return (clips * gains).clamp(0, 1)


def small_mae(**overrides):
    spec = hf_mim.get_method("videomae2")
    torch.manual_seed(0)
    return spec.pretraining_class(spec.make_config("tiny", **{**SMALL, **overrides}))


@pytest.fixture(scope="module")
def trained_mae():
    """The tiny MAE trained for ~10 s on drifting squares with random 70% masks: enough for a temporal prior."""
    torch.set_num_threads(1)
    model = small_mae()
    masks, generator = RandomMaskGenerator(model.config.num_patches, 0.7), torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    for _ in range(100):
        pixel_values = (squares(32, generator) - MEAN[0]) / STD[0]
        loss = model(pixel_values, bool_masked_pos=masks(32, generator)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def guided(guidance, frames, steps=10, eta=0.01):
    """Normalised steps (per-clip RMS change ``eta``) along ``-dE/dframes``, or random directions without guidance."""
    noise = torch.Generator().manual_seed(0)
    for _ in range(steps):
        direction = guidance.gradient(frames)[1] if guidance is not None else torch.randn(frames.shape, generator=noise)
        frames = (frames + eta * direction / direction.flatten(1).square().mean(1).sqrt().reshape(-1, 1, 1, 1, 1)).clamp(0, 1)
    return frames


def test_guidance_lowers_injected_flicker_only_with_a_trained_mae(trained_mae):
    clean = squares(8, torch.Generator().manual_seed(99))
    flickered = flicker(clean, torch.Generator().manual_seed(1))
    guidance = VideoMAEGuidance(trained_mae, mean=MEAN, std=STD, scale=1.0, num_masks=4, seed=0)
    before = brightness_flicker(flickered).mean()
    assert brightness_flicker(clean).max() < 1e-6 < before  # the measure sees flicker, not the squares' motion
    result = guided(guidance, flickered)
    after = brightness_flicker(result).mean()
    same_masks = [VideoMAEGuidance(trained_mae, mean=MEAN, std=STD, scale=1.0, num_masks=16, seed=5) for _ in range(2)]
    assert same_masks[0].energy(result) < same_masks[1].energy(flickered)
    untrained = VideoMAEGuidance(small_mae(), mean=MEAN, std=STD, scale=1.0, num_masks=4, seed=0)
    control = brightness_flicker(guided(untrained, flickered)).mean()
    random_steps = brightness_flicker(guided(None, flickered)).mean()
    assert after < 0.8 * before, (before, after)
    assert control > 0.9 * before and random_steps > 0.9 * before, (before, control, random_steps)


def test_gradient_is_minus_the_energy_gradient_through_decode_and_masks_are_seeded():
    model = small_mae()
    guidance = VideoMAEGuidance(model, mean=MEAN, std=STD, seed=3)
    latents = torch.randn(2, 8, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    decode = lambda z: torch.sigmoid(resize_and_center_crop(z, (16, 16)))  # noqa: E731
    energy, grads = guidance.gradient(latents, decode)
    replay = VideoMAEGuidance(model, mean=MEAN, std=STD, seed=3)
    z = latents.clone().requires_grad_(True)
    expected_energy = replay.energy(decode(z))
    torch.testing.assert_close(energy, expected_energy.detach())
    torch.testing.assert_close(grads, -torch.autograd.grad(expected_energy, z)[0])
    assert all(p.grad is None and not p.requires_grad for p in model.parameters())  # the MAE stays frozen
    frames = decode(latents)
    assert guidance.energy(frames) != guidance.energy(frames)  # a fresh mask per call
    # energy = scale x the model's loss at the drawn mask; mean/std normalisation is applied first
    mask = RandomMaskGenerator(model.config.num_patches, 0.7)(2, torch.Generator().manual_seed(3))
    loss = model(pixel_values=(frames - 0.45) / 0.225, bool_masked_pos=mask).loss
    torch.testing.assert_close(VideoMAEGuidance(model, mean=MEAN, std=STD, seed=3, scale=5000.0).energy(frames), 5000 * loss)


def test_a_dual_masked_decoder_reconstructs_every_masked_cube():
    model = small_mae(decoder_mask_ratio=0.5)
    frames = squares(2, torch.Generator().manual_seed(0))
    energy = VideoMAEGuidance(model, mean=MEAN, std=STD, seed=1, scale=1.0).energy(frames)
    mask = RandomMaskGenerator(model.config.num_patches, 0.7)(2, torch.Generator().manual_seed(1))
    output = model(pixel_values=(frames - 0.45) / 0.225, bool_masked_pos=mask, decoder_mask=~mask)
    assert int(output.loss_mask.sum()) == int(mask.sum())
    torch.testing.assert_close(energy, output.loss)


def test_guide_noise_prediction_follows_the_official_cond_fn():
    model = small_mae()
    alphas = torch.linspace(0.999, 0.01, 1000)
    latents = torch.randn(1, 8, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    noise_pred = torch.randn(latents.shape, generator=torch.Generator().manual_seed(1))
    guidance = VideoMAEGuidance(model, mean=MEAN, std=STD, seed=0)
    assert guidance.guide_noise_prediction(noise_pred, latents, 950, alphas, torch.sigmoid) is noise_pred  # t >= 900
    guided_pred = guidance.guide_noise_prediction(noise_pred, latents, 500, alphas, torch.sigmoid)
    a = alphas[500]
    x = latents.clone().requires_grad_(True)
    x0 = (x - (1 - a).sqrt() * noise_pred) / a.sqrt()
    energy = VideoMAEGuidance(model, mean=MEAN, std=STD, seed=0).energy(torch.sigmoid(x0 * (1 - a).sqrt() + x * (1 - (1 - a).sqrt())))
    expected = noise_pred + (1 - a).sqrt() * torch.autograd.grad(energy, x)[0]
    torch.testing.assert_close(guided_pred, expected)


def test_measures_and_bad_input():
    clip = squares(1, torch.Generator().manual_seed(0))
    assert brightness_flicker(clip * 0.5).item() == pytest.approx(0.0, abs=1e-7)
    assert temporal_difference(clip).item() > 0  # the square moves
    guidance = VideoMAEGuidance(small_mae(), seed=0)
    with pytest.raises(ValueError, match=r"frames must be \[batch, 8, 3"):
        guidance.energy(clip[:, :4])
    with pytest.raises(ValueError, match="mask_ratio must be in"):
        VideoMAEGuidance(small_mae(), mask_ratio=1.0)
    image_spec = hf_mim.get_method("mae")
    with pytest.raises(ValueError, match="not a video model"):
        VideoMAEGuidance(image_spec.pretraining_class(image_spec.make_config("tiny")))
    assert resize_and_center_crop(torch.rand(1, 2, 3, 20, 30), (16, 16)).shape == (1, 2, 3, 16, 16)


def test_the_module_docstring_example_runs_as_written():
    import textwrap

    import hf_mim.guidance

    example = textwrap.dedent(hf_mim.guidance.__doc__.split("::\n")[1].split("\nWith diffusers")[0])
    namespace = {}
    exec(example, namespace)  # noqa: S102 - our own documentation
    assert namespace["latents"].shape == (1, 4, 3, 32, 32) and torch.isfinite(namespace["latents"]).all()
