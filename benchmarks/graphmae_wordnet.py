"""GraphMAE on the real WordNet noun graph (benchmarks/RESULTS.md, "GraphMAE on WordNet"): node-classification
linear probes (supersense, 26 classes) on frozen node embeddings of a GraphMAE pre-trained with `hf-mim pretrain`,
of the same GNN at random init (`hf-mim probe --random_init`), and on the raw node features.

Graph: 82,115 noun synsets of shared/data/wordnet, 168,854 directed hypernym/hyponym edges (both directions),
512-d hashed bag of words of the definition, row-normalised as GraphMAE's Planetoid loading; probe: a seeded 10% of
the nodes train, another 10% test (hf_mim's linear probe: BatchNorm + linear, SGD, 90 epochs, accuracy through
`evaluate`). CPU only, one thread:

    OMP_NUM_THREADS=1 python benchmarks/graphmae_wordnet.py [--epochs 60] [--output benchmarks/results/graphmae_wordnet.json]
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

from hf_mim.cli import main  # noqa: E402
from hf_mim.data.graphs import node_split, wordnet_graph  # noqa: E402
from hf_mim.evaluation.probe import linear_probe_accuracy  # noqa: E402
from hf_mim.processing import GraphFeatureExtractor  # noqa: E402

WORDNET = "/work/shared/data/wordnet"

parser = argparse.ArgumentParser()
parser.add_argument("--data", default=WORDNET)
parser.add_argument("--epochs", type=int, default=60, help="full-graph pre-training steps")
parser.add_argument("--hidden_size", type=int, default=64)
parser.add_argument("--learning_rate", type=float, default=5e-3)
parser.add_argument("--output_dir", default="outputs/graphmae_wordnet")
parser.add_argument("--output", default="benchmarks/results/graphmae_wordnet.json")
options = parser.parse_args()
out = Path(options.output_dir)
shutil.rmtree(out, ignore_errors=True)  # this script's own run folder
start = time.time()

# 1. pre-train with the CLI on the WordNet folder (one graph = one full-batch step per epoch)
config = {"hidden_size": options.hidden_size, "num_attention_heads": 4, "feature_dropout": 0.2, "attention_dropout": 0.1}
main([
    "pretrain", "--method", "graphmae", "--data", options.data, "--output_dir", str(out),
    "--num_train_epochs", str(options.epochs), "--per_device_train_batch_size", "1", "--learning_rate",
    str(options.learning_rate), "--logging_steps", "5", "--save_strategy", "no", "--seed", "0", "--disable_tqdm", "true",
    "--config_overrides", json.dumps(config), "--processor_overrides", '{"normalize_features": "row"}',
])
pretrain_minutes = (time.time() - start) / 60
log = json.loads((out / "trainer_state.json").read_text())["log_history"]
losses = [entry["loss"] for entry in log if "loss" in entry]

# 2. linear probes on frozen node embeddings: GraphMAE, the same GNN at random init
results = {}
for name, extra in (("graphmae", []), ("random_init_gnn", ["--random_init"])):
    path = out / f"probe_{name}.json"
    main(["probe", str(out), "--data", options.data, "--output", str(path), *extra])
    results[name] = json.loads(path.read_text())["linear_probe_top1"]

# 3. the same probe on the raw (row-normalised) features
graph = wordnet_graph(Path(options.data))
features = GraphFeatureExtractor(graph["node_features"].shape[1], normalize_features="row")(
    {"node_features": graph["node_features"], "edge_index": graph["edge_index"]}
)["node_features"]
labels = torch.as_tensor(graph["labels"])
train, test = node_split(len(labels))
results["raw_features"] = linear_probe_accuracy(features[train], labels[train], features[test], labels[test], progress=False)

summary = {
    "nodes": int(len(labels)), "edges": int(graph["edge_index"].shape[1]), "classes": len(graph["label_names"]),
    "feature_size": int(features.shape[1]), "train_nodes": len(train), "test_nodes": len(test),
    "epochs": options.epochs, "hidden_size": options.hidden_size, "learning_rate": options.learning_rate,
    "first_loss": losses[0], "last_loss": losses[-1], "pretrain_minutes": round(pretrain_minutes, 2),
    "total_minutes": round((time.time() - start) / 60, 2), "linear_probe_top1": results,
}
Path(options.output).parent.mkdir(parents=True, exist_ok=True)
Path(options.output).write_text(json.dumps(summary, indent=2) + "\n")
print(json.dumps(summary, indent=2))
