"""Tabular data: rows of numeric features and an optional class label.

Sources: None / "demo" (scikit-learn's ``load_digits``), the name of a set scikit-learn ships (``digits``,
``breast_cancer``, ``wine``, with or without ``load_``; a seeded stratified 80/20 train/test split), a parquet or csv
file / folder / glob or a ``datasets`` name. Features are every numeric column but the label (or one list column
such as ``features``); the label is the first of ``label``, ``labels``, ``target``, ``y``, ``class`` present.
Standardisation is fitted on the training split and saved in the :class:`TabularFeatureExtractor`.
"""

from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, Value, load_dataset

from hf_mim.data import DataError, MissingSplitError, load_split
from hf_mim.processing.tabular_processing_mim import TabularFeatureExtractor

SKLEARN_SETS = ("digits", "breast_cancer", "wine")
LABEL_CANDIDATES = ("label", "labels", "target", "y", "class")
VECTOR_CANDIDATES = ("features", "input_values", "x")
TEST_FRACTION, SPLIT_SEED = 0.2, 0


def sklearn_name(source) -> str | None:
    """``"digits"`` for "digits" / "load_digits" (None for anything else)."""
    name = str(source).removeprefix("load_")
    return name if name in SKLEARN_SETS else None


def load_sklearn_set(name: str, split: str = "train") -> Dataset:
    """One split of a scikit-learn set as rows of its named feature columns + ``label``."""
    try:
        import sklearn.datasets
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise ImportError('scikit-learn is needed for its shipped sets: pip install "hf_mim[tabular]"') from error
    base = split
    if base not in ("train", "test"):
        raise MissingSplitError(f"the scikit-learn set {name!r} has splits ['test', 'train'], not {split!r}")
    bunch = getattr(sklearn.datasets, f"load_{name}")()
    parts = train_test_split(bunch.data, bunch.target, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=bunch.target)
    features, labels = (parts[0], parts[2]) if base == "train" else (parts[1], parts[3])
    names = [str(n).replace(" ", "_") for n in bunch.feature_names]
    columns = {n: features[:, i].astype(np.float32) for i, n in enumerate(names)}
    return Dataset.from_dict({**columns, "label": labels.astype(np.int64)})


def load_tabular_dataset(source: str | None = None, split: str = "train", streaming: bool = False, dataset_config=None):
    """One split of a tabular dataset (see the module docstring for the sources)."""
    if streaming:
        raise DataError("tabular sets are read whole (the standardisation is fitted on all rows); drop --streaming")
    if source in (None, "demo"):
        source = "digits"
    if sklearn_name(source):
        return load_sklearn_set(sklearn_name(source), split)
    path = Path(str(source)).expanduser()
    if path.suffix.lower() == ".csv" or (path.is_dir() and any(path.glob("*.csv")) and not any(path.glob("*.parquet"))):
        if not path.exists():
            raise DataError(f"no such file or directory: {source}")
        files = str(path) if path.is_file() else sorted(str(p) for p in path.glob("*.csv"))
        try:
            dataset = load_dataset("csv", data_files={"train": files}, split=split)
        except ValueError as error:
            raise MissingSplitError(f"a csv source is one 'train' split, not {split!r}: {error}") from error
        if len(dataset) == 0:
            raise DataError(f"the {split!r} split of {source} is empty: nothing to train or evaluate on")
        return dataset
    return load_split(source, split, False, dataset_config)


def tabular_columns(dataset, column: str | None = None, label_column: str | None = None) -> tuple[list[str], str | None]:
    """(feature columns, label column or None): ``column`` names one feature column (a list or a number), else a
    vector column if there is one, else every numeric column but the label."""
    names = list(dataset.column_names)
    for given in (column, label_column):
        if given is not None and given not in names:
            raise DataError(f"no column {given!r}; the data has {names}")
    label = label_column or next((c for c in LABEL_CANDIDATES if c in names), None)
    if column is not None:
        return [column], label
    vector = next((c for c in VECTOR_CANDIDATES if c in names and c != label), None)
    if vector is not None:
        return [vector], label
    numeric = [c for c in names if c != label and isinstance(dataset.features[c], Value)
               and dataset.features[c].dtype.startswith(("int", "uint", "float", "bool"))]
    if not numeric:
        raise DataError(f"no numeric feature columns in {names} (label column: {label!r}); pass --image_column to name "
                        "a list column of features")
    return numeric, label


def feature_matrix(dataset, columns: list[str]) -> np.ndarray:
    """``[rows, features]`` float64 from one list column or several numeric columns."""
    table = dataset.select_columns(columns).with_format("numpy")[:]  # one read (per-column reads convert it all)
    if len(columns) == 1:
        values = table[columns[0]]
        values = np.stack(values) if values.dtype == object else values
        return np.asarray(values, dtype=np.float64).reshape(len(dataset), -1)
    return np.stack([np.asarray(table[c], dtype=np.float64) for c in columns], axis=1)


class TabularSamples(torch.utils.data.Dataset):
    """Prepared rows: ``input_values`` (standardised), ``noise`` (training: one standard normal draw per row, made
    once, as QuickSelection's fixed noisy copy of the data) and ``labels`` (``with_labels``)."""

    def __init__(self, features: torch.Tensor, labels: torch.Tensor | None, noise: torch.Tensor | None):
        self.features, self.labels, self.noise = features, labels, noise

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict:
        sample = {"input_values": self.features[index]}
        if self.noise is not None:
            sample["noise"] = self.noise[index]
        if self.labels is not None:
            sample["labels"] = self.labels[index]
        return sample


def prepare_tabular_dataset(dataset, processor, train=True, column=None, label_column=None, with_labels=False,
                            transform=None, scale=None):
    """Rows -> :class:`TabularSamples` through ``processor`` (its standardisation). ``train``: add the fixed noise,
    drawn from the global RNG (seeded by ``--seed``). ``transform`` / ``scale`` are ignored (no augmentation)."""
    columns, label = tabular_columns(dataset, column, label_column)
    features = processor.standardize(feature_matrix(dataset, columns))
    if processor.feature_names is not None and len(columns) > 1 and columns != processor.feature_names:
        raise DataError(f"the data's feature columns {columns} differ from the processor's {processor.feature_names}")
    labels = None
    if with_labels:
        if label is None:
            raise DataError(f"no label column ({', '.join(LABEL_CANDIDATES)}) in {dataset.column_names}; name it with --label_column")
        labels = torch.as_tensor(np.asarray(dataset.select_columns([label]).with_format("numpy")[:][label]), dtype=torch.long)
    noise = torch.randn(features.shape) if train else None
    return TabularSamples(features, labels, noise)


def build_tabular_transform(processor, train: bool = True, scale=None):
    """No per-sample transform: :func:`prepare_tabular_dataset` standardises all rows at once."""
    return None


def tabular_config_from_data(dataset, column=None, overrides=None, estimate_stats=True):
    """``feature_size`` for the model and the standardisation statistics of the training split for the processor."""
    columns, _ = tabular_columns(dataset, column)
    features = feature_matrix(dataset, columns)
    fitted = TabularFeatureExtractor.fit(features, columns if len(columns) > 1 else None)
    size = (overrides or {}).get("feature_size", features.shape[1])
    if size != features.shape[1]:
        raise DataError(f"feature_size {size} does not match the data's {features.shape[1]} features")
    stats = {"feature_mean": fitted.feature_mean, "feature_std": fitted.feature_std, "feature_names": fitted.feature_names}
    return {"feature_size": size}, {"feature_size": size, **stats}
