"""Self-contained remote-code bundles, so checkpoints load with ``trust_remote_code=True`` where hf_mim is absent.

transformers copies remote code *flat* and follows only single-dot relative imports found by a regex
(``from .module import X``). hf_mim's own modules use absolute imports across sub-packages, so a bundle is
generated: each hf_mim module in the import closure of a method's configuration/modeling files is written as one
flat file, its top-level ``from hf_mim.x.y import Z`` lines rewritten to ``from .<flat name> import Z``.
Imports inside functions are left alone (they sit in ``try`` blocks that transformers' import check skips).

The same generator writes the committed ``modeling/<method>/`` folders (``scripts/export_modeling.py``; a test
fails when they are stale) and the files added to every saved checkpoint.
"""

import ast
import importlib
import json
import os
import tempfile
from pathlib import Path

HEADER = (
    "# Generated from {module} by scripts/export_modeling.py (hf_mim {version}). Do not edit: change hf_mim and\n"
    "# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.\n"
)
AUTO_CLASS_ATTRIBUTES = {
    "AutoConfig": "config_class",
    "AutoModel": "model_class",
    "AutoModelForPreTraining": "pretraining_class",
    "AutoModelForImageClassification": "classification_class",
}


def bundle_filename(module_name: str) -> str:
    """``hf_mim.models.mae.modeling_mae`` -> ``modeling_mae.py``; ``hf_mim.processing.image_processing_mim`` ->
    ``image_processing_mim.py``; shared modules get a ``mim_`` prefix (``hf_mim.layers.attention`` ->
    ``mim_layers_attention.py``) so names stay unique when files are copied flat."""
    parts = module_name.split(".")
    if parts[0] != "hf_mim":
        raise ValueError(f"{module_name} is not an hf_mim module")
    if len(parts) >= 3 and parts[1] in ("models", "processing"):
        return parts[-1] + ".py"
    return "mim_" + "_".join(parts[1:]) + ".py"


def _source_path(module_name: str) -> Path:
    return Path(importlib.import_module(module_name).__file__)


def _absolute_module(node: ast.ImportFrom, module_name: str, is_package: bool) -> str | None:
    if node.level == 0:
        return node.module
    base = module_name.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _defining_module(package_or_module: str, name: str) -> str:
    """Where ``name`` imported from ``package_or_module`` really lives (resolves package re-exports)."""
    module = importlib.import_module(package_or_module)
    if not hasattr(module, "__path__"):
        return package_or_module
    obj = getattr(module, name, None)
    if obj is None:
        raise ImportError(f"{package_or_module} has no attribute {name}")
    if hasattr(obj, "__module__") and obj.__module__.startswith("hf_mim"):
        return obj.__module__
    raise ValueError(
        f"cannot bundle `from {package_or_module} import {name}`: import it from its defining module instead"
    )


def _hf_mim_imports(module_name: str) -> list[tuple[ast.ImportFrom, dict[str, list[ast.alias]]]]:
    """Top-level hf_mim imports of a module, each with its names grouped by defining module."""
    path = _source_path(module_name)
    tree = ast.parse(path.read_text())
    is_package = path.name == "__init__.py"
    found = []
    for node in tree.body:
        if isinstance(node, ast.Import) and any(alias.name.startswith("hf_mim") for alias in node.names):
            raise ValueError(f"{module_name}: use `from hf_mim.x import Y` (not `import hf_mim.x`) so it can be bundled")
        if not isinstance(node, ast.ImportFrom):
            continue
        source = _absolute_module(node, module_name, is_package)
        if not source or not source.startswith("hf_mim"):
            continue
        groups: dict[str, list[ast.alias]] = {}
        for alias in node.names:
            groups.setdefault(_defining_module(source, alias.name), []).append(alias)
        found.append((node, groups))
    return found


def module_closure(roots: list[str]) -> list[str]:
    """All hf_mim modules reachable from ``roots`` through top-level imports (roots first, then dependencies)."""
    seen: list[str] = []
    stack = list(roots)
    while stack:
        name = stack.pop(0)
        if name in seen:
            continue
        seen.append(name)
        for _, groups in _hf_mim_imports(name):
            stack.extend(dep for dep in groups if dep not in seen)
    return seen


def rewrite_module(module_name: str) -> str:
    """Source of ``module_name`` with its hf_mim imports turned into flat same-folder imports."""
    from hf_mim import __version__

    lines = _source_path(module_name).read_text().splitlines(keepends=True)
    for node, groups in sorted(_hf_mim_imports(module_name), key=lambda item: -item[0].lineno):
        replacement = []
        for dependency, aliases in groups.items():
            names = ", ".join(a.name if a.asname is None else f"{a.name} as {a.asname}" for a in aliases)
            replacement.append(f"from .{bundle_filename(dependency)[:-3]} import {names}\n")
        lines[node.lineno - 1 : node.end_lineno] = replacement
    return HEADER.format(module=module_name, version=__version__) + "".join(lines)


def bundle_files(root_modules: list[str]) -> dict[str, str]:
    """``{filename: source}`` for the closure of ``root_modules``."""
    return {bundle_filename(name): rewrite_module(name) for name in module_closure(root_modules)}


def method_bundle(spec) -> dict[str, str]:
    from hf_mim.processing import MIMImageProcessor

    processor = spec.processor_class or MIMImageProcessor
    roots = [spec.config_class.__module__, spec.pretraining_class.__module__]
    if spec.data.auto_processor != "AutoTokenizer":  # a tokenizer is one of transformers' own classes: no code
        roots.append(processor.__module__)
    return bundle_files(roots)


def method_auto_map(spec) -> dict[str, str]:
    auto_map = {}
    for auto_name, attribute in AUTO_CLASS_ATTRIBUTES.items():
        if attribute == "classification_class":  # AutoModelForVideoClassification for video methods, ...
            auto_name = spec.data.auto_classification
        cls = getattr(spec, attribute)
        if cls is not None:
            auto_map[auto_name] = f"{bundle_filename(cls.__module__)[:-3]}.{cls.__name__}"
    return auto_map


def write_text_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves a half-written file."""
    path = Path(path)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w") as stream:
            stream.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_bundle(files: dict[str, str], directory) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        target = directory / name
        if not target.exists() or target.read_text() != text:
            write_text_atomic(target, text)


def _add_auto_map(json_path: Path, auto_map: dict[str, str]) -> None:
    data = json.loads(json_path.read_text())
    data["auto_map"] = {**data.get("auto_map", {}), **auto_map}
    write_text_atomic(json_path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def attach_remote_code(model, directory) -> None:
    """Called by ``MIMPreTrainedModel.save_pretrained``: add the bundle and ``auto_map`` to a saved model."""
    from hf_mim.registry import method_for_config

    spec = method_for_config(model.config)
    write_bundle(method_bundle(spec), directory)
    _add_auto_map(Path(directory) / "config.json", method_auto_map(spec))


def attach_class_code(directory, auto_classes: dict[str, type]) -> None:
    """Bundle and ``auto_map`` for models outside the method registry (layer masking's ResNet wrappers):
    ``auto_classes`` maps Auto class names to the classes they should load."""
    write_bundle(bundle_files(list(dict.fromkeys(cls.__module__ for cls in auto_classes.values()))), directory)
    auto_map = {name: f"{bundle_filename(cls.__module__)[:-3]}.{cls.__name__}" for name, cls in auto_classes.items()}
    _add_auto_map(Path(directory) / "config.json", auto_map)


def attach_processor_code(
    processor, directory, auto_class: str = "AutoImageProcessor", filename: str = "preprocessor_config.json"
) -> None:
    """Called by the processors' ``save_pretrained``: add the processor's files and its ``auto_map`` entry
    (``AutoVideoProcessor`` in ``video_preprocessor_config.json`` for video processors)."""
    cls = type(processor)
    write_bundle(bundle_files([cls.__module__]), directory)
    path = Path(directory) / filename
    if path.exists():
        _add_auto_map(path, {auto_class: f"{bundle_filename(cls.__module__)[:-3]}.{cls.__name__}"})


def export_all(output_dir) -> list[Path]:
    """Write ``<output_dir>/<method>/`` for every registered method (used by scripts/export_modeling.py)."""
    from hf_mim.registry import discover

    written = []
    for name, spec in sorted(discover().items()):
        folder = Path(output_dir) / name
        files = method_bundle(spec)
        stale = [p for p in folder.glob("*.py") if p.name not in files] if folder.exists() else []
        for path in stale:
            path.unlink()
        write_bundle(files, folder)
        auto_map = {"auto_map": method_auto_map(spec), "model_type": spec.model_type}
        write_text_atomic(folder / "auto_map.json", json.dumps(auto_map, indent=2, sort_keys=True) + "\n")
        written.append(folder)
    return written
