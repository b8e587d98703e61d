"""The SMAE collator (:mod:`~hf_mim.models.starbucks.masking_starbucks` has the masking rules).

A ``TrainerCallback`` (so it is imported on first use, not by ``import hf_mim``): the masks of a batch come from a
generator seeded by (seed, optimizer step, batch within the step), so a run resumed from a checkpoint masks exactly
as the uninterrupted one (Trainer fetches the first resumed batch before it restores the global RNG state).
"""

import torch
from transformers import TrainerCallback

from hf_mim.data.text import check_length, mask_token_id, pad
from hf_mim.models.starbucks.masking_starbucks import (
    nested_word_masks,
    starbucks_inputs,
    whole_words,
    word_continuation_rule,
)
from hf_mim.training.trainer import derived_seed


class DataCollatorForStarbucks(TrainerCallback):
    """Pads ``input_ids`` rows (with [CLS]/[SEP]-like specials already added) and draws SMAE's two whole-word masks.
    ``max_length``: the model's positions; longer rows are refused. The tokenizer needs a mask token
    (:func:`hf_mim.data.text.add_mask_token` adds one). ``seed``: the masks' seed (Trainer's ``--seed`` when the
    collator is also passed as a callback, which ``hf-mim pretrain`` does)."""

    def __init__(self, tokenizer, mlm_probability: float = 0.2, decoder_mlm_probability: float = 0.4,
                 max_length: int | None = None, seed: int = 0):
        if not 0 < mlm_probability <= decoder_mlm_probability < 1:
            raise ValueError("need 0 < mlm_probability <= decoder_mlm_probability < 1, got "
                             f"{mlm_probability} and {decoder_mlm_probability}")
        self.tokenizer, self.max_length = tokenizer, max_length
        self.mlm_probability, self.decoder_mlm_probability = mlm_probability, decoder_mlm_probability
        self.mask_id = mask_token_id(tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.specials = set(tokenizer.all_special_tokens)
        self.continues = word_continuation_rule(tokenizer)
        self.seed, self.first_step, self.batches, self.accumulation = seed, 0, 0, 1

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.seed, self.first_step, self.batches = args.seed, state.global_step, 0
        self.accumulation = args.gradient_accumulation_steps

    def next_generator(self) -> torch.Generator:
        """The generator of the batch being made: (seed, optimizer step, batch within the step, worker)."""
        info = torch.utils.data.get_worker_info()
        index = self.batches if info is None else info.id + info.num_workers * self.batches
        self.batches += 1
        step, micro = divmod(index, self.accumulation)
        return torch.Generator().manual_seed(derived_seed(self.seed, self.first_step + step, micro))

    def __call__(self, examples: list[dict]) -> dict:
        rows = [[int(token) for token in example["input_ids"]] for example in examples]
        input_ids, attention_mask = pad(rows, self.pad_id), pad([[1] * len(row) for row in rows], 0)
        check_length(input_ids.shape[1], self.max_length)
        generator = self.next_generator()
        masks = [nested_word_masks(whole_words(self.tokenizer.convert_ids_to_tokens(row), self.specials, self.continues),
                                   len(row), self.mlm_probability, self.decoder_mlm_probability, generator) for row in rows]
        encoder_mask, decoder_mask = (pad([mask[i] for mask in masks], 0) for i in (0, 1))
        return starbucks_inputs(input_ids, attention_mask, encoder_mask, decoder_mask, self.mask_id, len(self.tokenizer),
                                generator)
