"""Does video-MAE guidance (hf_mim.guidance.VideoMAEGuidance, WildVidFit) remove injected frame flicker?

1. Pre-train a small VideoMAE V2 (plain VideoMAE decoder, un-normalised pixel targets, random space-time masks at
   the guidance ratio 0.7) on generated clips of Fashion-MNIST objects gliding over a black canvas (the demo video
   set's generator, 8 consecutive frames of 32x32, rendered in memory) for --train_steps steps on one CPU thread.
2. Take held-out clips (Fashion-MNIST test images), inject flicker: every frame scaled by its own gain drawn
   uniformly from [1 - a, 1 + a].
3. Take --steps guidance steps on the frames: ``frames += eta * g / rms(g)`` with ``g = -dE/dframes`` (fresh
   random mask each step), clamped to [0, 1]. Controls with exactly the same step sizes: the same guidance through
   the same architecture at random init (no temporal prior), and random Gaussian directions.
4. Measure flicker (``brightness_flicker``: mean |m_{t+1} - m_t|, m_t = mean intensity of frame t; blind to
   motion), the pixel temporal difference, the mean brightness and the L1 distance to the clean clip, per step.

    OMP_NUM_THREADS=1 python benchmarks/guidance_flicker.py   # ~3 min on one CPU thread
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

import hf_mim
from hf_mim.data import DEMO_DIR, open_image
from hf_mim.data.video import moving_object_clip
from hf_mim.guidance import VideoMAEGuidance, brightness_flicker, temporal_difference
from hf_mim.masking.generators import RandomMaskGenerator

CONFIG = dict(
    image_size=32, patch_size=8, num_frames=8, tubelet_size=2, hidden_size=96, num_hidden_layers=4,
    num_attention_heads=4, intermediate_size=192, decoder_hidden_size=64, decoder_num_hidden_layers=2,
    decoder_num_attention_heads=4, decoder_intermediate_size=128, mask_ratio=0.7, decoder_mask_ratio=0.0,
    norm_pix_loss=False,
)
MEAN, STD = [0.2, 0.2, 0.2], [0.3, 0.3, 0.3]


def object_images(split: str, object_size: int = 16) -> list[np.ndarray]:
    table = pq.read_table(DEMO_DIR / f"{split}.parquet").to_pydict()
    return [np.asarray(open_image(image).convert("L").resize((object_size, object_size))) for image in table["image"]]


def render_clips(images, count: int, rng: np.random.Generator, num_frames: int = 8, size: int = 32) -> torch.Tensor:
    """``count`` clips ``[count, T, 3, size, size]`` in [0, 1] of random objects from ``images``."""
    picks = rng.integers(0, len(images), count)
    clips = np.stack([moving_object_clip(images[i], num_frames, size, rng) for i in picks])
    return torch.from_numpy(clips).permute(0, 1, 4, 2, 3).float() / 255


def add_flicker(clips: torch.Tensor, amount: float, generator: torch.Generator) -> torch.Tensor:
    """Scale every frame by its own gain in [1 - amount, 1 + amount]."""
    gains = 1 + amount * (2 * torch.rand(clips.shape[0], clips.shape[1], 1, 1, 1, generator=generator) - 1)
    return (clips * gains).clamp(0, 1)


def pretrain_mae(images, steps: int, batch_size: int, lr: float, seed: int):
    spec = hf_mim.get_method("videomae2")
    torch.manual_seed(seed)
    model = spec.pretraining_class(spec.make_config("tiny", **CONFIG))
    masks = RandomMaskGenerator(model.config.num_patches, CONFIG["mask_ratio"])
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.05)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=steps, pct_start=0.05)
    mean, std = torch.tensor(MEAN).reshape(1, 1, 3, 1, 1), torch.tensor(STD).reshape(1, 1, 3, 1, 1)
    losses = []
    for _ in range(steps):
        pixel_values = (render_clips(images, batch_size, rng) - mean) / std
        loss = model(pixel_values, bool_masked_pos=masks(batch_size, generator)).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return model, losses


def guide(guidance: VideoMAEGuidance | None, start: torch.Tensor, steps: int, eta: float, seed: int, decode=None) -> list:
    """``steps`` normalised steps (per-clip RMS change ``eta``) along ``-dE/d start`` (or random directions when
    ``guidance`` is None); ``start`` is frames (kept in [0, 1]) or, with ``decode``, latents. Returns the frames
    after each step (step 0 = the input)."""
    noise = torch.Generator().manual_seed(seed)
    inputs, history = start.clone(), []
    for step in range(steps + 1):
        history.append(decode(inputs).detach() if decode is not None else inputs.clone())
        if step == steps:
            break
        direction = guidance.gradient(inputs, decode)[1] if guidance is not None else torch.randn(inputs.shape, generator=noise)
        rms = direction.flatten(1).square().mean(1).sqrt().reshape(-1, *[1] * (inputs.ndim - 1))
        inputs = inputs + eta * direction / rms.clamp_min(1e-12)
        if decode is None:
            inputs = inputs.clamp(0, 1)
    return history


def measures(history: list[torch.Tensor], clean: torch.Tensor) -> dict:
    return {
        "flicker": [round(brightness_flicker(f).mean().item(), 4) for f in history],
        "temporal_difference": [round(temporal_difference(f).mean().item(), 4) for f in history],
        "brightness": [round(f.mean().item(), 4) for f in history],
        "l1_to_clean": [round((f - clean).abs().mean().item(), 4) for f in history],
    }


def plot(results: dict, clean, flickered, guided, guided_exposure, strip_step: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(11, 6.8))
    grid = fig.add_gridspec(3, 3, height_ratios=[1, 1, 1.3])
    labels = {"guided": "MAE guidance on the frames (pre-trained MAE)",
              "guided_exposure": "MAE guidance through a per-frame exposure decoder", "random_init_mae": "control: same guidance, MAE at random init",
              "random_directions": "control: random directions, same step size"}
    for column, key in enumerate(("flicker", "temporal_difference", "l1_to_clean")):
        ax = fig.add_subplot(grid[0:2, column])
        for name, label in labels.items():
            ax.plot(results[name][key], label=label, marker="o", markersize=3)
        ax.axhline(results["clean"][key], color="k", linestyle="--", linewidth=1, label="clean clip")
        ax.set_title({"flicker": "brightness flicker", "temporal_difference": "pixel temporal difference",
                      "l1_to_clean": "L1 distance to the clean clip"}[key], fontsize=10)
        ax.set_xlabel("guidance step")
        if column == 0:
            ax.legend(fontsize=7)
    strip = fig.add_subplot(grid[2, :])
    clips = (clean, flickered, guided, guided_exposure)
    rows = [torch.cat(list(clip[0].permute(0, 2, 3, 1)), dim=1) for clip in clips]
    strip.imshow(torch.cat(rows, dim=0).clamp(0, 1).numpy())
    strip.set_yticks([16, 48, 80, 112], ["clean", "flickered", f"frames, step {strip_step}", f"exposure, step {strip_step}"])
    strip.set_xticks([])
    strip.set_title("a held-out clip (8 frames)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_steps", type=int, default=600)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--clips", type=int, default=32, help="held-out flickered clips")
    parser.add_argument("--flicker", type=float, default=0.5, help="gain amplitude a: gains in [1-a, 1+a]")
    parser.add_argument("--steps", type=int, default=20, help="guidance steps")
    parser.add_argument("--eta", type=float, default=0.01, help="RMS pixel change per step")
    parser.add_argument("--exposure_eta", type=float, default=0.02, help="RMS log-gain change per step")
    parser.add_argument("--strip_step", type=int, default=5, help="guidance step shown in the figure's strip")
    parser.add_argument("--num_masks", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", default="benchmarks/results/guidance_flicker.json")
    parser.add_argument("--figure", default="benchmarks/results/guidance_flicker.png")
    options = parser.parse_args(argv)
    torch.set_num_threads(1)
    start = time.time()
    model, losses = pretrain_mae(object_images("train"), options.train_steps, options.batch_size, options.lr, options.seed)
    train_seconds = time.time() - start
    clean = render_clips(object_images("test"), options.clips, np.random.default_rng(options.seed + 1))
    flickered = add_flicker(clean, options.flicker, torch.Generator().manual_seed(options.seed + 2))
    spec = hf_mim.get_method("videomae2")
    torch.manual_seed(options.seed)
    untrained = spec.pretraining_class(model.config)
    kwargs = dict(mean=MEAN, std=STD, scale=1.0, num_masks=options.num_masks, seed=options.seed)
    guided_mae, untrained_mae = VideoMAEGuidance(model, **kwargs), VideoMAEGuidance(untrained, **kwargs)
    energies = {name: round(VideoMAEGuidance(model, **kwargs).energy(clip).item(), 4) for name, clip in
                (("clean", clean), ("flickered", flickered))}
    runs = {
        "guided": guide(guided_mae, flickered, options.steps, options.eta, options.seed),
        "random_init_mae": guide(untrained_mae, flickered, options.steps, options.eta, options.seed),
        "random_directions": guide(None, flickered, options.steps, options.eta, options.seed),
        # a per-frame exposure latent z_t decoded as frame_t * exp(z_t): guidance through a user decode
        "guided_exposure": guide(guided_mae, torch.zeros(*flickered.shape[:2], 1, 1, 1), options.steps,
                                 options.exposure_eta, options.seed, decode=lambda z: (flickered * z.exp()).clamp(0, 1)),
    }
    results = {name: measures(history, clean) for name, history in runs.items()}
    results["clean"] = {key: values[0] for key, values in measures([clean], clean).items()}
    report = {
        "setup": {**{k: v for k, v in vars(options).items() if k not in ("output", "figure")}, "config": CONFIG,
                  "train_seconds": round(train_seconds, 1), "threads": 1,
                  "loss_first": round(losses[0], 4), "loss_last": round(sum(losses[-20:]) / 20, 4)},
        "energy_clean_vs_flickered": energies,
        **results,
    }
    Path(options.output).parent.mkdir(parents=True, exist_ok=True)
    Path(options.output).write_text(json.dumps(report, indent=1) + "\n")
    step = min(options.strip_step, options.steps)
    plot(results, clean, flickered, runs["guided"][step], runs["guided_exposure"][step], step, Path(options.figure))
    print(json.dumps({k: report[k] for k in ("setup", "energy_clean_vs_flickered")}))
    for name in ("clean", *runs):
        print(name, {k: (v[0], v[-1]) if isinstance(v, list) else v for k, v in results[name].items()})


if __name__ == "__main__":
    main()
