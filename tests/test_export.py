import filecmp
from pathlib import Path

from hf_mim.hub.remote_code import export_all

REPO = Path(__file__).resolve().parents[1]


def test_modeling_bundles_are_up_to_date(tmp_path):
    export_all(tmp_path)
    expected = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    committed = sorted(
        p.relative_to(REPO / "modeling") for p in (REPO / "modeling").rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )
    assert committed == expected, "modeling/ is stale: run `python scripts/export_modeling.py`"
    stale = [str(p) for p in expected if not filecmp.cmp(tmp_path / p, REPO / "modeling" / p, shallow=False)]
    assert not stale, f"modeling/ is stale ({stale}): run `python scripts/export_modeling.py`"


def test_bundles_use_only_same_folder_imports(tmp_path):
    import re

    export_all(tmp_path)
    for path in tmp_path.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import)\s+hf_mim", text, re.MULTILINE) or "try:" in text, path
        for match in re.findall(r"^\s*from\s+\.(\S+)\s+import", text, re.MULTILINE):
            assert (path.parent / f"{match}.py").exists(), f"{path.name} imports missing .{match}"
        assert not re.search(r"^\s*from\s+\.\.", text, re.MULTILINE), path
