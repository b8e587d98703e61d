"""hf_mim: masked image modeling methods as native Hugging Face transformers models.

``import hf_mim`` registers every method with AutoConfig / AutoModel / AutoModelForPreTraining /
AutoModelForImageClassification / AutoImageProcessor and exposes its classes here (``hf_mim.MAEForPreTraining``).
"""

from hf_mim.configuration_utils import MIMViTConfig
from hf_mim.masking import MaskInfo, RandomMaskGenerator, SimMIMMaskGenerator
from hf_mim.modeling_utils import (
    MIMEncoderOutput,
    MIMPreTrainedModel,
    MIMPreTrainingOutput,
    MIMViTForImageClassification,
    MIMViTModel,
)
from hf_mim.processing import GraphFeatureExtractor, MIMImageProcessor, processor_for_config
from hf_mim.registry import METHODS, MethodSpec, discover, get_method

__version__ = "0.1.0"

for _spec in discover().values():
    for _cls in _spec.classes:
        globals()[_cls.__name__] = _cls
del _spec, _cls
