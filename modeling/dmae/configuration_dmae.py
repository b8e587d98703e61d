# Generated from hf_mim.models.dmae.configuration_dmae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""DMAE configuration (Bai et al., CVPR 2023, "Masked Autoencoders Enable Efficient Knowledge Distillers")."""

from .configuration_mae import MAEConfig
from .mim_teacher import teacher_hidden_size

PROJECTION_TYPES = ("fc-1layer", "mlp-1layer", "mlp-2layer")
DISTILL_LOSSES = ("l1", "l2")


class DMAEConfig(MAEConfig):
    r"""
    MAE ViT-B/16 student (see [`MAEConfig`]) distilled from a larger MAE-pretrained teacher that runs on the SAME
    visible patches. Defaults follow UCSC-VLAA/DMAE ``pretrain.sh`` / ``main_distill.py``.

    Args:
        teacher_name_or_path (`str` or `dict`, defaults to "facebook/vit-mae-large"): an MAE-pretrained teacher that
            can drop tokens: transformers `ViTMAEModel` (Hub id / path / config dict) or an hf_mim MAE encoder.
            Never saved in the checkpoint unless `save_teacher=True`. The default is the official recipe's teacher:
            transformers' conversion of `mae_visualize_vit_large.pth` (MAE ViT-L trained on raw pixels, loaded by
            DMAE's `pretrain.sh`), with LayerNorm eps 1e-12 instead of 1e-6.
        teacher_hidden_size (`int`, defaults to 1024): teacher width (projection output); read from a config dict.
        student_align_layers (`list[int]`, defaults to [9]): student `hidden_states` indices to align (block
            numbers, 1-based: 9 = the official 0-based block 8), residual stream before the final norm.
        teacher_align_layers (`list[int]`, defaults to [18]): matching teacher `hidden_states` indices (official
            0-based block 17). The teacher is truncated after the deepest one (its later blocks never run).
        projection_type (`str`, defaults to "fc-1layer"): student projection per aligned layer: "fc-1layer"
            (Linear), "mlp-1layer" (Linear-GELU-Linear) or "mlp-2layer" (two such MLPs).
        distill_loss (`str`, defaults to "l1"): "l1" (official `nn.L1Loss`) or "l2" (`nn.MSELoss`) between the
            L2-normalised teacher feature and the L2-normalised projected student feature (cls + visible tokens).
        distill_loss_weight (`float`, defaults to 1.0): weight of the (summed) distillation terms.
        norm_pix_loss (`bool`, defaults to False): off in the official `pretrain.sh`.
        teacher_image_mean / teacher_image_std (*optional*): teacher normalisation if it differs from the student's.
        teacher_seed (`int`), save_teacher (`bool`): see MR-MAE.
    """

    model_type = "dmae"

    norm_pix_loss: bool = False
    teacher_name_or_path: str | dict | None = "facebook/vit-mae-large"
    teacher_image_mean: list[float] | tuple | None = None
    teacher_image_std: list[float] | tuple | None = None
    teacher_hidden_size: int = 1024
    student_align_layers: list[int] | tuple = (9,)
    teacher_align_layers: list[int] | tuple = (18,)
    projection_type: str = "fc-1layer"
    distill_loss: str = "l1"
    distill_loss_weight: float = 1.0
    teacher_seed: int = 0
    save_teacher: bool = False

    def __post_init__(self, **kwargs):
        if self.teacher_name_or_path is None:
            raise ValueError("DMAE needs a teacher: set teacher_name_or_path (e.g. 'facebook/vit-mae-large')")
        self.student_align_layers = [int(i) for i in self.student_align_layers]
        self.teacher_align_layers = [int(i) for i in self.teacher_align_layers]
        if not self.student_align_layers or len(self.student_align_layers) != len(self.teacher_align_layers):
            raise ValueError(
                "student_align_layers and teacher_align_layers must be non-empty lists of the same length, got "
                f"{self.student_align_layers} and {self.teacher_align_layers}"
            )
        if any(not 1 <= i <= self.num_hidden_layers for i in self.student_align_layers):
            raise ValueError(
                f"student_align_layers {self.student_align_layers} must be block numbers in [1, {self.num_hidden_layers}]"
            )
        if any(i < 1 for i in self.teacher_align_layers):
            raise ValueError(f"teacher_align_layers {self.teacher_align_layers} must be block numbers >= 1")
        if self.projection_type not in PROJECTION_TYPES:
            raise ValueError(f"projection_type must be one of {PROJECTION_TYPES}, got {self.projection_type!r}")
        if self.distill_loss not in DISTILL_LOSSES:
            raise ValueError(f"distill_loss must be one of {DISTILL_LOSSES}, got {self.distill_loss!r}")
        self.teacher_hidden_size = teacher_hidden_size(self.teacher_name_or_path, self.teacher_hidden_size)
        super().__post_init__(**kwargs)
