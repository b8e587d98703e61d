"""CRATE-MAE against MAE at the same tiny size and budget on CIFAR-10 (CPU, one thread, a few minutes).

Both models: 32x32 images, patch 4 (64 patches), encoder 4 blocks x 64 wide with 4 heads; decoder 4 blocks x 64
wide (MAE's MLP ratio 4, as its decoder), 75% random masking, raw-pixel MSE (``norm_pix_loss=False``, the CRATE-MAE
default), the same images, augmentation (random flip), masks, seed, AdamW (0.9, 0.95), weight decay 0.05, lr 1.5e-3,
cosine schedule with 5% warm-up. Reported: parameter counts, masked-patch reconstruction MSE on test images with fixed
masks (processor-normalised pixels), and frozen-feature kNN (k=20) and linear-probe top-1 (cls token and mean of
patch tokens) on a CIFAR-10 subset.

    OMP_NUM_THREADS=1 python benchmarks/cratemae_cifar.py --steps 600 --output benchmarks/results/cratemae_cifar.json
"""

import argparse
import io
import json
import math
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

import hf_mim
from hf_mim.evaluation.knn import knn_accuracies
from hf_mim.evaluation.probe import linear_probe_accuracy

CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"
SIZE = dict(
    image_size=32, patch_size=4, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
    decoder_hidden_size=64, decoder_num_hidden_layers=4, decoder_num_attention_heads=4, norm_pix_loss=False,
)
MAE_ONLY = dict(intermediate_size=256, decoder_intermediate_size=256)


def load_split(data: Path, split: str, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` images of a split (a seeded random subset: the parquet files are sorted by label) as normalised
    ``[N, 3, 32, 32]`` tensors and their labels."""
    table = pq.read_table(data / f"{split}.parquet")
    table = table.take(torch.randperm(table.num_rows, generator=torch.Generator().manual_seed(0))[:count].numpy()).to_pydict()
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(row["bytes"])).convert("RGB")) for row in table["image"]])
    images = torch.from_numpy(pixels).permute(0, 3, 1, 2).float() / 255
    images = (images - torch.tensor(CIFAR_MEAN)[:, None, None]) / torch.tensor(CIFAR_STD)[:, None, None]
    return images, torch.tensor(table["label"])


def build(method: str):
    spec = hf_mim.get_method(method)
    torch.manual_seed(0)
    overrides = {**SIZE, **(MAE_ONLY if method == "mae" else {})}
    return spec.pretraining_class(spec.config_class(**overrides))


def train(model, images: torch.Tensor, steps: int, batch: int, lr: float) -> list[float]:
    generator = torch.Generator().manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.05)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else 0.5 * (1 + math.cos(math.pi * (s - warmup) / (steps - warmup)))
    )
    losses = []
    model.train()
    for step in range(steps):
        index = torch.randint(len(images), (batch,), generator=generator)
        x = images[index]
        flip = torch.rand(batch, generator=generator) < 0.5
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        noise = torch.rand(batch, 64, generator=generator)
        loss = model(x, noise=noise).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def features(encoder, images: torch.Tensor) -> dict[str, torch.Tensor]:
    hidden = torch.cat([encoder(chunk).last_hidden_state for chunk in images.split(500)])
    return {"cls": hidden[:, 0], "mean": hidden[:, 1:].mean(1)}


@torch.no_grad()
def masked_mse(model, images: torch.Tensor) -> float:
    noise = torch.rand(len(images), 64, generator=torch.Generator().manual_seed(1))
    return round(model.eval()(images, noise=noise).loss.item(), 4)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1.5e-3)
    parser.add_argument("--train_images", type=int, default=10000)
    parser.add_argument("--eval_train", type=int, default=5000)
    parser.add_argument("--eval_test", type=int, default=1000)
    parser.add_argument("--output", default="benchmarks/results/cratemae_cifar.json")
    options = parser.parse_args(argv)
    torch.set_num_threads(1)
    data = Path(options.data)
    train_images, train_labels = load_split(data, "train", options.train_images)
    probe_x, probe_y = train_images[: options.eval_train], train_labels[: options.eval_train]
    test_x, test_y = load_split(data, "test", options.eval_test)
    rows = []
    for method in ("cratemae", "mae"):
        model = build(method)
        start = time.time()
        losses = train(model, train_images, options.steps, options.batch_size, options.lr)
        minutes = (time.time() - start) / 60
        model.eval()
        train_features, test_features = features(model.encoder, probe_x), features(model.encoder, test_x)
        probes = {}
        for pooling in ("cls", "mean"):
            knn = knn_accuracies(train_features[pooling], probe_y, test_features[pooling], test_y, ks=(20,))
            probe = linear_probe_accuracy(train_features[pooling], probe_y, test_features[pooling], test_y, epochs=30)
            probes[pooling] = {"knn_top1_k20": round(knn["knn_top1_k20"], 4), "linear_probe_top1": round(probe, 4)}
        row = {
            "method": method,
            "parameters": sum(p.numel() for p in model.parameters()),
            "encoder_parameters": sum(p.numel() for p in model.encoder.parameters()),
            "steps": options.steps,
            "train_minutes": round(minutes, 2),
            "loss_first_20": round(sum(losses[:20]) / 20, 4),
            "loss_last_20": round(sum(losses[-20:]) / 20, 4),
            "test_masked_mse": masked_mse(model, test_x),
            "frozen_features": probes,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    Path(options.output).parent.mkdir(parents=True, exist_ok=True)
    Path(options.output).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
