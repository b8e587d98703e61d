"""The MethodSpec modality hooks: data loading, processor Auto class, Hub tags come from the spec."""

import dataclasses

import pytest
from transformers import AutoImageProcessor, AutoModelForImageClassification

from hf_mim.modalities import MODALITIES, get_modality, modality_for_config
from hf_mim.registry import discover, get_method


def test_image_methods_default_to_the_image_modality():
    specs = discover()
    images = [spec for spec in specs.values() if spec.modality == "image"]
    assert len(images) >= 18
    for spec in images:
        assert spec.data.auto_class("processor") is AutoImageProcessor
        assert spec.data.auto_class("classification") is AutoModelForImageClassification
    assert modality_for_config(get_method("mae").make_config("tiny")) is MODALITIES["image"]


def test_unknown_modality_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown modality 'smell'"):
        get_modality("smell")
    spec = dataclasses.replace(get_method("mae"), modality="smell")
    with pytest.raises(ValueError, match="unknown modality"):
        spec.data


def test_spec_level_loader_overrides_the_modality():
    calls = []
    spec = dataclasses.replace(get_method("mae"), load_dataset=lambda source, split, streaming: calls.append((source, split)) or "rows")
    assert spec.load_data("somewhere", "test") == "rows"
    assert calls == [("somewhere", "test")]
