"""Audio core: HiCMAE's filter banks through transformers' ASTFeatureExtractor, decoding and resampling with PyAV,
audio folders / parquet / ``datasets.Audio`` columns, the generated tone set, and clear errors for bad audio."""

import math
import warnings

import numpy as np
import pytest
import torch
from datasets import Audio, Dataset
from transformers import ASTFeatureExtractor, AutoFeatureExtractor

from hf_mim.data import DataError, MIMCollator, MissingSplitError
from hf_mim.data.audio import (
    AUDIOSET_MEAN,
    AUDIOSET_STD,
    TONE_CLASSES,
    audio_feature_extractor,
    load_audio_dataset,
    make_demo_audio,
    prepare_audio_dataset,
    read_audio,
    write_wav,
)

pytest.importorskip("av")


def tone(frequency: float, seconds: float, rate: int) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * frequency * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spectrum) * rate / len(samples))


@pytest.fixture(scope="module")
def tone_folder(tmp_path_factory):
    return make_demo_audio(tmp_path_factory.mktemp("tones"), clips_per_class=(6, 3))


def test_filter_banks_have_hicmae_layout_and_normalisation():
    """128 Kaldi mel bins every 10 ms, padded to 256 frames with zeros *before* the (x - mean) / (2 std) step, as
    HiCMAE's _wav2fbank; a 1 kHz tone lights the mel bin whose centre is nearest 1 kHz on Kaldi's mel scale."""
    extractor = audio_feature_extractor()
    assert isinstance(extractor, ASTFeatureExtractor)
    assert (extractor.sampling_rate, extractor.num_mel_bins, extractor.max_length) == (16000, 128, 256)
    features = extractor(tone(1000.0, 1.0, 16000), sampling_rate=16000, return_tensors="pt")["input_values"]
    assert features.shape == (1, 256, 128)
    frames = 1 + (16000 - 400) // 160  # 25 ms windows every 10 ms, Kaldi's snip_edges
    padded = torch.full((256 - frames, 128), (0 - AUDIOSET_MEAN) / (2 * AUDIOSET_STD))
    assert torch.allclose(features[0, frames:], padded) and not torch.allclose(features[0, frames - 1], padded[0])
    mel = lambda f: 1127 * math.log(1 + f / 700)  # noqa: E731
    centres = [mel(20) + (i + 1) * (mel(8000) - mel(20)) / 129 for i in range(128)]
    expected = min(range(128), key=lambda i: abs(centres[i] - mel(1000)))
    assert int(features[0, 10:frames - 10].mean(0).argmax()) == expected


def test_read_audio_resamples_files_bytes_and_arrays(tmp_path):
    """A 440 Hz tone stored at 8 kHz comes back at the extractor's 16 kHz: twice the samples, same pitch, from a
    path, from bytes and from a decoded datasets row; stereo is averaged to mono."""
    write_wav(tmp_path / "a.wav", tone(440.0, 0.5, 8000), 8000)
    from_path = read_audio(str(tmp_path / "a.wav"), 16000)
    from_bytes = read_audio({"bytes": (tmp_path / "a.wav").read_bytes(), "path": None}, 16000)
    from_array = read_audio({"array": tone(440.0, 0.5, 8000), "sampling_rate": 8000}, 16000)
    for samples in (from_path, from_bytes, from_array):
        assert samples.dtype == np.float32 and abs(len(samples) - 8000) <= 64
        assert abs(dominant_frequency(samples, 16000) - 440.0) < 4.0
    assert np.array_equal(from_path, from_bytes)
    stereo = np.stack([tone(440.0, 0.5, 16000), np.zeros(8000, np.float32)])
    assert np.allclose(read_audio({"array": stereo, "sampling_rate": 16000}), stereo[0] / 2)


def test_bad_audio_gets_one_line_errors_and_is_skipped_in_a_run(tmp_path):
    """Corrupt bytes, a video without a sound track and a decoded row without its rate name the problem; in a
    dataset such files become skipped samples that the collator counts, instead of stopping the run."""
    from hf_mim.data.video import write_video

    with pytest.raises(DataError, match=r"cannot decode audio <audio bytes>: .*wav/flac"):
        read_audio(b"RIFF0000WAVEnot really audio")
    write_video(tmp_path / "silent.mp4", np.zeros((4, 16, 16, 3), np.uint8))
    with pytest.raises(DataError, match=r"silent.mp4 has no audio stream \(a video without a sound track\?\)"):
        read_audio(str(tmp_path / "silent.mp4"))
    with pytest.raises(DataError, match="needs its 'sampling_rate'"):
        read_audio({"array": np.zeros(10)})
    write_wav(tmp_path / "ok.wav", tone(300.0, 0.3, 16000))
    data = Dataset.from_dict({"audio": [str(tmp_path / "ok.wav"), str(tmp_path / "silent.mp4")], "label": [0, 1]})
    data = prepare_audio_dataset(data, audio_feature_extractor(), with_labels=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = [data[0], data[1]]
    assert rows[0]["input_values"].shape == (1, 256, 128) and rows[1]["input_values"] is None
    collator = MIMCollator()
    batch = collator(rows)
    assert batch["input_values"].shape == (1, 1, 256, 128) and batch["labels"].tolist() == [0]
    assert collator.skipped == 1


def test_audio_folders_parquet_and_datasets_audio_columns(tone_folder, tmp_path):
    """Class sub-folders become a ClassLabel, split sub-folders the splits (a missing one is a clear error); the
    same files through a parquet of bytes and through a ``datasets.Audio`` column give identical features."""
    train, test = load_audio_dataset(str(tone_folder), "train"), load_audio_dataset(str(tone_folder), "test")
    assert train.features["label"].names == sorted(TONE_CLASSES) and (len(train), len(test)) == (30, 15)
    with pytest.raises(MissingSplitError, match=r"has the splits \['test', 'train'\], not 'validation'"):
        load_audio_dataset(str(tone_folder), "validation")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no audio files \(.wav, .flac"):
        load_audio_dataset(str(tmp_path / "empty"))
    extractor = audio_feature_extractor()
    expected = prepare_audio_dataset(test.select(range(3)), extractor, with_labels=True)[:3]
    paths = test.select(range(3))["audio"]
    Dataset.from_dict({"audio": [{"bytes": open(p, "rb").read(), "path": None} for p in paths], "label": test["label"][:3]}
                      ).to_parquet(tmp_path / "test.parquet")
    from_parquet = prepare_audio_dataset(load_audio_dataset(str(tmp_path / "test.parquet"), "train"), extractor, with_labels=True)[:3]
    from_audio_feature = prepare_audio_dataset(Dataset.from_dict({"audio": paths}).cast_column("audio", Audio()), extractor)[:3]
    for got in (from_parquet, from_audio_feature):
        assert all(torch.equal(a, b) for a, b in zip(got["input_values"], expected["input_values"]))
    assert from_parquet["labels"] == expected["labels"]
    with pytest.raises(DataError, match="audio"):
        prepare_audio_dataset(Dataset.from_dict({"text": ["x"]}), extractor)


def test_feature_extractor_loads_back_with_the_auto_class(tmp_path):
    audio_feature_extractor().save_pretrained(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded = AutoFeatureExtractor.from_pretrained(tmp_path)
    assert type(loaded) is ASTFeatureExtractor
    assert (loaded.max_length, loaded.num_mel_bins, loaded.mean, loaded.std) == (256, 128, AUDIOSET_MEAN, AUDIOSET_STD)


def test_tone_classes_are_separable_but_not_by_one_frequency(tone_folder):
    """The demo set carries its labels in the pitch contour: a nearest-centroid rule on time-averaged filter banks
    of the test clips beats chance by far, while the clips of one class start at different pitches."""
    extractor = audio_feature_extractor()

    def averaged(split):
        data = prepare_audio_dataset(load_audio_dataset(str(tone_folder), split), extractor, with_labels=True)[:]
        return torch.stack([x[0, :100].mean(0) for x in data["input_values"]]), torch.tensor(data["labels"])

    (train_x, train_y), (test_x, test_y) = averaged("train"), averaged("test")
    centroids = torch.stack([train_x[train_y == c].mean(0) for c in range(len(TONE_CLASSES))])
    accuracy = (torch.cdist(test_x, centroids).argmin(1) == test_y).float().mean().item()
    assert accuracy >= 0.6, accuracy  # chance 0.2
    steady = prepare_audio_dataset(load_audio_dataset(str(tone_folder), "train").filter(lambda r: r["label"] == 3), extractor)[:2]
    first_peaks = [int(x[0, 5].argmax()) for x in steady["input_values"]]
    assert first_peaks[0] != first_peaks[1]  # random pitch factor per clip
