"""Starbucks: SMAE pre-training (masked autoencoding at fixed (layer, dim) pairs) and SRL fine-tuning (the
retrieval loss at every pair plus a KL term to the full model's scores) of a BERT encoder for 2D Matryoshka
embeddings. ``hf-mim pretrain --method starbucks`` runs SMAE on a text source with a tokenizer trained on it;
:class:`StarbucksLoss` (sentence-transformers, the ``[text]`` extra) is SRL and :func:`export_submodel` saves one
(layer, dim) sub-model as a plain BERT SentenceTransformer."""

import torch

from hf_mim.data.text import TextTokenizer, text_column
from hf_mim.models.starbucks.configuration_starbucks import StarbucksConfig, default_pairs
from hf_mim.models.starbucks.masking_starbucks import nested_word_masks, starbucks_inputs, whole_words
from hf_mim.models.starbucks.modeling_starbucks import (
    SlicedMLMHead,
    StarbucksForPreTraining,
    StarbucksModel,
)
from hf_mim.registry import MethodSpec

# sentence-transformers is imported on first use of these names (never by `import hf_mim`)
_SENTENCE_TRANSFORMERS_NAMES = ("StarbucksLoss", "export_submodel", "starbucks_sentence_transformer")

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64, vocab_size=300)
DEMO = dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
            max_position_embeddings=128, vocab_size=2000)


def example_inputs(model, batch: dict, generator) -> dict:
    """Token batches (``input_ids``, ``attention_mask``) with SMAE's nested masks drawn from ``generator``, every
    token but the first and last of a row being a word."""
    input_ids, attention_mask = batch["input_ids"], batch["attention_mask"]
    masks = []
    for row in attention_mask:
        length = int(row.sum())
        words = [[position] for position in range(1, length - 1)]
        masks.append(nested_word_masks(words, length, model.config.mlm_probability,
                                       model.config.decoder_mlm_probability, generator))
    width = input_ids.shape[1]
    encoder_mask, decoder_mask = (torch.tensor([m[i] + [0] * (width - len(m[i])) for m in masks]) for i in (0, 1))
    mask_id = model.config.vocab_size - 1  # any id the model knows; the data path uses the tokenizer's [MASK]
    return starbucks_inputs(input_ids, attention_mask, encoder_mask, decoder_mask, mask_id, model.config.vocab_size,
                            generator)


def prepare_documents(dataset, processor, train=True, column=None, label_column=None, with_labels=False,
                      transform=None, scale=None):
    """One row per document, as the official ``MLMDataset``: ``[BOS] + ids + [EOS]`` (the [CLS]/[SEP] of the
    byte-level tokenizer), cut to the model's positions (the official code cuts a random window; here the start,
    so a document's [CLS] view is deterministic). Text has no augmentation: the other arguments are accepted for
    the shared signature."""
    from datasets import Dataset

    from hf_mim.data import DataError

    if with_labels:
        raise DataError("starbucks prepares text for masked language modelling; class labels are not supported")
    limit = processor.model_max_length - 2
    ids = processor(list(dataset[text_column(dataset, column)]), add_special_tokens=False, verbose=False)["input_ids"]
    rows = [[processor.bos_token_id, *row[:limit], processor.eos_token_id] for row in ids if row]
    if not rows:
        raise DataError("the text column holds no tokens")
    return Dataset.from_dict({"input_ids": rows})


def starbucks_collator(config, processor):
    from hf_mim.models.starbucks.collator_starbucks import DataCollatorForStarbucks

    return DataCollatorForStarbucks(processor, config.mlm_probability, config.decoder_mlm_probability,
                                    max_length=config.max_position_embeddings)


def __getattr__(name: str):
    if name == "DataCollatorForStarbucks":  # a TrainerCallback: imports transformers' Trainer stack
        from hf_mim.models.starbucks.collator_starbucks import DataCollatorForStarbucks

        return DataCollatorForStarbucks
    if name in _SENTENCE_TRANSFORMERS_NAMES:
        from hf_mim.models.starbucks import srl_starbucks

        return getattr(srl_starbucks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


METHOD = MethodSpec(
    name="starbucks",
    config_class=StarbucksConfig,
    model_class=StarbucksModel,
    pretraining_class=StarbucksForPreTraining,
    paper="Starbucks: Improved Training for 2D Matryoshka Embeddings (Zhuang et al., 2024)",
    paper_url="https://arxiv.org/abs/2410.13230",
    license="apache-2.0",
    tiny_config=TINY,
    demo_config=DEMO,
    collator=starbucks_collator,
    example_inputs=example_inputs,
    processor_class=TextTokenizer,
    modality="text",
    prepare_dataset=prepare_documents,
    # smae/pretrain_smae.sh: AdamW lr 1e-4, cosine, warm-up 5%, weight decay 0.001 (batch 512, one FineWeb epoch)
    training_defaults=dict(learning_rate=1e-4, lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=0.001),
)

__all__ = ["METHOD", "DataCollatorForStarbucks", "SlicedMLMHead", "StarbucksConfig", "StarbucksForPreTraining",
           "StarbucksLoss", "StarbucksModel", "default_pairs", "export_submodel", "starbucks_sentence_transformer",
           "whole_words"]
