"""MultiMAE configuration (Bachmann et al., ECCV 2022, "MultiMAE: Multi-modal Multi-task Masked Autoencoders")."""

from hf_mim.configuration_utils import MIMViTConfig

MODALITIES = ("rgb", "depth", "semseg")


class MultiMAEConfig(MIMViTConfig):
    r"""
    A ViT-B/16 encoder (see [`MIMViTConfig`]) shared by several input modalities, with one cross-attention output
    adapter (decoder) per task. Defaults are the official ``cfgs/pretrain/multimae-b_98_rgb+-depth-semseg_1600e.yaml``:
    RGB + depth + semantic segmentation in and out, an extra norm-pix RGB head, 98 visible tokens split over the
    modalities by a Dirichlet(1) sample per image, 256-d decoders with 2 self-attention blocks and 8 heads.
    There is no ``mask_ratio`` (an override is refused): ``num_encoded_tokens`` sets how many tokens stay visible.

    Modalities missing from a batch are simply not encoded (the official forward does the same), so the default
    config trains on RGB-only data: then all ``num_encoded_tokens`` come from RGB and only the RGB losses apply.

    Args:
        input_modalities (`list[str]`, defaults to `["rgb", "depth", "semseg"]`): modalities with an input adapter,
            a subset of "rgb" (``pixel_values``, ``num_channels`` channels), "depth" (``depth``, 1 channel) and
            "semseg" (``semseg``, class ids at ``1/semseg_stride`` resolution).
        output_tasks (`list[str]`, defaults to `["rgb", "depth", "semseg"]`): tasks with an output adapter.
        extra_norm_pix_loss (`bool`, defaults to True): add the separate "norm_rgb" output adapter trained on
            per-patch normalised RGB (official ``extra_norm_pix_loss``); needs "rgb" among the output tasks.
        num_encoded_tokens (`int`, defaults to 98): visible tokens in total, over all present modalities.
        num_global_tokens (`int`, defaults to 1): learnable global tokens appended *after* the patch tokens.
        dirichlet_alphas (`float` or `list[float]`, defaults to 1.0): Dirichlet concentration(s) of the per-image
            split of the visible tokens over the present input modalities.
        sample_tasks_uniformly (`bool`, defaults to False): first draw a random non-empty subset of modalities per
            image (official ``sample_alphas``), then the Dirichlet split over that subset.
        decoder_hidden_size (`int`, defaults to 256), decoder_num_hidden_layers (`int`, defaults to 2: self-attention
            blocks after the cross-attention), decoder_num_attention_heads (`int`, defaults to 8),
            decoder_intermediate_size (`int`, defaults to 1024): size of every output adapter.
        semseg_num_classes (`int`, defaults to 133): COCO panoptic classes of the pseudo-labels.
        semseg_stride (`int`, defaults to 4): the semseg map is at ``1/semseg_stride`` of the image resolution.
        semseg_class_embed_dim (`int`, defaults to 64): width of the class-id embedding before the patch projection.
        standardize_depth (`bool`, defaults to True): standardise depth per image with the mean / variance of its
            10-90% truncated values before it is used as input and target (done in the official training loop).
        loss_on_unmasked (`bool`, defaults to False): compute losses on all tokens instead of masked ones only.
    """

    model_type = "multimae"

    pos_embed_layout: str = "mocov3"
    use_cls_token: bool = False
    input_modalities: list[str] | tuple[str, ...] = MODALITIES
    output_tasks: list[str] | tuple[str, ...] = MODALITIES
    extra_norm_pix_loss: bool = True
    num_encoded_tokens: int = 98
    num_global_tokens: int = 1
    dirichlet_alphas: float | list[float] = 1.0
    sample_tasks_uniformly: bool = False
    decoder_hidden_size: int = 256
    decoder_num_hidden_layers: int = 2
    decoder_num_attention_heads: int = 8
    decoder_intermediate_size: int = 1024
    semseg_num_classes: int = 133
    semseg_stride: int = 4
    semseg_class_embed_dim: int = 64
    standardize_depth: bool = True
    loss_on_unmasked: bool = False

    def __post_init__(self, **kwargs):
        self.input_modalities = [str(m) for m in self.input_modalities]
        self.output_tasks = [str(t) for t in self.output_tasks]
        for name, values in (("input_modalities", self.input_modalities), ("output_tasks", self.output_tasks)):
            unknown = [v for v in values if v not in MODALITIES]
            if unknown or len(set(values)) != len(values) or not values:
                raise ValueError(
                    f"{name} must be a non-empty list of distinct modalities from {MODALITIES}, got {values}; "
                    "other modalities need their own input/output adapter"
                )
        if self.extra_norm_pix_loss and "rgb" not in self.output_tasks:
            raise ValueError("extra_norm_pix_loss adds a second RGB head: add 'rgb' to output_tasks or disable it")
        if isinstance(self.dirichlet_alphas, (list, tuple)):
            self.dirichlet_alphas = [float(a) for a in self.dirichlet_alphas]
            if len(self.dirichlet_alphas) != len(self.input_modalities):
                raise ValueError(
                    f"dirichlet_alphas has {len(self.dirichlet_alphas)} entries but there are "
                    f"{len(self.input_modalities)} input modalities; give one per modality or a single float"
                )
            if any(a <= 0 for a in self.dirichlet_alphas):
                raise ValueError(f"Dirichlet alphas must be > 0, got {self.dirichlet_alphas}")
        elif self.dirichlet_alphas <= 0:
            raise ValueError(f"dirichlet_alphas must be > 0, got {self.dirichlet_alphas}")
        if self.num_global_tokens < 0:
            raise ValueError(f"num_global_tokens must be >= 0, got {self.num_global_tokens}")
        if self.decoder_hidden_size % self.decoder_num_attention_heads or self.decoder_hidden_size % 4:
            raise ValueError(
                f"decoder_hidden_size {self.decoder_hidden_size} must be divisible by 4 (sin-cos positions) and by "
                f"decoder_num_attention_heads {self.decoder_num_attention_heads}"
            )
        uses_semseg = "semseg" in self.input_modalities or "semseg" in self.output_tasks
        if uses_semseg and self.patch_size % self.semseg_stride:
            raise ValueError(
                f"patch_size {self.patch_size} must be divisible by semseg_stride {self.semseg_stride} (a semseg "
                "patch is patch_size / semseg_stride label pixels); change one of them or drop semseg"
            )
        super().__post_init__(**kwargs)
        total = self.num_patches * len(self.input_modalities)
        if not 1 <= self.num_encoded_tokens <= total:
            raise ValueError(
                f"num_encoded_tokens must be in [1, {total}] ({len(self.input_modalities)} modalities x "
                f"{self.num_patches} patches), got {self.num_encoded_tokens}"
            )

    @property
    def decoder_tasks(self) -> list[str]:
        """Every output adapter: the output tasks plus "norm_rgb" when ``extra_norm_pix_loss``."""
        return self.output_tasks + (["norm_rgb"] if self.extra_norm_pix_loss else [])

    def dirichlet_alphas_for(self, modalities: list[str]) -> float | list[float]:
        """The Dirichlet concentrations of the modalities present in a batch (config order)."""
        if isinstance(self.dirichlet_alphas, list):
            return [self.dirichlet_alphas[self.input_modalities.index(m)] for m in modalities]
        return self.dirichlet_alphas

    @property
    def semseg_grid_hw(self) -> tuple[int, int]:
        height, width = self.image_hw
        return height // self.semseg_stride, width // self.semseg_stride
