"""Audio-visual data (HiCMAE): clips with their sound.

A sample is a video plus its audio: an mp4 (or other container) with an audio stream, or a video file with an
audio file of the same stem next to it (``clip.mp4`` + ``clip.wav``), or, for parquet / ``datasets`` sources, a
video column and an audio column. Frames go through the video transform, sound through PyAV decoding (resampled
to the feature extractor's rate) and the Kaldi filter banks; a clip whose audio cannot be read (no audio track, no
companion file) is logged and skipped like any unreadable file. The demo set pairs moving Fashion-MNIST objects of
class ``c`` with the tone pattern ``c`` of :data:`hf_mim.data.audio.TONE_CLASSES`.
"""

import logging
import os
from pathlib import Path

import numpy as np
from datasets import IterableDataset

from hf_mim.data import (
    DEMO_DIR,
    LABEL_COLUMN_CANDIDATES,
    DataError,
    cached_demo_dir,
    file_folder_split,
    find_column,
    load_split,
    open_image,
)
from hf_mim.data.audio import (
    AUDIO_COLUMN_CANDIDATES,
    AUDIO_SUFFIXES,
    SAMPLING_RATE,
    TONE_CLASSES,
    AudioTransform,
    tone_pattern,
    write_wav,
)
from hf_mim.data.video import (
    FASHION_CLASSES,
    VIDEO_COLUMN_CANDIDATES,
    VIDEO_SUFFIXES,
    VideoTransform,
    build_video_transform,
    moving_object_clip,
    write_video,
)

logger = logging.getLogger(__name__)
AUDIO_COLUMN = "audio"


def companion_audio(video_path: str) -> str:
    """The audio of a video file: a same-stem audio file next to it, else the video itself (its audio stream)."""
    path = Path(video_path)
    for suffix in AUDIO_SUFFIXES:
        if path.with_suffix(suffix).is_file():
            return str(path.with_suffix(suffix))
    return str(path)


def load_audio_visual_dataset(source: str | None = None, split: str = "train", streaming: bool = False, dataset_config=None):
    """One split: ``source`` None / "demo" (generated), a folder of videos (class sub-folders = labels; the audio
    of each is its own track or a same-stem audio file), or a parquet / ``datasets`` source with video and audio
    columns."""
    if source in (None, "demo"):
        source = str(demo_audio_visual_dir())
    path = Path(os.path.expanduser(source))
    if path.is_dir() and not any(path.glob("*.parquet")):
        dataset = file_folder_split(path, split.split("[")[0], VIDEO_SUFFIXES, "video", "video")
        dataset = dataset.add_column(AUDIO_COLUMN, [companion_audio(p) for p in dataset["video"]])
        return dataset.to_iterable_dataset() if streaming else dataset
    return load_split(source, split, streaming, dataset_config)


class AudioVisualTransform:
    """``dataset.set_transform`` function: ``pixel_values [T, C, H, W]`` and ``input_values [frames, mel]`` per
    clip (both None when either cannot be read, so the collator drops the sample), ``labels`` when asked for."""

    def __init__(self, video: VideoTransform, audio: AudioTransform, label_column: str | None = None):
        self.video, self.audio, self.label_column = video, audio, label_column

    def sample(self, video, audio) -> tuple:
        filter_bank = self.audio.features(audio)
        if filter_bank is None:
            return None, None
        clip = self.video.clip(video)
        return (None, None) if clip is None else (clip, filter_bank[0])

    def __call__(self, batch: dict) -> dict:
        pairs = [self.sample(v, a) for v, a in zip(batch[self.video.column], batch[self.audio.column])]
        out = {"pixel_values": [p[0] for p in pairs], "input_values": [p[1] for p in pairs]}
        if self.label_column is not None:
            out["labels"] = batch[self.label_column]
        return out


def build_audio_visual_transform(processor, train: bool = True, scale=(0.2, 1.0)):
    return build_video_transform(processor.video_processor, train=train, scale=scale)


def prepare_audio_visual_dataset(dataset, processor, train=True, column=None, label_column=None, with_labels=False, transform=None, scale=(0.2, 1.0)):
    """Attach decoding lazily; ``column`` names the video column (the audio column is found by name)."""
    if processor is None or not hasattr(processor, "feature_extractor"):
        raise DataError("audio-visual data needs the audio-visual processor (video processor + feature extractor)")
    video_column = find_column(dataset, VIDEO_COLUMN_CANDIDATES, "video", explicit=column)
    audio_candidates = tuple(c for c in AUDIO_COLUMN_CANDIDATES if c != video_column)
    audio_column = find_column(dataset, audio_candidates, "audio")
    label_column = find_column(dataset, LABEL_COLUMN_CANDIDATES, "label", explicit=label_column) if with_labels else None
    features = dataset.features or {}
    for name, kind in ((video_column, "Video"), (audio_column, "Audio")):
        if type(features.get(name)).__name__ == kind:  # decoded by PyAV here, not by datasets
            import datasets

            dataset = dataset.cast_column(name, getattr(datasets, kind)(decode=False))
    video_processor = processor.video_processor
    video = VideoTransform(
        transform or build_audio_visual_transform(processor, train=train, scale=scale), video_column,
        video_processor.num_frames, video_processor.frame_stride, train,
    )
    audio_visual = AudioVisualTransform(video, AudioTransform(processor.feature_extractor, audio_column), label_column)
    if isinstance(dataset, IterableDataset):
        return dataset.map(audio_visual, batched=True, remove_columns=list(dataset.column_names or []))
    dataset.set_transform(audio_visual)
    return dataset


def make_demo_audio_visual(folder, clips_per_class=(60, 20), num_frames: int = 32, size: int = 32, object_size: int = 24,
                           seconds: float = 1.0, seed: int = 0) -> Path:
    """``train/<class>/*.mp4`` + same-stem ``.wav`` (and ``test/``): class ``c`` is a moving Fashion-MNIST object
    of class ``c`` (the first five classes) with the tone pattern ``c``, so both modalities carry the label."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "test"), clips_per_class):
        table = pq.read_table(DEMO_DIR / f"{split}.parquet").to_pydict()
        labels = np.asarray(table["label"])
        for label, (fashion, tone) in enumerate(zip(FASHION_CLASSES, TONE_CLASSES)):
            (folder / split / f"{fashion}-{tone}").mkdir(parents=True, exist_ok=True)
            for index, row in enumerate(np.flatnonzero(labels == label)[:count]):
                image = open_image(table["image"][row]).convert("L").resize((object_size, object_size))
                stem = folder / split / f"{fashion}-{tone}" / f"{index:03d}"
                write_video(stem.with_suffix(".mp4"), moving_object_clip(np.asarray(image), num_frames, size, rng, (0.125, 0.25)))
                write_wav(stem.with_suffix(".wav"), tone_pattern(tone, seconds, SAMPLING_RATE, rng))
    return folder


def demo_audio_visual_dir() -> Path:
    """The generated audio-visual demo set, built once under ``$HF_MIM_CACHE`` (default ``~/.cache/hf_mim``)."""
    return cached_demo_dir("demo_audio_visual_v1", make_demo_audio_visual)
