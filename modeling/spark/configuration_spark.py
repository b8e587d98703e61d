# Generated from hf_mim.models.spark.configuration_spark by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""SparK configuration (Tian et al., ICLR 2023, "Designing BERT for Convolutional Networks: Sparse and Hierarchical
Masked Modeling"; keyu-tian/SparK)."""

import math

from transformers import PreTrainedConfig

from .mim_configuration_utils import check_positive

LAYER_TYPES = ("bottleneck", "basic")
DENSIFY_NORMS = ("bn", "ln", "identity")


class SparKConfig(PreTrainedConfig):
    r"""
    A timm-style ResNet encoder (parameter names follow ``timm.models.resnet``) plus SparK's densify layers and
    light UNet decoder. Defaults are the official default run (``pretrain/utils/arg_util.py``: ``--model=resnet50``,
    ``--mask=0.6``, densify norm "bn" for ResNets, ``LightDecoder`` width 768, input 224): a ResNet-50.

    Args:
        image_size (`int`, defaults to 224): input resolution (square); must be divisible by the total stride.
        num_channels (`int`, defaults to 3): input (and reconstructed) channels.
        layer_type (`str`, defaults to "bottleneck"): "bottleneck" (ResNet-50 and deeper) or "basic" (ResNet-18/34).
        embedding_size (`int`, defaults to 64): stem width.
        hidden_sizes (`list[int]`, defaults to [256, 512, 1024, 2048]): output width of each stage (a bottleneck's
            inner width is a quarter of it).
        depths (`list[int]`, defaults to [3, 4, 6, 3]): blocks per stage. Stage 1 has stride 1, later stages 2.
        stem_kernel_size (`int`, defaults to 7), stem_stride (`int`, defaults to 2), stem_pool (`bool`, defaults to
            True): the stem conv and its 3x3/2 max pool. Small-image configs use a 3x3 stride-2 stem without pool.
        drop_path_rate (`float`, defaults to 0.05): stochastic depth, rising linearly over all blocks (the official
            ResNet-50 pre-training value).
        zero_init_last (`bool`, defaults to True): zero the last BN weight of each residual block (timm default).
        decoder_width (`int`, defaults to 768): width of the first decoder block; it halves at every 2x upsample.
        densify_norm (`str`, defaults to "bn"): norm applied to each encoder map (over visible sites) before the
            mask tokens are filled in: "bn" (ResNet, official default), "ln" (ConvNeXt) or "identity".
        mask_ratio (`float`, defaults to 0.6): fraction of cells of the downsampled grid that are masked;
            ``round(cells * (1 - ratio))`` stay visible.
        initializer_range (`float`, defaults to 0.02): std of the mask tokens and decoder convs (truncated normal).
        layer_norm_eps (`float`, defaults to 1e-6): epsilon of the "ln" densify norm.
        batch_norm_eps (`float`, defaults to 1e-5), batch_norm_momentum (`float`, defaults to 0.1): BatchNorm settings.
        sync_batch_norm (`bool`, defaults to True): under distributed training, every BatchNorm (encoder, densify
            norms, decoder) takes its training statistics from the visible sites of all processes (official
            ``--sbn``, on by default in pre-training and ImageNet fine-tuning); no effect in a single process.

    Derived: ``hidden_size`` (saved, not settable) is the encoder's output width ``hidden_sizes[-1]``; the total
    stride ``patch_size`` (the mask cell and loss patch size, 32 for ResNet-50) is
    ``stem_stride * (2 if stem_pool) * 2 ** (len(depths) - 1)``.
    """

    model_type = "spark"

    image_size: int = 224
    num_channels: int = 3
    layer_type: str = "bottleneck"
    embedding_size: int = 64
    hidden_sizes: list[int] | tuple[int, ...] = (256, 512, 1024, 2048)
    depths: list[int] | tuple[int, ...] = (3, 4, 6, 3)
    stem_kernel_size: int = 7
    stem_stride: int = 2
    stem_pool: bool = True
    drop_path_rate: float = 0.05
    zero_init_last: bool = True
    decoder_width: int = 768
    densify_norm: str = "bn"
    mask_ratio: float = 0.6
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-6
    batch_norm_eps: float = 1e-5
    batch_norm_momentum: float = 0.1
    sync_batch_norm: bool = True

    def __post_init__(self, **kwargs):
        self.hidden_sizes = [int(s) for s in self.hidden_sizes]
        self.depths = [int(d) for d in self.depths]
        if not self.depths or len(self.depths) != len(self.hidden_sizes):
            raise ValueError(
                f"depths {self.depths} and hidden_sizes {self.hidden_sizes} must be non-empty and of the same length "
                "(one entry per stage)"
            )
        if any(d < 1 for d in self.depths):
            raise ValueError(f"every stage needs at least one block, got depths {self.depths}")
        if self.layer_type not in LAYER_TYPES:
            raise ValueError(f"layer_type must be one of {LAYER_TYPES}, got {self.layer_type!r}")
        if self.layer_type == "bottleneck" and any(s % 4 for s in self.hidden_sizes):
            raise ValueError(f"bottleneck stages need hidden_sizes divisible by 4, got {self.hidden_sizes}")
        if self.densify_norm not in DENSIFY_NORMS:
            raise ValueError(f"densify_norm must be one of {DENSIFY_NORMS}, got {self.densify_norm!r}")
        if not 0.0 <= self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in [0, 1), got {self.mask_ratio}")
        if self.stem_stride < 1 or self.stem_stride & (self.stem_stride - 1):
            raise ValueError(f"stem_stride must be a power of two, got {self.stem_stride}")
        if self.finest_stride < 2:
            raise ValueError(
                "the finest feature map must have stride >= 2 so the decoder can add it before its last 2x upsample: "
                "use stem_stride >= 2 or stem_pool=True"
            )
        if self.decoder_width % (2 ** (self.num_decoder_blocks - 1)):
            raise ValueError(
                f"decoder_width {self.decoder_width} must be divisible by 2**{self.num_decoder_blocks - 1} (it halves "
                f"at each of the {self.num_decoder_blocks} upsampling blocks)"
            )
        hidden_size = kwargs.pop("hidden_size", None)
        if hidden_size is not None and int(hidden_size) != self.hidden_sizes[-1]:
            raise ValueError(
                f"hidden_size ({hidden_size}) is derived from hidden_sizes[-1] ({self.hidden_sizes[-1]}): "
                "set hidden_sizes instead"
            )
        if isinstance(self.image_size, (list, tuple)):
            raise ValueError("SparK supports square inputs only: give image_size as one int")
        check_positive(self, "image_size", "patch_size", "num_channels")
        if self.image_size % self.patch_size:
            raise ValueError(
                f"image_size {self.image_size} must be divisible by the encoder's total stride {self.patch_size}"
            )
        super().__post_init__(**kwargs)
        # width of the encoder's output features (the coarsest map / pooled vector), the transformers convention
        self.hidden_size = self.hidden_sizes[-1]

    @property
    def finest_stride(self) -> int:
        return self.stem_stride * (2 if self.stem_pool else 1)

    @property
    def patch_size(self) -> int:
        """Total stride of the encoder = side of a mask cell and of a loss patch (32 for ResNet-50)."""
        return self.finest_stride * 2 ** (len(self.depths) - 1)

    @property
    def num_decoder_blocks(self) -> int:
        return int(round(math.log2(self.patch_size)))

    @property
    def image_hw(self) -> tuple[int, int]:
        return (self.image_size, self.image_size)

    @property
    def grid_size(self) -> tuple[int, int]:
        return (self.image_size // self.patch_size,) * 2

    @property
    def num_patches(self) -> int:
        return self.grid_size[0] * self.grid_size[1]

    @property
    def feature_strides(self) -> list[int]:
        return [self.finest_stride * 2**i for i in range(len(self.depths))]
