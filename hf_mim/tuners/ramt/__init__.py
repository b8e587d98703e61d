"""R-AMT (Regularized Mask Tuning, ICCV 2023) for transformers' CLIP: see :mod:`.mask_tuning` and
:mod:`.training_ramt`.

A tuner, not a model: it wraps a ``CLIPModel`` loaded with the Auto classes and saves only its masks, so nothing is
registered with the Auto classes (there is no R-AMT model class) and no remote code is needed.
"""

from hf_mim.tuners.ramt.mask_tuning import (
    ATTENTION_TARGETS,
    MLP_TARGETS,
    MaskedConv2d,
    MaskedLinear,
    MaskTunedModel,
    MaskTuningConfig,
    apply_mask_tuning,
    masked_layers,
    masks_disabled,
    pack_mask,
    unpack_mask,
)

# the training side subclasses transformers' Trainer, whose import is heavy: its names load on first use
_TRAINING_NAMES = ("CLIPZeroShotClassifier", "MaskTuningTrainer", "gradient_dropout", "mask_tuning_gradients",
                   "soft_cross_entropy", "DEFAULT_TEMPLATES")

__all__ = ["ATTENTION_TARGETS", "MLP_TARGETS", "MaskTuningConfig", "MaskedConv2d", "MaskedLinear", "MaskTunedModel",
           "apply_mask_tuning", "masked_layers", "masks_disabled", "pack_mask", "unpack_mask", *_TRAINING_NAMES]


def __getattr__(name: str):
    if name in _TRAINING_NAMES:
        from hf_mim.tuners.ramt import training_ramt

        return getattr(training_ramt, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
