"""Representation quality on CIFAR-10: pre-train each method with the same recipe and budget, then kNN and
linear-probe accuracy on the CIFAR-10 test set, next to a randomly initialised encoder of the same architecture.

Usage (the data is ../shared/data/cifar10/{train,test}.parquet, or --data):
    python benchmarks/cifar_quality.py --methods mae simmim --epochs 12 --output benchmarks/results/cifar.json

Protocol (the same for every method, so rows are comparable): the method's "demo" config at 32x32 (ViT with
patch 4, 6 blocks, 192 wide), AdamW (0.9, 0.95), weight decay 0.05, base lr 1e-3 per 256 images, cosine with 5%
warm-up, RandomResizedCrop(0.35-1) + flip, batch 128, CIFAR-10 mean/std. Evaluation on frozen features of all
50,000 training images (no augmentation): weighted kNN (cosine, T=0.07, k=20 / 200) and a linear probe (BatchNorm
+ linear, SGD, 90 epochs, MAE protocol); pooling is the encoder default (cls token when there is one).
"""

import argparse
import json
import time
from pathlib import Path

import torch

import hf_mim
from hf_mim.data import load_image_dataset, prepare_dataset, subset
from hf_mim.evaluation.features import default_pooling, extract_features
from hf_mim.evaluation.knn import knn_accuracies
from hf_mim.evaluation.probe import linear_probe_accuracy
from hf_mim.training import MIMTrainingArguments
from hf_mim.training.pretrain import PretrainArguments, pretrain

CIFAR_MEAN, CIFAR_STD = [0.4914, 0.4822, 0.4465], [0.2470, 0.2435, 0.2616]
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10"


def evaluate(encoder, processor, data: str, max_train: int | None, mean_too: bool = True) -> dict:
    """kNN and linear-probe accuracy per pooling: the encoder default (cls when it has one) and, for encoders with
    a cls token, also the mean of patch tokens (short pre-training shapes patch tokens long before the cls token)."""
    train = load_image_dataset(data, "train")
    if max_train:
        train = subset(train, max_train)
    train = prepare_dataset(train, processor, train=False, with_labels=True)
    test = prepare_dataset(load_image_dataset(data, "test"), processor, train=False, with_labels=True)
    poolings = [default_pooling(encoder)] + (["mean"] if mean_too and default_pooling(encoder) == "cls" else [])
    results = {}
    for pooling in poolings:
        train_x, train_y = extract_features(encoder, train, batch_size=512, pooling=pooling, desc="train features")
        test_x, test_y = extract_features(encoder, test, batch_size=512, pooling=pooling, desc="test features")
        metrics = knn_accuracies(train_x, train_y, test_x, test_y, ks=(20, 200))
        metrics["linear_probe_top1"] = linear_probe_accuracy(train_x, train_y, test_x, test_y, epochs=90)
        results[pooling] = {k: round(v, 4) for k, v in metrics.items()}
    return results


def teacher_overrides(method: str, teacher: str | None) -> dict:
    """Point a teacher-guided method at an hf_mim MAE pre-trained by this benchmark (``--teacher DIR``): same
    pixels as the student, so no re-normalisation. CIFAR has no contrastive / supervised teacher of ours, so
    Hybrid Distillation's CL teacher and MR-MAE's single teacher are that MAE too (stated in RESULTS.md)."""
    if teacher is None:
        return {}
    config = json.loads((Path(teacher) / "config.json").read_text())
    width, depth = config["hidden_size"], config["num_hidden_layers"]
    common = dict(teacher_name_or_path=teacher, teacher_image_mean=None, teacher_image_std=None, teacher_hidden_size=width)
    return {
        "mrmae": {**common, "second_teacher_name_or_path": None},
        "dmae": {**common, "teacher_align_layers": [max(1, round(0.75 * depth))]},
        "maskalign": {**common, "teacher_num_hidden_layers": depth},
        "g2sd": {
            **common,
            "teacher_decoder_hidden_size": config["decoder_hidden_size"],
            "teacher_decoder_layer": config["decoder_num_hidden_layers"],
        },
        "hybriddistill": dict(
            mim_teacher_name_or_path=teacher, mim_teacher_num_hidden_layers=depth, cl_teacher_name_or_path=teacher,
            cl_teacher_hidden_size=width, cl_teacher_image_mean=None, cl_teacher_image_std=None,
        ),
    }.get(method, {})


def run_method(method: str, options) -> dict:
    spec = hf_mim.get_method(method)
    out = Path(options.work_dir) / method
    args = PretrainArguments(
        method=method, data=options.data, size="demo", crop_scale_min=0.35, image_mean=CIFAR_MEAN,
        image_std=CIFAR_STD, max_train_samples=options.max_train_samples,
        online_probe_steps=options.online_probe_steps, probe_samples=options.probe_samples,
        config_overrides=json.dumps(
            {"num_channels": 3, **teacher_overrides(method, options.teacher), **json.loads(options.config_overrides or "{}")}
        ),
    )
    training_args = MIMTrainingArguments(
        output_dir=str(out), num_train_epochs=options.epochs, per_device_train_batch_size=options.batch_size,
        base_learning_rate=options.base_lr, lr_batch_divisor=256, adam_beta2=0.95, weight_decay=0.05,
        warmup_steps=0.05, save_strategy="no", logging_steps=50, seed=0, dataloader_num_workers=options.workers,
        disable_tqdm=True,
    )
    start = time.time()
    trainer, result = pretrain(args, training_args)
    train_minutes = (time.time() - start) / 60
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    trainer.save_model(str(out))  # kept: the teacher-guided methods distil from this MAE
    model, processor = trainer.model.eval(), trainer.processing_class
    encoder = model.encoder
    trained = evaluate(encoder, processor, options.data, options.eval_train_samples, not options.default_pooling_only)
    random_init = None
    if not options.skip_random:
        torch.manual_seed(0)
        random_encoder = spec.model_class(encoder.config).eval()
        random_init = evaluate(
            random_encoder, processor, options.data, options.eval_train_samples, not options.default_pooling_only
        )
    probes = [c for c in trainer.callback_handler.callbacks if hasattr(c, "history")]
    row = {
        "method": method,
        "epochs": options.epochs,
        "steps": trainer.state.global_step,
        "train_images": trainer.state.global_step * options.batch_size,
        "train_minutes": round(train_minutes, 1),
        "loss_first": round(losses[0], 4) if losses else None,
        "loss_last": round(losses[-1], 4) if losses else None,
        "pretrained": trained,
        "random_init": random_init,
        "online_probe": probes[0].history if probes else None,
        "max_train_samples": options.max_train_samples,
        "eval_train_samples": options.eval_train_samples,
        "teacher": options.teacher if teacher_overrides(method, options.teacher) else None,
        "encoder_parameters_m": round(sum(p.numel() for p in encoder.parameters()) / 1e6, 2),
    }
    print(json.dumps(row), flush=True)
    return row


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["mae", "simmim"])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--epochs", type=float, default=12)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--base_lr", type=float, default=1e-3)
    parser.add_argument("--max_train_samples", type=int, default=None)
    parser.add_argument("--eval_train_samples", type=int, default=None, help="cap the kNN / probe training set")
    parser.add_argument("--config_overrides", default=None)
    parser.add_argument("--online_probe_steps", type=int, default=0, help="kNN / probe curve during training (0: off)")
    parser.add_argument("--probe_samples", type=int, default=5000, help="images per split for the online probe")
    parser.add_argument("--teacher", default=None, help="hf_mim MAE checkpoint for the teacher-guided methods")
    parser.add_argument("--default_pooling_only", action="store_true", help="skip the extra mean-pooling evaluation")
    parser.add_argument("--skip_random", action="store_true", help="skip the random-init baseline")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--work_dir", default="outputs/cifar_quality")
    parser.add_argument("--output", default="benchmarks/results/cifar_quality.json")
    options = parser.parse_args(argv)
    if not Path(options.data).exists():
        raise SystemExit(f"CIFAR-10 not found at {options.data}; pass --data")
    rows = []
    output = Path(options.output)
    previous = json.loads(output.read_text()) if output.exists() else []
    for method in options.methods:
        try:
            rows.append(run_method(method, options))
        except Exception as error:  # one broken method must not cost the other rows
            print(f"{method} failed: {error!r}", flush=True)
            rows.append({"method": method, "error": repr(error)})
        merged = [r for r in previous if r["method"] not in {row["method"] for row in rows}] + rows
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(merged, indent=2) + "\n")
    print(f"wrote {output}")


if __name__ == "__main__":
    main()
