# Generated from hf_mim.models.mrmae.configuration_mrmae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""MR-MAE configuration (Gao et al., 2023, "Mimic before Reconstruct: Enhancing Masked Autoencoders with Feature
Mimicking")."""

from .configuration_mae import MAEConfig
from .mim_teacher import CLIP_MEAN, CLIP_STD, FEATURE_LOSSES, FEATURE_NORMS, teacher_hidden_size

VISIBLE_SELECTIONS = ("random", "teacher_attention_sample", "teacher_attention_topk")


class MRMAEConfig(MAEConfig):
    r"""
    MAE ViT-B/16 (see [`MAEConfig`]: 512x8 decoder, 75% masking, normalised-pixel loss on masked patches) plus
    feature mimicking of frozen teachers on the VISIBLE tokens at the encoder output.

    Args:
        teacher_name_or_path (`str` or `dict`, defaults to "openai/clip-vit-base-patch16"): first (CLIP) teacher:
            a Hub id / local path loadable with `AutoModel.from_pretrained`, or a config dict with `model_type`
            (a random teacher, for tests). Never saved in the checkpoint unless `save_teacher=True`.
        teacher_image_mean / teacher_image_std (`list[float]`, defaults to the CLIP statistics): the student's
            ImageNet-normalised pixels are re-normalised to these for the first teacher (None: fed unchanged).
        second_teacher_name_or_path (`str` or `dict`, defaults to "facebook/dino-vitb16"): second (DINO) teacher;
            None disables it. second_teacher_image_mean / std: as above (None: ImageNet pixels fed unchanged).
        teacher_hidden_size / second_teacher_hidden_size (`int`, defaults to 768): teacher feature widths (output
            size of the mimic heads); read from the dict when the teacher is given as a config dict.
        mimic_loss_weight / second_mimic_loss_weight (`float`, defaults to 1.0): weights of the two mimic terms.
        mimic_target_layer (`int`, defaults to -1): index into the teacher's `hidden_states` (0 = embeddings,
            -1 = last block output before any final norm).
        mimic_target_norm (`str`, defaults to "whiten"): target normalisation ("none", "whiten", "layernorm",
            "l2", "batch"); "whiten" = parameter-free LayerNorm per token.
        mimic_loss (`str`, defaults to "l2"): "l2" (MSE), "l1" or "smoothl1".
        visible_selection (`str`, defaults to "teacher_attention_topk"): how the visible set is chosen when no
            mask is passed: "teacher_attention_topk" (the paper's "focused mimicking", Gao et al. 2023 Sec. 3: the
            patches the first teacher's last-layer cls token attends to most stay visible), "teacher_attention_sample"
            (multinomial on that attention, as MaskAlign) or "random" (plain MAE).
        mimic_fusion_layers (`list[int]`, *optional*): encoder blocks (1-based) whose visible-token outputs are
            fused (averaged, then the encoder's final norm) before the mimic heads: the paper's "multi-layer fusion"
            (Sec. 3). None (default) fuses every block; `[num_hidden_layers]` mimics from the last block only.
        teacher_seed (`int`, defaults to 0): seed of a random teacher built from a config dict.
        save_teacher (`bool`, defaults to False): store the teachers inside the student's checkpoint.
    """

    model_type = "mrmae"

    norm_pix_loss: bool = True
    teacher_name_or_path: str | dict | None = "openai/clip-vit-base-patch16"
    teacher_image_mean: list[float] | tuple | None = CLIP_MEAN
    teacher_image_std: list[float] | tuple | None = CLIP_STD
    teacher_hidden_size: int = 768
    second_teacher_name_or_path: str | dict | None = "facebook/dino-vitb16"
    second_teacher_image_mean: list[float] | tuple | None = None
    second_teacher_image_std: list[float] | tuple | None = None
    second_teacher_hidden_size: int = 768
    mimic_loss_weight: float = 1.0
    second_mimic_loss_weight: float = 1.0
    mimic_target_layer: int = -1
    mimic_target_norm: str = "whiten"
    mimic_loss: str = "l2"
    visible_selection: str = "teacher_attention_topk"
    mimic_fusion_layers: list[int] | None = None
    teacher_seed: int = 0
    save_teacher: bool = False

    def __post_init__(self, **kwargs):
        if self.teacher_name_or_path is None:
            raise ValueError("MR-MAE needs a teacher: set teacher_name_or_path (e.g. 'openai/clip-vit-base-patch16')")
        if self.mimic_target_norm not in FEATURE_NORMS:
            raise ValueError(f"mimic_target_norm must be one of {FEATURE_NORMS}, got {self.mimic_target_norm!r}")
        if self.mimic_loss not in FEATURE_LOSSES:
            raise ValueError(f"mimic_loss must be one of {FEATURE_LOSSES}, got {self.mimic_loss!r}")
        if self.visible_selection not in VISIBLE_SELECTIONS:
            raise ValueError(f"visible_selection must be one of {VISIBLE_SELECTIONS}, got {self.visible_selection!r}")
        if self.mimic_fusion_layers is not None:
            layers = [int(layer) for layer in self.mimic_fusion_layers]
            if not layers or any(not 1 <= layer <= self.num_hidden_layers for layer in layers):
                raise ValueError(
                    f"mimic_fusion_layers must be a non-empty list of encoder blocks in 1..{self.num_hidden_layers}, "
                    f"got {self.mimic_fusion_layers}"
                )
            self.mimic_fusion_layers = layers
        self.teacher_hidden_size = teacher_hidden_size(self.teacher_name_or_path, self.teacher_hidden_size)
        self.second_teacher_hidden_size = teacher_hidden_size(
            self.second_teacher_name_or_path, self.second_teacher_hidden_size
        )
        super().__post_init__(**kwargs)
