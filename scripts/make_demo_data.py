"""Build the demo data bundled in hf_mim/data/demo from Fashion-MNIST (Zalando Research, MIT licence).

A class-balanced subset (the first N images of each class, in file order), stored as parquet with the original
PNG bytes and a ClassLabel feature. Usage: python scripts/make_demo_data.py [path/to/fashion_mnist]
"""

import sys
from pathlib import Path

from datasets import ClassLabel, load_dataset

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
PER_CLASS = {"train": 400, "test": 100}


def main(source: str = "../shared/data/fashion_mnist") -> None:
    out = Path(__file__).resolve().parents[1] / "hf_mim" / "data" / "demo"
    out.mkdir(parents=True, exist_ok=True)
    for split, per_class in PER_CLASS.items():
        data = load_dataset("parquet", data_files=str(Path(source) / f"{split}.parquet"), split="train")
        counts, keep = [0] * len(NAMES), []
        for index, label in enumerate(data["label"]):
            if counts[label] < per_class:
                counts[label] += 1
                keep.append(index)
        subset = data.select(keep).cast_column("label", ClassLabel(names=NAMES))
        subset.to_parquet(str(out / f"{split}.parquet"))
        print(f"{split}: {len(subset)} images -> {out / f'{split}.parquet'}")


if __name__ == "__main__":
    main(*sys.argv[1:])
