"""Scaling curves: training-step time and memory of hf_mim MAE, hf_mim SimMIM and transformers' ViTMAE against
image size (models built at the first size, larger images through interpolated position embeddings), mask ratio
and batch size, with an analytic FLOP count next to each measurement, in one run; plotted to a PNG.

Why the curves differ: MAE's encoder sees only the visible tokens ((1 - mask_ratio) N), its light decoder all N;
SimMIM's encoder sees all N tokens whatever the mask ratio. The FLOP column counts the matmuls of that work
(x3 for forward + backward), so the measured times can be checked against it.

    python benchmarks/scaling.py --output benchmarks/results/scaling_cpu.json --plot benchmarks/results/scaling.png
    python benchmarks/scaling.py --quick          # tiny smoke run (the test suite runs this)
"""

import argparse
import json
import os
import statistics
import sys

import torch

MODELS = ("hf_mim MAE", "transformers ViTMAE", "hf_mim SimMIM")


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="base", choices=("tiny", "base"))
    parser.add_argument("--patch_size", type=int, default=16)
    parser.add_argument("--image_sizes", type=int, nargs="+", default=[224, 384, 512])
    parser.add_argument("--mask_ratios", type=float, nargs="+", default=[0.5, 0.6, 0.75, 0.9])
    parser.add_argument("--batch_sizes", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--batch", type=int, default=8, help="batch of the image-size and mask-ratio sweeps")
    parser.add_argument("--mask_ratio", type=float, default=0.75, help="of the image-size and batch sweeps")
    parser.add_argument("--dtype", default="fp32", choices=("fp32", "bf16"))
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default=None)
    parser.add_argument("--quick", action="store_true", help="tiny smoke run: ViT-tiny, 32-64 px, 1 repeat")
    parser.add_argument("--output", default=None)
    parser.add_argument("--plot", default=None, help="PNG path (needs matplotlib)")
    options = parser.parse_args(argv)
    if options.quick:
        options.size, options.image_sizes, options.mask_ratios, options.batch_sizes = "tiny", [32, 64], [0.5, 0.9], [2, 4]
        options.batch, options.repeats, options.warmup = 2, 1, 0
    return options


def layer_flops(tokens: float, dim: int, mlp: int) -> float:
    """Forward FLOPs of one pre-norm ViT block on ``tokens`` tokens: qkv + projection + MLP matmuls and the two
    attention products (QK^T, AV); norms, softmax and activations are ignored (a few percent)."""
    return 2 * tokens * (4 * dim * dim + 2 * dim * mlp) + 4 * tokens * tokens * dim


def training_flops(model: str, options, image_size: int, mask_ratio: float, batch: int) -> float:
    """Analytic FLOPs of one training step (forward x 3) for the whole batch."""
    from hf_mim.bench import SIZES

    hidden, layers, _, mlp = SIZES[options.size]["enc"]
    patches = (image_size // options.patch_size) ** 2
    pixels_per_patch = 3 * options.patch_size**2
    embed = 2 * patches * pixels_per_patch * hidden  # every patch is embedded, also in MAE
    if model == "hf_mim SimMIM":
        forward = embed + layers * layer_flops(patches, hidden, mlp) + 2 * patches * hidden * pixels_per_patch
    else:
        d_hidden, d_layers, _, d_mlp = SIZES[options.size]["dec"]
        visible = int(patches * (1 - mask_ratio)) + 1  # + cls token
        forward = (embed + layers * layer_flops(visible, hidden, mlp) + 2 * visible * hidden * d_hidden
                   + d_layers * layer_flops(patches + 1, d_hidden, d_mlp) + 2 * (patches + 1) * d_hidden * pixels_per_patch)
    return 3 * batch * forward


def build(options, device):
    """The three models at the first image size (MAE and ViTMAE with the same weights)."""
    from hf_mim.bench import build_pair

    mae, vitmae, *_ = build_pair("mae", options.size, "sdpa", options.image_sizes[0], options.patch_size)
    simmim, *_ = build_pair("simmim", options.size, "sdpa", options.image_sizes[0], options.patch_size)
    return {name: model.to(device).train() for name, model in zip(MODELS, (mae, vitmae, simmim))}


def measure(name, model, options, device, image_size, mask_ratio, batch) -> dict:
    from hf_mim.bench import peak_memory_mb, timed, training_step_fn

    generator = torch.Generator().manual_seed(0)
    patches = (image_size // options.patch_size) ** 2
    pixel_values = torch.randn(batch, 3, image_size, image_size, generator=generator).to(device)
    noise = torch.rand(batch, patches, generator=generator)
    if name == "hf_mim SimMIM":  # the same number of masked patches in every image
        masking = {"bool_masked_pos": (noise.argsort(1).argsort(1) < round(mask_ratio * patches)).to(device)}
    else:
        model.config.mask_ratio = mask_ratio  # both MAEs read the ratio from their config at every forward
        masking = {"noise": noise.to(device)}
    masking["interpolate_pos_encoding"] = image_size != options.image_sizes[0]
    step = training_step_fn(model, pixel_values, masking, options.dtype, device)
    for _ in range(options.warmup):
        step()
    seconds = statistics.median(timed(step, device) for _ in range(options.repeats))
    memory, memory_kind = peak_memory_mb(step, device)
    return {
        "model": name, "image_size": image_size, "mask_ratio": mask_ratio, "batch": batch, "step_s": seconds,
        "memory_mb": memory, "memory_kind": memory_kind,
        "gflops": training_flops(name, options, image_size, mask_ratio, batch) / 1e9,
    }


def sweeps(options):
    """(sweep name, image size, mask ratio, batch) of every measurement."""
    for size in options.image_sizes:
        yield "image_size", size, options.mask_ratio, options.batch
    for ratio in options.mask_ratios:
        yield "mask_ratio", options.image_sizes[0], ratio, options.batch
    for batch in options.batch_sizes:
        yield "batch", options.image_sizes[0], options.mask_ratio, batch


def plot(rows: list[dict], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, 4, figsize=(18, 8))
    for column, sweep in enumerate(("image_size", "mask_ratio", "batch")):
        for name in MODELS:
            points = [r for r in rows if r["sweep"] == sweep and r["model"] == name]
            x = [r[sweep] for r in points]
            axes[0, column].plot(x, [r["step_s"] for r in points], marker="o", label=name)
            axes[1, column].plot(x, [r["memory_mb"] for r in points], marker="o", label=name)
        axes[0, column].set(title=f"step time vs {sweep}", xlabel=sweep, ylabel="s / step")
        axes[1, column].set(title=f"memory vs {sweep}", xlabel=sweep, ylabel=f"MB ({rows[0]['memory_kind']})")
    for name in MODELS:  # do the times follow the FLOP count? one line through the origin would say yes
        points = [r for r in rows if r["model"] == name]
        axes[0, 3].scatter([r["gflops"] for r in points], [r["step_s"] for r in points], label=name)
    axes[0, 3].set(title="step time vs analytic FLOPs", xlabel="GFLOP / step", ylabel="s / step")
    axes[1, 3].axis("off")
    for axis in axes.flat:
        if axis.has_data():
            axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main(argv=None) -> list[dict]:
    options = parse(argv)
    device = torch.device(options.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    models = build(options, device)
    rows = []
    for sweep, image_size, ratio, batch in sweeps(options):
        for name, model in models.items():
            row = {"sweep": sweep, **measure(name, model, options, device, image_size, ratio, batch)}
            rows.append(row)
            print(f"{sweep:10s} {name:20s} {image_size:4d}px ratio {ratio:.2f} batch {batch:3d}: "
                  f"{row['step_s']:.3f} s, {row['memory_mb']:.0f} MB, {row['gflops']:.1f} GFLOP", flush=True)
    if options.output:
        from hf_mim.bench import environment

        with open(options.output, "w") as handle:
            json.dump({"scaling": rows, "settings": vars(options), "environment": environment(device)}, handle, indent=1)
    if options.plot:
        plot(rows, options.plot)
    return rows


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
