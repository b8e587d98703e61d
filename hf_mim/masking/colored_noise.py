"""Coloured-noise mask patterns (ColorMAE, Hinojosa et al., ECCV 2024).

A pattern is white Gaussian noise ``W`` passed through a fixed linear filter, then normalised to zero mean and unit
variance (paper, Sec. 3):

* ``red``    (low-pass):  ``G_s * W``                   -> large blobs
* ``blue``   (high-pass): ``W - G_s * W``               -> scattered, evenly spread patches
* ``green``  (band-pass): ``G_s1 * W - G_s2 * W``       -> mid-size clusters (``s1 < s2``; the paper's best)
* ``purple`` (band-stop): ``W - (G_s1 * W - G_s2 * W)`` -> low plus high frequencies
* ``white``  (no filter): ``W``                          -> plain random masking

The official repository (carlosh93/ColorMAE) ships the pattern banks as downloadable ``.npz`` files and has no
generator script, so the filters are built here from the paper's formulas. The Gaussian blur is applied in the
Fourier domain on the periodic pattern (transfer function ``exp(-2 pi^2 s^2 |f|^2)``, ``f`` in cycles per pixel),
which is exact and has no border effects; the sigma values (in pattern pixels = patches) are not published and
are configurable.

Sampling follows ``models/utils/masking_generator.py`` (``ColorMasking.extract_windows`` / ``color_noise_mask``):
the whole bank gets ONE random ``window x window`` crop and one horizontal and one vertical flip (p = 0.5), each
slice is divided by its maximum, the first ``B`` slices are used (the bank is re-cropped for each further full
pass when ``B`` exceeds its size), and the ``int(L * (1 - ratio))`` patches with the LARGEST values stay visible.
Random draws are made in torchvision's order (crop top, crop left, h-flip, v-flip), from ``generator`` or, when
it is None, from the global RNG exactly as ``torchvision.transforms`` would draw them.
"""

import torch
from torch import nn

from hf_mim.masking.core import MaskInfo, mask_from_noise

NOISE_COLORS = ("red", "blue", "green", "purple", "white")


def gaussian_transfer(height: int, width: int, sigma: float) -> torch.Tensor:
    """Frequency response ``[H, W]`` of a periodic Gaussian blur with standard deviation ``sigma`` pixels."""
    fy = torch.fft.fftfreq(height, dtype=torch.float64)
    fx = torch.fft.fftfreq(width, dtype=torch.float64)
    radius2 = fy[:, None] ** 2 + fx[None, :] ** 2
    return torch.exp(-2.0 * torch.pi**2 * sigma**2 * radius2)


def color_filter(color: str, height: int, width: int, sigma: float = 1.5, sigma_inner: float = 1.0, sigma_outer: float = 2.0) -> torch.Tensor:
    """The (real, non-negative) transfer function of ``color`` on an ``[H, W]`` grid; see the module docstring."""
    if color not in NOISE_COLORS:
        raise ValueError(f"unknown noise color {color!r}; choose one of {NOISE_COLORS}")
    if color == "white":
        return torch.ones(height, width, dtype=torch.float64)
    if color == "red":
        return gaussian_transfer(height, width, sigma)
    if color == "blue":
        return 1.0 - gaussian_transfer(height, width, sigma)
    if not 0 < sigma_inner < sigma_outer:
        raise ValueError(f"green/purple noise needs 0 < sigma_inner < sigma_outer, got {sigma_inner}, {sigma_outer}")
    band = gaussian_transfer(height, width, sigma_inner) - gaussian_transfer(height, width, sigma_outer)
    return band if color == "green" else 1.0 - band


def colored_noise(
    num_patterns: int,
    size: int | tuple[int, int],
    color: str = "green",
    generator: torch.Generator | None = None,
    sigma: float = 1.5,
    sigma_inner: float = 1.0,
    sigma_outer: float = 2.0,
) -> torch.Tensor:
    """``[num_patterns, H, W]`` float32 patterns of filtered white Gaussian noise, each with zero mean and unit
    variance. Drawn on the CPU, so a seeded ``generator`` gives the same bank on every machine."""
    height, width = (size, size) if isinstance(size, int) else size
    white = torch.randn(num_patterns, height, width, generator=generator, dtype=torch.float64)
    response = color_filter(color, height, width, sigma, sigma_inner, sigma_outer)
    filtered = torch.fft.ifft2(torch.fft.fft2(white) * response).real
    filtered = filtered - filtered.mean(dim=(-2, -1), keepdim=True)
    filtered = filtered / filtered.std(dim=(-2, -1), keepdim=True).clamp(min=1e-12)
    return filtered.float()


def radial_power(patterns: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean power spectrum of ``[N, H, W]`` patterns and the radial frequency (cycles/pixel) of every bin."""
    height, width = patterns.shape[-2:]
    centred = patterns - patterns.mean(dim=(-2, -1), keepdim=True)
    power = torch.fft.fft2(centred.double()).abs().pow(2).mean(dim=0)
    fy = torch.fft.fftfreq(height, dtype=torch.float64)
    fx = torch.fft.fftfreq(width, dtype=torch.float64)
    return power, (fy[:, None] ** 2 + fx[None, :] ** 2).sqrt()


def _randint(high: int, generator: torch.Generator | None) -> int:
    return int(torch.randint(0, high, size=(1,), generator=generator).item())


def _coin(generator: torch.Generator | None) -> bool:
    return bool(torch.rand(1, generator=generator) < 0.5)


def crop_and_flip(bank: torch.Tensor, window: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """One random ``window x window`` crop and random h/v flips applied JOINTLY to every slice of ``bank``
    ``[N, H, W]``, then each slice divided by its maximum (``RandomCrop`` + ``RandomHorizontalFlip`` +
    ``RandomVerticalFlip`` + ``NormalizeBySliceMax`` of the official code, random draws in the same order)."""
    height, width = bank.shape[-2:]
    if window > height or window > width:
        raise ValueError(
            f"the noise patterns are {height}x{width} but the patch grid needs {window}x{window} windows; "
            "use a larger color_noise_pattern_size"
        )
    top = _randint(height - window + 1, generator)
    left = _randint(width - window + 1, generator)
    out = bank[:, top : top + window, left : left + window]
    if _coin(generator):
        out = out.flip(-1)
    if _coin(generator):
        out = out.flip(-2)
    peak = out.amax(dim=(-2, -1), keepdim=True)
    return out / peak


def extract_windows(bank: torch.Tensor, batch_size: int, window: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``[B, window, window]`` windows: the first ``B`` slices of a jointly cropped and flipped bank, with a new
    crop/flip for every further full pass over the bank when ``B`` exceeds its size."""
    size = bank.shape[0]
    windows = [crop_and_flip(bank, window, generator) for _ in range(batch_size // size)]
    if batch_size % size:
        windows.append(crop_and_flip(bank, window, generator)[: batch_size % size])
    return torch.cat(windows, dim=0)


def mask_from_windows(windows: torch.Tensor, mask_ratio: float) -> MaskInfo:
    """Keep the ``int(L * (1 - ratio))`` largest-valued positions of each ``[B, h, w]`` window visible; the
    descending argsort of the official code is expressed as MAE's ascending one on ``-windows``."""
    return mask_from_noise(-windows.flatten(1), mask_ratio)


class ColorNoiseBank(nn.Module):
    """A fixed bank of coloured-noise patterns, held as a NON-persistent buffer (never saved, rebuilt from
    ``seed`` at construction and by ``_init_weights`` after loading). ``windows(B, w, generator)`` returns the
    per-batch windows; ``noise(...)`` returns them as MAE-style noise (``-window``, lowest noise = visible)."""

    def __init__(
        self,
        num_patterns: int,
        size: int,
        color: str = "green",
        seed: int = 0,
        sigma: float = 1.5,
        sigma_inner: float = 1.0,
        sigma_outer: float = 2.0,
    ):
        super().__init__()
        self.num_patterns, self.size, self.color, self.seed = num_patterns, size, color, seed
        self.sigmas = (sigma, sigma_inner, sigma_outer)
        self.register_buffer("patterns", self.build(), persistent=False)

    def build(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed)
        return colored_noise(self.num_patterns, self.size, self.color, generator, *self.sigmas)

    def windows(self, batch_size: int, window: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return extract_windows(self.patterns, batch_size, window, generator)

    def noise(self, batch_size: int, window: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return -self.windows(batch_size, window, generator).flatten(1)

    def extra_repr(self) -> str:
        return f"color={self.color!r}, num_patterns={self.num_patterns}, size={self.size}, seed={self.seed}"
