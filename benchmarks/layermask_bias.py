"""Missingness bias of input removal on CIFAR-10: grey fill vs black fill vs layer masking (Balasubramanian &
Feizi 2023), scaled down to one CPU thread and a few minutes.

A small transformers ResNet is trained briefly on CIFAR-10 (never on masked images), then 8x8 cells are removed:
1. prediction change (vs the unmasked prediction) and accuracy against the fraction of cells removed;
2. mask-shape leakage: a logistic-regression probe reads which of four half-image masks (left / top / 8x8
   checkerboard / 16x16 checkerboard, all 50 %) was used from the logits alone; chance is 25 %. CIFAR-10 has
   no segmentations, so this stands in for the paper's class-from-mask-shape protocol;
3. LIME (16 cells, 200 samples, ridge fit) with each removal method; deletion curves remove the most important
   cells first, under the same removal. Reported: the gap between the random-order and the LIME-order deletion
   AUC of the predicted class's probability (larger = the attribution finds what the model uses).

Usage: OMP_NUM_THREADS=1 python benchmarks/layermask_bias.py [--out benchmarks/results/layermask_bias.json]
"""

import argparse
import io
import json
import time

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

from hf_mim.models.layermask import LayerMaskConfig, LayerMaskedResNetForImageClassification, random_block_mask

CIFAR = "/work/shared/data/cifar10"
MEAN = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
STD = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)


def load(split, count, seed):
    table = pq.read_table(f"{CIFAR}/{split}.parquet")  # sorted by label: take a seeded random subset
    table = table.take(np.random.default_rng(seed).permutation(table.num_rows)[:count]).to_pylist()
    images = np.stack([np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB")) for row in table])
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    return (pixels - MEAN) / STD, torch.tensor([row["label"] for row in table])


def remove(model, pixels, keep, method):
    """Logits with the cells where keep == 0 removed by ``method``."""
    keep4 = keep[:, None]
    if method == "layer mask":
        return model(pixels, pixel_mask=keep).logits
    fill = torch.zeros_like(pixels) if method == "grey fill" else ((0 - MEAN) / STD).expand_as(pixels)
    return model(pixels * keep4 + fill * (1 - keep4)).logits  # grey = the dataset mean (0 after normalising)


def batched(fn, *tensors, size=250):
    return torch.cat([fn(*(t[i:i + size] for t in tensors)) for i in range(0, len(tensors[0]), size)])


def train(model, pixels, labels, epochs, seed):
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
    model.train()
    for _ in range(epochs):
        for index in torch.randperm(len(pixels), generator=generator).split(128):
            batch = pixels[index]
            flip = torch.rand(len(index), generator=generator) < 0.5
            batch = torch.where(flip.view(-1, 1, 1, 1), batch.flip(3), batch)
            loss = model(batch, labels=labels[index]).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model.eval()


def shape_masks(count):
    cells8 = (torch.arange(32)[:, None] // 8 + torch.arange(32)[None] // 8) % 2
    cells16 = (torch.arange(32)[:, None] // 16 + torch.arange(32)[None] // 16) % 2
    shapes = [torch.arange(32).expand(32, 32) >= 16, torch.arange(32)[:, None].expand(32, 32) >= 16, cells8, cells16]
    kinds = torch.arange(count) % 4
    return torch.stack([shapes[k].float() for k in kinds]), kinds


def probe_accuracy(features, kinds, seed):
    from sklearn.linear_model import LogisticRegression

    order = np.random.default_rng(seed).permutation(len(kinds))
    half = len(order) // 2
    x, y = features.numpy(), kinds.numpy()
    clf = LogisticRegression(max_iter=2000).fit(x[order[:half]], y[order[:half]])
    return float(clf.score(x[order[half:]], y[order[half:]]))


def lime_gap(model, pixels, method, samples, generator):
    """Random-order minus LIME-order deletion AUC, averaged over images (one image at a time)."""
    gaps = []
    for image in pixels:
        image = image[None]
        with torch.no_grad():
            target = model(image).logits.argmax(-1)
            cells = (torch.rand(samples, 16, generator=generator) < 0.5).float()
            cells[0] = 1
            keep = cells.view(-1, 1, 4, 4).repeat_interleave(8, 2).repeat_interleave(8, 3)[:, 0]
            prob = remove(model, image.expand(samples, -1, -1, -1), keep, method).softmax(-1)[:, target[0]]
            design = torch.cat([cells, torch.ones(samples, 1)], 1)
            weights = torch.linalg.solve(design.T @ design + 1e-2 * torch.eye(17), design.T @ prob)[:16]

            def deletion_auc(order):
                keeps = torch.stack([torch.ones(16).index_fill(0, order[:k], 0) for k in range(16)])
                keep = keeps.view(-1, 1, 4, 4).repeat_interleave(8, 2).repeat_interleave(8, 3)[:, 0]
                return remove(model, image.expand(16, -1, -1, -1), keep, method).softmax(-1)[:, target[0]].mean()

            random_auc = torch.stack([deletion_auc(torch.randperm(16, generator=generator)) for _ in range(4)]).mean()
            gaps.append(float(random_auc - deletion_auc(weights.argsort(descending=True))))
    return float(np.mean(gaps))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", type=int, default=8000)
    parser.add_argument("--test", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lime-images", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/layermask_bias.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    start = time.time()
    train_x, train_y = load("train", args.train, args.seed)
    test_x, test_y = load("test", args.test, args.seed)
    config = LayerMaskConfig(embedding_size=32, hidden_sizes=[32, 64, 128], depths=[1, 1, 1], layer_type="basic",
                             num_labels=10, fill_iterations=1000, mask_block_size=8)
    model = train(LayerMaskedResNetForImageClassification(config), train_x, train_y, args.epochs, args.seed)
    methods = ["grey fill", "black fill", "layer mask"]
    results = {"train_images": args.train, "test_images": args.test, "epochs": args.epochs, "removal": {}}
    generator = torch.Generator().manual_seed(args.seed + 1)
    with torch.no_grad():
        clean = batched(lambda x: model(x).logits, test_x).argmax(-1)
        results["clean_accuracy"] = float((clean == test_y).float().mean())
        for fraction in (0.125, 0.25, 0.5, 0.75):
            keep = random_block_mask(len(test_x), 32, 8, fraction, generator)
            row = {}
            for method in methods:
                pred = batched(lambda x, k: remove(model, x, k, method), test_x, keep).argmax(-1)
                row[method] = {"changed": float((pred != clean).float().mean()),
                               "accuracy": float((pred == test_y).float().mean())}
            results["removal"][str(fraction)] = row
        keep, kinds = shape_masks(len(test_x))
        results["shape_probe"] = {
            method: probe_accuracy(batched(lambda x, k: remove(model, x, k, method), test_x, keep), kinds, args.seed)
            for method in methods
        }
    results["lime_gap"] = {method: lime_gap(model, test_x[:args.lime_images], method, 200, generator)
                           for method in methods}
    results["seconds"] = round(time.time() - start, 1)
    print(json.dumps(results, indent=1))
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
