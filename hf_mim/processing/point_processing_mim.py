"""Point-cloud feature extractor (loaded by ``AutoFeatureExtractor``): a cloud of any size becomes the fixed-size,
centred, unit-sphere-normalised ``[num_points, 3]`` tensor point-cloud models take."""

import numpy as np
import torch
from transformers import BatchFeature, FeatureExtractionMixin

from hf_mim.layers.points import farthest_point_sample
from hf_mim.processing.remote_code_saving import SavesRemoteCode


class PointCloudFeatureExtractor(SavesRemoteCode, FeatureExtractionMixin):
    """Samples ``num_points`` points by farthest point sampling (deterministic, from point 0; a cloud of exactly
    ``num_points`` is kept as is), subtracts the centroid and divides by the largest distance to it (the official
    ``pc_norm`` of Point-MAE / I2P-MAE data loading). Extra columns (normals, colours) are dropped.

    Args:
        num_points (`int`, defaults to 2048): points per cloud the model expects.
        normalize (`bool`, defaults to True): centre and scale into the unit sphere.
    """

    model_input_names = ["points"]
    remote_code_auto_class = "AutoFeatureExtractor"

    def __init__(self, num_points: int = 2048, normalize: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.num_points, self.normalize = num_points, normalize

    @classmethod
    def from_model_config(cls, config, **kwargs) -> "PointCloudFeatureExtractor":
        return cls(**{"num_points": config.num_points, **kwargs})

    def process_cloud(self, cloud) -> torch.Tensor:
        """One cloud ``[N, >=3]`` -> ``[num_points, 3]`` float32, with a one-line error for bad input."""
        points = torch.as_tensor(np.asarray(cloud, dtype=np.float32))
        if points.dim() != 2 or points.shape[1] < 3:
            raise ValueError(f"a point cloud must have shape [num_points, 3] (x, y, z first), got {tuple(points.shape)}")
        points = points[:, :3]
        if not bool(torch.isfinite(points).all()):
            bad = int((~torch.isfinite(points)).any(dim=1).sum())
            raise ValueError(f"the point cloud has {bad} point(s) with NaN or infinite coordinates: drop them first")
        if points.shape[0] < self.num_points:
            raise ValueError(
                f"the point cloud has {points.shape[0]} points, fewer than num_points={self.num_points}: give denser "
                "clouds or save the feature extractor with a smaller num_points (and a model config to match)"
            )
        if points.shape[0] > self.num_points:
            points = points[farthest_point_sample(points.unsqueeze(0), self.num_points)[0]]
        if self.normalize:
            points = points - points.mean(dim=0)
            points = points / points.norm(dim=1).max().clamp(min=1e-12)
        return points

    def __call__(self, clouds, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        """``clouds``: one cloud ``[N, 3]`` or a list of them -> ``BatchFeature`` with ``points [B, num_points, 3]``."""
        single = (isinstance(clouds, (np.ndarray, torch.Tensor)) and np.ndim(clouds) == 2) or (
            isinstance(clouds, list) and len(clouds) > 0 and np.ndim(clouds[0]) == 1
        )
        clouds = [clouds] if single else list(clouds)
        return BatchFeature({"points": torch.stack([self.process_cloud(cloud) for cloud in clouds])})
