"""Representation quality on the generated video demo set: pre-train a video method for a fixed number of steps on
one CPU thread, then kNN and linear-probe accuracy of its frozen encoder against the same encoder at random init.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/video_quality.py --methods crossvideomae --max_steps 250 \
        --output benchmarks/results/video_quality.json

Data: the generated demo videos (``hf_mim.data.video.demo_video_dir``: 10 Fashion-MNIST classes, 30 train and 10
test clips per class, one object of the class moving over a black canvas, 32 frames of 32x32). Protocol: the
method's "demo" config (8 frames, tubelet 2x8x8, ViT 6 blocks, 192 wide), its own optimiser defaults, batch 32,
one thread, no data-loader workers; the budget is the process's CPU time (``train_cpu_minutes``, decoding included),
which on a shared machine is below the wall time. Evaluation on frozen, mean-pooled tokens of the centre clip of every train /
test video (no augmentation): weighted kNN (cosine, T=0.07, k=20) and a linear probe (BatchNorm + linear, SGD,
90 epochs, MAE protocol), both from :mod:`hf_mim.evaluation`.
"""

import argparse
import json
import time
from pathlib import Path

import torch

import hf_mim
from hf_mim.data.video import demo_video_dir
from hf_mim.evaluation.features import extract_features
from hf_mim.evaluation.knn import knn_accuracies
from hf_mim.evaluation.probe import linear_probe_accuracy
from hf_mim.training import MIMTrainingArguments
from hf_mim.training.pretrain import PretrainArguments, pretrain


def evaluate(spec, encoder, processor, data: str) -> dict:
    splits = [
        spec.prepare_data(spec.load_data(data, split), processor, train=False, with_labels=True)
        for split in ("train", "test")
    ]
    (train_x, train_y), (test_x, test_y) = (extract_features(encoder, part, batch_size=64, pooling="mean") for part in splits)
    metrics = knn_accuracies(train_x, train_y, test_x, test_y, ks=(20,))
    metrics["linear_probe_top1"] = linear_probe_accuracy(train_x, train_y, test_x, test_y, epochs=90)
    return {name: round(value, 4) for name, value in metrics.items()}


def run_method(method: str, options) -> dict:
    spec = hf_mim.get_method(method)
    out = Path(options.work_dir) / method
    args = PretrainArguments(method=method, data=options.data, size="demo", crop_scale_min=0.5)
    training_args = MIMTrainingArguments(
        output_dir=str(out), max_steps=options.max_steps, per_device_train_batch_size=options.batch_size,
        warmup_steps=0.05, save_strategy="no", logging_steps=10, seed=0, dataloader_num_workers=0,
        disable_tqdm=True, **spec.training_defaults,
    )
    torch.set_num_threads(1)
    start, cpu_start = time.time(), time.process_time()
    trainer, _ = pretrain(args, training_args)
    train_minutes, train_cpu_minutes = (time.time() - start) / 60, (time.process_time() - cpu_start) / 60
    losses = [entry for entry in trainer.state.log_history if "loss" in entry]
    encoder, processor = trainer.model.eval().encoder, trainer.processing_class
    start = time.time()
    pretrained = evaluate(spec, encoder, processor, options.data)
    torch.manual_seed(0)
    random_init = evaluate(spec, spec.model_class(encoder.config).eval(), processor, options.data)
    terms = sorted(key for key in losses[0] if key.startswith("loss_")) if losses else []
    row = {
        "method": method,
        "steps": trainer.state.global_step,
        "batch_size": options.batch_size,
        "train_minutes": round(train_minutes, 1),
        "train_cpu_minutes": round(train_cpu_minutes, 1),
        "eval_minutes": round((time.time() - start) / 60, 1),
        "loss_first": {key: round(losses[0][key], 4) for key in ["loss", *terms]} if losses else None,
        "loss_last": {key: round(losses[-1][key], 4) for key in ["loss", *terms]} if losses else None,
        "pretrained": pretrained,
        "random_init": random_init,
        "encoder_parameters_m": round(sum(p.numel() for p in encoder.parameters()) / 1e6, 2),
    }
    print(json.dumps(row), flush=True)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["crossvideomae"])
    parser.add_argument("--data", default=None, help="video folder with train/ and test/ (default: the demo set)")
    parser.add_argument("--max_steps", type=int, default=250)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--work_dir", default="outputs/video_quality")
    parser.add_argument("--output", default="benchmarks/results/video_quality.json")
    options = parser.parse_args(argv)
    options.data = options.data or str(demo_video_dir())
    output = Path(options.output)
    rows = json.loads(output.read_text()) if output.exists() else []
    for method in options.methods:
        row = run_method(method, options)
        rows = [r for r in rows if (r["method"], r["steps"]) != (method, row["steps"])] + [row]
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(rows, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
