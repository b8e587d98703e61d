"""Text data: loading a text column, a generated demo corpus, the WordNet corpus, tokenizer training and chunking.

Shared by the text methods (MEAP today). A text source is read into a ``datasets.Dataset`` with one document
per row; a tokenizer (trained here with ``tokenizers``, or any ``AutoTokenizer``) turns the documents into one
stream of ids, cut into fixed-length blocks as language-model pre-training does (documents end with EOS).
"""

import random
from pathlib import Path

import torch
from datasets import Dataset

from hf_mim.data import DataError, MissingSplitError, find_column, generated_split, load_split

TEXT_COLUMN_CANDIDATES = ("text", "content", "sentence", "document", "definition")
DEMO_SPLITS = {"train": (400, 1), "validation": (40, 2), "test": (40, 3)}  # documents, seed
MASK_TOKEN = "[MASK]"
IGNORE_INDEX = -100
SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "mask_token": MASK_TOKEN}
DEFAULT_BLOCK_SIZE = 512  # for tokenizers that name no maximum length (transformers' "very large" sentinel)

_NAMES = ("amber", "basil", "cedar", "delta", "ember", "fjord", "garnet", "hazel", "indigo", "jasper", "kelp",
          "lilac", "maple", "nickel", "onyx", "pepper", "quartz", "raven", "saffron", "tundra")
_THINGS = ("door code", "locker number", "room", "badge", "pin", "ticket", "seat", "gate")


def mask_token_id(tokenizer) -> int:
    """The id of the tokenizer's mask token (its ``mask_token``, else a ``[MASK]`` token in its vocabulary); a
    one-line error saying how to add one otherwise."""
    if tokenizer.mask_token is not None:
        return tokenizer.mask_token_id
    token_id = tokenizer.get_vocab().get(MASK_TOKEN)
    if token_id is None:
        raise ValueError(
            f"the tokenizer ({type(tokenizer).__name__}) has no mask token, which masked-input training needs: "
            "call hf_mim.data.text.add_mask_token(tokenizer, model) (adds [MASK] and resizes the model's embeddings) "
            "and save both"
        )
    return token_id


def add_mask_token(tokenizer, model=None, token: str = MASK_TOKEN) -> int:
    """Give ``tokenizer`` a mask token (and a pad token, EOS as in the official scripts, when it has none) and
    grow ``model``'s input and output embeddings to the new vocabulary. Returns the mask token id."""
    added = {}
    if tokenizer.mask_token is None:
        added["mask_token"] = token
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        added["pad_token"] = tokenizer.eos_token
    if added:
        tokenizer.add_special_tokens(added)
    if model is not None and len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))
    return tokenizer.mask_token_id


def check_length(length: int, max_length: int | None) -> None:
    if max_length is not None and length > max_length:
        raise ValueError(
            f"sequences of {length} tokens are longer than the model's context of {max_length} positions: cut the "
            f"text into blocks of at most {max_length} tokens (tokenizer.model_max_length) or use a model with a "
            "larger max_position_embeddings"
        )


def pad(rows: list[list[int]], value: int) -> torch.Tensor:
    length = max(len(row) for row in rows)
    return torch.tensor([list(row) + [value] * (length - len(row)) for row in rows], dtype=torch.long)


def make_key_value_corpus(num_documents: int = 400, seed: int = 0, facts_per_document: int = 6) -> Dataset:
    """Templated documents of "key: value" facts ("the door code of amber is 4821 .") with filler sentences: a
    language model has to copy a value seen earlier in the document to predict the last fact's repetition, a
    small version of the key-information retrieval MEAP targets. Deterministic in ``seed``; for tests and demos."""
    rng = random.Random(seed)
    documents = []
    for _ in range(num_documents):
        keys = rng.sample([(name, thing) for name in _NAMES for thing in _THINGS], facts_per_document)  # distinct keys
        facts = [(name, thing, str(rng.randint(10, 9999))) for name, thing in keys]
        lines = [f"the {thing} of {name} is {value} ." for name, thing, value in facts]
        lines += [f"{rng.choice(_NAMES)} said nothing about the {rng.choice(_THINGS)} ." for _ in range(2)]
        rng.shuffle(lines)
        name, thing, value = rng.choice(facts)
        lines.append(f"question : the {thing} of {name} ? answer : {value} .")
        documents.append(" ".join(lines))
    return Dataset.from_dict({"text": documents})


def wordnet_text(folder, with_examples: bool = True) -> Dataset:
    """The WordNet 3.0 glosses as a text corpus (benchmarks only; ``folder`` holds ``synsets.parquet``): one
    document per synset, "lemma: definition ; example ; ...", with the columns ``lemma`` and ``definition`` kept
    for retrieval probes."""
    import pyarrow.parquet as pq

    table = pq.read_table(Path(folder).expanduser() / "synsets.parquet", columns=["lemmas", "definition", "examples"])
    rows = table.to_pydict()
    texts, lemmas = [], []
    for names, definition, examples in zip(rows["lemmas"], rows["definition"], rows["examples"]):
        lemma = names[0].replace("_", " ")
        parts = [definition, *(examples if with_examples else [])]
        texts.append(f"{lemma}: " + " ; ".join(parts))
        lemmas.append(lemma)
    return Dataset.from_dict({"text": texts, "lemma": lemmas, "definition": rows["definition"]})


def is_wordnet_folder(source) -> bool:
    return source is not None and (Path(str(source)).expanduser() / "synsets.parquet").is_file()


def load_text_dataset(source: str | None = None, split: str = "train", streaming: bool = False, dataset_config=None):
    """One split of a text dataset, one document per row. ``source``: None / "demo" (the generated key-value
    corpus), a WordNet folder (glosses; one train split), a folder of ``.txt`` files (one document per file), a
    parquet file / folder / glob or a ``datasets`` name."""
    if streaming:
        raise DataError("text is tokenized and packed into blocks as a whole (and trains the tokenizer): drop --streaming")
    if source in (None, "demo"):
        return make_key_value_corpus(*generated_split(split, DEMO_SPLITS, "text"))
    if is_wordnet_folder(source):
        if split.split("[")[0] != "train":
            raise MissingSplitError(f"the WordNet text has one split, 'train', not {split!r}")
        return wordnet_text(source)
    path = Path(str(source)).expanduser()
    if path.is_dir() and not any(path.glob("*.parquet")):
        files = sorted(path.rglob("*.txt"))
        if not files:
            raise DataError(f"no .txt or .parquet files found under {path}")
        return Dataset.from_dict({"text": [file.read_text(encoding="utf-8", errors="replace") for file in files]})
    return load_split(source, split, False, dataset_config)


def text_column(dataset, column: str | None = None) -> str:
    return find_column(dataset, TEXT_COLUMN_CANDIDATES, "text", explicit=column)


def train_tokenizer(texts, vocab_size: int = 1000, model_max_length: int = DEFAULT_BLOCK_SIZE):
    """A byte-level BPE tokenizer trained on ``texts`` with ``tokenizers``, wrapped as a ``PreTrainedTokenizerFast``
    (saved and loaded by ``AutoTokenizer``) with pad / BOS / EOS / UNK and the ``[MASK]`` token masked-input
    methods need. Byte-level: every string encodes, no unknown characters."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=core, model_max_length=model_max_length, **SPECIAL_TOKENS)


def block_size_of(tokenizer) -> int:
    length = tokenizer.model_max_length
    return DEFAULT_BLOCK_SIZE if length is None or length > 1_000_000 else int(length)


def chunk_ids(sequences, block_size: int) -> list[list[int]]:
    """Concatenate token sequences and cut the stream into blocks of ``block_size`` (the remainder is dropped)."""
    stream = [token for sequence in sequences for token in sequence]
    return [stream[start:start + block_size] for start in range(0, len(stream) - block_size + 1, block_size)]


def tokenize_into_blocks(dataset, tokenizer, block_size: int | None = None, column: str | None = None,
                         extra_tokens: int = 1) -> Dataset:
    """``input_ids`` blocks of ``block_size + extra_tokens`` tokens (default block: the tokenizer's maximum
    length): each document gets EOS appended, the documents are concatenated and cut. The extra token is the
    target of the block's last position (MEAP's official pre-training reads chunks one token longer than the
    model's context so every position is scored)."""
    column = text_column(dataset, column)
    size = (block_size or block_size_of(tokenizer)) + extra_tokens
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    ids = tokenizer(list(dataset[column]), add_special_tokens=False, verbose=False)["input_ids"]
    blocks = chunk_ids([sequence + eos for sequence in ids], size)
    if not blocks:
        raise DataError(f"the text holds {sum(len(s) + len(eos) for s in ids)} tokens, fewer than one block of {size}: "
                        "give more text or a smaller block (the tokenizer's model_max_length)")
    return Dataset.from_dict({"input_ids": blocks})


def prepare_text_dataset(dataset, processor, train=True, column=None, label_column=None, with_labels=False,
                         transform=None, scale=None):
    """Rows become ``input_ids`` blocks (:func:`tokenize_into_blocks`) for a language-model collator. Text has no
    augmentation: ``train``, ``transform`` and ``scale`` are accepted for the shared modality signature."""
    if with_labels:
        raise DataError("text datasets are prepared for language modelling; class labels are not supported yet")
    return tokenize_into_blocks(dataset, processor, column=column)


def build_text_transform(processor, train: bool = True, scale=None):
    """No per-sample transform: :func:`prepare_text_dataset` tokenizes the whole dataset once."""
    return None


def text_config_from_data(dataset, column=None, overrides=None, estimate_stats=True):
    """Train a tokenizer on the data (``vocab_size`` from the config overrides, default 1000) and give the model
    its vocabulary size and special-token ids; the tokenizer becomes the processor."""
    overrides = overrides or {}
    texts = dataset[text_column(dataset, column)]
    tokenizer = train_tokenizer(texts, vocab_size=overrides.get("vocab_size", 1000))
    config = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
              "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    return config, {"tokenizer": tokenizer}


class TextTokenizer:
    """The text modality's processor factory (``MethodSpec.make_processor``): the tokenizer trained on the data
    (or a saved one: ``tokenizer`` may be a path), its maximum length set to the model's context, so the blocks
    it prepares fit the model."""

    @staticmethod
    def from_model_config(config, tokenizer=None, **overrides):
        if tokenizer is None:
            raise DataError("a text model needs a tokenizer: train one on the data or pass "
                            "--processor_overrides '{\"tokenizer\": \"path/to/tokenizer\"}'")
        if isinstance(tokenizer, str):
            from transformers import AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(tokenizer)
        tokenizer.model_max_length = overrides.get("model_max_length", config.max_position_embeddings)
        return tokenizer
