"""Model cards (rendered offline) and the CLI around conversion; pushing itself is tested in test_hub.py."""

import json

import numpy as np
import pytest
import torch
import yaml
from PIL import Image
from transformers import AutoConfig, ViTMAEForPreTraining

import hf_mim
from hf_mim.cli import main
from hf_mim.hub.cards import build_model_card, template_path, training_summary
from hf_mim.hub.push import PushError, push_checkpoint
from tests.conftest import run_python


def front_matter(card) -> dict:
    return yaml.safe_load(str(card).split("---")[1])


@pytest.mark.parametrize("method", sorted(n for n, s in hf_mim.METHODS.items() if s.modality == "image"))
def test_every_method_has_a_template_that_renders(method, tmp_path):
    assert template_path(method).exists()
    spec = hf_mim.get_method(method)
    config = spec.make_config("tiny")
    spec.pretraining_class(config).save_pretrained(tmp_path)
    results = {"knn_top1_k20": 0.41, "linear_probe_top1": 0.52, "eval_loss": 1.7, "epoch": 3.0, "eval_runtime": 9.5,
               "eval_dataset": "uoft-cs/cifar10"}
    card = build_model_card(
        AutoConfig.from_pretrained(tmp_path), f"me/{method}-tiny", results=results, dataset="me/unlabelled-photos",
        training={"steps": 10, "learning_rate": 1e-3}, reconstruction_image="reconstructions.png",
    )
    meta = front_matter(card)
    assert meta["library_name"] == "transformers" and meta["pipeline_tag"] == "image-feature-extraction"
    assert {"hf_mim", "masked-image-modeling", method} <= set(meta["tags"])
    assert meta["license"] == spec.license and meta["datasets"] == ["me/unlabelled-photos"]  # pre-training data
    evaluations = meta["model-index"][0]["results"]
    assert [m["value"] for entry in evaluations for m in entry["metrics"]] == [0.41, 0.52]
    assert {entry["dataset"]["type"] for entry in evaluations} == {"uoft-cs/cifar10"}  # what results were measured on
    assert [m["name"] for entry in evaluations for m in entry["metrics"]] == [
        "Top-1 accuracy (kNN (k=20) on frozen features)", "Top-1 accuracy (linear probe on frozen features)"]
    body = str(card)
    assert "{{" not in body and "## Citation" in body and "trust_remote_code=True" in body
    assert f"`hidden_size` | {config.hidden_size}" in body and "| learning rate | 0.001 |" in body
    evaluation = body.split("## Evaluation")[1].split("\n## ")[0]
    assert "| linear probe on frozen features | uoft-cs/cifar10 | top-1 accuracy | 52.0% |" in evaluation
    assert not any(word in evaluation for word in ("epoch", "eval_loss", "runtime"))
    assert "github.com/hf-mim" not in body  # no link to a repository that does not exist
    if "![Reconstructions" in body:
        assert "of the bundled Fashion-MNIST demo test images, not this model's data." in body


def test_training_summary_from_a_pretraining_run(tmp_path):
    main(["pretrain", "--method", "mae", "--size", "tiny", "--output_dir", str(tmp_path), "--max_steps", "2",
          "--per_device_train_batch_size", "8", "--logging_steps", "1", "--disable_tqdm", "true", "--save_strategy", "no"])
    assert json.loads((tmp_path / "training_args.json").read_text())["max_steps"] == 2
    (tmp_path / "training_args.bin").unlink()  # the card reads the JSON settings, never the pickle
    summary = training_summary(tmp_path)
    assert summary["steps"] == 2 and summary["learning_rate"] == pytest.approx(1.5e-4 * 8 / 256)
    assert "first_logged_loss" in summary and summary["optimizer"].startswith("adamw")
    assert summary["warmup"] == "5% of the steps" and "warmup_steps" not in summary  # was shown as "0.05" steps


class RunsCode:
    def __reduce__(self):
        return (open, ("ran_code_from_pickle", "w"))


def test_card_never_unpickles_the_folder_being_pushed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save(RunsCode(), tmp_path / "training_args.bin")
    (tmp_path / "trainer_state.json").write_text(json.dumps({"global_step": 3, "log_history": []}))
    assert training_summary(tmp_path)["steps"] == 3
    assert not (tmp_path / "ran_code_from_pickle").exists()


def test_no_torch_load_without_weights_only():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for path in [*root.glob("hf_mim/**/*.py"), *root.glob("tests/*.py"), *root.glob("scripts/*.py"), *root.glob("benchmarks/*.py")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if "torch.load(" in line and "weights_only=True" not in line:
                raise AssertionError(f"{path.relative_to(root)}:{number} loads without weights_only=True: {line.strip()}")


def test_push_of_a_folder_without_model_fails_clearly(tmp_path):
    with pytest.raises(PushError, match="config.json is missing"):
        push_checkpoint(tmp_path, "me/nothing")


def test_convert_cli_both_directions(tmp_path):
    model = hf_mim.MAEForPreTraining(hf_mim.get_method("mae").make_config("tiny")).eval()
    model.save_pretrained(tmp_path / "ours")
    stats = {"image_mean": [0.49, 0.48, 0.45], "image_std": [0.25, 0.24, 0.26]}
    hf_mim.processor_for_config(model.config, **stats).save_pretrained(tmp_path / "ours")
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
    # both folders carry an image processor with the source's statistics; the transformers one needs no hf_mim
    image = Image.fromarray(np.arange(40 * 40 * 3, dtype=np.uint8).reshape(40, 40, 3))
    ours = hf_mim.processor_for_config(model.config, **stats)(image, return_tensors="pt")["pixel_values"]
    torch.save(ours, tmp_path / "ours.pt")
    image.save(tmp_path / "image.png")
    script = (
        "import torch; from PIL import Image; from transformers import AutoImageProcessor\n"
        "processor = AutoImageProcessor.from_pretrained('hf')\n"
        "values = processor(Image.open('image.png'), return_tensors='pt')['pixel_values']\n"
        "print(type(processor).__name__, (values - torch.load('ours.pt', weights_only=True)).abs().max().item())\n"
    )
    result = run_python(script, cwd=tmp_path, block_hf_mim=True)
    name, difference = result.stdout.split()
    assert name == "ViTImageProcessor" and float(difference) < 1e-5, result.stderr[-2000:]
    back = json.loads((tmp_path / "back" / "preprocessor_config.json").read_text())
    assert back["image_mean"] == stats["image_mean"] and back["image_std"] == stats["image_std"]
