# Generated from hf_mim.processing.grid_processing_mim by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Radiance-grid feature extractor (loaded by ``AutoFeatureExtractor``).

A radiance grid is what NeRF-MAE reads from its ``.npz`` files: ``rgbsigma [X, Y, Z, 4]`` (channels last; RGB +
density), float or uint8. The extractor turns it into ``grid_values [4, S, S, S]`` (channels first, zero-padded at
the far end of every axis, as the official ``pad_tensor``) and ``valid_mask [S, S, S]`` (False on the padding).
"""

import numpy as np
import torch
from transformers import BatchFeature, FeatureExtractionMixin

from .remote_code_saving import SavesRemoteCode


def density_to_alpha(density: torch.Tensor) -> torch.Tensor:
    """The official ``--normalize_density`` (``nerf_rpn/datasets.py: density_to_alpha``):
    ``clip(1 - exp(-exp(density) / 100), 0, 1)``."""
    return (1.0 - torch.exp(-torch.exp(density) / 100.0)).clamp(0.0, 1.0)


class NeRFMAEFeatureExtractor(SavesRemoteCode, FeatureExtractionMixin):
    """Radiance grids -> ``grid_values`` / ``valid_mask``.

    Args:
        grid_size (`int`): side of the cube the model takes; smaller grids are zero-padded at the far end, larger
            ones cropped to their first ``grid_size`` voxels per axis (the official code only pads).
        num_channels (`int`, defaults to 4): RGB + density.
        normalize_density (`bool`, defaults to True): map the raw density channel to alpha with
            :func:`density_to_alpha` (the official ``--normalize_density``, used by its training script).
        channels_last (`bool`, defaults to True): grids come as ``[X, Y, Z, C]`` (the official files); False:
            ``[C, X, Y, Z]``.
        size_multiple (`int`, defaults to 32): ``grid_size`` must be a multiple of it (patch size x the three
            patch-merging halvings); checked here so a bad setting fails before any data is read.
    """

    model_input_names = ["grid_values", "valid_mask"]
    remote_code_auto_class = "AutoFeatureExtractor"

    def __init__(self, grid_size: int = 160, num_channels: int = 4, normalize_density: bool = True,
                 channels_last: bool = True, size_multiple: int = 32, **kwargs):
        super().__init__(**kwargs)
        if grid_size % size_multiple:
            raise ValueError(f"grid_size {grid_size} is not divisible by {size_multiple} (patch size x 8): pick a "
                             f"multiple of {size_multiple}")
        self.grid_size, self.num_channels, self.size_multiple = grid_size, num_channels, size_multiple
        self.normalize_density, self.channels_last = normalize_density, channels_last

    @classmethod
    def from_model_config(cls, config, **kwargs) -> "NeRFMAEFeatureExtractor":
        multiple = config.patch_size * 2 ** (len(config.depths) - 1)
        return cls(**{"grid_size": config.grid_size, "num_channels": config.num_channels, "size_multiple": multiple,
                      **kwargs})

    def process_grid(self, grid) -> dict:
        """One grid -> ``{"grid_values": [C, S, S, S] float32, "valid_mask": [S, S, S] bool}``."""
        array = grid if torch.is_tensor(grid) else torch.from_numpy(np.asarray(grid))
        if array.dim() != 4:
            raise ValueError(f"a radiance grid must have 4 dimensions ([X, Y, Z, {self.num_channels}] channels last), "
                             f"got shape {tuple(array.shape)}")
        if not self.channels_last:
            array = array.permute(1, 2, 3, 0)
        if array.shape[-1] != self.num_channels:
            layout = "[X, Y, Z, C]" if self.channels_last else "[C, X, Y, Z]"
            raise ValueError(f"a radiance grid needs {self.num_channels} channels (RGB + density), got shape "
                             f"{tuple(grid.shape)} read as {layout}; set channels_last={not self.channels_last} if "
                             f"the layout is the other one")
        values = array.float() / 255.0 if array.dtype == torch.uint8 else array.float()
        if not torch.isfinite(values).all():
            raise ValueError(f"the radiance grid has {int((~torch.isfinite(values)).sum())} NaN or infinite values; "
                             "replace them (e.g. np.nan_to_num) before training")
        values = values.permute(3, 0, 1, 2)
        if self.normalize_density:
            values = torch.cat([values[:3], density_to_alpha(values[3:])])
        size = self.grid_size
        values = values[:, :size, :size, :size]
        pads = [size - n for n in values.shape[1:]]
        padded = torch.nn.functional.pad(values, (0, pads[2], 0, pads[1], 0, pads[0]))
        valid = torch.zeros(size, size, size, dtype=torch.bool)
        valid[: values.shape[1], : values.shape[2], : values.shape[3]] = True
        return {"grid_values": padded.contiguous(), "valid_mask": valid}

    def __call__(self, grids, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        """One grid or a list of grids -> a ``BatchFeature`` of stacked ``grid_values`` and ``valid_mask``."""
        if torch.is_tensor(grids) or isinstance(grids, np.ndarray):
            grids = [grids] if grids.ndim == 4 else list(grids)
        processed = [self.process_grid(grid) for grid in grids]
        return BatchFeature({key: torch.stack([p[key] for p in processed]) for key in self.model_input_names})
