"""Model cards (rendered offline) and the CLI around conversion; pushing itself is tested in test_hub.py."""

import json

import pytest
import torch
import yaml
from transformers import AutoConfig, ViTMAEForPreTraining

import hf_mim
from hf_mim.cli import main
from hf_mim.hub.cards import build_model_card, template_path, training_summary
from hf_mim.hub.push import PushError, push_checkpoint


def front_matter(card) -> dict:
    return yaml.safe_load(str(card).split("---")[1])


@pytest.mark.parametrize("method", sorted(n for n, s in hf_mim.METHODS.items() if s.modality == "image"))
def test_every_method_has_a_template_that_renders(method, tmp_path):
    assert template_path(method).exists()
    spec = hf_mim.get_method(method)
    config = spec.make_config("tiny")
    spec.pretraining_class(config).save_pretrained(tmp_path)
    card = build_model_card(
        AutoConfig.from_pretrained(tmp_path), f"me/{method}-tiny",
        results={"knn_top1_k20": 0.41, "linear_probe_top1": 0.52}, dataset="cifar10",
        training={"steps": 10, "learning_rate": 1e-3},
    )
    meta = front_matter(card)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "image-feature-extraction"
    assert {"hf_mim", "masked-image-modeling", method} <= set(meta["tags"])
    assert meta["license"] == spec.license and meta["datasets"] == ["cifar10"]
    metrics = meta["model-index"][0]["results"][0]["metrics"]
    assert [m["value"] for m in metrics] == [0.41, 0.52]
    body = str(card)
    assert "{{" not in body and "## Citation" in body and "trust_remote_code=True" in body
    assert f"`hidden_size` | {config.hidden_size}" in body and "| learning rate | 0.001 |" in body


def test_training_summary_from_a_pretraining_run(tmp_path):
    main(["pretrain", "--method", "mae", "--size", "tiny", "--output_dir", str(tmp_path), "--max_steps", "2",
          "--per_device_train_batch_size", "8", "--logging_steps", "1", "--disable_tqdm", "true", "--save_strategy", "no"])
    summary = training_summary(tmp_path)
    assert summary["steps"] == 2 and summary["learning_rate"] == pytest.approx(1.5e-4 * 8 / 256)
    assert "first_logged_loss" in summary and summary["optimizer"].startswith("adamw")


def test_push_of_a_folder_without_model_fails_clearly(tmp_path):
    with pytest.raises(PushError, match="config.json is missing"):
        push_checkpoint(tmp_path, "me/nothing")


def test_convert_cli_both_directions(tmp_path):
    model = hf_mim.MAEForPreTraining(hf_mim.get_method("mae").make_config("tiny")).eval()
    model.save_pretrained(tmp_path / "ours")
    main(["convert", str(tmp_path / "ours"), str(tmp_path / "hf"), "--to", "transformers"])
    theirs = ViTMAEForPreTraining.from_pretrained(tmp_path / "hf").eval()
    main(["convert", str(tmp_path / "hf"), str(tmp_path / "back")])
    back = hf_mim.MAEForPreTraining.from_pretrained(tmp_path / "back").eval()
    images, noise = torch.randn(2, 3, 32, 32), torch.rand(2, 16)
    with torch.no_grad():
        reference = model(images, noise=noise).loss
        assert torch.allclose(theirs(images, noise=noise).loss, reference, atol=1e-6)
        assert torch.allclose(back(images, noise=noise).loss, reference, atol=1e-6)
    assert json.loads((tmp_path / "back" / "config.json").read_text())["model_type"] == "mim_mae"
