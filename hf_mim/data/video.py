"""Video data for pre-training and evaluation: folders of video files (class sub-folders optional, split
sub-folders ``train/`` / ``test/`` / ``val*/`` optional), parquet files and ``datasets`` sources with a video column
(paths or bytes), decoded with PyAV (``pip install "hf_mim[video]"``), and a generated demo set of moving
Fashion-MNIST objects labelled by class.

A clip is ``num_frames`` frames taken every ``frame_stride`` frames (the processor stores both), from a random
temporal offset in training (the torch RNG, so ``--seed`` fixes it) and from the middle in evaluation. Files that
cannot be decoded become skipped samples (counted by :class:`~hf_mim.data.MIMCollator`) as unreadable images do;
a clip shorter than the requested span is an error that says how to fix it.
"""

import logging
import os
from pathlib import Path

import numpy as np
import torch
from datasets import IterableDataset
from torchvision.transforms import v2

from hf_mim.data import (
    DEMO_DIR,
    LABEL_COLUMN_CANDIDATES,
    DataError,
    cached_demo_dir,
    decode_media,
    file_folder_split,
    find_column,
    load_split,
    open_image,
    require_av,
    views_as_columns,
)

logger = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".webm", ".avi", ".mkv", ".mov", ".m4v")
VIDEO_COLUMN_CANDIDATES = ("video", "videos", "clip", "file", "path")
FASHION_CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
DEMO_VERSION = "v2"


class ClipTooShortError(DataError):
    """A video has fewer frames than the requested clip spans."""



def read_video(value) -> np.ndarray:
    """Decode every frame of a video given as a path, raw bytes or a ``{"bytes", "path"}`` dict to a uint8 array
    ``[N, H, W, 3]``. Raises :class:`DataError` naming the file when it cannot be decoded."""

    def frames_of(av, container, name):
        if not container.streams.video:
            raise DataError(f"{name} has no video stream")
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
        if not frames:
            raise DataError(f"cannot decode video {name}: it has no frames")
        return np.stack(frames)

    return decode_media(value, "video", frames_of, "an mp4/webm/avi video", "video")


def clip_indices(num_available: int, num_frames: int, frame_stride: int = 1, train: bool = True, generator=None, name: str = "video") -> list[int]:
    """Frame indices of one clip: ``num_frames`` frames ``frame_stride`` apart, starting at a random offset
    (``train``; from ``generator`` or the global torch RNG) or centred (evaluation)."""
    if num_frames < 1 or frame_stride < 1:
        raise ValueError(f"num_frames and frame_stride must be positive, got {num_frames} and {frame_stride}")
    span = (num_frames - 1) * frame_stride + 1
    if num_available < span:
        raise ClipTooShortError(
            f"{name} has {num_available} frames, but a clip of {num_frames} frames every {frame_stride} frame(s) "
            f"spans {span}; lower num_frames or frame_stride (processor), or remove the short video"
        )
    slack = num_available - span
    start = int(torch.randint(slack + 1, (1,), generator=generator)) if train else slack // 2
    return list(range(start, start + span, frame_stride))


def build_video_transform(processor, train: bool = True, scale=(0.2, 1.0), jitter: float = 0.0):
    """uint8 clip ``[T, C, H, W]`` -> normalised float clip at the processor size. Training: one
    RandomResizedCrop shared by all frames of the clip (VideoMAE's multi-scale crop, in torchvision v2), and with
    ``jitter > 0`` one brightness/contrast jitter of that strength for the whole clip; evaluation: resize. No flip
    (VideoMAE V2 pre-training has none)."""
    size = (processor.size["height"], processor.size["width"])
    steps = [v2.Grayscale(1)] if processor.num_channels == 1 else []
    if train:
        steps.append(v2.RandomResizedCrop(size, scale=scale, antialias=True))
    else:
        steps.append(v2.Resize(size, antialias=True))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if train and jitter > 0:
        steps.append(v2.ColorJitter(brightness=jitter, contrast=jitter))
    if processor.do_normalize:
        steps.append(v2.Normalize(list(processor.image_mean), list(processor.image_std)))
    return v2.Compose(steps)


class VideoTransform:
    """``dataset.set_transform`` function: video column -> ``pixel_values [T, C, H, W]`` (None when the file
    cannot be decoded; the collator drops and counts those), label column -> ``labels`` when asked for, caption
    column -> ``caption`` (text) when given. ``transform`` maps the sampled frames to a clip or to a dict of clips
    (methods with several views of one clip, e.g. CrossVideoMAE); a dict's entries become columns of their own."""

    def __init__(self, transform, column: str, num_frames: int, frame_stride: int, train: bool, label_column=None, caption_column=None):
        self.transform, self.column, self.label_column, self.caption_column = transform, column, label_column, caption_column
        self.num_frames, self.frame_stride, self.train = num_frames, frame_stride, train

    def clip(self, value) -> torch.Tensor | None:
        name = value.get("path") if isinstance(value, dict) else value if isinstance(value, str) else "video"
        try:
            frames = read_video(value)
        except ClipTooShortError:
            raise
        except DataError as error:
            logger.warning("unreadable video skipped: %s", error)
            return None
        indices = clip_indices(len(frames), self.num_frames, self.frame_stride, self.train, name=str(name))
        return self.transform(torch.from_numpy(frames[indices]).permute(0, 3, 1, 2))

    def __call__(self, batch: dict) -> dict:
        out = views_as_columns([self.clip(value) for value in batch[self.column]])
        if self.label_column is not None:
            out["labels"] = batch[self.label_column]
        if self.caption_column is not None:
            out["caption"] = batch[self.caption_column]
        return out


def prepare_video_dataset(dataset, processor, train=True, column=None, label_column=None, with_labels=False, transform=None, scale=(0.2, 1.0), caption_column=None):
    """Attach the clip sampler and transform lazily (decoding happens in the data loader); ``caption_column``
    (see :func:`add_captions`) adds each clip's caption."""
    column = find_column(dataset, VIDEO_COLUMN_CANDIDATES, "video", explicit=column)
    label_column = find_column(dataset, LABEL_COLUMN_CANDIDATES, "label", explicit=label_column) if with_labels else None
    features = dataset.features or {}
    if type(features.get(column)).__name__ == "Video":  # datasets' own decoder is not used: PyAV is
        from datasets import Video

        dataset = dataset.cast_column(column, Video(decode=False))
    video_transform = VideoTransform(
        transform or build_video_transform(processor, train=train, scale=scale), column, processor.num_frames,
        processor.frame_stride, train, label_column, caption_column,
    )
    if isinstance(dataset, IterableDataset):
        return dataset.map(video_transform, batched=True, remove_columns=list(dataset.column_names or []))
    dataset.set_transform(video_transform)
    return dataset


CAPTION_COLUMN = "caption"
CAPTION_TEMPLATE = "a video of a moving {}"


def add_captions(dataset, caption_column: str | None = None):
    """``(dataset, column)`` with a caption per clip, for text-guided methods (TGM): ``caption_column`` (default
    "caption") when the data has it; otherwise, when no column was named and the clips carry class labels (class
    sub-folders, as in the demo set), a templated caption from the class name, ``CAPTION_TEMPLATE`` ("a video of
    a moving t-shirt"; underscores become spaces)."""
    name = caption_column or CAPTION_COLUMN
    columns = list(dataset.column_names or (dataset.features or {}).keys())
    if name in columns:
        return dataset, name
    label = None if caption_column else find_column(dataset, LABEL_COLUMN_CANDIDATES, "label", required=False)
    classes = getattr((dataset.features or {}).get(label), "names", None)
    if not classes:
        raise DataError(
            f"no caption column {name!r} in the data (columns {columns}): pass --caption_column NAME, or use class "
            "sub-folders so that captions 'a video of a moving <class>' are derived from the class names"
        )
    captions = [CAPTION_TEMPLATE.format(c.replace("_", " ")) for c in classes]
    if isinstance(dataset, IterableDataset):
        return dataset.map(lambda row: {name: captions[row[label]]}), name
    return dataset.add_column(name, [captions[i] for i in dataset[label]]), name


# ---------------------------------------------------------------------------------------------------- sources
def load_video_dataset(source: str | None = None, split: str = "train", streaming: bool = False, dataset_config=None):
    """One split of a video dataset. ``source``: None or "demo" (the generated moving Fashion-MNIST set), a
    folder of video files, a parquet file / folder / glob, or a ``datasets`` name, with a video column holding
    paths or bytes."""
    if source in (None, "demo"):
        source = str(demo_video_dir())
    path = Path(os.path.expanduser(source))
    if path.is_dir() and not any(path.glob("*.parquet")):
        dataset = file_folder_split(path, split.split("[")[0], VIDEO_SUFFIXES, "video", "video")
        return dataset.to_iterable_dataset() if streaming else dataset
    return load_split(source, split, streaming, dataset_config)


# ---------------------------------------------------------------------------------------------------- demo set
def write_video(path, frames: np.ndarray, fps: int = 8) -> None:
    """uint8 ``[T, H, W, 3]`` -> an MPEG-4 (.mp4 / .avi) or VP8 (.webm) file (sides must be even)."""
    av = require_av("video", "video")
    codec = "libvpx" if str(path).endswith(".webm") else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if codec == "mpeg4":
            stream.options = {"qscale": "2"}  # near-lossless: the demo must keep the objects' texture
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def moving_object_clip(image: np.ndarray, num_frames: int, size: int, rng: np.random.Generator, speed=(1.0, 2.5)) -> np.ndarray:
    """One clip: ``image`` (uint8 ``[h, w]``) gliding in a straight line over a black ``size x size`` canvas at
    ``speed`` (min, max) pixels per frame on each axis, bouncing off the borders (Moving-MNIST style), as RGB
    ``[T, size, size, 3]``."""
    height, width = image.shape
    position = rng.uniform([0, 0], [size - height, size - width])
    velocity = rng.uniform(*speed, size=2) * rng.choice([-1, 1], size=2)
    clip = np.zeros((num_frames, size, size), dtype=np.uint8)
    for t in range(num_frames):
        for axis, limit in enumerate((size - height, size - width)):
            if not 0 <= position[axis] <= limit:
                velocity[axis] = -velocity[axis]
                position[axis] = np.clip(position[axis], 0, limit)
        row, col = np.round(position).astype(int)
        clip[t, row : row + height, col : col + width] = image
        position = position + velocity
    return np.repeat(clip[..., None], 3, axis=-1)


def make_demo_videos(folder, clips_per_class=(400, 100), num_frames: int = 32, size: int = 32, object_size: int = 24, speed=(0.125, 0.25), seed: int = 0) -> Path:
    """Write the demo set: ``train/<class>/*.mp4`` and ``test/<class>/*.mp4``, ``clips_per_class`` (train, test)
    clips per Fashion-MNIST class (at most the 400 / 100 bundled demo images of a class), each one object of that
    class moving over a black canvas. Deterministic for a seed; about 3 CPU-minutes for the full set (built once by
    :func:`demo_video_dir`).

    Why these defaults: the object fills most of the frame (24 of 32 px) and drifts slowly (0.5-1 px between two
    frames of a clip sampled every 4th frame), so what a masked video model must learn is the object's shape and
    texture rather than its trajectory; with the first set (300 clips of 16 px objects crossing the frame at 4-10
    px per sampled frame) pre-training lost to random init on kNN because position dominated the features (see
    "Why the demo set changed" in benchmarks/RESULTS.md)."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    for split, count in zip(("train", "test"), clips_per_class):
        table = pq.read_table(DEMO_DIR / f"{split}.parquet").to_pydict()
        labels = np.asarray(table["label"])
        for label, name in enumerate(FASHION_CLASSES):
            (folder / split / name).mkdir(parents=True, exist_ok=True)
            rows = np.flatnonzero(labels == label)[:count]
            for index, row in enumerate(rows):
                image = open_image(table["image"][row]).convert("L").resize((object_size, object_size))
                clip = moving_object_clip(np.asarray(image), num_frames, size, rng, speed)
                write_video(folder / split / name / f"{index:03d}.mp4", clip)
    return folder


def demo_video_dir() -> Path:
    """The generated demo set, built once under ``$HF_MIM_CACHE`` (default ``~/.cache/hf_mim``)."""
    return cached_demo_dir(f"demo_video_{DEMO_VERSION}", make_demo_videos)
