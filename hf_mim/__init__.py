"""hf_mim: masked image modeling methods as native Hugging Face transformers models.

``import hf_mim`` registers every method with AutoConfig / AutoModel / AutoModelForPreTraining /
AutoModelForImageClassification / AutoImageProcessor and exposes its classes here (``hf_mim.MAEForPreTraining``).

The ``hf-mim`` console script is the one exception: it defers that work (torch, transformers and every method's
modules) until a command has parsed its arguments, so ``--help`` and argument errors answer at once. Its commands
look methods up through :func:`hf_mim.registry.get_method`, which registers them; any attribute of this package
loads everything on first use.
"""

import importlib
import importlib.util
import os
import sys

__version__ = "0.1.0"

_EXPORTS = {
    "hf_mim.configuration_utils": ("MIMViTConfig",),
    "hf_mim.masking": ("MaskInfo", "RandomMaskGenerator", "SimMIMMaskGenerator"),
    "hf_mim.modeling_utils": (
        "MIMEncoderOutput", "MIMPreTrainedModel", "MIMPreTrainingOutput", "MIMViTForImageClassification", "MIMViTModel",
    ),
    "hf_mim.processing": ("ActivationFeatureExtractor", "GraphFeatureExtractor", "MIMImageProcessor", "PointCloudFeatureExtractor", "TabularFeatureExtractor", "processor_for_config"),
    "hf_mim.registry": ("METHODS", "MethodSpec", "discover", "get_method"),
}


def _load_everything() -> None:
    """Import the shared classes and every method, registering each with the transformers Auto classes."""
    for module_name, names in _EXPORTS.items():
        module = importlib.import_module(module_name)
        for name in names:
            globals()[name] = getattr(module, name)
    for spec in globals()["discover"]().values():
        for cls in spec.classes:
            globals()[cls.__name__] = cls


def __getattr__(name: str):
    # submodules (``hf_mim.cli``) and dunders are left to the import system; anything else loads everything once
    if name.startswith("__") or importlib.util.find_spec(f"{__name__}.{name}") is not None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _load_everything()
    if name in globals():
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _started_by_console_script() -> bool:
    return bool(sys.argv) and os.path.basename(sys.argv[0]) in ("hf-mim", "hf-mim.exe")


if not _started_by_console_script():
    _load_everything()
