"""MEAP, a recipe for transformers' own causal LMs (see :mod:`hf_mim.models.meap.collator_meap`).

``hf-mim pretrain --method meap`` trains a ``LlamaForCausalLM`` (``--size tiny|demo``, or ``base``: transformers'
Llama defaults; the paper's 1.1B is ``--config_overrides`` of those) with a byte-level BPE tokenizer trained on
the data, or continues any causal LM (``--model_name_or_path``, loaded with
``AutoModelForCausalLM``; its tokenizer needs a mask token, :func:`add_mask_token`). MEAP has no classes of its
own, so it is a ``RECIPE``: nothing is registered with the Auto classes and the checkpoint needs no remote code.
"""

from transformers import LlamaConfig, LlamaForCausalLM, LlamaModel

from hf_mim.data.text import TextTokenizer
from hf_mim.registry import MethodSpec

# the collator is a TrainerCallback: importing it loads transformers' Trainer stack, which `import hf_mim` (every
# method's package is imported to register it) must not pay for; its names are resolved on first use
_COLLATOR_NAMES = ("DataCollatorForMEAP", "add_mask_token", "mask_token_id", "meap_mask_positions", "meap_sft_examples")

# LlamaConfig fields; vocab_size and the special-token ids come from the tokenizer trained on the data
TINY = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=64, vocab_size=300)
DEMO = dict(hidden_size=128, intermediate_size=344, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=128, vocab_size=1000)


def meap_collator(config, processor):
    """The CLI's collator (a :class:`DataCollatorForMEAP`): the paper's pre-training ratio 0.15, inputs refused
    beyond the model's context."""
    from hf_mim.models.meap.collator_meap import DataCollatorForMEAP

    return DataCollatorForMEAP(processor, mask_ratio=0.15, max_length=config.max_position_embeddings)


def __getattr__(name: str):
    if name in _COLLATOR_NAMES:
        from hf_mim.models.meap import collator_meap

        return getattr(collator_meap, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


RECIPE = MethodSpec(
    name="meap",
    config_class=LlamaConfig,
    model_class=LlamaModel,
    pretraining_class=LlamaForCausalLM,
    paper="Mask-Enhanced Autoregressive Prediction: Pay Less Attention to Learn More (Zhuang et al., ICML 2025)",
    paper_url="https://arxiv.org/abs/2502.07490",
    license="mit",
    tiny_config=TINY,
    demo_config=DEMO,
    collator=meap_collator,
    processor_class=TextTokenizer,
    modality="text",
    auto_pretraining="AutoModelForCausalLM",
    # meap_1b.py: AdamW lr 4e-4 -> 4e-5 cosine, warm-up 10% (19k of 190k steps), weight decay 0.05, betas
    # (0.9, 0.95), clipping 1.0; an absolute lr (the official run does not scale it with the batch)
    training_defaults=dict(learning_rate=4e-4, lr_scheduler_type="cosine_with_min_lr",
                           lr_scheduler_kwargs={"min_lr_rate": 0.1}, warmup_steps=0.1, weight_decay=0.05,
                           adam_beta2=0.95, max_grad_norm=1.0),
)

__all__ = ["RECIPE", "DataCollatorForMEAP", "add_mask_token", "mask_token_id", "meap_mask_positions", "meap_sft_examples"]
