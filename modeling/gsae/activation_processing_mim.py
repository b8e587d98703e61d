# Generated from hf_mim.processing.activation_processing_mim by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Activation feature extractor (loaded by ``AutoFeatureExtractor``) of the sparse autoencoders: checks that the
vectors have the width the SAE was trained on and batches them as float32 ``activations`` (and
``activation_grads``). Activations come from :func:`hf_mim.data.activations.collect_activations`."""

import numpy as np
import torch
from transformers import BatchFeature, FeatureExtractionMixin

from .remote_code_saving import SavesRemoteCode


class ActivationFeatureExtractor(SavesRemoteCode, FeatureExtractionMixin):
    """Args:
        feature_size (`int`): activation width (the source model's hidden size).
        source_model (`str`, *optional*), source_layer (`int`, *optional*): where the activations are read.
    """

    model_input_names = ["activations", "activation_grads"]
    remote_code_auto_class = "AutoFeatureExtractor"

    def __init__(self, feature_size: int = 768, source_model=None, source_layer=None, **kwargs):
        super().__init__(**kwargs)
        self.feature_size = feature_size
        self.source_model = source_model
        self.source_layer = source_layer

    @classmethod
    def from_model_config(cls, config, **kwargs) -> "ActivationFeatureExtractor":
        settings = {"feature_size": config.d_in, "source_model": config.source_model, "source_layer": config.source_layer}
        return cls(**{**settings, **kwargs})

    def to_tensor(self, values, name: str) -> torch.Tensor:
        tensor = torch.as_tensor(np.asarray(values, dtype=np.float32))
        if tensor.dim() == 0 or tensor.shape[-1] != self.feature_size:
            raise ValueError(f"{name} must have width {self.feature_size} (the activations the SAE was trained on), got "
                             f"shape {tuple(tensor.shape)}")
        return tensor

    def __call__(self, activations, activation_grads=None, return_tensors: str | None = "pt", **kwargs) -> BatchFeature:
        data = {"activations": self.to_tensor(activations, "activations")}
        if activation_grads is not None:
            data["activation_grads"] = self.to_tensor(activation_grads, "activation_grads")
        return BatchFeature(data)
