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
    assert "skipped 1 unreadable sample" in caplog.text


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
    with pytest.raises(DataError, match="no such file or directory"):
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


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_16_and_32_bit_images_are_scaled_not_clipped_to_white(mode, tmp_path):
    """PIL's convert("L") clips 16/32-bit values at 255: a dark-to-bright 16-bit ramp came out all white."""
    from hf_mim.training.pretrain import estimate_channel_stats

    ramp8 = np.tile(np.linspace(0, 255, 32).round().astype(np.uint8), (32, 1))
    wide = Image.fromarray(ramp8.astype(np.uint16) * 257)
    wide = wide.convert("I") if mode == "I" else wide
    (tmp_path / "images").mkdir()
    wide.save(tmp_path / "images" / "ramp.tif")
    data = load_image_dataset(str(tmp_path / "images"))
    assert Image.open(tmp_path / "images" / "ramp.tif").mode == mode
    gray = processor(1)
    reference = hf_mim.data.build_transform(gray, train=False)(Image.fromarray(ramp8))
    assert torch.allclose(prepare_dataset(data, gray, train=False)[0]["pixel_values"], reference, atol=1e-6)
    mean, std = estimate_channel_stats(data, "image", 1)
    assert abs(mean[0] - 0.5) < 0.01 and std[0] > 0.25  # all-white data gave mean 1, std 0
    processed = gray(Image.open(tmp_path / "images" / "ramp.tif"), return_tensors="pt")["pixel_values"]
    assert torch.allclose(processed, gray(Image.fromarray(ramp8), return_tensors="pt")["pixel_values"], atol=1e-6)


def test_channels_come_from_a_sample_of_readable_images_and_a_mix_warns(tmp_path, caplog):
    """The channel count was read from the first file only (a corrupt first file crashed the run; an RGB first
    file made grayscale data RGB), and the channel statistics crashed on unreadable files."""
    from hf_mim.training.pretrain import detect_num_channels, estimate_channel_stats

    folder = tmp_path / "gray"
    folder.mkdir()
    (folder / "0_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    for i in range(6):
        Image.fromarray(np.full((8, 8), 40 * i, dtype=np.uint8)).save(folder / f"{i + 1}.png")
    data = load_image_dataset(str(folder))
    assert detect_num_channels(data, "image") == 1
    mean, _ = estimate_channel_stats(data, "image", 1)
    assert abs(mean[0] - 100 / 255) < 1e-3  # the six readable images, mean gray 100
    Image.new("RGB", (8, 8), (200, 10, 10)).save(folder / "7_colour.png")
    with caplog.at_level("WARNING"):
        assert detect_num_channels(load_image_dataset(str(folder)), "image") == 3
    assert "mixes grayscale (6) and colour (1)" in caplog.text


def test_unreadable_images_never_stop_a_run(tmp_path, monkeypatch, caplog):
    """Decompression bombs, batches with nothing readable, reconstruction grids and visualize used to crash."""
    from hf_mim.cli import main
    from hf_mim.training import MIMTrainer, MIMTrainingArguments
    from hf_mim.training.pretrain import monitoring_callbacks

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200)  # a 32x32 image is then a decompression bomb
    folder = tmp_path / "bad"
    folder.mkdir()
    Image.new("L", (32, 32)).save(folder / "bomb.png")
    for i in range(3):
        (folder / f"corrupt{i}.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    config = tiny_config("mae", num_channels=1)
    model = hf_mim.MAEForPreTraining(config)
    before = model.encoder.patch_embed.proj.weight.clone()
    args = MIMTrainingArguments(output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=4,
                                save_strategy="no", report_to=[], disable_tqdm=True)
    dataset = prepare_dataset(load_image_dataset(str(folder)), processor(1))
    with caplog.at_level("WARNING"):
        MIMTrainer(model=model, args=args, train_dataset=dataset, data_collator=MIMCollator()).train()
    assert torch.equal(model.encoder.patch_embed.proj.weight, before) and "could not be read: skipped" in caplog.text
    write_images(folder, 2, size=(32, 32), mode="L")  # readable, under the raised limit below
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1500)
    Image.new("L", (64, 64)).save(folder / "bomb.png")
    from hf_mim.training.pretrain import PretrainArguments

    callbacks = monitoring_callbacks(PretrainArguments(data=str(folder), reconstruction_steps=1), None, processor(1))
    assert callbacks[0].pixel_values.shape[0] == 2
    model.save_pretrained(tmp_path / "model")
    processor(1).save_pretrained(tmp_path / "model")
    assert main(["visualize", str(tmp_path / "model"), str(folder), "--output", str(tmp_path / "grid.png")]) == 0
    assert (tmp_path / "grid.png").exists()
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
