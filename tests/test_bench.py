import pytest
import torch

from hf_mim.bench import build_pair, count_flops, kernel_share


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


def load_benchmark(name: str):
    """A script of benchmarks/ (not a package) as a module."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_end_to_end_benchmark_runs_both_pipelines_on_the_same_images():
    """benchmarks/e2e.py --quick: hf-mim pretrain and the run_mae.py recipe both train (finite loss) on the same number
    of images, and the stage costs are measured for both (timings themselves are not checked)."""
    e2e = load_benchmark("e2e")
    results = {name: e2e.worker(e2e.parse(["--quick", "--threads", "1", "--worker", name])) for name in e2e.PIPELINES}
    assert results["hf_mim"]["images"] == results["transformers"]["images"] == 4 * 3
    for result in results.values():
        assert torch.isfinite(torch.tensor(result["loss"]))
        assert result["train_ips"] > 0 and result["loader_ips"] > 0
        assert set(result["stage_cpu_ms"]) == {"decode", "augment", "collate"}


def test_scaling_flop_count_follows_the_token_counts():
    """benchmarks/scaling.py's analytic FLOPs: MAE's encoder work shrinks with the mask ratio, SimMIM's does not;
    both grow with the image size, linearly with the batch; and the count is within 10% of torch's FlopCounterMode
    on the real model (ViT-B/16 MAE at 224 px: 58.7 analytic vs 55.9 counted GFLOP per training image)."""
    scaling = load_benchmark("scaling")
    options = scaling.parse(["--size", "tiny"])
    flops = scaling.training_flops
    assert flops("hf_mim MAE", options, 224, 0.9, 2) < flops("hf_mim MAE", options, 224, 0.5, 2)
    assert flops("hf_mim SimMIM", options, 224, 0.9, 2) == flops("hf_mim SimMIM", options, 224, 0.5, 2)
    assert flops("hf_mim MAE", options, 384, 0.75, 2) > 2.5 * flops("hf_mim MAE", options, 224, 0.75, 2)
    assert flops("hf_mim MAE", options, 224, 0.75, 4) == 2 * flops("hf_mim MAE", options, 224, 0.75, 2)

    model = build_pair("mae", "tiny", "eager", 224, 16)[0]  # FlopCounterMode misses CPU SDPA's backward
    pixel_values = torch.randn(1, 3, 224, 224)
    counted = count_flops(lambda: model(pixel_values=pixel_values).loss.backward())
    assert abs(flops("hf_mim MAE", options, 224, 0.75, 1) / counted - 1) < 0.1


@pytest.mark.slow
def test_scaling_quick_run_measures_every_point_and_plots(tmp_path):
    pytest.importorskip("matplotlib")
    scaling = load_benchmark("scaling")
    rows = scaling.main(["--quick", "--plot", str(tmp_path / "scaling.png")])
    assert len(rows) == 3 * (2 + 2 + 2)
    assert all(row["step_s"] > 0 and row["memory_mb"] > 0 for row in rows)
    assert (tmp_path / "scaling.png").stat().st_size > 10_000
