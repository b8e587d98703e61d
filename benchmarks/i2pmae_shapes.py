"""I2P-MAE on the generated shape set (benchmarks/RESULTS.md, "I2P-MAE on generated shapes"): pre-train with
`hf-mim pretrain --method i2pmae --data demo`, then a linear SVM (the official evaluation: sklearn ``SVC(C=0.0093,
kernel="linear")`` on the max-pooled top-scale features) and hf_mim's linear probe (`hf-mim probe`) on frozen
features, pre-trained vs the same encoder at random init.

Data: the demo point clouds of hf_mim.data.points (8 shape classes; train 320 clouds, test 160, 1024 surface points
each, random rotation / scale / jitter), sampled to 512 points by the feature extractor. Teacher: a RANDOM 2-layer
CLIP vision tower (the demo config; no pre-trained image model is reachable offline), so the masks and 2-D targets
carry no image semantics here: what is measured is the 3-D side (hierarchical encoder, Chamfer on masked groups).
CPU only, one thread:

    OMP_NUM_THREADS=1 python benchmarks/i2pmae_shapes.py [--epochs 5] [--output benchmarks/results/i2pmae_shapes.json]
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

from transformers import AutoFeatureExtractor, AutoModel  # noqa: E402

from hf_mim.cli import main  # noqa: E402
from hf_mim.data.points import load_point_dataset, prepare_point_dataset  # noqa: E402
from hf_mim.evaluation.features import extract_features  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=float, default=5)
parser.add_argument("--batch_size", type=int, default=32)
parser.add_argument("--learning_rate", type=float, default=1e-3)
parser.add_argument("--output_dir", default="outputs/i2pmae_shapes")
parser.add_argument("--output", default="benchmarks/results/i2pmae_shapes.json")
parser.add_argument("--evaluate_only", action="store_true", help="reuse the pre-trained run in --output_dir")
options = parser.parse_args()
out = Path(options.output_dir)
start, cpu_start = time.time(), time.process_time()

# 1. pre-train with the CLI on the generated shapes (demo config: 512 points, scales 128x16 / 64x8 / 16x8)
if not options.evaluate_only:
    shutil.rmtree(out, ignore_errors=True)  # this script's own run folder
    main([
        "pretrain", "--method", "i2pmae", "--size", "demo", "--data", "demo", "--output_dir", str(out),
        "--num_train_epochs", str(options.epochs), "--per_device_train_batch_size", str(options.batch_size),
        "--learning_rate", str(options.learning_rate), "--logging_steps", "5", "--save_strategy", "no", "--seed", "0",
        "--disable_tqdm", "true",
    ])
pretrain_cpu_minutes = (time.process_time() - cpu_start) / 60
log = json.loads((out / "trainer_state.json").read_text())["log_history"]
losses = [entry["loss"] for entry in log if "loss" in entry]

# 2. frozen features (max-pooled top-scale tokens), pre-trained vs random init, linear SVM and linear probe
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.svm import SVC  # noqa: E402

from hf_mim.evaluation.probe import linear_probe_accuracy  # noqa: E402

processor = AutoFeatureExtractor.from_pretrained(out)
splits = [prepare_point_dataset(load_point_dataset(None, split), processor, with_labels=True) for split in ("train", "test")]
results = {}
for name in ("i2pmae", "random_init"):
    encoder = AutoModel.from_pretrained(out).eval()
    if name == "random_init":
        torch.manual_seed(0)
        encoder = type(encoder)(encoder.config).eval()
    (train_x, train_y), (test_x, test_y) = (extract_features(encoder, split, batch_size=64) for split in splits)
    svm = SVC(C=0.0093, kernel="linear").fit(train_x.numpy(), train_y.numpy())
    # the official C suits its features' scale; standardised features (what the probe's BatchNorm does) as well
    scaler = StandardScaler().fit(train_x.numpy())
    scaled_svm = SVC(C=0.0093, kernel="linear").fit(scaler.transform(train_x.numpy()), train_y.numpy())
    results[name] = {
        "linear_svm_top1": float(svm.score(test_x.numpy(), test_y.numpy())),
        "linear_svm_standardised_top1": float(scaled_svm.score(scaler.transform(test_x.numpy()), test_y.numpy())),
        "linear_probe_top1": linear_probe_accuracy(train_x, train_y, test_x, test_y),
    }

summary = {
    "data": "hf_mim generated shapes: 8 classes, 320 train / 160 test clouds, 512 points",
    "steps": len(losses) and log[-1].get("step"), "epochs": options.epochs, "batch_size": options.batch_size,
    "loss_first_5_logs": losses[:5], "loss_last_5_logs": losses[-5:],
    "pretrain_cpu_minutes": None if options.evaluate_only else round(pretrain_cpu_minutes, 2),
    "cpu_minutes": round((time.process_time() - cpu_start) / 60, 2), "wall_minutes": round((time.time() - start) / 60, 2),
    "threads": 1, **results,
}
Path(options.output).parent.mkdir(parents=True, exist_ok=True)
Path(options.output).write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
