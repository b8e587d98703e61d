"""Graph data: datasets whose rows are graphs (node features, edge list, optional per-node labels).

Sources: None / "demo" (a generated stochastic-block-model set), a parquet file / folder / glob or a ``datasets``
name with one graph per row, or a WordNet folder (``synsets.parquet`` + ``edges.parquet``, as in
``shared/data/wordnet``) turned into one graph of noun synsets. A node-classification graph such as WordNet is a
single row: every training step sees the whole graph (full-batch, as GraphMAE's transductive training).
"""

import functools
import re
import zlib
from pathlib import Path

import numpy as np
import torch
from datasets import Array2D, Dataset, Features, List, Value

from hf_mim.data import DataError, MissingSplitError, find_column, generated_split, load_split
from hf_mim.processing.graph_processing_mim import collate_graphs

NODE_FEATURE_CANDIDATES = ("node_features", "x", "features", "node_feat")
EDGE_INDEX_CANDIDATES = ("edge_index", "edges")
NODE_LABEL_CANDIDATES = ("labels", "label", "y", "node_labels")
DEMO_SPLITS = {"train": (32, 1), "validation": (8, 2), "test": (8, 3)}  # graphs, seed
WORDNET_RELATIONS = ("@", "~", "@i", "~i")  # hypernym, hyponym and their instance forms


def make_sbm_graphs(num_graphs: int = 32, num_nodes: int = 64, num_classes: int = 4, feature_size: int = 16,
                    p_in: float = 0.2, p_out: float = 0.01, feature_noise: float = 2.0, seed: int = 0) -> Dataset:
    """Stochastic-block-model graphs: nodes of class ``c`` link with probability ``p_in`` inside their class and
    ``p_out`` across; features are the class's mean (fixed for every seed) plus Gaussian noise, so the class is
    weakly visible in a node's own features and clearer in its neighbourhood's. Undirected (both directions)."""
    means = np.random.default_rng(12345).normal(size=(num_classes, feature_size)).astype(np.float32)
    rng = np.random.default_rng(seed)
    rows = {"node_features": [], "edge_index": [], "labels": []}
    for _ in range(num_graphs):
        labels = rng.integers(0, num_classes, num_nodes)
        probability = np.where(labels[:, None] == labels[None, :], p_in, p_out)
        upper = np.triu(rng.random((num_nodes, num_nodes)) < probability, k=1)
        source, target = np.nonzero(upper)
        features = means[labels] + feature_noise * rng.normal(size=(num_nodes, feature_size)).astype(np.float32)
        rows["node_features"].append(features.tolist())
        rows["edge_index"].append([np.concatenate([source, target]).tolist(), np.concatenate([target, source]).tolist()])
        rows["labels"].append(labels.tolist())
    return Dataset.from_dict(rows)


def hashed_bag_of_words(texts, feature_size: int) -> np.ndarray:
    """``[len(texts), feature_size]`` word counts, words hashed with CRC-32 (stable across runs and machines)."""
    features = np.zeros((len(texts), feature_size), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in re.findall(r"[a-z]+", text.lower()):
            features[row, zlib.crc32(word.encode()) % feature_size] += 1
    return features


@functools.lru_cache(maxsize=2)  # a probe loads the train and the test split of the same graph
def wordnet_graph(folder, feature_size: int = 512) -> dict:
    """WordNet's noun synsets as one graph: edges = hypernym/hyponym links (both directions, deduplicated),
    features = hashed bag of words of the definition, label = the lexicographer file (supersense, e.g.
    noun.animal). Returns numpy ``node_features``, ``edge_index``, ``labels`` and the ``label_names`` (cached:
    do not modify them)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    folder = Path(folder)
    synsets = pq.read_table(folder / "synsets.parquet", columns=["id", "pos", "lexname", "definition"])
    synsets = synsets.filter(pc.equal(synsets["pos"], "n")).to_pydict()
    index = {synset_id: i for i, synset_id in enumerate(synsets["id"])}
    edges = pq.read_table(folder / "edges.parquet").to_pydict()
    pairs = {
        (index[s], index[d]) for s, d, r in zip(edges["src"], edges["dst"], edges["relation"])
        if r in WORDNET_RELATIONS and s in index and d in index and s != d
    }
    pairs |= {(d, s) for s, d in pairs}
    edge_index = np.array(sorted(pairs), dtype=np.int64).T.reshape(2, -1)
    label_names = sorted(set(synsets["lexname"]))
    label_of = {name: i for i, name in enumerate(label_names)}
    return {
        "node_features": hashed_bag_of_words(synsets["definition"], feature_size),
        "edge_index": edge_index,
        "labels": np.array([label_of[name] for name in synsets["lexname"]], dtype=np.int64),
        "label_names": label_names,
    }


def is_wordnet_folder(source) -> bool:
    path = Path(str(source)).expanduser()
    return path.is_dir() and (path / "synsets.parquet").exists() and (path / "edges.parquet").exists()


def load_graph_dataset(source: str | None = None, split: str = "train", streaming: bool = False, dataset_config=None):
    """One split of a graph dataset (one graph per row). ``source``: None / "demo" (generated SBM graphs: train,
    validation and test splits), a WordNet folder (a single graph; every split is that graph, the evaluation
    splits its nodes), a parquet file / folder / glob or a ``datasets`` name."""
    if streaming:
        raise DataError("graph datasets are read whole (a graph cannot be streamed node by node); drop --streaming")
    if source in (None, "demo"):
        count, seed = generated_split(split, DEMO_SPLITS, "graphs")
        return make_sbm_graphs(count, seed=seed)
    if is_wordnet_folder(source):
        base = split.split("[")[0]
        if base not in ("train", "test"):
            raise MissingSplitError(f"the WordNet graph has node splits ['test', 'train'], not {split!r}")
        graph = wordnet_graph(Path(str(source)).expanduser())
        # one graph for every split; labels outside the split's nodes are -100 (ignored by probes and losses)
        labels = np.full_like(graph["labels"], -100)
        nodes = node_split(len(labels))[0 if base == "train" else 1].numpy()
        labels[nodes] = graph["labels"][nodes]
        # fixed-width features as Array2D: numpy formatting reads them in one piece (list<list<float>>: 20 s a row)
        features = Features({"node_features": Array2D((None, graph["node_features"].shape[1]), "float32"),
                             "edge_index": List(List(Value("int64"))), "labels": List(Value("int64"))})
        return Dataset.from_dict({"node_features": [graph["node_features"]], "edge_index": [graph["edge_index"]],
                                  "labels": [labels]}, features=features)
    return load_split(source, split, False, dataset_config)


class GraphSamples(torch.utils.data.Dataset):
    """A prepared graph dataset: row ``i`` -> the processor's tensors. Rows are read in numpy format (a large graph
    such as WordNet's converts in milliseconds, not through millions of Python floats)."""

    def __init__(self, dataset, processor, columns: dict[str, str], with_labels: bool):
        self.dataset = dataset.select_columns(list(columns.values())).with_format("numpy")
        self.processor, self.columns, self.with_labels = processor, columns, with_labels

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        row = self.dataset[int(index)]
        graph = {name: np.stack(row[column]) if row[column].dtype == object else row[column]
                 for name, column in self.columns.items()}
        return self.processor.process_graph(graph, with_labels=self.with_labels)


def graph_columns(dataset, column: str | None = None, label_column: str | None = None, with_labels: bool = False) -> dict:
    """``{"node_features": ..., "edge_index": ..., ("labels": ...)}`` -> the dataset's column names (clear error
    naming the columns it has when one is missing)."""
    columns = {
        "node_features": find_column(dataset, NODE_FEATURE_CANDIDATES, "node feature", explicit=column),
        "edge_index": find_column(dataset, EDGE_INDEX_CANDIDATES, "edge index"),
    }
    if with_labels:
        columns["labels"] = find_column(dataset, NODE_LABEL_CANDIDATES, "node label", explicit=label_column)
    return columns


def prepare_graph_dataset(dataset, processor, train=True, column=None, label_column=None, with_labels=False,
                          transform=None, scale=None):
    """Rows become ``node_features`` / ``edge_index`` (and ``labels`` with ``with_labels``) tensors
    (:class:`GraphSamples`); batch them with :class:`GraphCollator`. Graphs have no augmentation: ``train``,
    ``transform`` and ``scale`` are accepted for the shared modality signature and ignored."""
    return GraphSamples(dataset, processor, graph_columns(dataset, column, label_column, with_labels), with_labels)


def build_graph_transform(processor, train: bool = True, scale=None):
    """No default transform: :func:`prepare_graph_dataset` builds one once it knows the dataset's columns."""
    return None


def graph_config_from_data(dataset, column=None, overrides=None, estimate_stats=True):
    """``feature_size`` read from the first graph, for both the model config and the feature extractor."""
    name = graph_columns(dataset, column)["node_features"]
    first = dataset.select_columns([name]).with_format("numpy")[0][name]
    size = int(np.asarray(first[0] if first.dtype == object else first).shape[-1])
    size = (overrides or {}).get("feature_size", size)
    return {"feature_size": size}, {"feature_size": size}


class GraphCollator:
    """Batches processed graphs into one graph (:func:`collate_graphs`): features and labels concatenated, edge
    ids offset. Trainer's default collator would try to stack graphs of different sizes."""

    skipped = 0

    def __init__(self, *args, **kwargs):  # MethodSpec.collator passes (config, processor): neither is needed
        pass

    def __call__(self, samples: list[dict]) -> dict:
        return collate_graphs(samples)


def node_split(num_nodes: int, train_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0):
    """Seeded disjoint ``(train, test)`` node index tensors (for probes on one large graph such as WordNet)."""
    order = torch.randperm(num_nodes, generator=torch.Generator().manual_seed(seed))
    train_count, test_count = int(train_fraction * num_nodes), int(test_fraction * num_nodes)
    if train_count == 0 or test_count == 0:
        raise DataError(f"a graph of {num_nodes} nodes is too small to split {train_fraction:.0%} / {test_fraction:.0%}")
    return order[:train_count], order[train_count : train_count + test_count]
