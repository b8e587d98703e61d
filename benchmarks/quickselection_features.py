"""QuickSelection feature selection on scikit-learn's digits, breast_cancer and wine (CPU, one thread).

For each set and seed: `hf-mim pretrain --method quickselection --data <set>` with the official recipe (1000 hidden
neurons, epsilon 13, zeta 0.2, noise 0.2, dropout 0.2, SGD momentum 0.9, lr 0.01, batch 100, 100 epochs), then
an ExtraTrees classifier (50 trees, as the official `eval_subset`) trained on the train split and scored on the test
split (seeded stratified 80/20) with: the top-K features of the trained model, all features, K random features (10
draws per seed) and the top-K of the same model at initialisation (neuron strength of the random Erdős–Rényi
weights: what training adds).

    OMP_NUM_THREADS=1 python benchmarks/quickselection_features.py [--seeds 3] [--epochs 100]
"""

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)

import hf_mim  # noqa: E402
from hf_mim.cli import main as cli  # noqa: E402
from hf_mim.data.tabular import feature_matrix, load_tabular_dataset, tabular_columns  # noqa: E402

SETS = {"digits": (10, 20), "breast_cancer": (5, 10), "wine": (3, 5)}  # K values: about 1/6 and 1/3 of the features


def split(name):
    parts = {}
    for part in ("train", "test"):
        data = load_tabular_dataset(name, part)
        columns, label = tabular_columns(data)
        parts[part] = (feature_matrix(data, columns), np.asarray(data[label]))
    return parts


def extra_trees_accuracy(parts, features, seed) -> float:
    from sklearn.ensemble import ExtraTreesClassifier

    (x_train, y_train), (x_test, y_test) = parts["train"], parts["test"]
    classifier = ExtraTreesClassifier(n_estimators=50, n_jobs=1, random_state=seed)
    classifier.fit(x_train[:, features], y_train)
    return float(classifier.score(x_test[:, features], y_test))


def run(name, seed, epochs, workdir) -> dict:
    spec = hf_mim.get_method("quickselection")
    out = Path(workdir) / f"{name}-{seed}"
    start = time.time()
    cli(["pretrain", "--method", "quickselection", "--data", name, "--num_train_epochs", str(epochs), "--seed", str(seed),
         "--output_dir", str(out), "--save_strategy", "no", "--report_to", "none", "--disable_tqdm", "true",
         "--logging_steps", "5"])
    seconds = time.time() - start
    history = json.loads((out / "trainer_state.json").read_text())["log_history"]
    losses = [e["loss"] for e in history if "loss" in e]
    trained = spec.model_class.from_pretrained(out)
    autoencoder = spec.pretraining_class.from_pretrained(out).eval()
    processor = spec.data.auto_class("processor").from_pretrained(out)
    torch.manual_seed(seed)  # the same model at initialisation (--seed seeds before the model is built)
    initial_autoencoder = spec.pretraining_class(trained.config).eval()
    initial = initial_autoencoder.encoder
    parts = split(name)
    feature_count = parts["train"][0].shape[1]
    rng = np.random.default_rng(seed)
    with torch.no_grad():  # clean reconstruction MSE per feature, as the official test loss (predict, no noise)
        rows = processor(parts["train"][0])["input_values"]
        clean_mse = [float(torch.nn.functional.mse_loss(model(input_values=rows).logits, rows))
                     for model in (initial_autoencoder, autoencoder)]
    result = {"seconds": round(seconds, 1), "first_loss": losses[0], "last_loss": losses[-1], "clean_train_mse_init": clean_mse[0],
              "clean_train_mse": clean_mse[1],
              "set_steps": int(trained.num_set_steps), "all": extra_trees_accuracy(parts, np.arange(feature_count), seed)}
    for k in SETS[name]:
        result[f"top{k}"] = extra_trees_accuracy(parts, trained.select_features(k).numpy(), seed)
        result[f"init_top{k}"] = extra_trees_accuracy(parts, initial.select_features(k).numpy(), seed)
        result[f"random{k}"] = float(np.mean([
            extra_trees_accuracy(parts, rng.choice(feature_count, k, replace=False), seed) for _ in range(10)
        ]))
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--output", default="benchmarks/results/quickselection_features.json")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as workdir:
        for name in SETS:
            results[name] = [run(name, seed, args.epochs, workdir) for seed in range(args.seeds)]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(results, indent=1))
    print("| set (features, train/test rows) | K | QuickSelection top-K | top-K at init | random K | all features |")
    print("|---|---|---|---|---|---|")
    for name, runs in results.items():
        parts = split(name)
        shape = f"{name} ({parts['train'][0].shape[1]}, {len(parts['train'][1])}/{len(parts['test'][1])})"
        for k in SETS[name]:
            cells = [f"{100 * np.mean([r[key] for r in runs]):.1f} ± {100 * np.std([r[key] for r in runs]):.1f}"
                     for key in (f"top{k}", f"init_top{k}", f"random{k}", "all")]
            print(f"| {shape} | {k} | " + " | ".join(cells) + " |")
    for name, runs in results.items():
        print(name, "loss", [f"{r['first_loss']:.2f}->{r['last_loss']:.2f}" for r in runs], "clean train MSE init -> trained",
              [f"{r['clean_train_mse_init']:.3f}->{r['clean_train_mse']:.3f}" for r in runs], "SET steps",
              runs[0]["set_steps"], "seconds", [r["seconds"] for r in runs])


if __name__ == "__main__":
    main()
