"""Regenerate the self-contained remote-code bundles in modeling/<method>/ from hf_mim.

Usage: python scripts/export_modeling.py [output_dir]   (tests/test_export.py fails when modeling/ is stale)
"""

import sys
from pathlib import Path

from hf_mim.hub.remote_code import export_all


def main(output_dir: str | None = None) -> None:
    target = Path(output_dir) if output_dir else Path(__file__).resolve().parents[1] / "modeling"
    for folder in export_all(target):
        print(f"wrote {folder}")


if __name__ == "__main__":
    main(*sys.argv[1:])
