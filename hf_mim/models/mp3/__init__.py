from hf_mim.models.mp3.configuration_mp3 import MP3Config
from hf_mim.models.mp3.modeling_mp3 import MP3ForImageClassification, MP3ForPreTraining, MP3Model
from hf_mim.registry import MethodSpec

TINY = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
DEMO = dict(image_size=32, patch_size=4, hidden_size=192, num_hidden_layers=6, num_attention_heads=3, intermediate_size=768)

METHOD = MethodSpec(
    name="mp3",
    config_class=MP3Config,
    model_class=MP3Model,
    pretraining_class=MP3ForPreTraining,
    classification_class=MP3ForImageClassification,
    paper="Position Prediction as an Effective Pretraining Strategy (Zhai et al., ICML 2022)",
    paper_url="https://arxiv.org/abs/2207.07611",
    license="apache-2.0",
    tiny_config=TINY,
    demo_config=DEMO,
    # no official code; the paper pre-trains with the DeiT recipe: AdamW lr 5e-4 per 512 images, betas
    # (0.9, 0.999), weight decay 0.05, cosine schedule [unverified]
    training_defaults=dict(base_learning_rate=5e-4, lr_batch_divisor=512, adam_beta2=0.999, weight_decay=0.05),
)

__all__ = ["METHOD", "MP3Config", "MP3ForImageClassification", "MP3ForPreTraining", "MP3Model"]
