"""transformers-style common checks over every registered method (``hf_mim.registry.discover()``), so a new
method inherits them: meta-device construction, init of every missing weight, eager == sdpa, tuple outputs."""

import pytest
import torch

import hf_mim
from hf_mim.layers import Attention, CrossAttention, drop_path_rates

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


def build_pretraining(method, attn_implementation="eager"):
    spec = hf_mim.get_method(method)
    config = spec.make_config("tiny")
    torch.manual_seed(0)
    model = spec.pretraining_class(config).eval()
    if has_attention(model):
        model.set_attn_implementation(attn_implementation)
    return spec, model


def has_attention(model) -> bool:
    return any(isinstance(module, (Attention, CrossAttention)) for module in model.modules())


@pytest.mark.parametrize("method", METHODS)
def test_pretraining_returns_hidden_states_and_attentions_when_asked(method, images_rgb32):
    spec, model = build_pretraining(method)
    inputs = spec.make_inputs(model, images_rgb32[:4])
    with torch.no_grad():
        plain = model(**inputs)
        full = model(**inputs, output_hidden_states=True, output_attentions=True)
    assert plain.hidden_states is None and plain.attentions is None
    assert torch.equal(plain.loss, full.loss)
    assert full.hidden_states and all(torch.is_tensor(h) for h in full.hidden_states)
    if has_attention(model):
        assert full.attentions and all(torch.is_tensor(a) for a in full.attentions)
        assert all(torch.allclose(a.float().sum(-1), torch.ones(())) for a in full.attentions)  # softmax rows
