"""transformers-style common checks over every registered method (``hf_mim.registry.discover()``), so a new
method inherits them: meta-device construction, init of every missing weight, eager == sdpa, tuple outputs."""

import warnings

import pytest
import torch

import hf_mim
from hf_mim.layers import Attention, CrossAttention, RelativePositionBias, drop_path_rates

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


def flat_tensors(output) -> list:
    """Every tensor in a (nested) model output, in order (ModelOutput fields, tuples, dicts)."""
    if torch.is_tensor(output):
        return [output]
    if isinstance(output, dict):  # ModelOutput included: its set fields, in order
        return [t for value in output.values() for t in flat_tensors(value)]
    if isinstance(output, (tuple, list)):
        return [t for value in output for t in flat_tensors(value)]
    return []


def run(model, inputs, **kwargs):
    torch.manual_seed(0)
    model.mask_rng = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return model(**inputs, **kwargs)


@pytest.mark.parametrize("method", METHODS)
def test_sdpa_equals_eager_and_falls_back_to_eager_for_attention_maps(method, images_rgb32):
    spec, model = build_pretraining(method, "eager")
    if not has_attention(model):
        pytest.skip("no attention layers")
    for module in model.modules():  # exercise the attention-bias path too (the table starts at zero)
        if isinstance(module, RelativePositionBias):
            torch.nn.init.normal_(module.relative_position_bias_table, std=0.5)
    inputs = spec.make_inputs(model, images_rgb32[:4])
    eager = run(model, inputs, output_hidden_states=True, output_attentions=True)
    model.set_attn_implementation("sdpa")
    sdpa = run(model, inputs, output_hidden_states=True)
    assert_same_outputs(sdpa, eager, atol=1e-5)
    # attention maps under sdpa: that call runs eager attention (with a warning, see test_layers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fallback = run(model, inputs, output_hidden_states=True, output_attentions=True)
    assert model.config._attn_implementation == "sdpa"
    assert all(torch.is_tensor(a) for a in fallback.attentions)
    assert_same_outputs(fallback, eager, atol=1e-5)


def assert_same_outputs(output, reference, atol=0.0):
    """Every field of ``output`` equals that field of ``reference`` (``atol`` 0: bit-exact)."""
    assert len(output) > 1 and set(output) <= set(reference)
    for key in output:
        got, expected = flat_tensors(output[key]), flat_tensors(reference[key])
        assert len(got) == len(expected), key
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, atol=atol, rtol=0 if atol == 0 else 1e-4, msg=key)
