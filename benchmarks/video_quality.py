"""Representation quality of a video method on the generated demo set: pre-train at a fixed CPU budget, then kNN
and linear-probe accuracy of the frozen encoder (mean-pooled tokens) next to the same encoder at random init.

Usage (any registered video method; the data defaults to the generated moving-Fashion-MNIST demo clips):
    OMP_NUM_THREADS=1 python benchmarks/video_quality.py --method videomae2 --max_steps 600 --max_minutes 60
    OMP_NUM_THREADS=1 python benchmarks/video_quality.py --methods crossvideomae tgm --max_steps 250

Protocol (the same for every video method, so rows are comparable): the method's "demo" config (8 frames of 32x32,
tubelet 2, patch 8, so 4x4x4 = 64 tubelets), clips of 8 frames every 4th frame from a random offset (no crop by
default: the demo objects fill most of the frame; --crop_scale_min 0.35 gives VideoMAE's multi-scale crop),
batch 32, AdamW (0.9, 0.95), weight decay 0.05, lr 1e-3 per 256 clips x --lr_scale, cosine schedule over --epochs
(or --max_steps) with 5% warm-up, one CPU thread, training stopped at --max_minutes wall-clock at the latest (the
row says how many steps that was). Evaluation: centre clips of the 4,000 train / 1,000 test clips (10 classes),
weighted kNN (cosine, T=0.07, k=20) and a linear probe (BatchNorm + linear, 90 epochs, MAE protocol).
"""

import argparse
import json
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

import hf_mim
from hf_mim.evaluation.features import extract_features
from hf_mim.evaluation.knn import knn_accuracies
from hf_mim.evaluation.probe import linear_probe_accuracy
from hf_mim.training import MIMTrainingArguments
from hf_mim.training.pretrain import PretrainArguments, pretrain


class TimeBudget(TrainerCallback):
    """Stop training once ``minutes`` of wall-clock time have passed (checked after every step)."""

    def __init__(self, minutes: float):
        self.seconds, self.start = minutes * 60, None

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.time()

    def on_step_end(self, args, state, control, **kwargs):
        if time.time() - self.start > self.seconds:
            control.should_training_stop = True


def evaluate(encoder, spec, processor, data: str | None) -> dict:
    """kNN (k=20) and linear-probe top-1 of ``encoder`` on the centre clips of ``data``'s train / test splits."""
    splits = {}
    for split in ("train", "test"):
        dataset = spec.prepare_data(spec.load_data(data, split=split), processor, train=False, with_labels=True)
        splits[split] = extract_features(encoder, dataset, batch_size=64, pooling="mean", desc=f"{split} features")
    (train_x, train_y), (test_x, test_y) = splits["train"], splits["test"]
    metrics = knn_accuracies(train_x, train_y, test_x, test_y, ks=(20,))
    metrics["linear_probe_top1"] = linear_probe_accuracy(train_x, train_y, test_x, test_y, epochs=90)
    return {name: round(value, 4) for name, value in metrics.items()}


def run_method(method: str, options) -> dict:
    spec = hf_mim.get_method(method)
    if spec.modality != "video":
        raise SystemExit(f"{method} is a {spec.modality} method; this benchmark is for video methods")
    out = Path(options.work_dir) / method
    args = PretrainArguments(
        method=method, data=options.data, size="demo", crop_scale_min=options.crop_scale_min,
        config_overrides=options.config_overrides,
    )
    batch = options.batch_size
    training_args = MIMTrainingArguments(
        output_dir=str(out), num_train_epochs=options.epochs, per_device_train_batch_size=batch,
        base_learning_rate=1e-3 * options.lr_scale, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05,
        max_steps=options.max_steps, warmup_steps=0.05, save_strategy="no", logging_steps=10, seed=options.seed, dataloader_num_workers=0,
        disable_tqdm=True, report_to=[],
    )
    torch.set_num_threads(options.threads)
    start = time.time()
    trainer, _ = pretrain(args, training_args, callbacks=[TimeBudget(options.max_minutes)])
    train_minutes = (time.time() - start) / 60
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    processor, encoder = trainer.processing_class, trainer.model.encoder.eval()
    pretrained = evaluate(encoder, spec, processor, options.data)
    torch.manual_seed(options.seed)
    random_init = evaluate(spec.model_class(encoder.config).eval(), spec, processor, options.data)
    row = {
        "method": method,
        "config_overrides": options.config_overrides,
        "budget_minutes": options.max_minutes,
        "threads": options.threads,
        "train_minutes": round(train_minutes, 1),
        "steps": trainer.state.global_step,
        "epochs_done": round(trainer.state.epoch or 0, 1),
        "train_clips_seen": trainer.state.global_step * batch,
        "loss_first": round(losses[0], 4) if losses else None,
        "loss_last": round(losses[-1], 4) if losses else None,
        "pretrained": pretrained,
        "random_init": random_init,
        "encoder_parameters_m": round(sum(p.numel() for p in encoder.parameters()) / 1e6, 2),
    }
    print(json.dumps(row), flush=True)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", "--methods", dest="methods", nargs="+", required=True, help="registered video method(s)")
    parser.add_argument("--data", default=None, help="video folder / parquet (default: the generated demo set)")
    parser.add_argument("--max_minutes", type=float, default=10.0, help="wall-clock training budget")
    parser.add_argument("--epochs", type=float, default=30, help="length of the lr schedule")
    parser.add_argument("--max_steps", type=int, default=-1, help="schedule length in steps (overrides --epochs)")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--crop_scale_min", type=float, default=1.0, help="RandomResizedCrop lower scale (1 = no crop)")
    parser.add_argument("--lr_scale", type=float, default=1.5, help="base lr = 1e-3 x this, per 256 clips")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--config_overrides", default=None, help="JSON of config fields")
    parser.add_argument("--work_dir", default="outputs/video_quality")
    parser.add_argument("--output", default=None, help="JSON file for the row (default: benchmarks/results/video_quality_<method>.json)")
    options = parser.parse_args(argv)
    for method in options.methods:
        row = run_method(method, options)
        output = Path(options.output or f"benchmarks/results/video_quality_{method}.json")
        if len(options.methods) > 1 and options.output:
            output = output.with_name(f"{output.stem}_{method}{output.suffix}")
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()
