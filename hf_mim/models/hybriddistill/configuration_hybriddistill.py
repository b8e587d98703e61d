"""Hybrid Distillation configuration (Shi et al., ICLR 2024, "Hybrid Distillation: Connecting Masked Autoencoders
with Contrastive Learners")."""

from hf_mim.configuration_utils import MIMViTConfig
from hf_mim.teacher import CLIP_MEAN, CLIP_STD, FEATURE_LOSSES, FEATURE_NORMS, teacher_hidden_size

TOKEN_IMPORTANCE = ("cl_teacher", "mim_teacher", "random")
RELATION_HEAD_MODES = ("per_head", "mean")
MASK_SCHEDULES = ("linear", "cosine", "constant")
HEAD_TYPES = ("linear", "mlp")


class HybridDistillConfig(MIMViTConfig):
    r"""
    ViT-B/16 student (see [`MIMViTConfig`]) with no decoder, distilled from two frozen teachers. No official code
    was released: every default below marked [unverified] follows the paper's text / our research notes and is a
    config switch. There is no ``mask_ratio`` (an override is refused): tokens are dropped progressively, as set by
    ``drop_layers``, ``drop_ratios`` and the ``mask_schedule`` fields.

    Args:
        mim_teacher_name_or_path (`str` or `dict`, defaults to "facebook/vit-mae-base"): the MIM teacher whose token
            relations (attention maps) the student imitates (Hub id / path, or a config dict with `model_type` for
            a random teacher). A transformers ViTMAE teacher sees every patch (its own mask ratio is bypassed).
        mim_teacher_image_mean / mim_teacher_image_std (defaults to None): pixel re-normalisation for the MIM
            teacher (None: the student's ImageNet-normalised pixels unchanged, as MAE was trained).
        mim_teacher_image_size (`int`, *optional*): resize for the MIM teacher.
        mim_teacher_num_hidden_layers (`int`, defaults to 12): MIM teacher depth (read from a config-dict teacher).
        cl_teacher_name_or_path (`str` or `dict`, defaults to "openai/clip-vit-base-patch16"): the supervised /
            contrastive teacher whose final features the student regresses (CLIP or DeiT).
        cl_teacher_image_mean / cl_teacher_image_std (defaults to the CLIP statistics): ImageNet -> CLIP
            re-normalisation (None for DeiT, which uses ImageNet statistics).
        cl_teacher_image_size (`int`, *optional*): resize for the CL teacher.
        cl_teacher_hidden_size (`int`, defaults to 768): CL teacher width (read from a config-dict teacher).
        relation_layers (`list[int]`, *optional*): 1-based student blocks whose attention maps imitate the MIM
            teacher's. None = every block but the last ("intermediate layers", ICLR abstract) [unverified set].
        relation_teacher_layers (`list[int]`, *optional*): the matching 1-based MIM-teacher blocks; None = the same
            relative depth, `round(l * teacher_depth / student_depth)`.
        relation_head_mode (`str`, defaults to "per_head"): "per_head" KL per attention head (needs equal head
            counts) or "mean" (KL of the head-averaged maps, for mismatched head counts).
        relation_loss_weight (`float`, defaults to 1.0), feature_loss_weight (`float`, defaults to 1.0): loss
            weights [unverified].
        head_type (`str`, defaults to "linear"): projection head student width -> CL teacher width ("linear" or
            "mlp").
        feature_target_layer (`int`, defaults to -1): CL-teacher `hidden_states` index of the feature target (last
            block, before any final norm).
        feature_target_norm (`str`, defaults to "whiten"): target normalisation (parameter-free LayerNorm)
            [unverified].
        feature_loss_type (`str`, defaults to "smoothl1"): "smoothl1" (2 x smooth-L1), "l2" or "l1" [unverified].
        drop_layers (`list[int]`, defaults to [0, 4, 8]): progressive redundant-token masking stages, as 0-based
            block indices *before* which redundant tokens are dropped (0 = at the input) [unverified].
        drop_ratios (`list[float]`, defaults to [0.25, 0.45, 0.65]): cumulative share of the patch tokens removed
            from each stage on, at the end of the ratio schedule (non-decreasing) [unverified].
        token_importance (`str`, defaults to "cl_teacher"): how redundancy is judged: the [CLS] attention (head
            mean) of the "cl_teacher" or "mim_teacher" at `importance_layer` (least attended = redundant, dropped
            first), or "random".
        importance_layer (`int`, defaults to -1): teacher block whose [CLS] attention scores the tokens (-1 =
            last).
        mask_schedule (`str`, defaults to "linear"): how the drop ratios grow over training: each ratio is
            `drop_ratio * s`, `s` going from `mask_schedule_start` to 1 ("linear" / "cosine") by
            `mask_schedule_end` of the training steps, or always 1 ("constant") [unverified schedule].
        mask_schedule_start (`float`, defaults to 0.0), mask_schedule_end (`float`, defaults to 1.0): see above.
        teacher_seed (`int`), save_teacher (`bool`): see [`hf_mim.teacher.FrozenTeacher`].
    """

    model_type = "hybriddistill"

    drop_path_rate: float = 0.1
    mim_teacher_name_or_path: str | dict | None = "facebook/vit-mae-base"
    mim_teacher_image_mean: list[float] | tuple | None = None
    mim_teacher_image_std: list[float] | tuple | None = None
    mim_teacher_image_size: int | None = None
    mim_teacher_num_hidden_layers: int = 12
    cl_teacher_name_or_path: str | dict | None = "openai/clip-vit-base-patch16"
    cl_teacher_image_mean: list[float] | tuple | None = CLIP_MEAN
    cl_teacher_image_std: list[float] | tuple | None = CLIP_STD
    cl_teacher_image_size: int | None = None
    cl_teacher_hidden_size: int = 768
    relation_layers: list[int] | None = None
    relation_teacher_layers: list[int] | None = None
    relation_head_mode: str = "per_head"
    relation_loss_weight: float = 1.0
    feature_loss_weight: float = 1.0
    head_type: str = "linear"
    feature_target_layer: int = -1
    feature_target_norm: str = "whiten"
    feature_loss_type: str = "smoothl1"
    drop_layers: list[int] | tuple = (0, 4, 8)
    drop_ratios: list[float] | tuple = (0.25, 0.45, 0.65)
    token_importance: str = "cl_teacher"
    importance_layer: int = -1
    mask_schedule: str = "linear"
    mask_schedule_start: float = 0.0
    mask_schedule_end: float = 1.0
    teacher_seed: int = 0
    save_teacher: bool = False

    def __post_init__(self, **kwargs):
        for field in ("mim_teacher_name_or_path", "cl_teacher_name_or_path"):
            if getattr(self, field) is None:
                raise ValueError(
                    f"Hybrid Distillation needs two teachers: set {field} (e.g. 'facebook/vit-mae-base' for the MIM "
                    "teacher, 'openai/clip-vit-base-patch16' or 'facebook/deit-base-patch16-224' for the CL teacher)"
                )
        for name, value, allowed in (
            ("token_importance", self.token_importance, TOKEN_IMPORTANCE),
            ("relation_head_mode", self.relation_head_mode, RELATION_HEAD_MODES),
            ("mask_schedule", self.mask_schedule, MASK_SCHEDULES),
            ("head_type", self.head_type, HEAD_TYPES),
            ("feature_target_norm", self.feature_target_norm, FEATURE_NORMS),
            ("feature_loss_type", self.feature_loss_type, FEATURE_LOSSES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if isinstance(self.mim_teacher_name_or_path, dict):
            self.mim_teacher_num_hidden_layers = int(
                self.mim_teacher_name_or_path.get("num_hidden_layers", self.mim_teacher_num_hidden_layers)
            )
        self.cl_teacher_hidden_size = teacher_hidden_size(self.cl_teacher_name_or_path, self.cl_teacher_hidden_size)
        depth, teacher_depth = self.num_hidden_layers, self.mim_teacher_num_hidden_layers
        if self.relation_layers is None:
            self.relation_layers = list(range(1, depth)) or [depth]
        self.relation_layers = [int(layer) for layer in self.relation_layers]
        if any(not 1 <= layer <= depth for layer in self.relation_layers):
            raise ValueError(f"relation_layers are 1-based student blocks in [1, {depth}], got {self.relation_layers}")
        if self.relation_teacher_layers is None:
            self.relation_teacher_layers = [max(1, round(layer * teacher_depth / depth)) for layer in self.relation_layers]
        self.relation_teacher_layers = [int(layer) for layer in self.relation_teacher_layers]
        if len(self.relation_teacher_layers) != len(self.relation_layers):
            raise ValueError("relation_teacher_layers must have one entry per relation_layers entry")
        if any(not 1 <= layer <= teacher_depth for layer in self.relation_teacher_layers):
            raise ValueError(
                f"relation_teacher_layers are 1-based MIM-teacher blocks in [1, {teacher_depth}], got "
                f"{self.relation_teacher_layers} (set mim_teacher_num_hidden_layers if the teacher is deeper)"
            )
        self.drop_layers = [int(layer) for layer in self.drop_layers]
        self.drop_ratios = [float(ratio) for ratio in self.drop_ratios]
        if len(self.drop_layers) != len(self.drop_ratios):
            raise ValueError(f"drop_layers {self.drop_layers} and drop_ratios {self.drop_ratios} must have equal length")
        if any(b <= a for a, b in zip(self.drop_layers, self.drop_layers[1:])) or any(
            not 0 <= layer < depth for layer in self.drop_layers
        ):
            raise ValueError(f"drop_layers must be strictly increasing 0-based blocks in [0, {depth}), got {self.drop_layers}")
        if any(b < a for a, b in zip(self.drop_ratios, self.drop_ratios[1:])) or any(
            not 0.0 <= ratio < 1.0 for ratio in self.drop_ratios
        ):
            raise ValueError(f"drop_ratios must be non-decreasing cumulative ratios in [0, 1), got {self.drop_ratios}")
        if not 0.0 <= self.mask_schedule_start <= 1.0 or not 0.0 < self.mask_schedule_end <= 1.0:
            raise ValueError("mask_schedule_start must be in [0, 1] and mask_schedule_end in (0, 1]")
        super().__post_init__(**kwargs)
