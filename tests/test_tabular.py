"""Tabular data: scikit-learn's shipped sets by name (seeded stratified split), csv / parquet numeric columns, the
standardisation fitted on the training split (equal to scikit-learn's StandardScaler), clear errors."""

import numpy as np
import pytest
import torch
from datasets import Dataset

from hf_mim.data import DataError
from hf_mim.data.tabular import load_tabular_dataset, prepare_tabular_dataset, tabular_config_from_data
from hf_mim.processing import TabularFeatureExtractor


def test_sklearn_sets_csv_and_parquet_with_standardisation_fitted_on_train(tmp_path):
    from sklearn.preprocessing import StandardScaler

    sizes = {"digits": (1437, 360, 64), "breast_cancer": (455, 114, 30), "wine": (142, 36, 13)}
    for name, (n_train, n_test, features) in sizes.items():
        train, test = load_tabular_dataset(name, "train"), load_tabular_dataset(f"load_{name}", "test")
        assert (len(train), len(test), len(train.column_names) - 1) == (n_train, n_test, features)
    train = load_tabular_dataset("wine")
    config, stats = tabular_config_from_data(train)
    scaler = StandardScaler().fit(np.stack([train[c] for c in train.column_names if c != "label"], 1))
    np.testing.assert_allclose(stats["feature_mean"], scaler.mean_, rtol=1e-6)
    np.testing.assert_allclose(stats["feature_std"], scaler.scale_, rtol=1e-6)
    processor = TabularFeatureExtractor(**stats)
    samples = prepare_tabular_dataset(load_tabular_dataset("wine", "test"), processor, train=False, with_labels=True)
    assert set(samples[0]) == {"input_values", "labels"} and samples[0]["input_values"].shape == (13,)

    frame = {"a": [1.0, 2.0, 3.0, 4.0], "b": [0, 1, 0, 1], "name": ["w", "x", "y", "z"], "target": [0, 1, 0, 1]}
    Dataset.from_dict(frame).to_csv(tmp_path / "rows.csv")
    Dataset.from_dict(frame).to_parquet(tmp_path / "rows.parquet")
    for source in ("rows.csv", "rows.parquet"):
        rows = load_tabular_dataset(str(tmp_path / source))
        config, stats = tabular_config_from_data(rows)
        assert config == {"feature_size": 2} and stats["feature_names"] == ["a", "b"]  # text column and label skipped
        processor = TabularFeatureExtractor(**stats)
        prepared = prepare_tabular_dataset(rows, processor, with_labels=True)
        torch.testing.assert_close(prepared.features.mean(0), torch.zeros(2), atol=1e-6, rtol=0)
        assert prepared[0]["noise"].shape == (2,) and prepared.labels.tolist() == [0, 1, 0, 1]
    with pytest.raises(DataError, match="no label column"):
        prepare_tabular_dataset(Dataset.from_dict({"a": [1.0, 2.0]}), TabularFeatureExtractor(1), with_labels=True)
    with pytest.raises(DataError, match="no numeric feature columns"):
        tabular_config_from_data(Dataset.from_dict({"name": ["x"], "label": [0]}))
    with pytest.raises(DataError, match="drop --streaming"):
        load_tabular_dataset("digits", streaming=True)
    with pytest.raises(ValueError, match="NaN"):
        TabularFeatureExtractor(1)([[float("nan")]])
