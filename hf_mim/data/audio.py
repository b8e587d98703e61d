"""Audio data: folders of audio files (class sub-folders are labels, ``train/`` / ``test/`` / ``val*/`` sub-folders
splits), parquet files and ``datasets`` sources with an audio column (paths, bytes, ``datasets.Audio`` or decoded
``{"array", "sampling_rate"}`` rows), and a generated demo set of tone patterns labelled by class.

Decoding and resampling go through PyAV (FFmpeg's decoders and libswresample; ``pip install "hf_mim[audio]"``), not
``datasets``' own Audio decoder, which needs torchcodec, nor torchaudio, whose wheels pin an older torch than
hf_mim's. Audio at another sampling rate than the feature extractor's is **resampled**, never refused: its rate is
always known (the file header, or the row's ``sampling_rate``), so converting it is safe. Files that cannot be
decoded, or that have no audio stream (a video without a sound track), become skipped samples (counted by
:class:`~hf_mim.data.MIMCollator`) as unreadable images do.

Features are the Kaldi-compatible log-mel filter banks of transformers' :class:`~transformers.ASTFeatureExtractor`
(see :func:`audio_feature_extractor`), which is also what ``AutoFeatureExtractor`` loads back from a checkpoint.
"""

import logging
import os
import wave
from pathlib import Path

import numpy as np
import torch
from datasets import IterableDataset

from hf_mim.data import (
    LABEL_COLUMN_CANDIDATES,
    DataError,
    cached_demo_dir,
    decode_media,
    file_folder_split,
    find_column,
    load_split,
    require_av,
)

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".opus", ".m4a")
AUDIO_COLUMN_CANDIDATES = ("audio", "sound", "speech", "file", "path")
SAMPLING_RATE = 16000
# HiCMAE's filter banks (kinetics_av.py): 128 mel bins, 10 ms frames, 256 frames (2.56 s), AudioSet statistics
NUM_MEL_BINS = 128
MAX_FRAMES = 256
AUDIOSET_MEAN, AUDIOSET_STD = -4.2677393, 4.5689974



def _resample(av, frames, sampling_rate: int) -> np.ndarray:
    """Mono float32 samples at ``sampling_rate`` from PyAV audio frames (libswresample; flushed at the end)."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sampling_rate)
    chunks = [out.to_ndarray().reshape(-1) for frame in frames for out in resampler.resample(frame)]
    chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    return np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)


def read_audio(value, sampling_rate: int = SAMPLING_RATE) -> np.ndarray:
    """Mono float32 waveform in [-1, 1] at ``sampling_rate`` from a path, raw bytes, a ``{"bytes", "path"}`` dict
    or a decoded ``{"array", "sampling_rate"}`` row (channels are averaged, other rates resampled). Raises
    :class:`DataError` naming the file when it cannot be decoded or has no audio stream."""
    av = require_av("audio", "audio")
    if isinstance(value, dict) and value.get("array") is not None:
        array = np.asarray(value["array"], dtype=np.float32)
        if array.ndim == 2:  # [channels, samples]
            array = array.mean(0)
        rate = int(value.get("sampling_rate") or 0)
        if rate <= 0:
            raise DataError("a decoded audio row needs its 'sampling_rate' next to 'array'")
        if rate == sampling_rate:
            return array
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(array[None]), format="flt", layout="mono")
        frame.sample_rate = rate
        return _resample(av, [frame], sampling_rate)

    def samples_of(av, container, name):
        if not container.streams.audio:
            raise DataError(f"{name} has no audio stream (a video without a sound track?)")
        samples = _resample(av, container.decode(audio=0), sampling_rate)
        if samples.size == 0:
            raise DataError(f"cannot decode audio {name}: it has no samples")
        return samples

    return decode_media(value, "audio", samples_of, "a wav/flac/mp3/ogg", "audio")


def audio_feature_extractor(sampling_rate: int = SAMPLING_RATE, num_mel_bins: int = NUM_MEL_BINS,
                            max_length: int = MAX_FRAMES, mean: float = AUDIOSET_MEAN, std: float = AUDIOSET_STD, **kwargs):
    """transformers' ``ASTFeatureExtractor`` with HiCMAE's settings: 128 Kaldi log-mel bins of 25 ms Hann frames
    every 10 ms, padded / cut to ``max_length`` frames (256 = 2.56 s), normalised ``(x - mean) / (2 std)`` with the
    AudioSet statistics HiCMAE uses (``run_mae_pretraining_av.py``).

    That is HiCMAE's ``_wav2fbank`` exactly, but for two steps that do not change the result: HiCMAE subtracts the
    waveform's mean first (Kaldi's per-frame DC removal, on in both, removes it anyway) and asks for
    ``htk_compat=True``, which only moves the energy term that both leave out. Without torchaudio (not installable
    next to hf_mim's torch) the extractor computes the filter bank in numpy; transformers tests that path against
    torchaudio's ``kaldi.fbank``."""
    import warnings

    from transformers import ASTFeatureExtractor

    with warnings.catch_warnings():  # the lowest of 128 Kaldi mel filters is empty at 512 FFT bins (Kaldi's too)
        warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
        return ASTFeatureExtractor(sampling_rate=sampling_rate, num_mel_bins=num_mel_bins, max_length=max_length,
                                   mean=mean, std=std, **kwargs)


class AudioTransform:
    """``dataset.set_transform`` function: audio column -> ``input_values [1, frames, mel bins]`` (None when the
    file cannot be decoded; the collator drops and counts those), label column -> ``labels`` when asked for."""

    def __init__(self, feature_extractor, column: str, label_column: str | None = None):
        self.feature_extractor, self.column, self.label_column = feature_extractor, column, label_column

    def features(self, value) -> torch.Tensor | None:
        rate = self.feature_extractor.sampling_rate
        try:
            waveform = read_audio(value, rate)
        except DataError as error:
            logger.warning("unreadable audio skipped: %s", error)
            return None
        return self.feature_extractor(waveform, sampling_rate=rate, return_tensors="pt")["input_values"]

    def __call__(self, batch: dict) -> dict:
        out = {"input_values": [self.features(value) for value in batch[self.column]]}
        if self.label_column is not None:
            out["labels"] = batch[self.label_column]
        return out


def prepare_audio_dataset(dataset, feature_extractor, column=None, label_column=None, with_labels=False):
    """Attach decoding and filter banks lazily (they run in the data loader). A ``datasets.Audio`` column is read
    as paths / bytes and decoded by PyAV (see the module docstring)."""
    column = find_column(dataset, AUDIO_COLUMN_CANDIDATES, "audio", explicit=column)
    label_column = find_column(dataset, LABEL_COLUMN_CANDIDATES, "label", explicit=label_column) if with_labels else None
    if type((dataset.features or {}).get(column)).__name__ == "Audio":
        from datasets import Audio

        dataset = dataset.cast_column(column, Audio(decode=False))
    transform = AudioTransform(feature_extractor, column, label_column)
    if isinstance(dataset, IterableDataset):
        return dataset.map(transform, batched=True, remove_columns=list(dataset.column_names or []))
    dataset.set_transform(transform)
    return dataset


def load_audio_dataset(source: str | None = None, split: str = "train", streaming: bool = False, dataset_config=None):
    """One split of an audio dataset. ``source``: None or "demo" (the generated tone patterns), a folder of audio
    files, a parquet file / folder / glob, or a ``datasets`` name, with an audio column."""
    if source in (None, "demo"):
        source = str(demo_audio_dir())
    path = Path(os.path.expanduser(source))
    if path.is_dir() and not any(path.glob("*.parquet")):
        dataset = file_folder_split(path, split.split("[")[0], AUDIO_SUFFIXES, "audio", "audio")
        return dataset.to_iterable_dataset() if streaming else dataset
    return load_split(source, split, streaming, dataset_config)


# ---------------------------------------------------------------------------------------------------- demo set
def write_wav(path, samples: np.ndarray, sampling_rate: int = SAMPLING_RATE) -> None:
    """16-bit mono PCM WAV of float samples in [-1, 1] (the standard library's ``wave``: no dependency)."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as file:
        file.setnchannels(1)
        file.setsampwidth(2)
        file.setframerate(sampling_rate)
        file.writeframes(pcm.tobytes())


# each class: (start Hz, end Hz, number of notes) of a sequence of tones; the pitch of every clip is shifted
# by a random factor and noise is added, so a class is a pitch *contour*, not one frequency
TONE_CLASSES = {
    "rising": (300.0, 1200.0, 4),
    "falling": (1200.0, 300.0, 4),
    "steady": (600.0, 600.0, 4),
    "trill": (500.0, 900.0, 8),
    "leap": (300.0, 1800.0, 2),
}


def tone_pattern(kind: str, seconds: float, sampling_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One clip of class ``kind`` (see :data:`TONE_CLASSES`): notes of equal length, pitch contour from start to
    end (a trill alternates the two), a random pitch factor in [0.8, 1.25], random onset, noise at -30 dB."""
    start, end, notes = TONE_CLASSES[kind]
    factor = rng.uniform(0.8, 1.25)
    if kind == "trill":
        pitches = [start if i % 2 == 0 else end for i in range(notes)]
    else:
        pitches = np.geomspace(start, end, notes)
    length = int(seconds * sampling_rate)
    note = length // notes
    t = np.arange(note) / sampling_rate
    envelope = np.minimum(1.0, np.minimum(t, t[::-1]) * 100)  # 10 ms fades, no clicks
    clip = np.concatenate([0.5 * envelope * np.sin(2 * np.pi * p * factor * t) for p in pitches])
    clip = np.roll(np.pad(clip, (0, length - clip.size)), int(rng.integers(0, note // 2)))
    return (clip + 0.03 * rng.standard_normal(length)).astype(np.float32)


def make_demo_audio(folder, clips_per_class=(40, 10), seconds: float = 1.0, sampling_rate: int = SAMPLING_RATE, seed: int = 0) -> Path:
    """Write ``train/<class>/*.wav`` and ``test/<class>/*.wav``: tone patterns of the :data:`TONE_CLASSES` (about
    32 kB per second of audio)."""
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "test"), clips_per_class):
        for kind in TONE_CLASSES:
            (folder / split / kind).mkdir(parents=True, exist_ok=True)
            for i in range(count):
                write_wav(folder / split / kind / f"{i:04d}.wav", tone_pattern(kind, seconds, sampling_rate, rng), sampling_rate)
    return folder


def demo_audio_dir() -> Path:
    """The generated demo audio set, built once under ``$HF_MIM_CACHE`` (default ``~/.cache/hf_mim``)."""
    return cached_demo_dir("demo_audio_v1", make_demo_audio)
