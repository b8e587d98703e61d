"""MEAP: mask-enhanced autoregressive prediction (Zhuang et al., ICML 2025), as data preparation for any
``AutoModelForCausalLM``.

MEAP changes no model: a fraction of the *input* tokens is replaced by a ``[MASK]`` token while the targets stay
the original next tokens, and the model trains with its usual causal-LM loss. So MEAP is a collator (pre-training)
and a ``datasets.map`` function (SFT), not a config or model class: any causal LM that transformers loads is a
MEAP model once its tokenizer has a mask token (:func:`add_mask_token`).

Rules of the official code (scitix/MEAP, ``MEAP-Pretain/pretrained/meap_*.py`` and ``MEAP-SFT/MEAP-SFT.py``):

* pre-training: ``max(1, int(L * mask_ratio))`` positions drawn without replacement from ``[0, L - 2]`` (the
  last input position is never masked) with Python's ``random`` seeded by ``50 + step % 51``, where ``step``
  counts optimizer steps, so every micro-batch of a step and every row of a batch share the positions; the
  targets come from a chunk one token longer than the model's context (``L + 1`` tokens), so the last position is
  scored too; loss: mean cross-entropy over every position.
* SFT: every example is kept with answer-only labels; for answers longer than 50 tokens a copy is added with
  ``max(1, int(answer_length * 0.1))`` answer tokens replaced by ``[MASK]`` and labels only at those positions.

Differences from the official code, both for data the official runs never see: padding and special tokens are
never replaced (the official packed C4 blocks have no padding), and SFT prompts that leave no room for the answer
get no masked copy (the official sampling fails on an empty range).
"""

import random

import torch
from transformers import TrainerCallback

from hf_mim.data.text import IGNORE_INDEX, MASK_TOKEN, add_mask_token, check_length, mask_token_id, pad  # noqa: F401


def cycled_seed(step: int) -> int:
    """The official per-step seed (``get_cycled_seed``): 51 distinct mask layouts, repeating."""
    return 50 + step % 51


def meap_mask_positions(length: int, mask_ratio: float, step: int) -> list[int]:
    """The official positions for a step: ``max(1, int(length * ratio))`` of ``[0, length - 2]``, drawn as
    ``random.seed(50 + step % 51); random.sample(range(length - 1), count)`` does (same numbers, own RNG)."""
    if not 0 < mask_ratio < 1:
        raise ValueError(f"mask_ratio must be in (0, 1), got {mask_ratio}")
    count = max(1, int(length * mask_ratio))
    if length < 2 or count > length - 1:
        raise ValueError(f"cannot mask {count} of the first {length - 1} positions of {length}-token sequences: "
                         "use longer sequences or a smaller mask_ratio")
    return random.Random(cycled_seed(step)).sample(range(length - 1), count)


class DataCollatorForMEAP(TrainerCallback):
    """Batches ``input_ids`` for a causal LM with MEAP's masked inputs.

    ``shift_targets=True`` (pre-training, the official recipe): each sample holds ``L + 1`` tokens; the model reads
    the first ``L`` (masked) and the last ``L`` are the targets, given as ``shift_labels`` (transformers' causal-LM
    loss uses them as they are) next to the unshifted ``labels``, so every position is scored. ``False``: samples
    are plain sequences (right-padded here) and the labels are the original ids, shifted by the model as usual.
    ``max_length``: the model's context (``config.max_position_embeddings``); longer inputs are refused.

    The step that seeds the positions counts the batches this collator made since the epoch started (worker
    processes included) divided by ``gradient_accumulation_steps``. Passed to ``Trainer`` also as a callback
    (``callbacks=[collator]``) it takes the global step and the accumulation from the Trainer at each epoch start,
    so a run resumed from a checkpoint masks exactly as the uninterrupted one.
    """

    def __init__(self, tokenizer, mask_ratio: float = 0.15, max_length: int | None = None,
                 shift_targets: bool = True, gradient_accumulation_steps: int = 1):
        self.mask_token_id = mask_token_id(tokenizer)
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.special_ids = torch.tensor(sorted(set(tokenizer.all_special_ids)), dtype=torch.long)
        self.mask_ratio, self.max_length, self.shift_targets = mask_ratio, max_length, shift_targets
        self.accumulation, self.first_step, self.batches = gradient_accumulation_steps, 0, 0
        meap_mask_positions(100, mask_ratio, 0)  # refuse a bad ratio now, not at the first batch

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.first_step, self.batches, self.accumulation = state.global_step, 0, args.gradient_accumulation_steps

    def next_step(self) -> int:
        """The optimizer step of the batch being made (each DataLoader worker makes every n-th batch, in order)."""
        info = torch.utils.data.get_worker_info()
        index = self.batches if info is None else info.id + info.num_workers * self.batches
        self.batches += 1
        return self.first_step + index // self.accumulation

    def __call__(self, examples: list[dict]) -> dict:
        rows = [[int(token) for token in example["input_ids"]] for example in examples]
        inputs = [row[:-1] for row in rows] if self.shift_targets else rows
        input_ids = pad(inputs, self.pad_token_id)
        attention_mask = pad([[1] * len(row) for row in inputs], 0)
        check_length(input_ids.shape[1], self.max_length)
        labels = input_ids.masked_fill(attention_mask == 0, IGNORE_INDEX)
        batch = {"attention_mask": attention_mask, "labels": labels}
        if self.shift_targets:
            batch["shift_labels"] = pad([row[1:] for row in rows], IGNORE_INDEX)
        positions = meap_mask_positions(input_ids.shape[1], self.mask_ratio, self.next_step())
        batch["input_ids"] = self.mask(input_ids, attention_mask, positions)
        return batch

    def mask(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, positions: list[int]) -> torch.Tensor:
        """``input_ids`` with the mask token at ``positions`` of every row, except padding and special tokens."""
        chosen = torch.zeros_like(input_ids, dtype=torch.bool)
        chosen[:, positions] = True
        chosen &= attention_mask.bool() & ~torch.isin(input_ids, self.special_ids)
        return input_ids.masked_fill(chosen, self.mask_token_id)


def meap_sft_examples(examples: dict, tokenizer, prompt_column: str = "prompt", answer_column: str = "answer",
                      mask_ratio: float = 0.1, max_length: int = 4096, min_answer_tokens: int = 50,
                      rng: random.Random | None = None) -> dict:
    """A batched ``datasets.map`` function (``remove_columns`` the originals) for MEAP SFT on prompt / answer rows,
    as the official ``preprocess_function`` does for one-turn dialogs: each row gives the normal example (prompt +
    answer + EOS, labels on the answer and EOS only) and, when the answer has more than ``min_answer_tokens``
    tokens, a masked copy (prompt + answer, truncated to ``max_length - 1``, + EOS) with
    ``max(1, int(answer_tokens * mask_ratio))`` answer tokens replaced by the mask token and labels only there.

    The labels of the copy hold the original token *at* each masked position; the model's shift makes the
    previous position predict it (the official code, kept). ``rng``: the positions' ``random.Random`` (the
    official code draws from the global one, seeded by ``set_seed``). Batch the result with
    ``DataCollatorForSeq2Seq`` (labels padded with -100), as the official script does.
    """
    rng = rng if rng is not None else random.Random(0)
    mask_id, eos = mask_token_id(tokenizer), tokenizer.eos_token_id
    out = {"input_ids": [], "attention_mask": [], "labels": []}

    def emit(ids, labels):
        if any(label != IGNORE_INDEX for label in labels):  # the official filter_empty_labels
            out["input_ids"].append(ids)
            out["attention_mask"].append([1] * len(ids))
            out["labels"].append(labels)

    for prompt, answer in zip(examples[prompt_column], examples[answer_column]):
        source = tokenizer.encode(prompt, add_special_tokens=True)
        target = tokenizer.encode(answer, add_special_tokens=False)
        ids, labels = source + target + [eos], [IGNORE_INDEX] * len(source) + target + [eos]
        if len(ids) > max_length:
            ids = ids[:max_length - 1] + [eos]
        emit(ids, labels[:max_length])
        start, end = len(source), min(len(source) + len(target), max_length - 1)
        if len(target) <= min_answer_tokens or end <= start:
            continue
        full = source + target
        masked, masked_labels = full[:end], [IGNORE_INDEX] * end
        for position in rng.sample(range(start, end), max(1, int((end - start) * mask_ratio))):
            masked[position], masked_labels[position] = mask_id, full[position]
        emit(masked + [eos], masked_labels + [IGNORE_INDEX])
    return out
