"""G2SD configuration (Huang et al., CVPR 2023, "Generic-to-Specific Distillation of Masked Autoencoders")."""

from hf_mim.models.mae.configuration_mae import MAEConfig
from hf_mim.teacher import teacher_hidden_size


class G2SDConfig(MAEConfig):
    r"""
    A small MAE student (ViT-S/16 encoder, 256-d x 4-block decoder: the official `mae_vit_small_patch16_dec256d4b`)
    distilled from a large pre-trained MAE (encoder AND decoder) that sees the same masked input (generic
    distillation), plus an optional fine-tuned classifier teacher for fine-tuning (specific distillation).
    Defaults follow pengzhiliang/G2SD `GD.sh` / `main_distill.py` / `SD.sh`.

    Args:
        teacher_name_or_path (`str` or `dict`, defaults to "facebook/vit-mae-base"): the pre-trained MAE teacher
            WITH its decoder: transformers `ViTMAEForPreTraining` or an hf_mim `MAEForPreTraining` (Hub id / path,
            loaded with `AutoModelForPreTraining`; a config dict with `model_type` gives a random one; or pass
            `teacher=<module>`). Never saved in the checkpoint unless `save_teacher=True`.
        teacher_hidden_size (`int`, defaults to 768): teacher encoder width (output of the encoder-feature head).
        teacher_decoder_hidden_size (`int`, defaults to 512): teacher decoder width (output of the decoder-feature
            head). Both are read from a config dict.
        teacher_decoder_layer (`int`, defaults to 4): the teacher decoder block (1-based; official `suplayer`)
            whose output (before the decoder norm) is the target.
        supervise_all (`bool`, defaults to True): distil every decoder token (cls, visible and masked); False
            keeps only the masked patch tokens.
        decoder_feature_loss_weight (`float`, defaults to 1.0): weight of the decoder-feature term.
        encoder_feature_loss_weight (`float`, defaults to 0.0): weight of the encoder-feature term (student encoder
            output -> LN(teacher encoder output before its final norm)); computed but multiplied by 0 officially.
        pixel_loss_weight (`float`, defaults to 0.0): weight of the MAE pixel loss (absent in the official code).
        smooth_l1_beta (`float`, defaults to 2.0): beta of the smooth-L1 feature losses.
        target_layer_norm_eps (`float`, defaults to 1e-6): eps of the affine-free LayerNorm on the targets.
        classifier_teacher_name_or_path (`str` or `dict`, *optional*): a fine-tuned image classifier (same labels)
            for specific distillation in `G2SDForImageClassification` (official: MAE ViT-B fine-tuned, 83.6%).
            None: the distillation head is trained on the labels (CE only).
        teacher_image_mean / teacher_image_std (*optional*): teacher normalisation if it differs from the student's.
        teacher_seed (`int`, defaults to 0): seed of a random (config-dict) teacher.
        save_teacher (`bool`, defaults to False): store the pre-training teacher in the checkpoint.
        pooling (`str`, defaults to "cls"): `SD.sh` fine-tunes with the cls token (no `--global_pool`).
    """

    model_type = "g2sd"

    hidden_size: int = 384
    num_hidden_layers: int = 12
    num_attention_heads: int = 6
    intermediate_size: int = 1536
    decoder_hidden_size: int = 256
    decoder_num_hidden_layers: int = 4
    decoder_num_attention_heads: int = 8
    decoder_intermediate_size: int = 1024
    pooling: str = "cls"
    teacher_name_or_path: str | dict | None = "facebook/vit-mae-base"
    teacher_image_mean: list[float] | tuple | None = None
    teacher_image_std: list[float] | tuple | None = None
    teacher_hidden_size: int = 768
    teacher_decoder_hidden_size: int = 512
    teacher_decoder_layer: int = 4
    supervise_all: bool = True
    decoder_feature_loss_weight: float = 1.0
    encoder_feature_loss_weight: float = 0.0
    pixel_loss_weight: float = 0.0
    smooth_l1_beta: float = 2.0
    target_layer_norm_eps: float = 1e-6
    classifier_teacher_name_or_path: str | dict | None = None
    teacher_seed: int = 0
    save_teacher: bool = False

    def __post_init__(self, **kwargs):
        if self.teacher_name_or_path is None:
            raise ValueError("G2SD needs an MAE teacher with its decoder: set teacher_name_or_path (e.g. 'facebook/vit-mae-base')")
        if self.teacher_decoder_layer < 1:
            raise ValueError(f"teacher_decoder_layer is a 1-based decoder block number, got {self.teacher_decoder_layer}")
        if self.smooth_l1_beta <= 0:
            raise ValueError(f"smooth_l1_beta must be > 0, got {self.smooth_l1_beta}")
        self.teacher_hidden_size = teacher_hidden_size(self.teacher_name_or_path, self.teacher_hidden_size)
        if isinstance(self.teacher_name_or_path, dict) and "decoder_hidden_size" in self.teacher_name_or_path:
            self.teacher_decoder_hidden_size = int(self.teacher_name_or_path["decoder_hidden_size"])
        super().__post_init__(**kwargs)
