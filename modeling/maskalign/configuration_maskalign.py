# Generated from hf_mim.models.maskalign.configuration_maskalign by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""MaskAlign configuration (Xue et al., CVPR 2023, "Stare at What You See: Masked Image Modeling without
Reconstruction")."""

from .mim_configuration_utils import MIMViTConfig
from .mim_teacher import CLIP_MEAN, CLIP_STD, FEATURE_LOSSES, FEATURE_NORMS, teacher_hidden_size

MASK_TYPES = ("attention", "random")
FUSION_TYPES = ("linear", "sum", "simple")
HEAD_TYPES = ("linear", "norm_linear", "mlp", "mlp2")


class MaskAlignConfig(MIMViTConfig):
    r"""
    ViT-B/16 student (see [`MIMViTConfig`]) without decoder; defaults follow OpenDriveLab/maskalign
    ``models_pretrain.py`` and the README recipe (ViT-B/16 student, CLIP-B/16 teacher).

    Args:
        mask_ratio (`float`, defaults to 0.7): `int(L * (1 - ratio))` patches stay visible (58 of 196).
        mask_type (`str`, defaults to "attention"): "attention" samples the visible set with
            `multinomial(cls attention of the teacher's last layer)`; "random" is MAE's random masking.
        teacher_name_or_path (`str` or `dict`, defaults to "openai/clip-vit-base-patch16"): the frozen teacher
            (Hub id / local path for `AutoModel.from_pretrained`: CLIPVisionModel, ViTModel (DINO), Dinov2Model, an
            hf_mim encoder; or a config dict with `model_type` for a random teacher). Not saved unless `save_teacher`.
        teacher_image_mean / teacher_image_std (defaults to the CLIP statistics): ImageNet -> teacher
            re-normalisation (None for DINO teachers, which use ImageNet statistics).
        teacher_image_size (`int`, *optional*): resize for the teacher (196 for CLIP-L/14, with its position
            embeddings interpolated by `interpolate_pos_encoding`).
        teacher_hidden_size (`int`, defaults to 768), teacher_num_hidden_layers (`int`, defaults to 12): teacher
            width / depth (read from a config dict teacher).
        fusion_type (`str`, defaults to "linear"): Dynamic Alignment: "linear" (learnable student_depth^2 matrix,
            init I + 0.01; needs student depth == teacher depth), "sum" (teacher_depth x student_depth, init
            1/student_depth) or "simple" (no mixing; depths must match).
        head_type (`str`, defaults to "linear"): per-teacher-layer head "linear", "norm_linear", "mlp", "mlp2".
        target_norm (`str`, defaults to "whiten"): "whiten" (parameter-free LayerNorm, eps 1e-5), "l2", "batch",
            "none".
        loss_type (`str`, defaults to "smoothl1"): "smoothl1" (2 x smooth-L1), "l2", "l1".
        loss_weights (`str`, defaults to "top5"): "mean", "out", "linear_decay", "top<k>", "mid<k>" over the
            teacher layers (official names).
        teacher_seed (`int`), save_teacher (`bool`): see [`FrozenTeacher`].
    """

    model_type = "maskalign"

    drop_path_rate: float = 0.1
    mask_ratio: float = 0.7
    mask_type: str = "attention"
    teacher_name_or_path: str | dict | None = "openai/clip-vit-base-patch16"
    teacher_image_mean: list[float] | tuple | None = CLIP_MEAN
    teacher_image_std: list[float] | tuple | None = CLIP_STD
    teacher_image_size: int | None = None
    teacher_hidden_size: int = 768
    teacher_num_hidden_layers: int = 12
    fusion_type: str = "linear"
    head_type: str = "linear"
    target_norm: str = "whiten"
    loss_type: str = "smoothl1"
    loss_weights: str = "top5"
    teacher_seed: int = 0
    save_teacher: bool = False

    def __post_init__(self, **kwargs):
        if self.teacher_name_or_path is None:
            raise ValueError("MaskAlign needs a teacher: set teacher_name_or_path (e.g. 'openai/clip-vit-base-patch16')")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}")
        for name, value, allowed in (
            ("mask_type", self.mask_type, MASK_TYPES),
            ("fusion_type", self.fusion_type, FUSION_TYPES),
            ("head_type", self.head_type, HEAD_TYPES),
            ("target_norm", self.target_norm, FEATURE_NORMS),
            ("loss_type", self.loss_type, FEATURE_LOSSES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if isinstance(self.teacher_name_or_path, dict):
            self.teacher_num_hidden_layers = int(self.teacher_name_or_path.get("num_hidden_layers", self.teacher_num_hidden_layers))
        self.teacher_hidden_size = teacher_hidden_size(self.teacher_name_or_path, self.teacher_hidden_size)
        if self.fusion_type in ("linear", "simple") and self.num_hidden_layers != self.teacher_num_hidden_layers:
            raise ValueError(
                f"fusion_type={self.fusion_type!r} needs student depth ({self.num_hidden_layers}) == teacher depth "
                f"({self.teacher_num_hidden_layers}); use fusion_type='sum' (e.g. ViT-L student, CLIP-B teacher)"
            )
        loss_weight_list(self.loss_weights, self.teacher_num_hidden_layers)  # validates the name
        super().__post_init__(**kwargs)


def loss_weight_list(name: str, depth: int) -> list[float]:
    """Per-teacher-layer weights, as ``forward_loss`` of the official code builds them."""
    if name == "mean":
        return [1 / depth] * depth
    if name == "out":
        return [0.0] * (depth - 1) + [1.0]
    if name == "linear_decay":
        return [i / sum(range(depth)) for i in range(depth)]
    if name.startswith("top") and name[3:].isdigit() and 1 <= int(name[3:]) <= depth:
        k = int(name[3:])
        return [0.0] * (depth - k) + [1 / k] * k
    if name.startswith("mid") and name[3:].isdigit() and int(name[3:]) < depth:
        mid = int(name[3:])
        return [0.0] * mid + [1.0] + [0.0] * (depth - mid - 1)
    raise ValueError(
        f"loss_weights must be 'mean', 'out', 'linear_decay', 'top<k>' (1 <= k <= {depth}) or 'mid<k>' (k < {depth}), "
        f"got {name!r}"
    )
