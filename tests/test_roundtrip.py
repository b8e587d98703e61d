"""Every registered method: Auto classes, bit-exact save/load, classification transfer, remote code."""

import json
import textwrap

import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoConfig,
    AutoImageProcessor,
    AutoModel,
    AutoModelForImageClassification,
    AutoModelForPreTraining,
)

import hf_mim
from tests.conftest import model_inputs, pixels_for, processor_for, run_python, tiny_config

METHODS = sorted(name for name, spec in hf_mim.METHODS.items() if spec.modality == "image")  # video: test_videomae2
ALL_METHODS = sorted(hf_mim.METHODS)


def build(method):
    torch.manual_seed(0)
    spec = hf_mim.get_method(method)
    config = tiny_config(method)
    return spec, config, spec.pretraining_class(config).eval(), processor_for(spec, config)


@pytest.mark.parametrize("method", METHODS)
def test_auto_classes_and_bit_exact_roundtrip(method, tmp_path, images_rgb32):
    spec, config, model, processor = build(method)
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    saved = load_file(tmp_path / "model.safetensors")
    state = model.state_dict()
    assert set(saved) == set(state) and all(torch.equal(saved[k], state[k]) for k in saved)

    assert type(AutoConfig.from_pretrained(tmp_path)) is spec.config_class
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
    assert type(loaded) is spec.pretraining_class
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in state.items())
    inputs = spec.make_inputs(model, images_rgb32)
    with torch.no_grad():
        assert torch.equal(model(**inputs).loss, loaded(**inputs).loss)
    assert type(AutoModel.from_pretrained(tmp_path)) is spec.model_class
    assert type(AutoImageProcessor.from_pretrained(tmp_path)) is type(processor)


@pytest.mark.parametrize("method", METHODS)
def test_encoder_loads_into_classifier_without_spurious_keys(method, tmp_path, images_rgb32):
    spec, config, model, _ = build(method)
    model.save_pretrained(tmp_path)
    classifier, info = AutoModelForImageClassification.from_pretrained(
        tmp_path, num_labels=10, output_loading_info=True
    )
    assert type(classifier) is spec.classification_class
    assert info["unexpected_keys"] == set() and info["mismatched_keys"] == set()
    assert {k.split(".")[0] for k in info["missing_keys"]} <= {"classifier", "fc_norm"}
    for key, value in model.encoder.state_dict().items():
        if key != "mask_token":
            assert torch.equal(classifier.encoder.state_dict()[key], value), key
    labels = torch.arange(8) % 10
    out = classifier(images_rgb32, labels=labels)
    assert out.logits.shape == (8, 10) and out.loss.requires_grad


def test_remote_code_loads_where_hf_mim_is_not_installed(tmp_path, images_rgb32):
    """Every registered method's checkpoint (every modality) loads with trust_remote_code in an interpreter without
    hf_mim, with its modality's Auto processor, and gives the same pre-training loss and encoder features bit for bit
    (one interpreter for all methods: its start-up dominates the cost, so per-method tests do not start their own)."""
    expected = {}
    for method in ALL_METHODS:
        spec, config, model, processor = build(method)
        checkpoint = tmp_path / method
        model.save_pretrained(checkpoint)
        processor.save_pretrained(checkpoint)
        auto_map = json.loads((checkpoint / "config.json").read_text())["auto_map"]
        assert set(auto_map) >= {"AutoConfig", "AutoModel", "AutoModelForPreTraining"}, method
        pixels = pixels_for(spec, config, images_rgb32[:4])
        inputs = spec.make_inputs(model, pixels)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # bit-exact comparison across processes: one thread on both sides, whatever the load
        try:
            with torch.no_grad():
                encoder = AutoModel.from_pretrained(checkpoint).eval()
                reference = {"loss": model(**inputs).loss, "features": encoder(**model_inputs(pixels))[0]}
        finally:
            torch.set_num_threads(threads)
        torch.save({"encoder_inputs": model_inputs(pixels), "inputs": inputs, **reference}, checkpoint / "reference.pt")
        expected[method] = f"OK {method} {spec.pretraining_class.__name__} {type(encoder).__name__} {type(processor).__name__}"
    auto_processors = {method: hf_mim.get_method(method).data.auto_processor for method in ALL_METHODS}
    script = textwrap.dedent(
        f"""
        import traceback
        import torch
        import transformers
        torch.set_num_threads(1)
        try:
            import hf_mim
            raise SystemExit("hf_mim must not be importable here")
        except ImportError:
            pass
        for method, auto_processor in {auto_processors!r}.items():
            checkpoint = {str(tmp_path)!r} + "/" + method
            try:
                ref = torch.load(checkpoint + "/reference.pt", weights_only=True)
                model = transformers.AutoModelForPreTraining.from_pretrained(checkpoint, trust_remote_code=True).eval()
                assert "transformers_modules" in type(model).__module__
                encoder = transformers.AutoModel.from_pretrained(checkpoint, trust_remote_code=True).eval()
                processor = getattr(transformers, auto_processor).from_pretrained(checkpoint, trust_remote_code=True)
                with torch.no_grad():
                    assert torch.equal(model(**ref["inputs"]).loss, ref["loss"]), "loss differs"
                    assert torch.equal(encoder(**ref["encoder_inputs"])[0], ref["features"]), "features differ"
                print("OK", method, type(model).__name__, type(encoder).__name__, type(processor).__name__)
            except Exception:
                print("FAILED", method, traceback.format_exc().splitlines()[-1])
        """
    )
    result = run_python(script, tmp_path, env={"HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"},
                        block_hf_mim=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert [line for line in result.stdout.splitlines() if line.startswith(("OK", "FAILED"))] == list(expected.values()), result.stdout[-3000:]


def test_checkpoint_of_another_method_raises_instead_of_random_init(tmp_path):
    """An MAE checkpoint in SimMIM's class used to warn and initialise SimMIM's decoder and mask token at random;
    a new task head's missing weights stay the normal load report."""
    hf_mim.MAEForPreTraining(tiny_config("mae")).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"is a mim_mae checkpoint, not simmim: 3 weights of SimMIMForPreTraining "
                                         r"missing from it \(decoder.0.bias, decoder.0.weight, encoder.mask_token\)"):
        hf_mim.SimMIMForPreTraining.from_pretrained(tmp_path)
    classifier, info = hf_mim.get_method("mae").classification_class.from_pretrained(tmp_path, output_loading_info=True)
    assert sorted(info["missing_keys"]) == ["classifier.bias", "classifier.weight", "fc_norm.bias", "fc_norm.weight"]
    assert type(AutoModelForPreTraining.from_pretrained(tmp_path)) is hf_mim.MAEForPreTraining
def test_pipeline_on_a_saved_checkpoint_needs_no_trust_remote_code(tmp_path, images_rgb32):
    spec, config, model, processor = build("mae")
    model.save_pretrained(tmp_path / "checkpoint")  # with its remote code and auto_map, as Trainer saves it
    processor.save_pretrained(tmp_path / "checkpoint")
    script = textwrap.dedent(
        f"""
        import numpy as np, torch
        from PIL import Image
        import hf_mim
        from transformers import AutoModel, pipeline
        extractor = pipeline("image-feature-extraction", model={str(tmp_path / "checkpoint")!r})
        assert type(extractor.model) is hf_mim.MAEModel, type(extractor.model)
        image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
        features = extractor(image, return_tensors=True)
        with torch.no_grad():
            expected = extractor.model(**extractor.image_processor(image, return_tensors="pt")).last_hidden_state
        assert torch.equal(features, expected)
        print("OK")
        """
    )
    # stdin is closed: a trust_remote_code prompt would fail the pipeline's processor loading and print it
    result = run_python(script, tmp_path, env={"HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]
    assert "trust_remote_code" not in result.stdout + result.stderr
