"""Speed and memory of hf_mim against transformers' own models, measured in one process on identical weights.

For every case (method x size x dtype x attention mode) both implementations run the same training step
(forward + backward + AdamW step, fixed masks) and the same encoder inference, timed alternately so that machine
load hits both equally; the table reports medians and the ratio hf_mim / transformers in images per second.

Memory: on CUDA the peak allocated during a step; on the CPU (where torch tracks no allocations) the bytes of
activations saved for backward, which is where implementations differ (weights, gradients and optimizer states are
identical for both).
"""

import argparse
import json
import platform
import statistics
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

SIZES = {
    # encoder (hidden, layers, heads, mlp) and MAE decoder (hidden, layers, heads, mlp)
    "tiny": dict(enc=(192, 12, 3, 768), dec=(128, 4, 4, 512)),
    "base": dict(enc=(768, 12, 12, 3072), dec=(512, 8, 16, 2048)),
}
MODES = ("eager", "sdpa", "compile")
# dense bf16 tensor-core peaks (vendor data sheets, no sparsity), matched against torch.cuda.get_device_name()
PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "B200": 2250.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0}


def peak_bf16_tflops(device) -> float | None:
    """The device's dense bf16 peak from PEAK_BF16_TFLOPS (None on CPUs and unknown GPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((value for key, value in PEAK_BF16_TFLOPS.items() if key in name), None)


@dataclass
class Result:
    method: str
    size: str
    dtype: str
    mode: str
    batch: int
    ours_train_ips: float
    theirs_train_ips: float
    train_ratio: float
    train_ratio_quartiles: tuple[float, float]
    ours_infer_ips: float
    theirs_infer_ips: float
    infer_ratio: float
    ours_memory_mb: float
    theirs_memory_mb: float
    memory_metric: str
    train_gflops_per_image: float
    ours_tflops: float
    mfu: float | None
    ours_kernel_share: float | None = None
    theirs_kernel_share: float | None = None


def build_pair(method: str, size: str, attn: str, image_size: int, patch_size: int):
    """(ours, theirs, ours_encoder, theirs_encoder, inputs_fn) with the same weights."""
    import hf_mim
    from hf_mim.hub.convert import TRANSFORMERS_VIT_MIM, convert_state_dict, to_transformers_vitmae

    hidden, layers, heads, mlp = SIZES[size]["enc"]
    common = dict(
        image_size=image_size, patch_size=patch_size, hidden_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, intermediate_size=mlp, attn_implementation=attn,
    )
    torch.manual_seed(0)
    if method == "mae":
        d_hidden, d_layers, d_heads, d_mlp = SIZES[size]["dec"]
        ours = hf_mim.MAEForPreTraining(hf_mim.MAEConfig(
            **common, decoder_hidden_size=d_hidden, decoder_num_hidden_layers=d_layers,
            decoder_num_attention_heads=d_heads, decoder_intermediate_size=d_mlp,
        ))
        theirs = to_transformers_vitmae(ours)
        theirs.set_attn_implementation(attn)
        theirs.decoder.config._attn_implementation = attn  # transformers' decoder keeps its own config copy
        ours_encoder = ours.encoder
        from transformers import ViTMAEConfig, ViTMAEModel

        inference_config = ViTMAEConfig(**{**theirs.config.to_dict(), "mask_ratio": 0.0})
        theirs_encoder = ViTMAEModel(inference_config)
        theirs_encoder.load_state_dict(theirs.vit.state_dict())
        theirs_encoder.set_attn_implementation(attn)
        num_patches = (image_size // patch_size) ** 2

        def inputs(batch):
            return {"noise": torch.rand(batch, num_patches, generator=torch.Generator().manual_seed(0))}
    elif method == "simmim":
        from transformers import ViTConfig, ViTForMaskedImageModeling, ViTModel

        # the configuration transformers can express: a vanilla ViT (learned positions, qkv bias, no layer scale)
        ours = hf_mim.SimMIMForPreTraining(hf_mim.SimMIMConfig(
            **common, mask_patch_size=2 * patch_size, qkv_bias=True, layer_scale_init_value=None,
            position_embedding_type="learned", use_shared_relative_position_bias=False, drop_path_rate=0.0,
        ))
        vit_config = ViTConfig(
            image_size=image_size, patch_size=patch_size, hidden_size=hidden, num_hidden_layers=layers,
            num_attention_heads=heads, intermediate_size=mlp, encoder_stride=patch_size, qkv_bias=True,
            layer_norm_eps=1e-6, attn_implementation=attn,
        )
        theirs = ViTForMaskedImageModeling(vit_config)
        ours.load_state_dict(convert_state_dict(theirs.state_dict(), TRANSFORMERS_VIT_MIM, model=ours))
        ours_encoder = ours.encoder
        theirs_encoder = ViTModel(vit_config, add_pooling_layer=False)
        theirs_encoder.load_state_dict({k[4:]: v for k, v in theirs.state_dict().items()
                                        if k.startswith("vit.") and "mask_token" not in k}, strict=False)

        def inputs(batch):
            return {"bool_masked_pos": ours.mask_generator(batch, torch.Generator().manual_seed(0))}
    else:
        raise ValueError(f"no transformers counterpart for {method}")
    return ours, theirs, ours_encoder, theirs_encoder, inputs


def saved_activation_bytes(step) -> int:
    """Bytes of distinct tensors autograd saves for backward during ``step()``."""
    storages = {}

    def pack(tensor):
        try:
            storage = tensor.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        except (RuntimeError, NotImplementedError):
            pass
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        step()
    return sum(storages.values())


def training_step_fn(model, pixel_values, mask_inputs, dtype, device):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bf16" else nullcontext()

    def step():
        with autocast:
            loss = model(pixel_values=pixel_values, **mask_inputs).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def inference_fn(encoder, pixel_values, dtype, device):
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if dtype == "bf16" else nullcontext()

    @torch.no_grad()
    def step():
        with autocast:
            encoder(pixel_values=pixel_values)

    return step


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(step, device) -> float:
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def interleaved_times(step_a, step_b, device, warmup: int, repeats: int) -> tuple[float, float, tuple[float, float]]:
    """Median times of ``a`` and ``b`` and the quartiles of the per-pair speed ratios ``t_b / t_a``: neighbouring
    runs share the machine's state, so the spread of pair ratios shows how far the ratio can be trusted."""
    for _ in range(warmup):
        step_a(), step_b()
    times_a, times_b = [], []
    for _ in range(repeats):
        times_a.append(timed(step_a, device))
        times_b.append(timed(step_b, device))
    pair_ratios = [b / a for a, b in zip(times_a, times_b)]
    quartiles = statistics.quantiles(pair_ratios, n=4) if len(pair_ratios) > 1 else pair_ratios * 3
    return statistics.median(times_a), statistics.median(times_b), (quartiles[0], quartiles[2])


def count_flops(step) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return float(counter.get_total_flops())


# the matrix-math kernels: matmuls, convolutions and fused attention (forward and backward)
MATH_KERNELS = ("mm", "addmm", "bmm", "baddbmm", "convolution", "scaled_dot_product", "flash_attention")


def kernel_share(step) -> float:
    """Share of one CPU step's operator time spent in matrix-math kernels. It bounds what any implementation of
    the same model can gain: the rest (optimizer, casts, elementwise, Python) is all a better one could remove.
    CPU only: on a GPU, attributing kernel time to operators needs the device trace (tested on the CPU alone)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        step()
    events = profiler.key_averages()  # self times: each microsecond counted once, compiled kernels included
    total = sum(e.self_cpu_time_total for e in events)
    math = sum(e.self_cpu_time_total for e in events
               if e.key.startswith("aten::") and any(name in e.key[len("aten::"):] for name in MATH_KERNELS))
    return math / total if total else 0.0


def peak_memory_mb(step, device) -> tuple[float, str]:
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20, "peak allocated"
    return saved_activation_bytes(step) / 2**20, "saved activations"


def run_case(
    method, size, dtype, mode, batch, image_size, patch_size, device, warmup, repeats, with_kernel_share=False
) -> Result:
    attn = "eager" if mode == "eager" else "sdpa"
    ours, theirs, ours_encoder, theirs_encoder, make_inputs = build_pair(method, size, attn, image_size, patch_size)
    for module in (ours, theirs, ours_encoder, theirs_encoder):
        module.to(device)
    ours.train(), theirs.train(), ours_encoder.eval(), theirs_encoder.eval()
    pixel_values = torch.randn(batch, 3, image_size, image_size, generator=torch.Generator().manual_seed(1)).to(device)
    mask_inputs = {k: v.to(device) for k, v in make_inputs(batch).items()}
    models = (ours, theirs, ours_encoder, theirs_encoder)
    if mode == "compile":
        models = tuple(torch.compile(m) for m in models)
    train_ours = training_step_fn(models[0], pixel_values, mask_inputs, dtype, device)
    train_theirs = training_step_fn(models[1], pixel_values, mask_inputs, dtype, device)
    infer_ours = inference_fn(models[2], pixel_values, dtype, device)
    infer_theirs = inference_fn(models[3], pixel_values, dtype, device)

    memory_ours, metric = peak_memory_mb(training_step_fn(ours, pixel_values, mask_inputs, dtype, device), device)
    memory_theirs, _ = peak_memory_mb(training_step_fn(theirs, pixel_values, mask_inputs, dtype, device), device)
    flops = count_flops(training_step_fn(ours, pixel_values, mask_inputs, dtype, device))

    t_ours, t_theirs, train_spread = interleaved_times(train_ours, train_theirs, device, warmup, repeats)
    i_ours, i_theirs, _ = interleaved_times(infer_ours, infer_theirs, device, warmup, repeats)
    shares = (None, None)
    if with_kernel_share and device.type == "cpu":
        shares = (kernel_share(train_ours), kernel_share(train_theirs))
    tflops = flops / t_ours / 1e12
    peak = peak_bf16_tflops(device)
    return Result(
        method=method, size=size, dtype=dtype, mode=mode, batch=batch,
        ours_train_ips=batch / t_ours, theirs_train_ips=batch / t_theirs, train_ratio=t_theirs / t_ours,
        train_ratio_quartiles=train_spread,
        ours_infer_ips=batch / i_ours, theirs_infer_ips=batch / i_theirs, infer_ratio=i_theirs / i_ours,
        ours_memory_mb=memory_ours, theirs_memory_mb=memory_theirs, memory_metric=metric,
        train_gflops_per_image=flops / batch / 1e9, ours_tflops=tflops,
        mfu=(tflops / peak) if (peak and dtype == "bf16") else None,
        ours_kernel_share=shares[0], theirs_kernel_share=shares[1],
    )


def gemm_gflops(dtype: torch.dtype, device, rows: int = 400, inner: int = 768, cols: int = 3072) -> float:
    """Throughput of one ViT-B-shaped matmul (8 images x 50 kept tokens into an MLP): the machine's ceiling for
    this dtype, which both implementations share."""
    a = torch.randn(rows, inner, dtype=dtype, device=device)
    b = torch.randn(cols, inner, dtype=dtype, device=device)
    for _ in range(3):
        torch.nn.functional.linear(a, b)
    seconds = statistics.median(timed(lambda: torch.nn.functional.linear(a, b), device) for _ in range(20))
    return 2 * rows * inner * cols / seconds / 1e9


def loader_throughput(data: str | None, image_size: int, batch: int, workers: int, batches: int) -> float:
    """Images per second of decoding + augmentation alone (the data pipeline must keep up with the GPU)."""
    from torch.utils.data import DataLoader

    import hf_mim
    from hf_mim.data import MIMCollator, load_image_dataset, prepare_dataset

    config = hf_mim.MAEConfig(image_size=image_size)
    dataset = prepare_dataset(load_image_dataset(data, "train"), hf_mim.processor_for_config(config), train=True)
    loader = DataLoader(dataset, batch_size=batch, num_workers=workers, collate_fn=MIMCollator(), shuffle=True)
    iterator = iter(loader)
    next(iterator)  # start-up of the workers is not throughput
    start, seen = time.perf_counter(), 0
    for _ in range(batches):
        seen += next(iterator)["pixel_values"].shape[0]
    return seen / (time.perf_counter() - start)


def environment(device) -> dict:
    import transformers

    info = {
        "torch": torch.__version__, "transformers": transformers.__version__, "python": platform.python_version(),
        "machine": platform.machine(), "processor": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(), "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    return info


def format_table(results: list[Result]) -> str:
    header = (f"{'method':<7}{'size':<6}{'dtype':<6}{'mode':<9}{'batch':>6}{'train img/s ours':>18}{'transformers':>14}"
              f"{'ratio':>7}{'(quartiles)':>13}{'infer ratio':>12}{'mem MB ours':>13}{'transformers':>14}{'GFLOP/img':>11}"
              f"{'math % ours/theirs':>20}")
    lines = [header, "-" * len(header)]
    for r in results:
        quartiles = f"({r.train_ratio_quartiles[0]:.2f}-{r.train_ratio_quartiles[1]:.2f})"
        shares = "-" if r.ours_kernel_share is None else f"{100 * r.ours_kernel_share:.0f}/{100 * r.theirs_kernel_share:.0f}"
        lines.append(
            f"{r.method:<7}{r.size:<6}{r.dtype:<6}{r.mode:<9}{r.batch:>6}{r.ours_train_ips:>18.1f}{r.theirs_train_ips:>14.1f}"
            f"{r.train_ratio:>7.2f}{quartiles:>13}{r.infer_ratio:>12.2f}{r.ours_memory_mb:>13.1f}{r.theirs_memory_mb:>14.1f}"
            f"{r.train_gflops_per_image:>11.1f}{shares:>20}"
        )
    return "\n".join(lines)


def main(argv=None) -> list[Result]:
    parser = argparse.ArgumentParser(prog="hf-mim bench", description="hf_mim vs transformers: speed and memory")
    parser.add_argument("--methods", nargs="+", default=["mae", "simmim"])
    parser.add_argument("--sizes", nargs="+", default=["tiny", "base"], choices=sorted(SIZES))
    parser.add_argument("--dtypes", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--batch_size", type=int, default=None, help="default: 8 on CPU, 256 on GPU")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--patch_size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default=None)
    parser.add_argument("--kernel_share", action="store_true",
                        help="CPU: profile one step of each and report the share of time in matrix-math kernels")
    parser.add_argument("--gemm", action="store_true", help="also time one ViT-B-shaped matmul in fp32 and bf16")
    parser.add_argument("--loader_data", default=None, help="also time the data pipeline on this data ('demo' ok)")
    parser.add_argument("--loader_workers", type=int, default=4)
    parser.add_argument("--output", default="benchmarks/results/latest.json")
    options = parser.parse_args(argv)
    device = torch.device(options.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    batch = options.batch_size or (256 if device.type == "cuda" else 8)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
    results = []
    for method in options.methods:
        for size in options.sizes:
            for dtype in options.dtypes:
                for mode in options.modes:
                    result = run_case(method, size, dtype, mode, batch, options.image_size, options.patch_size,
                                      device, options.warmup, options.repeats, options.kernel_share)
                    results.append(result)
                    print(format_table([result]).splitlines()[-1], flush=True)
    print()
    print(format_table(results))
    report = {"environment": environment(device), "results": [asdict(r) for r in results]}
    if options.gemm:
        report["gemm_gflops"] = {name: gemm_gflops(dtype, device)
                                 for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16))}
        print("\none 400x768 @ 768x3072 matmul: " + ", ".join(
            f"{name} {value:.0f} GFLOP/s" for name, value in report["gemm_gflops"].items()))
    if options.loader_data is not None:
        report["loader_images_per_second"] = loader_throughput(
            None if options.loader_data == "demo" else options.loader_data, options.image_size, 64,
            options.loader_workers, 20,
        )
        print(f"\ndata pipeline alone: {report['loader_images_per_second']:.0f} images/s "
              f"({options.loader_workers} workers, decode + RandomResizedCrop + flip + normalise)")
    if options.output:
        Path(options.output).parent.mkdir(parents=True, exist_ok=True)
        Path(options.output).write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {options.output}")
    return results


if __name__ == "__main__":
    main()
