"""I2P-MAE configuration (Zhang et al., CVPR 2023, "Learning 3D Representations from 2D Pre-trained Models via
Image-to-Point Masked Autoencoders")."""

from transformers import PreTrainedConfig

from hf_mim.configuration_utils import check_positive
from hf_mim.teacher import teacher_hidden_size


class I2PMAEConfig(PreTrainedConfig):
    r"""
    A hierarchical point-cloud MAE (3 scales of FPS + kNN groups) whose masks and visible-token targets come from a
    frozen 2-D teacher looking at three depth projections of the cloud. Defaults are the official pre-training
    config (ZrrSkywalker/I2P-MAE ``cfgs/pre-training/i2p-mae.yaml``, ShapeNet-55 at 2048 points).

    Args:
        num_points (`int`, defaults to 2048): points per cloud (the feature extractor samples to it).
        num_groups (`list[int]`, defaults to [512, 256, 64]): token count of each scale, finest first; scale
            ``i`` groups the centres of scale ``i - 1`` (scale 0 groups the points).
        group_sizes (`list[int]`, defaults to [16, 8, 8]): kNN neighbours per token at each scale.
        encoder_hidden_sizes (`list[int]`, defaults to [96, 192, 384]), encoder_depths (`list[int]`, defaults to
            [5, 5, 5]): width and depth of each scale's transformer.
        num_attention_heads (`int`, defaults to 6): heads of every encoder and decoder block.
        mlp_ratio (`float`, defaults to 4.0): MLP width / block width.
        token_embed_sizes (`list[int]`, defaults to [128, 256]): hidden widths of the first scale's mini-PointNet
            (its second part is twice the last one wide; coarser scales keep their input width, as official).
        decoder_depths (`list[int]`, defaults to [1, 1]): blocks per decoder stage, coarsest first; stage ``j``
            works at scale ``S - 1 - j`` with that scale's encoder width, and the reconstruction is made at the
            last stage's scale (the middle one by default).
        propagation_blocks (`int`, defaults to 1): residual conv blocks after each feature propagation.
        drop_path_rate (`float`, defaults to 0.1): stochastic depth, rising linearly over the encoder blocks (and
            separately over the decoder blocks).
        mask_ratio (`float`, defaults to 0.8): fraction of top-scale tokens masked (`int()`-truncated count).
        projection_size (`int`, defaults to 224): side of the depth images given to the teacher.
        splat_radius (`int`, defaults to 2): each point covers a (2r + 1)^2 square of pixels (25 official offsets).
        teacher_name_or_path (`str` or `dict`, defaults to "openai/clip-vit-base-patch16"): the frozen 2-D teacher:
            a Hub id / path of any vision model with attention output (CLIPVisionModel, ViT, an hf_mim MAE), or a
            config dict with `model_type` for a random teacher (tests). Not saved unless `save_teacher`.
        teacher_hidden_size (`int`, defaults to 768): width of the teacher features the visible tokens regress
            (read from a config-dict teacher).
        teacher_seed (`int`), save_teacher (`bool`): see [`~hf_mim.teacher.FrozenTeacher`].
        layer_norm_eps (`float`, defaults to 1e-5), initializer_range (`float`, defaults to 0.02).
    """

    model_type = "i2pmae"

    num_points: int = 2048
    num_groups: list[int] | tuple = (512, 256, 64)
    group_sizes: list[int] | tuple = (16, 8, 8)
    encoder_hidden_sizes: list[int] | tuple = (96, 192, 384)
    encoder_depths: list[int] | tuple = (5, 5, 5)
    num_attention_heads: int = 6
    mlp_ratio: float = 4.0
    token_embed_sizes: list[int] | tuple = (128, 256)
    decoder_depths: list[int] | tuple = (1, 1)
    propagation_blocks: int = 1
    drop_path_rate: float = 0.1
    mask_ratio: float = 0.8
    projection_size: int = 224
    splat_radius: int = 2
    teacher_name_or_path: str | dict | None = "openai/clip-vit-base-patch16"
    teacher_hidden_size: int = 768
    teacher_seed: int = 0
    save_teacher: bool = False
    layer_norm_eps: float = 1e-5
    initializer_range: float = 0.02

    def __post_init__(self, **kwargs):
        for name in ("num_groups", "group_sizes", "encoder_hidden_sizes", "encoder_depths", "token_embed_sizes", "decoder_depths"):
            setattr(self, name, [int(v) for v in getattr(self, name)])
        check_positive(self, "num_points", "num_attention_heads", "projection_size", "propagation_blocks")
        scales = len(self.num_groups)
        if not (len(self.group_sizes) == len(self.encoder_hidden_sizes) == len(self.encoder_depths) == scales):
            raise ValueError("num_groups, group_sizes, encoder_hidden_sizes and encoder_depths need one entry per scale")
        if not 1 <= len(self.decoder_depths) <= scales or len(self.token_embed_sizes) != 2:
            raise ValueError(f"decoder_depths needs 1 to {scales} stages and token_embed_sizes 2 widths")
        available = [self.num_points] + self.num_groups[:-1]
        for i, (groups, size, points) in enumerate(zip(self.num_groups, self.group_sizes, available)):
            if not 0 < groups <= points or not 0 < size <= points:
                raise ValueError(
                    f"scale {i} takes {groups} groups of {size} from {points} {'points' if i == 0 else 'centres'}: "
                    "both must be between 1 and that count"
                )
        for width in self.encoder_hidden_sizes:
            if width % self.num_attention_heads:
                raise ValueError(f"encoder width {width} is not divisible by num_attention_heads {self.num_attention_heads}")
        num_masked = int(self.mask_ratio * self.num_groups[-1])
        if not 0 < num_masked < self.num_groups[-1]:
            raise ValueError(f"mask_ratio {self.mask_ratio} masks {num_masked} of {self.num_groups[-1]} top-scale tokens: mask some but not all")
        if self.teacher_name_or_path is None:
            raise ValueError("I2P-MAE needs a 2-D teacher: set teacher_name_or_path (e.g. 'openai/clip-vit-base-patch16')")
        self.teacher_hidden_size = teacher_hidden_size(self.teacher_name_or_path, self.teacher_hidden_size)
        super().__post_init__(**kwargs)

    @property
    def hidden_size(self) -> int:
        """Width of the pooled features (the top scale's)."""
        return self.encoder_hidden_sizes[-1]

    @property
    def reconstruction_scale(self) -> int:
        """The scale whose masked groups are reconstructed (the last decoder stage's)."""
        return len(self.num_groups) - len(self.decoder_depths)
