"""Batches of image-caption pairs for M3AE: tokenized captions, their whole-word-masked copy for the MLM pass."""

import torch

from hf_mim.models.m3ae.modeling_m3ae import whole_word_mask


class M3AECollator:
    """``samples``: dicts with ``pixel_values`` (a ``[C, H, W]`` tensor) and ``caption`` (a string). Captions longer
    than ``max_length`` tokens (the text model's limit) are refused, not cut, unless ``truncation=True``."""

    def __init__(self, tokenizer, max_length: int, mlm_probability: float = 0.15, truncation: bool = False,
                 generator: torch.Generator | None = None):
        self.tokenizer, self.max_length, self.mlm_probability = tokenizer, max_length, mlm_probability
        self.truncation, self.generator = truncation, generator
        probe = tokenizer.convert_ids_to_tokens(tokenizer.encode(" a", add_special_tokens=False))
        self.byte_level = bool(probe) and probe[0].startswith("Ġ")  # GPT-2/RoBERTa BPE marks word starts

    def word_starts(self, ids: torch.Tensor, special: torch.Tensor) -> torch.Tensor:
        """True at the first token of each word: after a special token, at a 'Ġ' token (byte-level BPE) or at a
        token that is not a '##' continuation (WordPiece)."""
        starts = torch.zeros_like(special)
        for row, row_ids in enumerate(ids.tolist()):
            for col, token in enumerate(self.tokenizer.convert_ids_to_tokens(row_ids)):
                after_special = col == 0 or bool(special[row, col - 1])
                starts[row, col] = after_special or (token.startswith("Ġ") if self.byte_level else not token.startswith("##"))
        return starts & ~special

    def __call__(self, samples: list[dict]) -> dict:
        missing = [key for key in ("pixel_values", "caption") if any(sample.get(key) is None for sample in samples)]
        if missing:
            raise ValueError(f"M3AE needs image-caption pairs but samples have no {missing[0]!r}: give every image its caption")
        encoded = self.tokenizer([sample["caption"] for sample in samples], padding=True, return_tensors="pt",
                                 return_special_tokens_mask=True,
                                 **({"truncation": True, "max_length": self.max_length} if self.truncation else {}))
        ids = encoded["input_ids"]
        if ids.shape[1] > self.max_length:
            raise ValueError(
                f"a caption has {ids.shape[1]} tokens, longer than the text model allows ({self.max_length}): "
                "shorten it or pass truncation=True"
            )
        special = encoded["special_tokens_mask"].bool() | (encoded["attention_mask"] == 0)
        mlm_ids, mlm_labels = whole_word_mask(ids, self.word_starts(ids, special), special, self.mlm_probability,
                                              self.tokenizer.mask_token_id, len(self.tokenizer), self.generator)
        return {"input_ids": ids, "attention_mask": encoded["attention_mask"], "mlm_input_ids": mlm_ids,
                "mlm_labels": mlm_labels, "pixel_values": torch.stack([sample["pixel_values"] for sample in samples])}
