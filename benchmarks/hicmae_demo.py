"""HiCMAE rows of benchmarks/RESULTS.md: pre-training on the generated audio-visual demo set (moving Fashion-MNIST
objects of 5 classes, each paired with the tone pattern of its class; 300 train / 100 test clips) on one CPU thread,
then kNN (k=20, cosine, T=0.07) and linear probe (hf_mim's protocol) on the fused features (mean fused video token
and mean fused audio token, concatenated; no masking) against the same model at random init.

Clips are decoded once (8 frames at stride 4, resized to 32x32, no augmentation) with their 0.96 s filter banks;
pre-training uses the demo preset with the official loss (tube 90% / random 80% masks, frame-difference targets,
InfoNCE weight 0.0025), AdamW (0.9, 0.95), lr 5e-4, weight decay 0.05, batch 16, seed 0, for ``--minutes``.

Run: OMP_NUM_THREADS=1 python benchmarks/hicmae_demo.py --minutes 4 --output benchmarks/results/hicmae_demo.json
"""

import argparse
import json
import time

import torch

torch.set_num_threads(1)

import hf_mim  # noqa: E402
from hf_mim.data import MIMCollator  # noqa: E402
from hf_mim.evaluation.knn import knn_accuracies  # noqa: E402
from hf_mim.evaluation.probe import linear_probe_accuracy  # noqa: E402


def decoded(spec, processor, split: str) -> dict:
    dataset = spec.prepare_data(spec.load_data(None, split), processor, train=False, with_labels=True)
    return MIMCollator()([dataset[i] for i in range(len(dataset))])


@torch.no_grad()
def features(encoder, data: dict) -> torch.Tensor:
    encoder.eval()
    return torch.cat([
        encoder.pooled_features(data["pixel_values"][i:i + 50], data["input_values"][i:i + 50])
        for i in range(0, len(data["labels"]), 50)
    ])


def evaluate(encoder, train: dict, test: dict) -> dict:
    train_x, test_x = features(encoder, train), features(encoder, test)
    knn = knn_accuracies(train_x, train["labels"], test_x, test["labels"], ks=(20,))
    probe = linear_probe_accuracy(train_x, train["labels"], test_x, test["labels"])
    return {"knn_top1": round(float(next(iter(knn.values()))), 4), "linear_probe_top1": round(float(probe), 4)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--output", default=None)
    args = parser.parse_args()
    spec = hf_mim.get_method("hicmae")
    config = spec.make_config("demo")
    processor = spec.make_processor(config)
    start = time.time()
    train, test = decoded(spec, processor, "train"), decoded(spec, processor, "test")
    results = {"train_clips": len(train["labels"]), "test_clips": len(test["labels"]), "decode_seconds": round(time.time() - start)}
    torch.manual_seed(0)
    model = spec.pretraining_class(config)
    results["random_init"] = evaluate(model.encoder, train, test)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, betas=(0.9, 0.95), weight_decay=0.05)
    model.mask_rng = torch.Generator().manual_seed(0)
    order = torch.Generator().manual_seed(0)
    losses, steps, start = [], 0, time.time()
    while time.time() - start < args.minutes * 60:
        model.train()
        batch = torch.randperm(len(train["labels"]), generator=order)[:16]
        out = model(pixel_values=train["pixel_values"][batch], input_values=train["input_values"][batch])
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append({k: round(float(v.detach()), 4) for k, v in {"loss": out.loss, **out.loss_terms}.items()})
        steps += 1
    results.update(steps=steps, pretrain_seconds=round(time.time() - start), first_loss=losses[0], last_loss=losses[-1])
    results["pretrained"] = evaluate(model.encoder, train, test)
    print(json.dumps(results, indent=2))
    if args.output:
        with open(args.output, "w") as stream:
            json.dump(results, stream, indent=2)


if __name__ == "__main__":
    main()
