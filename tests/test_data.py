import io

import numpy as np
import pytest
import torch
from datasets import Dataset
from datasets import Image as ImageFeature
from PIL import Image

import hf_mim
from hf_mim.data import (
    DataError,
    MIMCollator,
    MissingSplitError,
    load_evaluation_splits,
    load_image_dataset,
    prepare_dataset,
    split_train_validation,
)
from tests.conftest import tiny_config


def write_images(folder, count, size=(20, 24), mode="RGB"):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for index in range(count):
        channels = 3 if mode == "RGB" else 1
        array = rng.integers(0, 255, size=(size[0], size[1], channels), dtype=np.uint8).squeeze()
        Image.fromarray(array, mode=mode).save(folder / f"img_{index}.png")


def processor(num_channels=3):
    return hf_mim.processor_for_config(tiny_config("mae", num_channels=num_channels))


def test_bundled_demo_data_is_real_and_labelled():
    train, test = load_image_dataset(None, "train"), load_image_dataset("demo", "test")
    assert (len(train), len(test)) == (4000, 1000)
    assert train.features["label"].names[0] == "T-shirt/top"
    assert sorted(set(test["label"])) == list(range(10))


def test_flat_image_folder_without_class_folders(tmp_path):
    write_images(tmp_path / "unlabeled", 5)
    dataset = prepare_dataset(load_image_dataset(str(tmp_path / "unlabeled")), processor())
    batch = MIMCollator()([dataset[i] for i in range(5)])
    assert batch["pixel_values"].shape == (5, 3, 32, 32)


def test_parquet_and_split(tmp_path):
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buffer, format="PNG")
    Dataset.from_dict({"img": [{"bytes": buffer.getvalue(), "path": None}] * 10, "label": list(range(10))}).to_parquet(
        str(tmp_path / "d.parquet")
    )
    dataset = load_image_dataset(str(tmp_path / "d.parquet"))
    parts = split_train_validation(dataset, 0.2)
    assert (len(parts["train"]), len(parts["validation"])) == (8, 2)
    prepared = prepare_dataset(dataset, processor(), with_labels=True)
    assert prepared[3]["labels"] == 3 and prepared[3]["pixel_values"].shape == (3, 32, 32)


def test_corrupt_images_are_skipped_and_counted(tmp_path, caplog):
    write_images(tmp_path / "imgs", 4)
    (tmp_path / "imgs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    dataset = prepare_dataset(load_image_dataset(str(tmp_path / "imgs")), processor())
    collator = MIMCollator()
    with caplog.at_level("WARNING"):
        batch = collator([dataset[i] for i in range(len(dataset))])
    assert batch["pixel_values"].shape[0] == 4 and collator.skipped == 1
    assert "skipped 1 unreadable image" in caplog.text


def test_clear_errors_for_bad_data(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_image_dataset(str(tmp_path / "empty"))
    Dataset.from_dict({"text": ["a"], "label": [0]}).to_parquet(str(tmp_path / "t.parquet"))
    with pytest.raises(DataError, match="no image column found.*columns \\['text', 'label'\\]"):
        prepare_dataset(load_image_dataset(str(tmp_path / "t.parquet")), processor())
    Dataset.from_dict({"image": []}).to_parquet(str(tmp_path / "e.parquet"))
    with pytest.raises(DataError, match="empty"):
        load_image_dataset(str(tmp_path / "e.parquet"))
    with pytest.raises(DataError, match="does not exist"):
        load_image_dataset(str(tmp_path / "missing.parquet"))
    with pytest.raises(DataError, match="label column 'y' not found"):
        prepare_dataset(load_image_dataset("demo", "test"), processor(1), with_labels=True, label_column="y")


def test_training_transform_is_random_and_eval_is_deterministic():
    dataset = load_image_dataset("demo", "test").select(range(4))
    train = prepare_dataset(dataset, processor(1), train=True)
    torch.manual_seed(0)
    first = train[0]["pixel_values"]
    torch.manual_seed(1)
    assert not torch.equal(first, train[0]["pixel_values"])
    evaluation = prepare_dataset(load_image_dataset("demo", "test").select(range(4)), processor(1), train=False)
    assert torch.equal(evaluation[0]["pixel_values"], evaluation[0]["pixel_values"])


def test_subset_is_a_seeded_random_sample_not_the_first_rows():
    from hf_mim.data import subset

    sorted_by_class = Dataset.from_dict({"label": sorted(list(range(10)) * 50)})
    picked = subset(sorted_by_class, 100)
    assert len(picked) == 100 and len(set(picked["label"])) >= 8  # the first 100 rows would be classes 0 and 1
    assert picked["label"] == subset(sorted_by_class, 100)["label"]  # seeded
    assert subset(sorted_by_class, None) is sorted_by_class and len(subset(sorted_by_class, 10_000)) == 500


def image_paths(dataset) -> list[str]:
    return [row["path"] for row in dataset.cast_column("image", ImageFeature(decode=False))["image"]]


def test_labelled_folder_without_test_split_holds_out_a_seeded_fifth(tmp_path, caplog):
    for label in ("cat", "dog"):
        write_images(tmp_path / "pets" / label, 10)
    with caplog.at_level("WARNING"):
        train, test = load_evaluation_splits(str(tmp_path / "pets"))
    assert (len(train), len(test)) == (16, 4)
    assert not set(image_paths(train)) & set(image_paths(test))
    assert "no test or validation split" in caplog.text and "--test_split" in caplog.text
    again = load_evaluation_splits(str(tmp_path / "pets"))
    assert image_paths(again[1]) == image_paths(test)  # seeded: the same held-out images every run
    with pytest.raises(MissingSplitError, match="no 'test' split.*--test_split"):
        load_evaluation_splits(str(tmp_path / "pets"), test_split="test")


def test_validation_split_is_the_test_set_when_there_is_no_test_split(tmp_path):
    for split, count in (("train", 6), ("val", 3)):
        for label in ("cat", "dog"):
            write_images(tmp_path / "pets" / split / label, count)
    train, test = load_evaluation_splits(str(tmp_path / "pets"))
    assert (len(train), len(test)) == (12, 6)
