"""Layer masking: an inference-time wrapper that removes input regions from a ResNet at every layer.

Not a pre-training method, so it has no ``METHOD``; importing it registers ``LayerMaskConfig`` ("layermask") with
``AutoConfig``, ``AutoModel`` and ``AutoModelForImageClassification`` so saved wrappers reload with the Auto classes.
"""

from transformers import AutoConfig, AutoModel, AutoModelForImageClassification

from hf_mim.models.layermask.configuration_layermask import LayerMaskConfig
from hf_mim.models.layermask.modeling_layermask import (
    LayerMaskedResNetForImageClassification,
    LayerMaskedResNetModel,
    check_pixel_mask,
    layer_masked_features,
    layer_masked_forward,
    masked_mean,
    neighbour_fill,
    random_block_mask,
)

AutoConfig.register(LayerMaskConfig.model_type, LayerMaskConfig, exist_ok=True)
AutoModel.register(LayerMaskConfig, LayerMaskedResNetModel, exist_ok=True)
AutoModelForImageClassification.register(LayerMaskConfig, LayerMaskedResNetForImageClassification, exist_ok=True)

__all__ = [
    "LayerMaskConfig",
    "LayerMaskedResNetForImageClassification",
    "LayerMaskedResNetModel",
    "check_pixel_mask",
    "layer_masked_features",
    "layer_masked_forward",
    "masked_mean",
    "neighbour_fill",
    "random_block_mask",
]
