"""SMAE's whole-word masking: one encoder mask and a heavier decoder mask that contains it.

The rules of ielab/Starbucks ``smae/data.py: MaeDataCollatorForWholeWordMask`` (kept):

* words are whole-word candidates (special tokens never), visited in a random order; the encoder masks
  ``max(1, round(n * mlm_probability))`` tokens and the decoder ``max(1, round(n * decoder_mlm_probability))``,
  ``n`` counting every token of the unpadded sequence (specials included); a word that would overshoot a budget is
  skipped for that budget, and a word goes to the encoder only if it also goes to the decoder, so the decoder's
  masked tokens contain the encoder's;
* each mask then gets BERT's 80/10/10 rule independently (transformers' ``torch_mask_tokens``): 80% [MASK], 10% a
  random token, 10% unchanged; labels are the original ids at masked positions, -100 elsewhere.

Word boundaries: WordPiece continuation pieces start with ``##`` (the official rule); byte-level BPE and
SentencePiece tokenizers mark word *starts* (``Ġ`` / ``▁``), so a piece without the marker continues the previous
word (the official code has this rule for RoBERTa but never calls it). A piece after a special token starts a word.
The functions here take a ``torch.Generator`` (the official code draws from Python's and torch's global RNGs);
:class:`~hf_mim.models.starbucks.collator_starbucks.DataCollatorForStarbucks` seeds one per batch.
"""

import torch

from hf_mim.data.text import IGNORE_INDEX

WORD_START_MARKERS = ("Ġ", "▁")


def word_continuation_rule(tokenizer):
    """``token -> bool``: does this piece continue the previous word?"""
    vocab = tokenizer.get_vocab()
    if any(token.startswith("##") for token in vocab):
        return lambda token: token.startswith("##")
    for marker in WORD_START_MARKERS:  # a byte-level alphabet holds "Ġ" itself (the space byte)
        if marker in vocab or any(token.startswith(marker) for token in vocab):
            return lambda token, marker=marker: not token.startswith(marker)
    return lambda token: False  # no marker: every piece is a word


def whole_words(tokens: list[str], specials: set, continues) -> list[list[int]]:
    """Candidate words as lists of positions, special tokens left out."""
    words, previous_special = [], True
    for index, token in enumerate(tokens):
        if token in specials:
            previous_special = True
            continue
        if words and not previous_special and continues(token):
            words[-1].append(index)
        else:
            words.append([index])
        previous_special = False
    return words


def nested_word_masks(words: list[list[int]], length: int, encoder_probability: float, decoder_probability: float,
                      generator: torch.Generator | None = None) -> tuple[list[int], list[int]]:
    """The official selection (``_whole_word_mask``): ``(encoder, decoder)`` 0/1 lists of ``length``, the encoder's
    ones a subset of the decoder's."""
    order = torch.randperm(len(words), generator=generator).tolist()
    encoder_budget = max(1, int(round(length * encoder_probability)))
    decoder_budget = max(1, int(round(length * decoder_probability)))
    budget = max(encoder_budget, decoder_budget)
    encoder, decoder, total = [0] * length, [0] * length, 0
    encoder_count = decoder_count = 0
    for index in order:
        word = words[index]
        if total >= budget:
            break
        if total + len(word) > budget:
            continue
        to_decoder = decoder_count + len(word) <= decoder_budget
        to_encoder = to_decoder and encoder_count + len(word) <= encoder_budget
        for position in word:
            decoder[position] |= to_decoder
            encoder[position] |= to_encoder
        decoder_count += len(word) * to_decoder
        encoder_count += len(word) * to_encoder
        total += len(word)
    return encoder, decoder


def corrupt(input_ids: torch.Tensor, chosen: torch.Tensor, mask_id: int, vocab_size: int,
            generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT's 80/10/10 rule at the ``chosen`` positions (the draws of transformers' ``torch_mask_tokens``):
    ``(inputs, labels)``."""
    labels = input_ids.masked_fill(~chosen, IGNORE_INDEX)
    inputs = input_ids.clone()
    replaced = torch.bernoulli(torch.full(inputs.shape, 0.8), generator=generator).bool() & chosen
    inputs[replaced] = mask_id
    randomised = torch.bernoulli(torch.full(inputs.shape, 0.5), generator=generator).bool() & chosen & ~replaced
    inputs[randomised] = torch.randint(vocab_size, inputs.shape, generator=generator)[randomised]
    return inputs, labels


def starbucks_inputs(input_ids: torch.Tensor, attention_mask: torch.Tensor, encoder_mask: torch.Tensor,
                     decoder_mask: torch.Tensor, mask_id: int, vocab_size: int, generator=None) -> dict:
    """The model's keyword inputs from token ids and the two 0/1 masks."""
    if (encoder_mask.bool() & ~decoder_mask.bool()).any():
        raise ValueError("the decoder mask must contain the encoder mask (SMAE masks the decoder copy more heavily)")
    inputs, labels = corrupt(input_ids, encoder_mask.bool(), mask_id, vocab_size, generator)
    decoder_inputs, decoder_labels = corrupt(input_ids, decoder_mask.bool(), mask_id, vocab_size, generator)
    return {"input_ids": inputs, "attention_mask": attention_mask, "labels": labels,
            "decoder_input_ids": decoder_inputs, "decoder_labels": decoder_labels}
