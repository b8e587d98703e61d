# Generated from hf_mim.models.jepa.configuration_jepa by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""JEPA configuration: an I-JEPA-style joint-embedding predictive architecture (Assran et al., CVPR 2023), the
image-scale counterpart of the self-distillation setting analysed in "How JEPA Avoids Noisy Features" (Littwin
et al., NeurIPS 2024)."""

from .mim_configuration_utils import MIMViTConfig


def _pair(name: str, value, low: float = 0.0, high: float | None = None) -> list[float]:
    if len(value) != 2 or value[0] > value[1] or value[0] < low or (high is not None and value[1] > high):
        bound = f" within [{low}, {high}]" if high is not None else f" >= {low}"
        raise ValueError(f"{name} must be an increasing pair (min, max){bound}, got {value}")
    return [float(v) for v in value]


class JEPAConfig(MIMViTConfig):
    r"""
    ViT encoder without a cls token (see [`MIMViTConfig`]; I-JEPA's ViT) plus a narrow predictor and multi-block
    masking. Defaults follow facebookresearch/ijepa (``configs/in1k_vith14_ep300.yaml``) on a ViT-B/16 backbone.
    There is no ``mask_ratio`` (an override is refused): ``context_scale``, ``target_scale`` and
    ``num_target_blocks`` set how much is hidden.

    Args:
        predictor_hidden_size (`int`, defaults to 384), predictor_num_hidden_layers (`int`, defaults to 12),
        predictor_num_attention_heads (`int`, defaults to 12): the predictor ViT (official ``pred_emb_dim`` 384,
            ``pred_depth`` 12; its heads equal the encoder's).
        num_target_blocks (`int`, defaults to 4): target blocks per image (``npred``).
        target_scale (`list[float]`, defaults to [0.15, 0.2]), target_aspect_ratio (`list[float]`, defaults to
            [0.75, 1.5]): size of each target block as a fraction of the patches, and its height / width.
        context_scale (`list[float]`, defaults to [0.85, 1.0]): size of the square context block before the
            targets are cut out of it.
        min_keep (`int`, defaults to 10): a block must keep more than this many patches.
        allow_overlap (`bool`, defaults to False): let the context see target patches.
        ema_momentum (`list[float]`, defaults to [0.996, 1.0]): EMA momentum of the target encoder, linear from
            the first to the second value over the run.
    """

    model_type = "mim_jepa"

    use_cls_token: bool = False
    predictor_hidden_size: int = 384
    predictor_num_hidden_layers: int = 12
    predictor_num_attention_heads: int = 12
    num_target_blocks: int = 4
    target_scale: list[float] | tuple[float, float] = (0.15, 0.2)
    target_aspect_ratio: list[float] | tuple[float, float] = (0.75, 1.5)
    context_scale: list[float] | tuple[float, float] = (0.85, 1.0)
    min_keep: int = 10
    allow_overlap: bool = False
    ema_momentum: list[float] | tuple[float, float] = (0.996, 1.0)

    def __post_init__(self, **kwargs):
        self.target_scale = _pair("target_scale", self.target_scale, 0.0, 1.0)
        self.context_scale = _pair("context_scale", self.context_scale, 0.0, 1.0)
        self.target_aspect_ratio = _pair("target_aspect_ratio", self.target_aspect_ratio, 1e-3)
        self.ema_momentum = _pair("ema_momentum", self.ema_momentum, 0.0, 1.0)
        if self.use_cls_token:
            raise ValueError("JEPA encoders have no cls token (I-JEPA); set use_cls_token=False")
        if self.num_target_blocks < 1:
            raise ValueError(f"num_target_blocks must be >= 1, got {self.num_target_blocks}")
        if self.predictor_hidden_size % self.predictor_num_attention_heads:
            raise ValueError(
                f"predictor_hidden_size {self.predictor_hidden_size} must be divisible by "
                f"predictor_num_attention_heads {self.predictor_num_attention_heads}"
            )
        super().__post_init__(**kwargs)
