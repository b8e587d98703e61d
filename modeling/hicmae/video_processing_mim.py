# Generated from hf_mim.processing.video_processing_mim by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Video processor shared by hf_mim video models: resize every frame to the model size, rescale, normalise,
``[B, T, C, H, W]`` out. It also records how clips are sampled (``num_frames`` every ``frame_stride`` frames), so
the processor saved with a checkpoint reproduces the training input; ``AutoVideoProcessor`` loads it."""

import torch
from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD, PILImageResampling
from transformers.processing_utils import VideosKwargs
from transformers.video_processing_utils import BaseVideoProcessor

from .remote_code_saving import SavesRemoteCode


class MIMVideoProcessorKwargs(VideosKwargs, total=False):
    r"""
    num_channels (`int`): channels the model expects (3: frames are converted to RGB).
    frame_stride (`int`): temporal sampling stride of training clips (frames between two sampled frames).
    """

    num_channels: int
    frame_stride: int


class MIMVideoProcessor(SavesRemoteCode, BaseVideoProcessor):
    valid_kwargs = MIMVideoProcessorKwargs
    model_input_names = ["pixel_values"]
    remote_code_auto_class = "AutoVideoProcessor"
    remote_code_config_file = "video_preprocessor_config.json"

    resample = PILImageResampling.BILINEAR
    image_mean = IMAGENET_DEFAULT_MEAN
    image_std = IMAGENET_DEFAULT_STD
    size = {"height": 224, "width": 224}
    do_resize = True
    do_center_crop = False
    do_rescale = True
    rescale_factor = 1 / 255
    do_normalize = True
    do_convert_rgb = True
    do_sample_frames = False
    num_frames = 16
    frame_stride = 4
    num_channels = 3

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.do_convert_rgb = self.num_channels == 3
        for name in ("image_mean", "image_std"):
            stats = getattr(self, name)
            count = 1 if isinstance(stats, (int, float)) else len(stats)
            if self.do_normalize and count != self.num_channels:
                raise ValueError(f"{name} has {count} value(s) but num_channels={self.num_channels}; give one per channel")

    @classmethod
    def from_model_config(cls, config, **kwargs) -> "MIMVideoProcessor":
        """The processor a video model config needs (frame size, clip length, channels); ``kwargs`` override."""
        height, width = config.image_hw
        settings = {"size": {"height": height, "width": width}, "num_frames": config.num_frames,
                    "num_channels": config.num_channels}
        if config.num_channels != 3:
            settings.update(image_mean=[0.5] * config.num_channels, image_std=[0.5] * config.num_channels)
        return cls(**{**settings, **kwargs})

    def preprocess(self, videos, **kwargs):
        batch = super().preprocess(videos, **kwargs)
        batch["pixel_values"] = batch.pop("pixel_values_videos")
        return batch

    def unnormalize(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[..., C, H, W]`` normalised frames back to ``[0, 1]``."""
        mean = torch.as_tensor(self.image_mean, dtype=pixel_values.dtype, device=pixel_values.device).reshape(-1, 1, 1)
        std = torch.as_tensor(self.image_std, dtype=pixel_values.dtype, device=pixel_values.device).reshape(-1, 1, 1)
        return (pixel_values * std + mean if self.do_normalize else pixel_values).clamp(0, 1)
