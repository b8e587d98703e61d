# Generated from hf_mim.processing.tabular_processing_mim by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Tabular feature extractor (loaded by ``AutoFeatureExtractor``): the standardisation fitted on the training split.

Rows are numeric feature vectors in a fixed column order (``feature_names``); the extractor standardises them with the
mean and std saved from training (scikit-learn's ``StandardScaler``: population std, a constant feature keeps std 1),
so a saved model sees its inputs exactly as it was trained.
"""

import numpy as np
import torch
from transformers import BatchFeature, FeatureExtractionMixin

from .remote_code_saving import SavesRemoteCode


class TabularFeatureExtractor(SavesRemoteCode, FeatureExtractionMixin):
    """Turns rows ``[n, feature_size]`` (or one row) into standardised float32 ``input_values``.

    Args:
        feature_size (`int`): number of features the model expects.
        feature_mean / feature_std (`list[float]`, *optional*): per-feature statistics of the training split
            (default: 0 / 1, no standardisation).
        feature_names (`list[str]`, *optional*): the feature columns, in order (names the selected features).
    """

    model_input_names = ["input_values"]
    remote_code_auto_class = "AutoFeatureExtractor"

    def __init__(self, feature_size: int = 64, feature_mean=None, feature_std=None, feature_names=None, **kwargs):
        super().__init__(**kwargs)
        self.feature_size = feature_size
        self.feature_mean = [0.0] * feature_size if feature_mean is None else [float(v) for v in feature_mean]
        self.feature_std = [1.0] * feature_size if feature_std is None else [float(v) for v in feature_std]
        self.feature_names = None if feature_names is None else [str(name) for name in feature_names]
        for name in ("feature_mean", "feature_std", "feature_names"):
            values = getattr(self, name)
            if values is not None and len(values) != feature_size:
                raise ValueError(f"{name} has {len(values)} entries; feature_size is {feature_size}")
        if any(not std > 0 for std in self.feature_std):
            raise ValueError("feature_std must be positive (a constant feature keeps std 1)")

    @classmethod
    def from_model_config(cls, config, **kwargs) -> "TabularFeatureExtractor":
        return cls(**{"feature_size": config.feature_size, **kwargs})

    @classmethod
    def fit(cls, features: np.ndarray, feature_names=None) -> "TabularFeatureExtractor":
        """Statistics of the training rows ``[n, feature_size]`` (``StandardScaler().fit``)."""
        features = np.asarray(features, dtype=np.float64)
        std = features.std(axis=0)
        std[std == 0] = 1.0
        return cls(features.shape[1], features.mean(axis=0).tolist(), std.tolist(), feature_names)

    def standardize(self, rows) -> torch.Tensor:
        """``[n, feature_size]`` float32 standardised rows (a single row becomes ``[1, feature_size]``)."""
        values = torch.as_tensor(np.asarray(rows, dtype=np.float64))
        values = values.unsqueeze(0) if values.dim() == 1 else values
        if values.dim() != 2 or values.shape[1] != self.feature_size:
            raise ValueError(f"rows must have shape [num_rows, {self.feature_size}] (feature_size), got {tuple(values.shape)}")
        if not torch.isfinite(values).all():
            raise ValueError("rows contain NaN or infinite values: impute or drop them before feature selection")
        mean = torch.tensor(self.feature_mean, dtype=torch.float64)
        std = torch.tensor(self.feature_std, dtype=torch.float64)
        return ((values - mean) / std).float()

    def __call__(self, rows, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        return BatchFeature({"input_values": self.standardize(rows)})
