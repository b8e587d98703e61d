# Generated from hf_mim.models.tgm.configuration_tgm by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""TGM configuration (Fan et al., ECCV 2024, "Text-Guided Video Masked Autoencoder")."""

import json
from pathlib import Path

from .configuration_videomae2 import Videomae2Config
from .mim_teacher import CLIP_MEAN, CLIP_STD


class TGMConfig(Videomae2Config):
    r"""
    A VideoMAE (the [`Videomae2Config`] encoder, decoder and tubelet fields) whose mask hides the patches a frozen
    CLIP finds most relevant to the clip's caption, plus an optional video-text InfoNCE term. Defaults follow the
    paper: VideoMAE ViT-B, 16 frames, tubelet 2, text-guided mask ratio 0.6, frozen CLIP ViT-B/32, no decoder masking.

    Args:
        mask_ratio (`float`, defaults to 0.6): share of the patches of every temporal slice that is masked (the
            paper's best text-guided ratio; 0.9 is VideoMAE's tube ratio, do not reuse it).
        decoder_mask_ratio (`float`, defaults to 0.0): TGM decodes every masked cube (plain VideoMAE decoder).
        mask_most_relevant (`bool`, defaults to True): mask the patches most relevant to the caption; False masks
            the least relevant ones (the paper's ablation).
        clip_model_name_or_path (`str` or `dict`, defaults to "openai/clip-vit-base-patch32"): the frozen CLIP
            (transformers `CLIPModel`): a local path or Hub id, or a `CLIPConfig` dict with `model_type="clip"` (a
            random CLIP seeded by `teacher_seed`, for tests and smoke runs). Never saved in the checkpoint:
            rebuilt from this field. Its tokenizer is loaded from the same path (a byte-level CLIP tokenizer for
            a dict).
        clip_model_image_mean / clip_model_image_std (`list[float]`, defaults to the CLIP statistics): the
            student's ImageNet-normalised frames are re-normalised to these for CLIP (None: fed unchanged).
        clip_model_image_size (`int`, *optional*): side CLIP sees (default: CLIP's own `image_size`).
        clip_projection_dim (`int`, defaults to 512): CLIP's embedding width (read from a dict or a local CLIP
            folder); the video side of the contrastive term is projected to it.
        contrastive_weight (`float`, defaults to 0.0): weight of the video-text InfoNCE on the mean-pooled
            visible tokens (0 = pure masked modeling, the paper's "TGM"; 1 = its MAE + contrastive variant).
        contrastive_temperature (`float`, defaults to 0.07): InfoNCE temperature [unverified: not in the paper].
        teacher_seed (`int`, defaults to 0): seed of a random CLIP built from a config dict.
    """

    model_type = "tgm"

    mask_ratio: float = 0.6
    decoder_mask_ratio: float = 0.0
    mask_most_relevant: bool = True
    clip_model_name_or_path: str | dict | None = "openai/clip-vit-base-patch32"
    clip_model_image_mean: list[float] | tuple | None = CLIP_MEAN
    clip_model_image_std: list[float] | tuple | None = CLIP_STD
    clip_model_image_size: int | None = None
    clip_projection_dim: int = 512
    contrastive_weight: float = 0.0
    contrastive_temperature: float = 0.07
    teacher_seed: int = 0

    def __post_init__(self, **kwargs):
        if self.clip_model_name_or_path is None:
            raise ValueError("TGM needs a CLIP: set clip_model_name_or_path (e.g. 'openai/clip-vit-base-patch32')")
        self.clip_projection_dim = clip_projection_dim(self.clip_model_name_or_path, self.clip_projection_dim)
        if self.contrastive_weight < 0 or self.contrastive_temperature <= 0:
            raise ValueError(
                f"contrastive_weight must be >= 0 and contrastive_temperature > 0, got {self.contrastive_weight} and "
                f"{self.contrastive_temperature}"
            )
        super().__post_init__(**kwargs)


def clip_projection_dim(source, default: int) -> int:
    """``projection_dim`` of a CLIP given as a config dict or a local folder (a Hub id is not read: no download
    while building a config; the model checks the value when it loads the CLIP)."""
    if isinstance(source, dict):
        return int(source.get("projection_dim", default))
    config_file = Path(str(source)) / "config.json"
    if config_file.is_file():
        return int(json.loads(config_file.read_text()).get("projection_dim", default))
    return default
