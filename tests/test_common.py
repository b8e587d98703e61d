"""transformers-style common checks over every registered method (``hf_mim.registry.discover()``), so a new
method inherits them: construction on the meta device, init of every weight from_pretrained may leave missing,
tuple outputs equal to dict outputs, hidden states / attentions on request, eager == sdpa.

Kept to three tests per method, each building its models once: the module runs over every method."""

import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

import hf_mim
from hf_mim.layers import Attention, CrossAttention, RelativePositionBias, drop_path_rates
from tests.conftest import model_inputs, pixels_for

METHODS = sorted(hf_mim.registry.discover())


def model_classes(spec):
    return [cls for cls in (spec.model_class, spec.pretraining_class, spec.classification_class) if cls is not None]


def has_attention(model) -> bool:
    return any(isinstance(module, (Attention, CrossAttention)) for module in model.modules())


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
    """A forward with every random draw seeded (masks drawn inside forward included)."""
    torch.manual_seed(0)
    model.mask_rng = torch.Generator().manual_seed(0)
    with torch.no_grad():
        return model(**inputs, **kwargs)


def assert_same_outputs(output, reference, atol=0.0):
    """Every field of ``output`` equals that field of ``reference`` (``atol`` 0: bit-exact)."""
    assert len(output) > 1 and set(output) <= set(reference)
    for key in output:
        got, expected = flat_tensors(output[key]), flat_tensors(reference[key])
        assert len(got) == len(expected), key
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, atol=atol, rtol=0 if atol == 0 else 1e-4, msg=key)


def test_drop_path_rates_are_the_official_linspace():
    assert drop_path_rates(0.1, 4) == torch.linspace(0, 0.1, 4).tolist()
    assert drop_path_rates(0.3, 1) == [0.0]
    with torch.device("meta"):
        assert drop_path_rates(0.2, 3) == pytest.approx([0.0, 0.1, 0.2])


@pytest.mark.parametrize("method", METHODS)
def test_meta_construction_weight_init_and_tuple_outputs(method, images_rgb32):
    """Every class builds under ``torch.device("meta")`` with the shapes of a normal build; ``_init_weights``
    (what from_pretrained runs on missing keys) sets every parameter (they start as NaN here, so a forgotten one
    stays NaN) and rebuilds every buffer exactly; ``return_dict=False`` gives the dict output's tensors."""
    spec = hf_mim.get_method(method)
    config = spec.make_config("tiny")
    for cls in model_classes(spec):
        name = cls.__name__
        with torch.device("meta"):
            model = cls(config)
        assert all(t.is_meta for t in [*model.parameters(), *model.buffers()]), name
        torch.manual_seed(0)
        reference = cls(config).eval()
        assert {k: v.shape for k, v in model.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}

        model.to_empty(device="cpu")
        with torch.no_grad():
            for tensor in [*model.parameters(), *model.buffers()]:
                tensor.fill_(float("nan") if tensor.is_floating_point() else -7)
        for module in model.modules():
            module._is_hf_initialized = False
        model.init_weights()
        for key, param in model.named_parameters():
            assert torch.isfinite(param).all(), f"{name}.{key} is not initialised by _init_weights"
        buffers = dict(reference.named_buffers())
        for key, buffer in model.named_buffers():
            assert torch.equal(buffer, buffers[key]), f"{name}.{key} is not rebuilt by _init_weights"

        pixels = pixels_for(spec, config, images_rgb32[:4])
        inputs = spec.make_inputs(reference, pixels) if cls is spec.pretraining_class else model_inputs(pixels)
        as_dict = run(reference, inputs, output_hidden_states=True)
        as_tuple = run(reference, inputs, output_hidden_states=True, return_dict=False)
        assert isinstance(as_tuple, tuple) and len(as_tuple) == len(as_dict.to_tuple()), name
        got, expected = flat_tensors(as_tuple), flat_tensors(as_dict.to_tuple())
        assert len(got) == len(expected) > 0 and all(torch.equal(a, b) for a, b in zip(got, expected)), name


@pytest.mark.parametrize("method", METHODS)
def test_loading_without_the_head_initialises_it(method, tmp_path):
    spec = hf_mim.get_method(method)
    torch.manual_seed(0)
    spec.pretraining_class(spec.make_config("tiny")).save_pretrained(tmp_path)
    state = load_file(tmp_path / "model.safetensors")
    head = {key for key in state if not key.startswith("encoder.")}
    assert head, "a pre-training model has weights outside its encoder"
    save_file({k: v for k, v in state.items() if k not in head}, tmp_path / "model.safetensors", {"format": "pt"})
    reloaded, info = spec.pretraining_class.from_pretrained(tmp_path, output_loading_info=True)
    loaded = reloaded.state_dict()
    assert head & set(loaded) <= set(info["missing_keys"])
    changed = 0
    for key in head & set(loaded):
        assert torch.isfinite(loaded[key].float()).all(), key
        changed += not torch.equal(loaded[key], state[key])
    assert changed, "the missing head was not re-initialised"
    for key in set(state) - head:
        assert torch.equal(loaded[key], state[key]), key


@pytest.mark.parametrize("method", METHODS)
def test_hidden_states_attentions_and_sdpa_equal_eager(method, images_rgb32):
    """Hidden states and attentions only when asked (the loss unchanged); sdpa == eager; attention maps asked
    for under sdpa come from eager attention for that call (with a warning, see test_layers)."""
    spec = hf_mim.get_method(method)
    torch.manual_seed(0)
    model = spec.pretraining_class(spec.make_config("tiny")).eval()
    attention = has_attention(model)
    if attention:
        model.set_attn_implementation("eager")
        for module in model.modules():  # exercise the attention-bias path too (the table starts at zero)
            if isinstance(module, RelativePositionBias):
                torch.nn.init.normal_(module.relative_position_bias_table, std=0.5)
    inputs = spec.make_inputs(model, pixels_for(spec, model.config, images_rgb32[:4]))
    plain = run(model, inputs)
    eager = run(model, inputs, output_hidden_states=True, output_attentions=True)
    assert plain.hidden_states is None and plain.attentions is None
    assert torch.equal(plain.loss, eager.loss)
    assert eager.hidden_states and all(torch.is_tensor(h) for h in eager.hidden_states)
    if not attention:
        return
    assert eager.attentions and all(torch.is_tensor(a) for a in eager.attentions)
    assert all(torch.allclose(a.float().sum(-1), torch.ones(())) for a in eager.attentions)  # softmax rows

    model.set_attn_implementation("sdpa")
    assert_same_outputs(run(model, inputs, output_hidden_states=True), eager, atol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fallback = run(model, inputs, output_hidden_states=True, output_attentions=True)
    assert model.config._attn_implementation == "sdpa"
    assert all(torch.is_tensor(a) for a in fallback.attentions)
    assert_same_outputs(fallback, eager, atol=1e-5)
