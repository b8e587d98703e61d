import pytest
import torch

from hf_mim.bench import build_pair, kernel_share


@pytest.mark.parametrize("method", ["mae", "simmim"])
def test_benchmark_pairs_compute_the_same_thing(method):
    """Speed ratios only mean something if both sides do the same work: same weights, masks, loss, features."""
    ours, theirs, ours_encoder, theirs_encoder, make_inputs = build_pair(method, "tiny", "sdpa", 32, 4)
    for model in (ours, theirs, ours_encoder, theirs_encoder):
        model.eval()
    pixel_values = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    inputs = make_inputs(2)
    with torch.no_grad():
        loss_ours = ours(pixel_values=pixel_values, **inputs).loss
        loss_theirs = theirs(pixel_values=pixel_values, **inputs).loss
        features_ours = ours_encoder(pixel_values=pixel_values).last_hidden_state
        in_order = {"noise": torch.arange(64.0).expand(2, -1)} if method == "mae" else {}
        features_theirs = theirs_encoder(pixel_values=pixel_values, **in_order).last_hidden_state
    assert torch.allclose(loss_ours, loss_theirs, atol=1e-5)
    assert torch.allclose(features_ours, features_theirs, atol=1e-4)


def test_kernel_share_separates_matrix_math_from_elementwise_work():
    a = torch.randn(256, 256)
    assert kernel_share(lambda: [a @ a for _ in range(20)]) > 0.8
    assert kernel_share(lambda: [a.exp().sin() for _ in range(20)]) < 0.05


def test_end_to_end_benchmark_runs_both_pipelines_on_the_same_images():
    """benchmarks/e2e.py --quick: hf-mim pretrain and the run_mae.py recipe both train (finite loss) on the same number
    of images, and the stage costs are measured for both (timings themselves are not checked)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parents[1] / "benchmarks" / "e2e.py"
    spec = importlib.util.spec_from_file_location("e2e", path)
    e2e = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(e2e)
    results = {name: e2e.worker(e2e.parse(["--quick", "--threads", "1", "--worker", name])) for name in e2e.PIPELINES}
    assert results["hf_mim"]["images"] == results["transformers"]["images"] == 4 * 3
    for result in results.values():
        assert torch.isfinite(torch.tensor(result["loss"]))
        assert result["train_ips"] > 0 and result["loader_ips"] > 0
        assert set(result["stage_cpu_ms"]) == {"decode", "augment", "collate"}
