"""Image processing and data collators."""

from hf_mim.processing.activation_processing_mim import ActivationFeatureExtractor
from hf_mim.processing.audio_visual_processing_mim import MIMAudioVisualProcessor
from hf_mim.processing.graph_processing_mim import GraphFeatureExtractor
from hf_mim.processing.grid_processing_mim import NeRFMAEFeatureExtractor
from hf_mim.processing.image_processing_mim import MIMImageProcessor
from hf_mim.processing.point_processing_mim import PointCloudFeatureExtractor
from hf_mim.processing.tabular_processing_mim import TabularFeatureExtractor
from hf_mim.processing.video_processing_mim import MIMVideoProcessor

__all__ = [
    "ActivationFeatureExtractor", "GraphFeatureExtractor", "MIMAudioVisualProcessor", "MIMImageProcessor", "MIMVideoProcessor",
    "NeRFMAEFeatureExtractor", "PointCloudFeatureExtractor",
    "TabularFeatureExtractor", "processor_for_config",
]


def processor_for_config(config, **kwargs) -> MIMImageProcessor:
    """A processor matching a model config (size, channels, patch and mask settings). ``kwargs`` override,
    e.g. ``image_mean``/``image_std`` for non-RGB data."""
    height, width = config.image_hw
    settings = {
        "size": {"height": height, "width": width},
        "num_channels": config.num_channels,
        "patch_size": config.patch_size,
        "mask_ratio": getattr(config, "mask_ratio", MIMImageProcessor.mask_ratio),
    }
    if hasattr(config, "mask_patch_size"):
        settings.update(mask_type="simmim", mask_patch_size=config.mask_patch_size)
    if config.num_channels != 3 and "image_mean" not in kwargs:
        settings.update(image_mean=[0.5] * config.num_channels, image_std=[0.5] * config.num_channels)
    settings.update(kwargs)
    return MIMImageProcessor(**settings)
