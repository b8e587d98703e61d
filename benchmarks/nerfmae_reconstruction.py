"""NeRF-MAE on generated radiance grids: masked-voxel reconstruction error after a short CPU pre-training vs the same
model untrained, on held-out grids, plus a picture (slices of input / masked input / reconstruction).

Data: the demo grids of ``hf_mim.data.grids`` (1-2 coloured spheres, boxes or cylinders with density, 32³, cut to a
random extent along x and zero-padded): 64 training grids (seed 1), 16 held-out test grids (seed 3).
Model: the "demo" config (3-D Swin, embed 24, depths 2/2/2/2, windows of 2³ tokens, patch 4, blocks of 2³ tokens
masked with probability 0.75, one mask per batch). Budget: 1 CPU thread, ``--minutes`` of training (default 6).

Usage: OMP_NUM_THREADS=1 python benchmarks/nerfmae_reconstruction.py [--minutes 6] [--out benchmarks/results]
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import hf_mim


def test_batches(spec, model, processor, count=16, batch_size=4):
    """Held-out grids with fixed masks (one seeded block mask per batch)."""
    rows = spec.load_data(None, "test").with_format("numpy")
    grids = [processor.process_grid(rows[i]["rgbsigma"]) for i in range(count)]
    generator = torch.Generator().manual_seed(123)
    batches = []
    for start in range(0, count, batch_size):
        chunk = grids[start : start + batch_size]
        batch = {key: torch.stack([g[key] for g in chunk]) for key in ("grid_values", "valid_mask")}
        batch["bool_masked_pos"] = model.mask_generator(len(chunk), generator)
        batches.append(batch)
    return batches


def constant_baseline(samples, batches, model) -> dict:
    """Errors of predicting the training set's mean colour (occupied voxels) and mean alpha (valid voxels)."""
    values = torch.stack([s["grid_values"] for s in samples])
    valid = torch.stack([s["valid_mask"] for s in samples])
    occupied = values[:, 3] > model.config.alpha_threshold
    colour, alpha = values[:, :3].permute(0, 2, 3, 4, 1)[occupied].mean(0), values[:, 3][valid].mean()
    rgb_sum = alpha_sum = rgb_count = alpha_count = 0.0
    for batch in batches:
        target = batch["grid_values"]
        masked = model.voxel_mask(batch["bool_masked_pos"]) & batch["valid_mask"]
        hit = masked & (target[:, 3] > model.config.alpha_threshold)
        rgb_sum += float(((target[:, :3] - colour.view(1, 3, 1, 1, 1)) ** 2).mean(1)[hit].sum())
        alpha_sum += float(((target[:, 3] - alpha) ** 2)[masked].sum())
        rgb_count, alpha_count = rgb_count + int(hit.sum()), alpha_count + int(masked.sum())
    return {"masked_rgb_mse": rgb_sum / rgb_count, "masked_alpha_mse": alpha_sum / alpha_count}


@torch.no_grad()
def masked_errors(model, batches) -> dict:
    """Mean squared error on masked voxels: RGB on occupied masked voxels, alpha on valid masked voxels, and the
    official loss (RGB on every occupied voxel + alpha on valid masked voxels)."""
    model.eval()
    sums = {"rgb": 0.0, "alpha": 0.0, "loss": 0.0}
    counts = {"rgb": 0, "alpha": 0}
    for batch in batches:
        out = model(**batch)
        grid = model.reconstruct(out.logits)
        target = batch["grid_values"]
        masked = model.voxel_mask(batch["bool_masked_pos"]) & batch["valid_mask"]
        occupied = masked & (target[:, 3] > model.config.alpha_threshold)
        sums["rgb"] += float(((grid[:, :3] - target[:, :3]) ** 2).mean(1)[occupied].sum())
        sums["alpha"] += float(((grid[:, 3] - target[:, 3]) ** 2)[masked].sum())
        counts["rgb"] += int(occupied.sum())
        counts["alpha"] += int(masked.sum())
        sums["loss"] += float(out.loss) / len(batches)
    return {"masked_rgb_mse": sums["rgb"] / counts["rgb"], "masked_alpha_mse": sums["alpha"] / counts["alpha"],
            "official_loss": sums["loss"]}


def slices_picture(model, batch, path: Path, rows: int = 4) -> None:
    """Per grid: the z-slice with the most occupied voxels of input, masked input (masked tokens grey),
    reconstruction (colour x alpha, on black)."""
    with torch.no_grad():
        grid = model.reconstruct(model(**batch).logits)
    masked = model.voxel_mask(batch["bool_masked_pos"])
    scale = 6

    def to_image(values, grey=None):
        rgb = (values[:3] * values[3:4]).clamp(0, 1)[..., z].permute(1, 2, 0).numpy()
        if grey is not None:
            rgb = np.where(grey[..., z].numpy()[..., None], 0.5, rgb)
        return np.kron((rgb * 255).astype(np.uint8), np.ones((scale, scale, 1), dtype=np.uint8))

    tiles = []
    for i in range(min(rows, grid.shape[0])):
        target = batch["grid_values"][i]
        z = int((target[3] > model.config.alpha_threshold).sum((0, 1)).argmax())
        row = [to_image(target), to_image(target, masked[i]), to_image(grid[i])]
        gap = np.full((row[0].shape[0], 4, 3), 255, np.uint8)
        tiles.append(np.concatenate([row[0], gap, row[1], gap, row[2]], axis=1))
    gap = np.full((4, tiles[0].shape[1], 3), 255, np.uint8)
    picture = np.concatenate([t for tile in tiles for t in (tile, gap)][:-1], axis=0)
    Image.fromarray(picture).save(path)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--batch_size", type=int, default=4)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--out", default="benchmarks/results")
    args = parser.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    spec = hf_mim.get_method("nerfmae")
    torch.manual_seed(0)
    model = spec.pretraining_class(spec.make_config("demo"))
    processor = spec.make_processor(model.config)
    batches = test_batches(spec, model, processor)
    untrained = masked_errors(model, batches)
    slices_picture(model, batches[0], out / "nerfmae_untrained.png")

    train = spec.prepare_data(spec.load_data(None, "train"), processor)
    samples = [train[i] for i in range(len(train))]
    constant = constant_baseline(samples, batches, model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate, weight_decay=1e-3)
    model.mask_rng = torch.Generator().manual_seed(0)
    order = torch.Generator().manual_seed(0)
    start, steps, losses = time.time(), 0, []
    while time.time() - start < args.minutes * 60:
        model.train()
        for index in torch.randperm(len(samples), generator=order).view(-1, args.batch_size).tolist():
            batch = {key: torch.stack([samples[i][key] for i in index]) for key in ("grid_values", "valid_mask")}
            loss = model(**batch).loss
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 0.1)  # the official clip
            optimizer.step()
            losses.append(float(loss.detach()))
            steps += 1
            if time.time() - start >= args.minutes * 60:
                break
    seconds = time.time() - start
    trained = masked_errors(model, batches)
    slices_picture(model, batches[0], out / "nerfmae_reconstruction.png")
    result = {
        "config": "demo (3-D Swin embed 24, depths 2/2/2/2, window 2, patch 4, grid 32, mask blocks 2, p 0.75)",
        "steps": steps, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
        "train_seconds": round(seconds, 1), "threads": 1,
        "first_10_loss": float(np.mean(losses[:10])), "last_10_loss": float(np.mean(losses[-10:])),
        "constant_prediction": constant, "untrained": untrained, "trained": trained,
    }
    (out / "nerfmae_reconstruction.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
