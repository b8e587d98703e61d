"""Radiance-grid data: rows are NeRF grids ``rgbsigma [X, Y, Z, 4]`` (RGB + raw density, channels last, as the
NeRF-MAE ``.npz`` files), optionally with a class label.

Sources: None / "demo" (coloured primitives with density, generated deterministically at run time), a folder of
``.npz`` files with an ``rgbsigma`` array (read lazily, never unpickled; ``train/``, ``validation/``, ``test/``
sub-folders are splits), or a parquet file / folder / ``datasets`` name with an ``rgbsigma`` (or ``grid``) column.
"""

from pathlib import Path

import numpy as np
import torch
from datasets import Array4D, ClassLabel, Dataset, Features, Value

from hf_mim.data import DataError, find_column, generated_split, load_split

GRID_COLUMN_CANDIDATES = ("rgbsigma", "grid", "grid_values", "path")
LABEL_COLUMN_CANDIDATES = ("label", "labels")
PRIMITIVES = ("sphere", "box", "cylinder")
DEMO_SPLITS = {"train": (64, 1), "validation": (16, 2), "test": (16, 3)}  # grids, seed
EMPTY_DENSITY, SOLID_DENSITY = -10.0, float(np.log(300.0))  # alpha ~ 0 and 1 - exp(-3) ~ 0.95 after normalisation


def make_primitive_grids(num_grids: int = 64, size: int = 32, seed: int = 0, min_extent: float = 0.75) -> Dataset:
    """Grids of 1-2 coloured primitives of one kind (label: sphere, box or cylinder), ``rgbsigma [X, size, size, 4]``.

    Each primitive has a random centre, size and colour (shaded along the last axis, so colour varies inside a
    shape); empty space is black with a density whose alpha is ~0, solids have alpha ~0.95 after
    ``density_to_alpha``. The first axis is cut to a random ``X`` in ``[min_extent * size, size]`` so the
    processor's zero-padding and validity mask are exercised. Deterministic in ``seed``."""
    rng = np.random.default_rng(seed)
    axis = np.arange(size, dtype=np.float32) + 0.5
    x, y, z = np.meshgrid(axis, axis, axis, indexing="ij")
    rows = {"rgbsigma": [], "label": []}
    for _ in range(num_grids):
        label = int(rng.integers(len(PRIMITIVES)))
        grid = np.zeros((size, size, size, 4), dtype=np.float32)
        grid[..., 3] = EMPTY_DENSITY
        for _ in range(int(rng.integers(1, 3))):
            radius = rng.uniform(0.12, 0.25) * size
            cx, cy, cz = rng.uniform(radius, size - radius, 3)
            dx, dy, dz = x - cx, y - cy, z - cz
            if PRIMITIVES[label] == "sphere":
                inside = dx**2 + dy**2 + dz**2 <= radius**2
            elif PRIMITIVES[label] == "box":
                half = radius * rng.uniform(0.6, 1.0, 3)
                inside = (np.abs(dx) <= half[0]) & (np.abs(dy) <= half[1]) & (np.abs(dz) <= half[2])
            else:  # cylinder along the last axis
                inside = (dx**2 + dy**2 <= (0.8 * radius) ** 2) & (np.abs(dz) <= radius)
            colour = rng.uniform(0.2, 1.0, 3).astype(np.float32)
            shade = 0.7 + 0.3 * z[inside] / size
            grid[inside, :3] = colour[None] * shade[:, None]
            grid[inside, 3] = SOLID_DENSITY
        extent = int(rng.integers(int(np.ceil(min_extent * size)), size + 1))
        rows["rgbsigma"].append(grid[:extent])
        rows["label"].append(label)
    features = Features({"rgbsigma": Array4D((None, size, size, 4), "float32"), "label": ClassLabel(names=list(PRIMITIVES))})
    return Dataset.from_dict(rows, features=features)


def npz_folder_dataset(folder: Path, split: str) -> Dataset:
    """A ``path`` column of the ``.npz`` files of ``folder`` (or of its ``split`` sub-folder when there is one)."""
    from hf_mim.data import MissingSplitError

    base = split.split("[")[0]
    if (folder / base).is_dir():
        folder = folder / base
    elif any((folder / name).is_dir() for name in DEMO_SPLITS):
        raise MissingSplitError(f"{folder} has no {base!r} sub-folder of .npz grids")
    elif base != "train":
        raise MissingSplitError(f"{folder} is one split of .npz grids (train), not {split!r}")
    paths = sorted(str(p) for p in folder.glob("*.npz"))
    if not paths:
        raise DataError(f"no .npz grids in {folder}")
    return Dataset.from_dict({"path": paths}, features=Features({"path": Value("string")}))


def read_npz_grid(path: str) -> np.ndarray:
    """The ``rgbsigma`` array of a NeRF-MAE ``.npz`` file (``allow_pickle=False``: object arrays are refused)."""
    with np.load(path, allow_pickle=False) as data:
        if "rgbsigma" not in data:
            raise DataError(f"{path} has no 'rgbsigma' array (it has {sorted(data.files)}); NeRF-MAE grids are "
                            "saved as np.savez(path, rgbsigma=grid) with grid [X, Y, Z, 4]")
        return data["rgbsigma"]


def load_grid_dataset(source: str | None = None, split: str = "train", streaming: bool = False, dataset_config=None):
    """One split of a radiance-grid dataset (see the module docstring for the sources)."""
    if streaming:
        raise DataError("radiance grids are read per file, not streamed; drop --streaming")
    if source in (None, "demo"):
        count, seed = generated_split(split, DEMO_SPLITS, "grids")
        return make_primitive_grids(count, seed=seed)
    path = Path(str(source)).expanduser()
    if path.is_dir() and (any(path.glob("*.npz")) or any(path.glob("*/*.npz"))):
        return npz_folder_dataset(path, split)
    return load_split(source, split, False, dataset_config)


class GridSamples(torch.utils.data.Dataset):
    """A prepared grid dataset: row ``i`` -> the feature extractor's ``grid_values`` / ``valid_mask`` (+ ``labels``)."""

    def __init__(self, dataset, processor, column: str, label_column: str | None):
        self.dataset = dataset.with_format("numpy")
        self.processor, self.column, self.label_column = processor, column, label_column

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        row = self.dataset[int(index)]
        grid = row[self.column]
        if self.column == "path":
            grid = read_npz_grid(str(grid))
        elif grid.dtype == object:  # nested lists of ragged rows
            grid = np.array(grid.tolist(), dtype=np.float32)
        sample = self.processor.process_grid(grid)
        if self.label_column is not None:
            sample["labels"] = torch.as_tensor(int(row[self.label_column]))
        return sample


def prepare_grid_dataset(dataset, processor, train=True, column=None, label_column=None, with_labels=False,
                         transform=None, scale=None):
    """Rows become ``grid_values`` / ``valid_mask`` (and ``labels``) tensors (:class:`GridSamples`). NeRF-MAE
    pre-trains without augmentation: ``train``, ``transform`` and ``scale`` are accepted for the shared modality
    signature and ignored."""
    column = find_column(dataset, GRID_COLUMN_CANDIDATES, "radiance grid", explicit=column)
    labels = find_column(dataset, LABEL_COLUMN_CANDIDATES, "label", explicit=label_column) if with_labels else None
    return GridSamples(dataset, processor, column, labels)


def build_grid_transform(processor, train: bool = True, scale=None):
    """No default transform: :func:`prepare_grid_dataset` reads the grids with the feature extractor."""
    return None
