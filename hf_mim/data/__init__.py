"""Image data for pre-training and evaluation: the bundled demo set, image folders (class sub-folders optional),
parquet files and any ``datasets`` dataset (streaming too), with torchvision.transforms.v2 augmentation and a
collator that skips unreadable images instead of crashing a long run."""

import io
import logging
import os
from pathlib import Path

import torch
from datasets import ClassLabel, Dataset, DatasetDict, Features, IterableDataset, Value, load_dataset
from datasets import Image as ImageFeature
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import v2

from hf_mim.processing.image_processing_mim import to_8bit

logger = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).parent / "demo"
IMAGE_COLUMN_CANDIDATES = ("image", "img", "pixel_values", "images", "picture")
LABEL_COLUMN_CANDIDATES = ("label", "labels", "fine_label", "class", "target")
SPLIT_PREFIXES = (("train", "train"), ("test", "test"), ("val", "validation"), ("dev", "validation"))
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")


class DataError(ValueError):
    """Raised for unusable data: missing columns, empty datasets, unknown sources."""


def check_local_path(source: str, kinds: str) -> None:
    """A source written as a local path (``./x``, ``/x``, ``~/x``, ``a/b/c``, ``x.parquet``, ``outputs/x`` when
    ``outputs/`` exists) that does not exist is a typo, not a Hub id: say "no such file" instead of a Hub error."""
    path = Path(os.path.expanduser(source))
    looks_local = (
        source.startswith((".", "/", "~")) or source.count("/") > 1 or path.suffix != ""
        or ("/" in source and path.parent.is_dir())
    )
    if looks_local and not path.exists():
        raise FileNotFoundError(f"no such file or directory: {source} (pass {kinds})")
class MissingSplitError(DataError):
    """The source has no split of that name."""


def generated_split(split: str, splits: dict, what: str) -> tuple:
    """``splits[base of split]`` (e.g. ``(count, seed)`` of a generated demo set) or a clear MissingSplitError."""
    base = split.split("[")[0]
    if base not in splits:
        raise MissingSplitError(f"the demo {what} have splits {sorted(splits)}, not {split!r}")
    return splits[base]


# share of the train split held out for evaluation when a labelled source has no test / validation split
HELD_OUT_FRACTION = 0.2


def demo_data_files() -> dict[str, str]:
    return {"train": str(DEMO_DIR / "train.parquet"), "test": str(DEMO_DIR / "test.parquet")}


def _split_files(folder: Path) -> dict[str, list[str]]:
    """Parquet files of a folder by split: ``train*.parquet`` -> train, ``test*`` -> test, ``val*`` -> validation;
    a folder without such names is one train split."""
    files = sorted(folder.glob("*.parquet"))
    splits: dict[str, list[str]] = {}
    for file in files:
        stem = file.stem.lower()
        split = split_of(stem)
        if split:
            splits.setdefault(split, []).append(str(file))
    return splits if splits else {"train": [str(f) for f in files]}


def split_of(name: str) -> str | None:
    """The split a file or folder name stands for ("train*", "test*", "val*" / "dev*"), or None."""
    name = name.lower()
    return next((split for prefix, split in SPLIT_PREFIXES if name.startswith(prefix)), None)


def file_folder_split(folder: Path, split: str, suffixes: tuple, column: str, kind: str) -> Dataset:
    """A folder of media files (``suffixes``) as a ``column`` of paths, with a ``label`` ClassLabel when the files
    sit in class sub-folders; ``train/``, ``test/``, ``val*/`` sub-folders are splits (otherwise the whole folder is
    "train"). Shared by the video and audio folders (image folders go through datasets' imagefolder)."""
    splits = {split_of(p.name): p for p in sorted(folder.iterdir()) if p.is_dir() and split_of(p.name)}
    if splits:
        if split not in splits:
            raise MissingSplitError(f"{folder} has the splits {sorted(splits)}, not {split!r}")
        folder = splits[split]
    elif split != "train":
        raise MissingSplitError(f"{folder} has no split sub-folders (train/, test/, val/): only the 'train' split exists, not {split!r}")
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in suffixes and p.is_file())
    if not files:
        raise DataError(f"no {kind} files ({', '.join(suffixes)}) found under {folder}")
    columns = {column: [str(p) for p in files]}
    features = {column: Value("string")}
    if all(p.parent != folder for p in files):
        classes = sorted({p.relative_to(folder).parts[0] for p in files})
        columns["label"] = [classes.index(p.relative_to(folder).parts[0]) for p in files]
        features["label"] = ClassLabel(names=classes)
    return Dataset.from_dict(columns, features=Features(features))


def require_av(kind: str, extra: str):
    """PyAV, or an ImportError saying which extra installs it."""
    try:
        import av
    except ImportError as error:
        raise ImportError(f'{kind} decoding needs PyAV: pip install "hf_mim[{extra}]" (or pip install av)') from error
    return av


def decode_media(value, kind: str, decode, formats: str, extra: str):
    """``decode(av, container, name)`` on a media file given as a path, raw bytes or a ``{"bytes", "path"}`` dict,
    opened with PyAV (``pip install "hf_mim[<extra>]"``); a file that cannot be opened or decoded is a
    :class:`DataError` naming it. Shared by the video and audio readers."""
    av = require_av(kind, extra)
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    name = value if isinstance(value, str) else f"<{kind} bytes>"
    if isinstance(value, (bytes, bytearray)):
        value = io.BytesIO(value)
    elif not isinstance(value, str):
        raise DataError(f"cannot read {kind} from {type(value).__name__}; give a path or the file's bytes")
    try:
        with av.open(value) as container:
            return decode(av, container, name)
    except DataError:
        raise
    except (av.error.FFmpegError, OSError, ValueError, IndexError) as error:
        raise DataError(f"cannot decode {kind} {name}: {error}. Is it {formats} file?") from error


def cached_demo_dir(name: str, build) -> Path:
    """``$HF_MIM_CACHE/name`` (default ``~/.cache/hf_mim``), built once by ``build(folder)`` in a staging folder
    that is renamed when complete, so an interrupted build is never used and parallel builds do not collide."""
    import shutil
    import tempfile

    root = Path(os.environ.get("HF_MIM_CACHE", Path.home() / ".cache" / "hf_mim")) / name
    if not (root / "test").is_dir():
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{name}_"))
        try:
            build(staging)
            if not root.exists():
                os.replace(staging, root)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return root


def load_image_dataset(
    source: str | None = None,
    split: str = "train",
    streaming: bool = False,
    dataset_config: str | None = None,
) -> Dataset | IterableDataset:
    """Load one split of an image dataset.

    ``source``: None or "demo" (bundled Fashion-MNIST subset), a folder of images (class sub-folders optional:
    flat folders of unlabeled images work), a ``.parquet`` file, a folder of parquet files, a glob, or a dataset
    name/path for ``datasets.load_dataset``. ``split`` may be "train", "test", "validation" or slicing syntax.
    """
    return load_split(source, split, streaming, dataset_config)


def load_split(source, split: str, streaming: bool = False, dataset_config: str | None = None):
    """One split of a parquet / image-folder / ``datasets`` source (what every modality's loader falls back to),
    with datasets' errors for an empty source or an unknown split, and an empty split, turned into clear ones."""
    try:
        dataset = _load(source, split, streaming, dataset_config)
    except MissingSplitError:
        raise
    except ValueError as error:  # datasets' wording for an empty source / an unknown split
        if "corresponds to no data" in str(error):
            raise DataError(f"the {split!r} split of {source} is empty: nothing to train or evaluate on") from error
        if str(error).startswith("Unknown split"):
            raise MissingSplitError(f"{source} has no {split!r} split: {error}") from error
        raise
    if not streaming and len(dataset) == 0:
        raise DataError(f"the {split!r} split of {source or 'demo'} is empty: nothing to train or evaluate on")
    return dataset


def _load(source, split, streaming, dataset_config):
    if source in (None, "demo"):
        files = demo_data_files()
        base = split.split("[")[0]
        if base not in files:
            raise MissingSplitError(f"the demo data has splits {sorted(files)}, not {split!r}")
        dataset = load_dataset("parquet", data_files={base: files[base]}, split=split, streaming=streaming)
    else:
        path = Path(os.path.expanduser(source))
        if path.is_dir() and any(path.glob("*.parquet")):
            dataset = load_dataset("parquet", data_files=_split_files(path), split=split, streaming=streaming)
        elif path.is_dir():
            if not any(p.suffix.lower() in IMAGE_SUFFIXES for p in path.rglob("*")):
                raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) found under {path}")
            dataset = load_dataset("imagefolder", data_dir=str(path), split=split, streaming=streaming)
        elif path.suffix == ".parquet" or "*" in source:
            if "*" not in source and not path.exists():
                raise DataError(f"no such file or directory: {source} (pass a local folder, a parquet file or a Hub dataset id)")
            dataset = load_dataset("parquet", data_files=source, split=split, streaming=streaming)
        else:
            check_local_path(source, "a local folder, a parquet file or a Hub dataset id")
            dataset = load_dataset(source, dataset_config, split=split, streaming=streaming)
    return dataset


def load_evaluation_splits(
    source: str | None, train_split: str = "train", test_split: str | None = None, seed: int = 0, load=None
):
    """``(train, test)`` of a labelled source for kNN, probing and fine-tuning. Without ``test_split`` the test set
    is the source's "test" split, else its "validation" split, else a seeded :data:`HELD_OUT_FRACTION` of the train
    split held out (and logged), so a labelled folder with class sub-folders only works as it is. ``load``: the
    modality's ``(source, split)`` loader (images by default)."""
    load = load or load_image_dataset
    train = load(source, train_split)
    if test_split is not None:
        try:
            return train, load(source, test_split)
        except MissingSplitError as error:
            raise MissingSplitError(
                f"{error}. Name one of those as the test split (--test_split; --eval_split for finetune), or "
                f"leave the option out to hold out a seeded {HELD_OUT_FRACTION:.0%} of the train split"
            ) from None
    for name in ("test", "validation"):
        try:
            return train, load(source, name)
        except MissingSplitError:
            continue
    if len(train) < 2:
        raise DataError(f"{source} has no test split and too few images ({len(train)}) to hold some out")
    parts = train.train_test_split(test_size=HELD_OUT_FRACTION, seed=seed)
    logger.warning(
        "%s has no test or validation split: evaluating on a held-out %d%% of its %r split (%d images, seed %d); "
        "pass --test_split NAME to use a split instead", source, round(100 * HELD_OUT_FRACTION), train_split,
        len(parts["test"]), seed,
    )
    return parts["train"], parts["test"]


def find_column(dataset, candidates, kind: str, required: bool = True, explicit: str | None = None) -> str | None:
    columns = list(dataset.column_names or (dataset.features or {}).keys())
    if explicit is not None:
        if explicit not in columns:
            raise DataError(f"{kind} column {explicit!r} not found; the dataset has columns {columns}")
        return explicit
    for name in candidates:
        if name in columns:
            return name
    features = dataset.features or {}
    if kind == "image":
        for name, feature in features.items():
            if isinstance(feature, ImageFeature):
                return name
    if required:
        raise DataError(
            f"no {kind} column found (looked for {list(candidates)}); the dataset has columns {columns}. "
            f"Pass --{kind}_column NAME."
        )
    return None


def open_image(value) -> Image.Image:
    """Decode what a dataset stores for an image: a PIL image, ``{"bytes", "path"}``, raw bytes or a path."""
    if isinstance(value, Image.Image):
        return value
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray)):
        image = Image.open(io.BytesIO(value))
    elif isinstance(value, str):
        image = Image.open(value)
    else:
        raise TypeError(f"cannot read an image from {type(value).__name__}")
    image.load()
    return image


def to_mode(image: Image.Image, mode: str | None) -> Image.Image:
    """``image`` in PIL ``mode`` ("L" / "RGB"; None keeps it), 16- and 32-bit images scaled to 8 bits first."""
    image = to_8bit(image)
    return image.convert(mode) if mode and image.mode != mode else image


# what a corrupt, truncated, unsupported or oversized (decompression bomb) image file raises when decoded
UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError, Image.DecompressionBombError)


def undecoded(dataset, image_column: str):
    """``dataset`` with its image column left as bytes / paths: we decode (and skip unreadable files) ourselves
    instead of ``datasets`` raising in the middle of a loop."""
    if isinstance((dataset.features or {}).get(image_column), ImageFeature):
        dataset = dataset.cast_column(image_column, ImageFeature(decode=False))
    return dataset


def read_image(value) -> Image.Image | None:
    """:func:`open_image`, or None (logged) when the image cannot be decoded: one bad file never stops a run."""
    try:
        return open_image(value)
    except UNREADABLE as error:
        logger.warning("unreadable image skipped: %s", error)
        return None


def build_transform(processor, train: bool = True, scale=(0.2, 1.0), hflip: bool = True):
    """torchvision v2 pipeline from a processor's size / channels / mean / std. Training: RandomResizedCrop
    (bicubic, ``scale``) + horizontal flip, as MAE; evaluation: resize to the model size."""
    size = (processor.size["height"], processor.size["width"])
    mode = {1: "L", 3: "RGB"}.get(processor.num_channels)
    steps = [v2.Lambda(lambda im: to_mode(im, mode)), v2.PILToTensor()]
    if train:
        steps.append(v2.RandomResizedCrop(size, scale=scale, interpolation=v2.InterpolationMode.BICUBIC, antialias=True))
        if hflip:
            steps.append(v2.RandomHorizontalFlip())
    else:
        steps.append(v2.Resize(size, interpolation=v2.InterpolationMode.BICUBIC, antialias=True))
    steps.append(v2.ToDtype(torch.float32, scale=True))
    if processor.do_normalize:
        steps.append(v2.Normalize(list(processor.image_mean), list(processor.image_std)))
    return v2.Compose(steps)


def views_as_columns(decoded: list) -> dict:
    """Per-sample transform outputs -> batch columns: tensors become ``pixel_values``; dicts of views (methods
    with several views per sample) become one column per key; unreadable samples (None) stay None in each."""
    if not any(isinstance(item, dict) for item in decoded):
        return {"pixel_values": decoded}
    keys = next(item for item in decoded if isinstance(item, dict)).keys()
    return {key: [None if item is None else item[key] for item in decoded] for key in keys}


class ImageTransform:
    """``dataset.set_transform`` / ``.map`` function: image column -> ``pixel_values`` (None when the image cannot
    be decoded; :class:`MIMCollator` drops those), label column -> ``labels`` when asked for.

    ``transform`` maps a PIL image to a tensor or to a dict of tensors (methods with several views per image);
    a dict's entries become columns of their own."""

    def __init__(self, transform, image_column: str, label_column: str | None = None):
        self.transform = transform
        self.image_column = image_column
        self.label_column = label_column

    def decode(self, value):
        try:
            return self.transform(open_image(value))
        except UNREADABLE as error:
            logger.debug("unreadable image skipped: %s", error)
            return None

    def __call__(self, batch: dict) -> dict:
        out = views_as_columns([self.decode(value) for value in batch[self.image_column]])
        if self.label_column is not None:
            out["labels"] = batch[self.label_column]
        return out


def prepare_dataset(
    dataset,
    processor,
    train: bool = True,
    image_column: str | None = None,
    label_column: str | None = None,
    with_labels: bool = False,
    scale=(0.2, 1.0),
    transform=None,
):
    """Attach the transform lazily (``transform``: a callable on PIL images; default :func:`build_transform`). Images are decoded by us (not by ``datasets``) so that a corrupt file becomes
    a skipped sample rather than an exception in the middle of a run."""
    image_column = find_column(dataset, IMAGE_COLUMN_CANDIDATES, "image", explicit=image_column)
    label_column = (
        find_column(dataset, LABEL_COLUMN_CANDIDATES, "label", required=True, explicit=label_column)
        if with_labels
        else None
    )
    dataset = undecoded(dataset, image_column)
    transform = ImageTransform(
        transform or build_transform(processor, train=train, scale=scale), image_column, label_column
    )
    if isinstance(dataset, IterableDataset):
        keep = [c for c in (dataset.column_names or []) if c not in (image_column, label_column)]
        return dataset.map(transform, batched=True, remove_columns=keep + [image_column] + ([label_column] if label_column else []))
    dataset.set_transform(transform)
    return dataset


class MIMCollator:
    """Stacks every tensor field of the samples (``pixel_values``, extra views, ``labels``), drops samples whose
    image could not be read (logging a running count), and optionally adds masks from a mask generator
    (``bool_masked_pos``), so the model and the collator can share one masking code path."""

    def __init__(self, mask_generator=None, generator: torch.Generator | None = None):
        self.mask_generator = mask_generator
        self.generator = generator
        self.skipped = 0

    def __call__(self, samples: list[dict]) -> dict:
        good = [s for s in samples if all(value is not None for value in s.values())]
        if len(good) < len(samples):
            self.skipped += len(samples) - len(good)
            logger.warning("skipped %d unreadable sample(s) so far", self.skipped)
        if not good:  # MIMTrainer skips an empty batch: a run never stops on unreadable files
            logger.warning("a whole batch of %d sample(s) could not be read: skipped", len(samples))
            return {}
        batch = {}
        for key in good[0]:
            values = [s[key] for s in good]
            if isinstance(values[0], str):  # text (captions) stays a list for a method's collator to tokenize
                batch[key] = values
            else:
                batch[key] = torch.stack(values) if torch.is_tensor(values[0]) else torch.as_tensor(values)
        if self.mask_generator is not None:
            batch["bool_masked_pos"] = self.mask_generator(len(good), generator=self.generator)
        return batch


def subset(dataset, count: int | None, seed: int = 0):
    """A seeded random sample of ``count`` rows (all rows when ``count`` is None or larger). Datasets are often
    sorted by class (the CIFAR-10 parquet is), so "the first N" would be one class."""
    if count is None or count >= len(dataset):
        return dataset
    return dataset.shuffle(seed=seed).select(range(count)).flatten_indices()


def split_train_validation(dataset: Dataset, validation_fraction: float, seed: int = 0) -> DatasetDict:
    """Hold out ``validation_fraction`` of ``dataset`` (only used when no validation set is given)."""
    if not 0 < validation_fraction < 1:
        raise DataError(f"validation fraction must be in (0, 1), got {validation_fraction}")
    parts = dataset.train_test_split(test_size=validation_fraction, seed=seed)
    return DatasetDict(train=parts["train"], validation=parts["test"])
