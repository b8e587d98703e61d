"""Video-MAE guidance (WildVidFit, ECCV 2024): the masked-reconstruction loss of a frozen video MAE as an energy for
diffusion sampling. A temporally coherent clip is easy for a video MAE to reconstruct from the cubes it sees (a
masked cube at time t is predictable from the same place at t +- 1); a flickering one is not, so stepping against
the energy's gradient makes the frames of a generated clip agree with each other.

Follows scnuhealthy/video_try_on ``video_models/video_pipeline_mae_guided.py`` (``VideoPipeline.cond_fn``): frames
in [0, 1] are normalised (mean 0.45 / std 0.225 there: MAE-ST's statistics; here the frozen model's processor
statistics when a processor is given), resized (short side) and centre-cropped to the model's size, a *fresh*
random space-time mask at ratio 0.7 is drawn on every call, energy = 5000 x the MAE loss, ``grads = -dE/d
latents``, and DDIM/PNDM-type noise predictions become ``noise_pred - sqrt(1 - alpha_bar_t) * grads`` with the
clip decoded from ``sqrt(1 - alpha_bar) * x0_hat + (1 - sqrt(1 - alpha_bar)) * x_t``, only for timesteps t < 900.
The official code re-runs its UNet with gradients (``unet_noise_pred`` here) and crops its try-on latents before
decoding (a task-specific step left to the user's ``decode``).

A fresh mask per call (as the official code draws one) makes the energy an unbiased estimate of the loss over
masks, so repeated steps cannot specialise to one mask; masks come from a seeded ``torch.Generator``, so a run is
reproducible. The frozen MAE must have a temporal prior, i.e. be pre-trained on videos like the ones guided, with
masks like the guidance's (benchmarks/guidance_flicker.py trains one on generated object clips).

Example: a plain DDIM-style loop (runs as written; ``denoise`` stands in for a UNet, ``decode`` for a VAE)::

    import torch
    import hf_mim
    from hf_mim.guidance import VideoMAEGuidance

    spec = hf_mim.get_method("videomae2")
    mae = spec.pretraining_class(spec.make_config("tiny", decoder_mask_ratio=0.0))  # use a pre-trained one
    guidance = VideoMAEGuidance(mae, spec.make_processor(mae.config), seed=0)
    alphas_cumprod = torch.linspace(0.9999, 0.005, 1000)
    denoise = lambda x, t: 0.1 * x  # the UNet's noise prediction
    decode = lambda z: torch.sigmoid(z)  # latents -> [B, T, C, H, W] frames in [0, 1]
    latents = torch.randn(1, 4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    for t in range(999, 0, -100):
        noise_pred = denoise(latents, t)
        noise_pred = guidance.guide_noise_prediction(noise_pred, latents, t, alphas_cumprod, decode)
        a_t, a_prev = alphas_cumprod[t], alphas_cumprod[max(t - 100, 0)]
        x0 = (latents - (1 - a_t).sqrt() * noise_pred) / a_t.sqrt()
        latents = a_prev.sqrt() * x0 + (1 - a_prev).sqrt() * noise_pred  # DDIM, eta = 0

With diffusers, call ``guide_noise_prediction(noise_pred, latents, t, scheduler.alphas_cumprod, decode)`` between
the UNet and ``scheduler.step`` of a ``DDIMScheduler`` / ``PNDMScheduler`` loop.
"""

import inspect

import torch
from torch import nn

from hf_mim.masking.generators import RandomMaskGenerator

MAE_ST_MEAN, MAE_ST_STD = (0.45, 0.45, 0.45), (0.225, 0.225, 0.225)


def brightness_flicker(frames: torch.Tensor) -> torch.Tensor:
    """Temporal difference of frame brightness, per clip ``[B]``: ``mean_t |m_{t+1} - m_t|`` with ``m_t`` the mean
    intensity of frame ``t`` of ``[B, T, C, H, W]`` frames. Zero for objects moving over a constant background
    within the frame (they carry their brightness along), so it measures flicker, not motion."""
    brightness = frames.float().mean(dim=(2, 3, 4))
    return (brightness[:, 1:] - brightness[:, :-1]).abs().mean(dim=1)


def temporal_difference(frames: torch.Tensor) -> torch.Tensor:
    """Mean absolute change between consecutive frames of ``[B, T, C, H, W]`` clips, per clip ``[B]`` (motion
    included: compare it with the clean clip's value)."""
    return (frames[:, 1:] - frames[:, :-1]).abs().float().mean(dim=(1, 2, 3, 4))


def resize_and_center_crop(frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``[B, T, C, H, W]`` -> ``[B, T, C, *size]``: short side resized (bilinear, antialiased) and centre crop, as
    MAE-ST's ``spatial_sampling(spatial_idx=1)``; differentiable."""
    batch, time, channels, height, width = frames.shape
    if (height, width) == tuple(size):
        return frames
    scale = max(size[0] / height, size[1] / width)
    resized = (max(size[0], round(height * scale)), max(size[1], round(width * scale)))
    flat = nn.functional.interpolate(frames.flatten(0, 1), size=resized, mode="bilinear", align_corners=False, antialias=True)
    top, left = (resized[0] - size[0]) // 2, (resized[1] - size[1]) // 2
    return flat[..., top : top + size[0], left : left + size[1]].reshape(batch, time, channels, *size)


class VideoMAEGuidance:
    """Energy and gradient of a frozen hf_mim video MAE (any video method whose pre-training ``forward
    (pixel_values, bool_masked_pos)`` returns a reconstruction ``loss``, e.g. ``Videomae2ForPreTraining``).

    Args:
        model: the frozen pre-training model (put in eval mode, gradients off for its weights).
        processor: its video processor (mean / std of the normalisation); else ``mean`` / ``std``, else MAE-ST's.
        mask_ratio: random space-time masking ratio per call (0.7 in WildVidFit).
        scale: energy multiplier (5000 in WildVidFit).
        num_masks: masks averaged per call (each clip gets its own masks; more masks, less noisy gradient).
        seed: seed of the mask generator (or pass ``generator``).
        max_timestep: ``guide_noise_prediction`` leaves timesteps at or above this unguided (900 in WildVidFit).
    """

    def __init__(self, model: nn.Module, processor=None, mask_ratio: float = 0.7, scale: float = 5000.0,
                 num_masks: int = 1, seed: int = 0, generator: torch.Generator | None = None, mean=None, std=None,
                 max_timestep: int = 900):
        config = model.config
        if not hasattr(config, "num_frames"):
            raise ValueError(f"{type(model).__name__} is not a video model (its config has no num_frames)")
        if not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
        if num_masks < 1:
            raise ValueError(f"num_masks must be at least 1, got {num_masks}")
        self.model = model.eval().requires_grad_(False)
        self.size, self.num_frames = tuple(config.image_hw), config.num_frames
        mean = mean if mean is not None else getattr(processor, "image_mean", MAE_ST_MEAN[: config.num_channels])
        std = std if std is not None else getattr(processor, "image_std", MAE_ST_STD[: config.num_channels])
        self.mean = torch.tensor(mean, dtype=torch.float32).reshape(1, 1, -1, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).reshape(1, 1, -1, 1, 1)
        self.scale, self.num_masks, self.max_timestep = scale, num_masks, max_timestep
        self.mask_generator = RandomMaskGenerator(config.num_patches, mask_ratio)
        self.generator = generator if generator is not None else torch.Generator().manual_seed(seed)
        # a dual-masked decoder (VideoMAE V2) is told to reconstruct every masked cube, as MAE-ST does
        self.decoder_mask_argument = "decoder_mask" in inspect.signature(model.forward).parameters

    def model_inputs(self, frames: torch.Tensor) -> torch.Tensor:
        """``[B, T, C, H, W]`` frames in [0, 1] -> normalised ``pixel_values`` at the model's size
        (differentiable)."""
        if frames.ndim != 5 or frames.shape[1] != self.num_frames or frames.shape[2] != self.mean.shape[2]:
            raise ValueError(
                f"frames must be [batch, {self.num_frames}, {self.mean.shape[2]}, height, width] in [0, 1] (the frozen "
                f"model's frames and channels), got {tuple(frames.shape)}"
            )
        frames = resize_and_center_crop(frames, self.size)
        return (frames - self.mean.to(frames)) / self.std.to(frames)

    def energy(self, frames: torch.Tensor) -> torch.Tensor:
        """``scale`` x the MAE loss, averaged over ``num_masks`` fresh random masks per clip: a scalar,
        differentiable in ``frames``."""
        pixel_values = self.model_inputs(frames).repeat(self.num_masks, 1, 1, 1, 1)
        mask = self.mask_generator(pixel_values.shape[0], self.generator).to(pixel_values.device)
        extra = {"decoder_mask": ~mask} if self.decoder_mask_argument else {}
        return self.scale * self.model(pixel_values=pixel_values, bool_masked_pos=mask, **extra).loss

    @torch.enable_grad()
    def gradient(self, inputs: torch.Tensor, decode=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(energy, -dE/d inputs)`` (the official sign: a direction that lowers the energy). ``inputs`` are
        frames in [0, 1], or latents when ``decode`` (latents -> ``[B, T, C, H, W]`` frames in [0, 1]) is given."""
        inputs = inputs.detach().requires_grad_(True)
        energy = self.energy(decode(inputs) if decode is not None else inputs)
        return energy.detach(), -torch.autograd.grad(energy, inputs)[0]

    def guide_noise_prediction(self, noise_pred, latents, timestep, alphas_cumprod, decode, unet_noise_pred=None):
        """WildVidFit's ``cond_fn`` for DDIM / PNDM-type samplers: ``noise_pred - sqrt(1 - alpha_bar_t) * grads``,
        the gradient taken through the clip decoded from ``sqrt(1-a) * x0_hat + (1 - sqrt(1-a)) * x_t`` with
        ``x0_hat = (x_t - sqrt(1-a) * eps) / sqrt(a)``. Unchanged for ``timestep >= max_timestep``.
        ``unet_noise_pred``: ``eps`` as a differentiable function of the latents (the official code re-runs the
        UNet with gradients); by default ``noise_pred`` is held fixed (cheaper; the gradient then flows through
        ``x_t`` only)."""
        if int(timestep) >= self.max_timestep:
            return noise_pred
        alpha = torch.as_tensor(alphas_cumprod[int(timestep)], dtype=latents.dtype, device=latents.device)
        fac = (1 - alpha).sqrt()

        def blended_frames(x):
            eps = unet_noise_pred(x) if unet_noise_pred is not None else noise_pred.detach()
            x0 = (x - fac * eps) / alpha.sqrt()
            return decode(x0 * fac + x * (1 - fac))

        _, grads = self.gradient(latents, blended_frames)
        return noise_pred - fac * grads
