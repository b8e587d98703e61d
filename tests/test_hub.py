"""Hub round trips for real, against the Hub-compatible server in tests/hub_server.py on 127.0.0.1.

The client side runs in fresh interpreters, because huggingface_hub reads HF_ENDPOINT when it is imported."""

import json
import textwrap

import pytest

from tests.conftest import run_python
from tests.hub_server import HubServer

PRELUDE = textwrap.dedent(
    """
    import json
    from pathlib import Path
    import torch
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(2))
    """
)


@pytest.fixture(scope="module")
def hub():
    with HubServer() as server:
        yield server


def client_env(hub, home, offline=False):
    return {
        "HF_ENDPOINT": "http://127.0.0.1:9" if offline else hub.url,  # offline: nothing listens on port 9
        "HF_HUB_OFFLINE": "1" if offline else "0",
        "HF_TOKEN": "hf_test_token",
        "HF_HOME": str(home),
        "HF_HUB_DISABLE_TELEMETRY": "1",
    }


def checked(result):
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def published(hub, tmp_path_factory):
    """A tiny MAE saved locally, published with ``push_checkpoint`` (with results) and with ``model.push_to_hub``."""
    work = tmp_path_factory.mktemp("publish")
    script = PRELUDE + textwrap.dedent(
        """
        import hf_mim
        from huggingface_hub import HfApi, ModelCard
        from PIL import Image
        from transformers import AutoImageProcessor, AutoModel, AutoModelForPreTraining
        from hf_mim.hub.push import push_checkpoint

        torch.manual_seed(0)
        spec = hf_mim.get_method("mae")
        config = spec.make_config("tiny")
        model = spec.pretraining_class(config).eval()
        model.save_pretrained("local")
        spec.make_processor(config).save_pretrained("local")
        Path("local/optimizer.pt").write_bytes(b"training state, not for the Hub")
        Path("mine").mkdir()
        for index in range(3):
            Image.new("RGB", (40, 40), (80 * index, 0, 0)).save(f"mine/{index}.png")
        results = {"knn_top1_k20": 0.61, "linear_probe_top1": 0.7, "eval_loss": 1.5, "epoch": 3.0,
                   "eval_runtime": 2.0, "eval_dataset": "demo"}
        push_checkpoint("local", "tester/tiny-mae", results=results, dataset="uoft-cs/cifar10", images=["mine"])
        model.push_to_hub("tester/tiny-mae-direct")

        loaded = AutoModelForPreTraining.from_pretrained("tester/tiny-mae").eval()
        encoder = AutoModel.from_pretrained("tester/tiny-mae").eval()
        processor = AutoImageProcessor.from_pretrained("tester/tiny-mae")
        with torch.no_grad():
            reference = model(pixel_values=images, noise=noise).loss
            assert torch.equal(loaded(pixel_values=images, noise=noise).loss, reference)
            features = encoder(pixel_values=images)[0]
            assert torch.equal(features, model.encoder(pixel_values=images)[0])
        torch.save({"loss": reference, "features": features}, "reference.pt")
        card = ModelCard.load("tester/tiny-mae")
        info = HfApi().model_info("tester/tiny-mae")
        print(json.dumps({"card": card.data.to_dict(), "sha": info.sha, "processor": type(processor).__name__,
                          "loaded": type(loaded).__module__}))
        """
    )
    return work, checked(run_python(script, work, client_env(hub, work / "home")))


def test_push_uploads_model_code_card_and_image_but_no_training_state(hub, published):
    _, report = published
    files = hub.files("tester/tiny-mae")
    for name in ["config.json", "model.safetensors", "preprocessor_config.json", "README.md", "reconstructions.png",
                 "modeling_mae.py", "configuration_mae.py", "image_processing_mim.py"]:
        assert name in files, f"{name} was not pushed"
    assert "optimizer.pt" not in files
    assert json.loads(files["config.json"])["auto_map"]["AutoModel"] == "modeling_mae.MAEModel"
    assert files["reconstructions.png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert report["sha"] == hub.repos["tester/tiny-mae"].commits[-1].oid
    assert report["processor"] == "MIMImageProcessor" and report["loaded"].startswith("hf_mim.")
    direct = hub.files("tester/tiny-mae-direct")
    assert {"model.safetensors", "README.md", "modeling_mae.py", "preprocessor_config.json"} <= set(direct)


def test_card_metadata_round_trips_with_model_index(published):
    card = published[1]["card"]
    assert card["library_name"] == "transformers"
    assert card["pipeline_tag"] == "image-feature-extraction"
    assert {"hf_mim", "mae", "masked-image-modeling"} <= set(card["tags"])
    assert card["license"] == "cc-by-nc-4.0" and card["datasets"] == ["uoft-cs/cifar10"]
    results = card["model-index"][0]["results"]
    metrics = {m["name"]: m["value"] for entry in results for m in entry["metrics"]}
    assert sorted(metrics.values()) == [0.61, 0.7], metrics  # loss, epoch and runtime are not results
    # measured on the demo data, not on the pre-training dataset
    assert {entry["dataset"]["type"] for entry in results} == {"zalando-datasets/fashion_mnist"}


def test_card_text_names_the_reconstruction_source_and_its_snippet_runs_without_hf_mim(hub, published):
    work, _ = published
    card = hub.files("tester/tiny-mae")["README.md"].decode()
    assert "of images sampled from mine." in card and "github.com/hf-mim" not in card
    assert "| kNN (k=20) on frozen features | zalando-datasets/fashion_mnist | top-1 accuracy | 61.0% |" in card
    assert "epoch" not in card.split("## Evaluation")[1].split("##")[0]
    snippet = card.split("```python\n")[1].split("```")[0]
    from PIL import Image

    Image.new("RGB", (50, 40), "white").save(work / "image.jpg")
    script = snippet + "\nprint(json.dumps({'shape': list(features.shape), 'module': type(encoder).__module__}))"
    report = checked(run_python("import json\n" + script, work, client_env(hub, work / "snippet_home"), block_hf_mim=True))
    assert report["shape"] == [1, 17, 32] and "transformers_modules" in report["module"]


def test_remote_code_from_the_hub_then_offline_from_the_cache(hub, published):
    work, _ = published
    script = PRELUDE + textwrap.dedent(
        """
        from transformers import AutoModel, AutoModelForPreTraining
        reference = torch.load("reference.pt", weights_only=True)
        model = AutoModelForPreTraining.from_pretrained("tester/tiny-mae", trust_remote_code=True).eval()
        encoder = AutoModel.from_pretrained("tester/tiny-mae", trust_remote_code=True).eval()
        assert "transformers_modules" in type(model).__module__, type(model).__module__
        with torch.no_grad():
            assert torch.equal(model(pixel_values=images, noise=noise).loss, reference["loss"])
            assert torch.equal(encoder(pixel_values=images)[0], reference["features"])
        print(json.dumps({"module": type(model).__module__}))
        """
    )
    home = work / "remote_home"  # an empty cache: everything comes from the server
    online = checked(run_python(script, work, client_env(hub, home), block_hf_mim=True))
    assert "tester" in online["module"]
    requests_before = len(hub.requests)
    offline = checked(run_python(script, work, client_env(hub, home, offline=True), block_hf_mim=True))
    assert offline["module"] == online["module"]
    assert len(hub.requests) == requests_before  # the second load never talked to the server


def test_failed_push_says_what_failed_and_keeps_the_checkpoint(hub, tmp_path):
    script = PRELUDE + textwrap.dedent(
        """
        import hashlib
        import hf_mim
        from hf_mim.hub.push import PushError, push_checkpoint
        spec = hf_mim.get_method("simmim")
        config = spec.make_config("tiny")
        spec.pretraining_class(config).save_pretrained("local")
        spec.make_processor(config).save_pretrained("local")
        def snapshot():
            return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path("local").iterdir())}
        before = snapshot()
        try:
            push_checkpoint("local", "tester/rejected", reconstructions=False)
            message = None
        except PushError as error:
            message = str(error)
        print(json.dumps({"error": message, "before": before, "after": snapshot()}))
        """
    )
    hub.fail_commits = True
    try:
        report = checked(run_python(script, tmp_path, client_env(hub, tmp_path / "home")))
    finally:
        hub.fail_commits = False
    assert report["error"] is not None
    assert "while uploading to tester/rejected" in report["error"] and "was not modified" in report["error"]
    assert "fail_commits" in report["error"]  # the server's reason reaches the user
    assert report["after"] == report["before"]  # same files, same bytes
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= set(report["after"])
    assert "README.md" not in report["after"]  # the card was staged elsewhere, never written into the checkpoint
    assert [c.message for c in hub.repos["tester/rejected"].commits] == ["initial commit"]
