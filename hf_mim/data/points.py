"""Point-cloud data: datasets whose rows are clouds (a ``points`` column of ``[N, 3]`` coordinates, optional
``label``), from parquet files / folders / globs or ``datasets`` names, and a generated demo set of labelled shapes.

The demo set samples points from the surfaces of primitive and composite shapes (sphere, cube, cylinder, cone,
torus, two-sphere dumbbell, square pyramid, table), each with random proportions, rotation and scale, generated
deterministically at run time (nothing is shipped or downloaded).
"""

import numpy as np
import torch
from datasets import Array2D, ClassLabel, Dataset, Features

from hf_mim.data import LABEL_COLUMN_CANDIDATES, find_column, generated_split, load_split

POINT_COLUMN_CANDIDATES = ("points", "point_cloud", "pointcloud", "pos", "xyz", "coordinates")
SHAPE_CLASSES = ("sphere", "cube", "cylinder", "cone", "torus", "dumbbell", "pyramid", "table")
DEMO_SPLITS = {"train": (40, 1), "validation": (5, 2), "test": (20, 3)}  # clouds per class, seed
DEMO_POINTS = 1024


def _sphere(rng, n):
    v = rng.normal(size=(n, 3))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _box(rng, n, size):
    """Uniform on the surface of an axis-aligned box of side lengths ``size`` centred at 0."""
    size = np.asarray(size, dtype=float)
    areas = np.array([size[1] * size[2], size[0] * size[2], size[0] * size[1]]).repeat(2)
    face = rng.choice(6, size=n, p=areas / areas.sum())
    points = (rng.random((n, 3)) - 0.5) * size
    axis, sign = face // 2, np.where(face % 2 == 0, -0.5, 0.5)
    points[np.arange(n), axis] = sign * size[axis]
    return points


def _cylinder(rng, n, radius, height):
    side, cap = 2 * np.pi * radius * height, np.pi * radius**2
    kind = rng.choice(3, size=n, p=np.array([side, cap, cap]) / (side + 2 * cap))
    angle = rng.random(n) * 2 * np.pi
    r = np.where(kind == 0, radius, radius * np.sqrt(rng.random(n)))
    z = np.where(kind == 0, (rng.random(n) - 0.5) * height, np.where(kind == 1, -height / 2, height / 2))
    return np.stack([r * np.cos(angle), r * np.sin(angle), z], axis=1)


def _cone(rng, n, radius, height):
    slant = np.pi * radius * np.hypot(radius, height)
    base = rng.random(n) < np.pi * radius**2 / (slant + np.pi * radius**2)
    angle = rng.random(n) * 2 * np.pi
    t = np.sqrt(rng.random(n))  # uniform over the lateral surface: radius grows linearly with distance to the apex
    r = np.where(base, radius * np.sqrt(rng.random(n)), radius * t)
    z = np.where(base, 0.0, height * (1 - t))
    return np.stack([r * np.cos(angle), r * np.sin(angle), z - height / 3], axis=1)


def _torus(rng, n, major, minor):
    u, v = rng.random(n) * 2 * np.pi, rng.random(n) * 2 * np.pi
    ring = major + minor * np.cos(v)
    return np.stack([ring * np.cos(u), ring * np.sin(u), minor * np.sin(v)], axis=1)


def _pyramid(rng, n, half, height):
    """A square pyramid: base square and four triangular faces (sampled by area)."""
    base_area, face_area = (2 * half) ** 2, 2 * half * np.hypot(half, height)
    on_base = rng.random(n) < base_area / (base_area + 4 * face_area / 2)
    points = np.zeros((n, 3))
    points[:, :2] = (rng.random((n, 2)) * 2 - 1) * half
    a, b = rng.random(n), rng.random(n)
    flip = a + b > 1
    a, b = np.where(flip, 1 - a, a), np.where(flip, 1 - b, b)
    corners = np.array([[-half, -half], [half, -half], [half, half], [-half, half], [-half, -half]])
    face = rng.integers(0, 4, n)
    p0, p1 = corners[face], corners[face + 1]
    triangle_xy = p0 + a[:, None] * (p1 - p0) + b[:, None] * (0 - p0)
    points[~on_base, :2] = triangle_xy[~on_base]
    points[~on_base, 2] = b[~on_base] * height
    return points - np.array([0, 0, height / 4])


def shape_points(name: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """``[n, 3]`` points on the surface of one random instance of shape ``name`` (before rotation)."""
    if name == "sphere":
        return _sphere(rng, n)
    if name == "cube":
        return _box(rng, n, rng.uniform(0.8, 1.2, 3))
    if name == "cylinder":
        return _cylinder(rng, n, rng.uniform(0.3, 0.5), rng.uniform(1.5, 2.5))
    if name == "cone":
        return _cone(rng, n, rng.uniform(0.5, 0.8), rng.uniform(1.2, 2.0))
    if name == "torus":
        return _torus(rng, n, rng.uniform(0.8, 1.0), rng.uniform(0.2, 0.35))
    if name == "dumbbell":
        radius, gap = rng.uniform(0.4, 0.6), rng.uniform(1.2, 1.8)
        half = n // 2
        left, right = _sphere(rng, half) * radius, _sphere(rng, n - half) * radius
        return np.concatenate([left - [gap / 2, 0, 0], right + [gap / 2, 0, 0]])
    if name == "pyramid":
        return _pyramid(rng, n, rng.uniform(0.6, 0.9), rng.uniform(1.0, 1.6))
    if name == "table":
        top = rng.uniform(1.2, 1.8, 2)
        legs_n = n // 3
        board = _box(rng, n - legs_n, [top[0], top[1], 0.1]) + [0, 0, 0.5]
        leg = rng.integers(0, 4, legs_n)
        corner = np.stack([np.where(leg % 2, 1, -1) * (top[0] / 2 - 0.1), np.where(leg // 2, 1, -1) * (top[1] / 2 - 0.1)], axis=1)
        legs = _cylinder(rng, legs_n, 0.06, 1.0)
        legs[:, :2] += corner
        return np.concatenate([board, legs])
    raise ValueError(f"unknown shape {name!r}; available: {SHAPE_CLASSES}")


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random 3-D rotation matrix (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def make_shape_clouds(per_class: int = 40, num_points: int = DEMO_POINTS, seed: int = 0, noise: float = 0.01) -> Dataset:
    """``per_class`` clouds of every shape in :data:`SHAPE_CLASSES` (rows interleaved by class): points on the
    surface, randomly rotated and scaled (0.5-1.5) and jittered with Gaussian ``noise``; columns ``points`` and
    ``label`` (a ``ClassLabel``)."""
    rng = np.random.default_rng(seed)
    rows = {"points": [], "label": []}
    for _ in range(per_class):
        for label, name in enumerate(SHAPE_CLASSES):
            points = shape_points(name, rng, num_points) @ random_rotation(rng).T * rng.uniform(0.5, 1.5)
            points = points + noise * rng.normal(size=points.shape)
            rows["points"].append(points.astype(np.float32))
            rows["label"].append(label)
    # fixed-width rows as Array2D: numpy formatting reads a cloud in one piece (nested lists: a Python float each)
    features = Features({"points": Array2D((None, 3), "float32"), "label": ClassLabel(names=list(SHAPE_CLASSES))})
    return Dataset.from_dict(rows, features=features)


def load_point_dataset(source: str | None = None, split: str = "train", streaming: bool = False, dataset_config=None):
    """One split of a point-cloud dataset (one cloud per row). ``source``: None / "demo" (generated shapes: train,
    validation and test splits), a parquet file / folder / glob or a ``datasets`` name."""
    if source in (None, "demo"):
        per_class, seed = generated_split(split, DEMO_SPLITS, "point clouds")
        return make_shape_clouds(per_class, seed=seed)
    return load_split(source, split, streaming, dataset_config)


class PointSamples(torch.utils.data.Dataset):
    """A prepared point-cloud dataset: row ``i`` -> ``{"points": [num_points, 3]}`` (and ``labels``) from the
    feature extractor. Rows are read in numpy format (no per-float Python objects)."""

    def __init__(self, dataset, processor, column: str, label_column: str | None):
        columns = [column] + ([label_column] if label_column else [])
        self.dataset = dataset.select_columns(columns).with_format("numpy")
        self.processor, self.column, self.label_column = processor, column, label_column

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict:
        row = self.dataset[int(index)]
        points = row[self.column]
        sample = {"points": self.processor.process_cloud(np.stack(points) if points.dtype == object else points)}
        if self.label_column:
            sample["labels"] = int(row[self.label_column])
        return sample


def prepare_point_dataset(dataset, processor, train=True, column=None, label_column=None, with_labels=False,
                          transform=None, scale=None):
    """Rows become fixed-size ``points`` tensors (and ``labels`` with ``with_labels``), batched by the default
    collator. Clouds get no augmentation: ``train``, ``transform`` and ``scale`` are accepted for the shared
    modality signature and ignored (the official pre-training samples and normalises only)."""
    column = find_column(dataset, POINT_COLUMN_CANDIDATES, "point", explicit=column)
    labels = find_column(dataset, LABEL_COLUMN_CANDIDATES, "label", explicit=label_column) if with_labels else None
    return PointSamples(dataset, processor, column, labels)


def build_point_transform(processor, train: bool = True, scale=None):
    """No default transform: :func:`prepare_point_dataset` reads the cloud column itself."""
    return None
