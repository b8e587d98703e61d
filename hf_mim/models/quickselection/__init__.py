import torch

from hf_mim.models.quickselection.configuration_quickselection import QuickSelectionConfig
from hf_mim.models.quickselection.modeling_quickselection import (
    QuickSelectionForPreTraining,
    QuickSelectionModel,
    SparseLinear,
)
from hf_mim.processing.tabular_processing_mim import TabularFeatureExtractor
from hf_mim.registry import MethodSpec

TINY = dict(feature_size=16, hidden_size=32, epsilon=4)
DEMO = dict(hidden_size=200, epsilon=13)


def example_inputs(model, rows: dict, generator) -> dict:
    """Rows (``{"input_values": [B, feature_size]}``) plus a fixed standard normal ``noise`` draw."""
    return {**rows, "noise": torch.randn(rows["input_values"].shape, generator=generator)}


METHOD = MethodSpec(
    name="quickselection",
    config_class=QuickSelectionConfig,
    model_class=QuickSelectionModel,
    pretraining_class=QuickSelectionForPreTraining,
    paper="Quick and Robust Feature Selection: the Strength of Energy-efficient Sparse Training for Autoencoders "
    "(Atashgahi et al., Machine Learning 2022)",
    paper_url="https://arxiv.org/abs/2012.00560",
    license="mit",
    tiny_config=TINY,
    demo_config=DEMO,
    example_inputs=example_inputs,
    processor_class=TabularFeatureExtractor,
    modality="tabular",
    callbacks=lambda: [set_callback_class()()],
    # train_sparse_DAE.py: SGD momentum 0.9, lr 0.01, batch 100 (the last incomplete batch skipped), 100 epochs,
    # weight decay 1e-5. The official decay is w -= 1e-5 w outside the momentum and not scaled by lr; torch's SGD
    # folds it into the gradient (and Trainer spares biases): a difference of ~1e-6 per step in the weights' scale.
    training_defaults=dict(optim="sgd", optim_args="momentum=0.9", learning_rate=0.01, weight_decay=1e-5,
                           per_device_train_batch_size=100, dataloader_drop_last=True, num_train_epochs=100,
                           lr_scheduler_type="constant", warmup_steps=0.0),
)


def set_callback_class():
    """:class:`~hf_mim.models.quickselection.set_training.SETCallback`, imported on first use: its module imports
    hf_mim's Trainer module, which `import hf_mim` (every method's package is imported to register it) must not
    load."""
    from hf_mim.models.quickselection.set_training import SETCallback

    return SETCallback


def __getattr__(name: str):
    if name == "SETCallback":
        return set_callback_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["METHOD", "QuickSelectionConfig", "QuickSelectionForPreTraining", "QuickSelectionModel", "SETCallback", "SparseLinear"]
