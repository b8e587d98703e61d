"""The text core: sources, the generated key-value corpus, tokenizer training and blocks (``hf_mim.data.text``)."""

import pytest
from datasets import Dataset
from transformers import AutoTokenizer

from hf_mim.data import DataError
from hf_mim.data.text import load_text_dataset, make_key_value_corpus, tokenize_into_blocks, train_tokenizer
from hf_mim.modalities import get_modality

BLOCK = 32


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(load_text_dataset(None)["text"], vocab_size=300, model_max_length=BLOCK)


@pytest.fixture(scope="module")
def blocks(tokenizer):
    return tokenize_into_blocks(load_text_dataset(None), tokenizer)


def test_text_modality_loads_tokenizers_and_prepares_blocks(tokenizer):
    text = get_modality("text")
    assert text.auto_class("processor") is AutoTokenizer
    prepared = text.prepare_dataset(text.load_dataset(None, "validation"), tokenizer)
    assert set(prepared.column_names) == {"input_ids"} and len(prepared[0]["input_ids"]) == BLOCK + 1


def test_demo_corpus_is_deterministic_with_distinct_keys_and_an_answerable_question():
    corpus = make_key_value_corpus(5, seed=3)
    assert corpus["text"] == make_key_value_corpus(5, seed=3)["text"] != make_key_value_corpus(5, seed=4)["text"]
    for text in corpus["text"]:
        facts = [line.split(" is ") for line in text.split(" . ") if line.startswith("the ") and " is " in line]
        keys = [key for key, _ in facts]
        assert len(keys) == len(set(keys)) == 6
        question, answer = text.split("question : ")[1].split(" ? answer : ")
        assert answer.rstrip(" .") == dict(facts)[question]


def test_text_sources_folder_of_txt_and_parquet(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("first document")
    (tmp_path / "docs" / "b.txt").write_text("second one")
    assert load_text_dataset(str(tmp_path / "docs"))["text"] == ["first document", "second one"]
    Dataset.from_dict({"content": ["x y", "z"]}).to_parquet(tmp_path / "train.parquet")
    assert load_text_dataset(str(tmp_path / "train.parquet"))["content"] == ["x y", "z"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .txt or .parquet"):
        load_text_dataset(str(tmp_path / "empty"))
    with pytest.raises(DataError, match="drop --streaming"):
        load_text_dataset(str(tmp_path / "train.parquet"), streaming=True)


def test_trained_tokenizer_has_mask_token_and_round_trips(tokenizer, tmp_path):
    assert tokenizer.mask_token == "[MASK]" and tokenizer.convert_tokens_to_ids("[MASK]") == tokenizer.mask_token_id
    text = "the door code of amber is 4821 ."
    assert tokenizer.decode(tokenizer(text)["input_ids"]) == text
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"] and loaded.mask_token_id == tokenizer.mask_token_id


def test_blocks_are_one_token_longer_than_the_context_and_cover_the_stream(tokenizer, blocks):
    documents = load_text_dataset(None)["text"]
    stream = [t for doc in documents for t in tokenizer(doc)["input_ids"] + [tokenizer.eos_token_id]]
    assert all(len(ids) == BLOCK + 1 for ids in blocks["input_ids"])
    assert [t for ids in blocks["input_ids"] for t in ids] == stream[: len(blocks) * (BLOCK + 1)]
    with pytest.raises(DataError, match="fewer than one block"):
        tokenize_into_blocks(Dataset.from_dict({"text": ["short"]}), tokenizer)
