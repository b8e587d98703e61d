# Generated from hf_mim.models.colormae.modeling_colormae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""ColorMAE: MAE whose random mask is replaced by a data-independent mask cut from filtered ("coloured") noise.

Follows carlosh93/ColorMAE ``models/colormae.py`` (``ColorMAEViT.color_masking``: only the masking call of the MAE
encoder changes; position embeddings are added before masking, as in MAE) and
``models/utils/masking_generator.py`` (``ColorMasking``): one random crop + h/v flip of the whole pattern bank per
batch, each slice divided by its maximum, the first ``B`` slices used, and the ``int(L * (1 - ratio))`` patches
with the LARGEST pattern values kept visible. Everything else (encoder, decoder, norm-pix MSE on masked patches)
is hf_mim's MAE, reused by subclassing.

Deviations / unverified points:
* The official pattern banks are downloaded ``.npz`` files with no generator script. Here the bank is generated
  from the paper's filter formulas (``hf_mim.masking.colored_noise``) with a fixed seed, at construction, and is
  never saved (a non-persistent buffer rebuilt from the config). The sigmas and pattern size of the official
  files are not published, so the masks match the official ones in distribution family, not bit for bit; with
  the official bank loaded into ``model.color_noise.patterns`` and the same RNG state, the sampling is the same.
* The official ``epoch_manager_hook`` that switches colours during training is not implemented (one colour).
* The mask's random crop / flips come from ``self.mask_rng`` (reseeded by the trainer each step) instead of the
  global RNG; with ``mask_rng=None`` the draws are torchvision's, in torchvision's order.
"""

import torch
from transformers import initialization as init

from .mim_masking_colored_noise import ColorNoiseBank
from .mim_modeling_utils import MIMPreTrainingOutput
from .configuration_colormae import ColorMAEConfig
from .modeling_mae import MAEForImageClassification, MAEForPreTraining, MAEModel, MAEPreTrainedModel


class ColorMAEPreTrainedModel(MAEPreTrainedModel):
    config_class = ColorMAEConfig

    @torch.no_grad()
    def _init_weights(self, module) -> None:
        super()._init_weights(module)
        if isinstance(module, ColorNoiseBank):  # non-persistent: from_pretrained leaves it empty
            init.copy_(module.patterns, module.build())


class ColorMAEModel(ColorMAEPreTrainedModel, MAEModel):
    """The ColorMAE encoder: a plain ViT, identical to MAE's."""


def build_noise_bank(config: ColorMAEConfig) -> ColorNoiseBank:
    return ColorNoiseBank(
        config.color_noise_num_patterns,
        config.noise_pattern_size,
        color=config.noise_color,
        seed=config.color_noise_seed,
        sigma=config.color_noise_sigma,
        sigma_inner=config.color_noise_sigma_inner,
        sigma_outer=config.color_noise_sigma_outer,
    )


class ColorMAEForPreTraining(ColorMAEPreTrainedModel, MAEForPreTraining):
    """MAE pre-training with coloured-noise masks. ``noise`` / ``bool_masked_pos`` still override the mask (MAE
    semantics); without them the mask is drawn from ``color_noise`` (see :meth:`color_noise_input`)."""

    def __init__(self, config: ColorMAEConfig):
        super().__init__(config)
        self.color_noise = build_noise_bank(config)

    def color_noise_input(self, batch_size: int, grid: tuple[int, int], generator: torch.Generator | None = None) -> torch.Tensor:
        """MAE-style noise ``[B, L]`` equal to minus the coloured-noise windows, so MAE's "keep the lowest noise"
        keeps the highest pattern values, as the official descending argsort does."""
        if grid[0] != grid[1]:
            raise ValueError(f"coloured-noise masks need a square patch grid, got {grid[0]}x{grid[1]}")
        return self.color_noise.noise(batch_size, grid[0], generator)

    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        bool_masked_pos: torch.Tensor | None = None,
        mask_ratio: float | None = None,
        interpolate_pos_encoding: bool = False,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MIMPreTrainingOutput | tuple:
        r"""
        noise (`torch.FloatTensor` of shape `(batch, num_patches)`, *optional*): MAE semantics (lowest noise stays
            visible); pass ``-windows.flatten(1)`` to use given coloured-noise windows. bool_masked_pos
            (`torch.BoolTensor`, *optional*): explicit mask. Without either, the coloured-noise mask is drawn
            with ``self.mask_rng``.
        """
        if noise is None and bool_masked_pos is None:
            if pixel_values is None:
                raise ValueError("pixel_values is required")
            grid = self.patch_grid(pixel_values)
            noise = self.color_noise_input(pixel_values.shape[0], grid, self.mask_rng).to(pixel_values.device)
        return super().forward(
            pixel_values,
            noise=noise,
            bool_masked_pos=bool_masked_pos,
            mask_ratio=mask_ratio,
            interpolate_pos_encoding=interpolate_pos_encoding,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            return_dict=return_dict,
            **kwargs,
        )


class ColorMAEForImageClassification(ColorMAEPreTrainedModel, MAEForImageClassification):
    encoder_class = ColorMAEModel
