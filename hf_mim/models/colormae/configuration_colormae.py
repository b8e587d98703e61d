"""ColorMAE configuration (Hinojosa et al., ECCV 2024, "ColorMAE: Exploring data-independent masking strategies
in Masked AutoEncoders")."""

from hf_mim.masking.colored_noise import NOISE_COLORS
from hf_mim.models.mae.configuration_mae import MAEConfig


class ColorMAEConfig(MAEConfig):
    r"""
    MAE (see [`MAEConfig`]: ViT-B/16 encoder, 8x512 decoder, 75% masking, norm-pix loss) whose random mask is
    replaced by a mask cut from a bank of coloured-noise patterns. Defaults follow the official
    ``configs/colormae_vit-base-p16_8xb512-amp-coslr-*e_in1k.py`` (green noise, ratio 0.75, bank of 3072 patterns).

    Args:
        noise_color (`str`, defaults to `"green"`): filter of the pattern bank, one of red (low-pass), blue
            (high-pass), green (band-pass, the paper's best), purple (band-stop), white (no filter = random masking).
        color_noise_num_patterns (`int`, defaults to 3072): slices in the bank (the official file is
            ``green_noise_data_3072.npz``). Only the first ``batch`` slices are used per step, as officially.
        color_noise_pattern_size (`int`, *optional*): side of each pattern; defaults to four times the patch
            grid (56 at 224 px / 16). Where the numbers come from: the official ``ColorMasking`` crops a window of
            the grid side (``RandomCrop(14)``) from every pattern and flips it (``models/utils/masking_generator.py``),
            so a pattern of side ``S`` gives each batch slot ``4 (S - 14 + 1)^2`` distinct masks; the size of the
            official OSF patterns is not published (neither in the paper nor the code). hf_mim's choice: 4x the grid
            gives 7,396 distinct masks per slot (2x gave 900, few enough to repeat within an epoch) for a 39 MB bank.
            Must be at least the patch grid side.
        color_noise_seed (`int`, defaults to 0): seed of the bank (it is generated, never downloaded or saved).
        color_noise_sigma (`float`, defaults to 1.5): Gaussian std (in patches) of the red / blue filters.
        color_noise_sigma_inner, color_noise_sigma_outer (`float`, defaults to 1.0 / 2.0): the two stds of the
            green / purple difference of Gaussians. The paper gives the filter forms (``G_s * W``, ``W - G_s * W``,
            ``G_s1 * W - G_s2 * W``) but no values and the official repository ships only the generated ``.npz``
            banks (no generator script), so all three sigmas are hf_mim's choice: blobs of a few patches at the
            14x14 grid (a DoG with stds 1 and 2 patches peaks at a period of about 7 patches, two clusters per side).
    """

    model_type = "colormae"

    noise_color: str = "green"
    color_noise_num_patterns: int = 3072
    color_noise_pattern_size: int | None = None
    color_noise_seed: int = 0
    color_noise_sigma: float = 1.5
    color_noise_sigma_inner: float = 1.0
    color_noise_sigma_outer: float = 2.0

    def __post_init__(self, **kwargs):
        if self.noise_color not in NOISE_COLORS:
            raise ValueError(f"noise_color must be one of {NOISE_COLORS}, got {self.noise_color!r}")
        if self.color_noise_num_patterns < 1:
            raise ValueError(f"color_noise_num_patterns must be >= 1, got {self.color_noise_num_patterns}")
        if self.color_noise_sigma <= 0:
            raise ValueError(f"color_noise_sigma must be > 0, got {self.color_noise_sigma}")
        if not 0 < self.color_noise_sigma_inner < self.color_noise_sigma_outer:
            raise ValueError(
                "green/purple noise needs 0 < color_noise_sigma_inner < color_noise_sigma_outer, got "
                f"{self.color_noise_sigma_inner} and {self.color_noise_sigma_outer}"
            )
        super().__post_init__(**kwargs)
        grid = max(self.grid_size)
        if self.color_noise_pattern_size is not None and self.color_noise_pattern_size < grid:
            raise ValueError(
                f"color_noise_pattern_size {self.color_noise_pattern_size} is smaller than the patch grid ({grid}); "
                "windows are cropped from the patterns, so use at least the grid side (or leave it None)"
            )

    @property
    def noise_pattern_size(self) -> int:
        """The pattern side actually used: ``color_noise_pattern_size`` or four times the patch grid side."""
        if self.color_noise_pattern_size is not None:
            return self.color_noise_pattern_size
        grid = max(self.grid_size)
        return 4 * grid
