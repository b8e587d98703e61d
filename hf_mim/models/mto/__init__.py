from hf_mim.models.mto.configuration_mto import MTOConfig
from hf_mim.models.mto.modeling_mto import MTOForImageClassification, MTOForPreTraining, MTOModel
from hf_mim.models.simmim import METHOD as SIMMIM
from hf_mim.registry import MethodSpec

METHOD = MethodSpec(
    name="mto",
    config_class=MTOConfig,
    model_class=MTOModel,
    pretraining_class=MTOForPreTraining,
    classification_class=MTOForImageClassification,
    paper="Emerging Property of Masked Token for Effective Pre-training (Choi et al., ECCV 2024)",
    paper_url="https://arxiv.org/abs/2404.08330",
    license="mit",  # inherits the SimMIM host code's licence; MTO's own licence is unknown
    tiny_config=dict(SIMMIM.tiny_config),
    demo_config=dict(SIMMIM.demo_config),
    # the host's (SimMIM) optimiser recipe; the paper trains about half the host's epochs [unverified]
    training_defaults=dict(SIMMIM.training_defaults),
)

__all__ = ["METHOD", "MTOConfig", "MTOForImageClassification", "MTOForPreTraining", "MTOModel"]
