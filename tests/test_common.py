"""transformers-style common checks over every registered method (``hf_mim.registry.discover()``), so a new
method inherits them: meta-device construction, init of every missing weight, eager == sdpa, tuple outputs."""

import pytest
import torch

import hf_mim
from hf_mim.layers import drop_path_rates

METHODS = sorted(hf_mim.registry.discover())


def model_classes(spec):
    return [cls for cls in (spec.model_class, spec.pretraining_class, spec.classification_class) if cls is not None]


def test_drop_path_rates_are_the_official_linspace():
    assert drop_path_rates(0.1, 4) == torch.linspace(0, 0.1, 4).tolist()
    assert drop_path_rates(0.3, 1) == [0.0]
    with torch.device("meta"):
        assert drop_path_rates(0.2, 3) == pytest.approx([0.0, 0.1, 0.2])


@pytest.mark.parametrize("method", METHODS)
def test_builds_on_the_meta_device(method):
    spec = hf_mim.get_method(method)
    config = spec.make_config("tiny")
    for cls in model_classes(spec):
        with torch.device("meta"):
            model = cls(config)
        tensors = dict(model.named_parameters()) | dict(model.named_buffers())
        assert tensors and all(t.is_meta for t in tensors.values()), cls.__name__
        torch.manual_seed(0)
        reference = {k: v.shape for k, v in cls(config).state_dict().items()}
        assert {k: v.shape for k, v in model.state_dict().items()} == reference, cls.__name__
