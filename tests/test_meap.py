"""MEAP (mask-enhanced autoregressive prediction): the collator's official sampling rules, the SFT copies, the
errors, and training with Trainer / ``hf-mim pretrain``."""

import random

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from hf_mim.cli import main as cli_main
from hf_mim.data.text import make_key_value_corpus
from hf_mim.models.meap import (
    DataCollatorForMEAP,
    add_mask_token,
    meap_mask_positions,
    meap_sft_examples,
)
from hf_mim.registry import get_method
from tests import test_text

BLOCK = test_text.BLOCK
tokenizer, blocks = test_text.tokenizer, test_text.blocks  # fixtures: the demo corpus' tokenizer and blocks


def tiny_llama(tokenizer, **overrides):
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=BLOCK, **overrides)
    return LlamaForCausalLM(config)


def batch_of(blocks, start=0, count=4):
    return [{"input_ids": blocks[i]["input_ids"]} for i in range(start, start + count)]


# ---------------- pre-training collator ----------------
def test_official_sampling_positions_count_range_and_step_seed():
    for step in (0, 1, 50, 51, 123):
        random.seed(50 + step % 51)  # meap_*.py: random.seed(get_cycled_seed(step)); random.sample(range(L - 1), n)
        assert meap_mask_positions(BLOCK, 0.15, step) == random.sample(range(BLOCK - 1), int(BLOCK * 0.15))
    positions = meap_mask_positions(4096, 0.15, 7)
    assert len(set(positions)) == 614 and min(positions) >= 0 and max(positions) <= 4094
    assert meap_mask_positions(BLOCK, 0.15, 3) == meap_mask_positions(BLOCK, 0.15, 54) != meap_mask_positions(BLOCK, 0.15, 4)
    with pytest.raises(ValueError, match="mask_ratio"):
        meap_mask_positions(BLOCK, 0.0, 0)


def test_masked_inputs_keep_original_next_token_labels_shared_by_the_batch(tokenizer, blocks):
    collator = DataCollatorForMEAP(tokenizer, max_length=BLOCK)
    samples = batch_of(blocks)
    batch = collator(samples)
    original = torch.tensor([s["input_ids"] for s in samples])
    masked = batch["input_ids"] == tokenizer.mask_token_id
    special = torch.isin(original[:, :-1], collator.special_ids)
    assert batch["input_ids"].shape == (4, BLOCK)
    assert torch.equal(batch["labels"], original[:, :-1]) and torch.equal(batch["shift_labels"], original[:, 1:])
    assert not (batch["labels"] == tokenizer.mask_token_id).any() and not (batch["shift_labels"] == tokenizer.mask_token_id).any()
    positions = sorted(meap_mask_positions(BLOCK, 0.15, 0))
    expected = torch.zeros_like(masked)
    expected[:, positions] = True
    assert torch.equal(masked, expected & ~special)  # the same columns in every row, specials left alone
    assert not masked[:, -1].any()
    assert torch.equal(batch["input_ids"][~masked], original[:, :-1][~masked])


def test_step_seeding_with_accumulation_and_trainer_epoch_sync(tokenizer, blocks):
    collator = DataCollatorForMEAP(tokenizer, gradient_accumulation_steps=2)
    layouts = [(collator(batch_of(blocks, 4 * i))["input_ids"] == tokenizer.mask_token_id).any(0) for i in range(4)]
    assert torch.equal(layouts[0], layouts[1]) and torch.equal(layouts[2], layouts[3])  # micro-batches of one step
    assert not torch.equal(layouts[1], layouts[2])

    class State:
        global_step = 5

    class Args:
        gradient_accumulation_steps = 1

    collator.on_epoch_begin(Args, State, None)  # a resumed run starting at step 5
    first = (collator(batch_of(blocks))["input_ids"] == tokenizer.mask_token_id).any(0)
    assert sorted(first.nonzero().flatten().tolist()) == sorted(meap_mask_positions(BLOCK, 0.15, 5))


def test_dataloader_workers_mask_as_one_process(tokenizer, blocks):
    """Each worker makes every n-th batch: the step of a batch, hence its positions, does not depend on workers."""
    rows = [{"input_ids": ids} for ids in blocks["input_ids"][:48]]

    def layouts(workers):
        collator = DataCollatorForMEAP(tokenizer, gradient_accumulation_steps=2)
        loader = torch.utils.data.DataLoader(rows, batch_size=4, collate_fn=collator, num_workers=workers)
        return [tuple((b["input_ids"] == tokenizer.mask_token_id).any(0).nonzero().flatten().tolist()) for b in loader]

    single = layouts(0)
    assert layouts(2) == single and len(set(single)) == 6  # 12 batches, 6 steps


def test_padding_and_special_tokens_are_never_masked(tokenizer):
    collator = DataCollatorForMEAP(tokenizer, mask_ratio=0.5, shift_targets=False)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    rows = [[10] * 20, [eos] * 20, [11] * 5]
    batch = collator([{"input_ids": r} for r in rows])
    masked = batch["input_ids"] == tokenizer.mask_token_id
    assert masked[0].sum() == 10 and not masked[1].any() and masked[2].sum() < 5
    assert torch.equal(batch["input_ids"][2, 5:], torch.full((15,), pad))
    assert (batch["labels"][2, 5:] == -100).all() and torch.equal(batch["attention_mask"][2], torch.tensor([1] * 5 + [0] * 15))


def test_loss_is_the_causal_lm_loss_on_the_same_tensors_every_position_scored(tokenizer, blocks):
    model = tiny_llama(tokenizer).eval()
    batch = DataCollatorForMEAP(tokenizer, max_length=BLOCK)(batch_of(blocks))
    with torch.no_grad():
        output = model(**batch)
        logits = model(batch["input_ids"]).logits
    expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch["shift_labels"].flatten())
    torch.testing.assert_close(output.loss, expected, rtol=1e-6, atol=1e-6)
    plain = {k: v for k, v in batch.items() if k != "shift_labels"}  # without the extra token: HF's own shift
    with torch.no_grad():
        shifted = model(**plain).loss
    torch.testing.assert_close(shifted, torch.nn.functional.cross_entropy(
        logits[:, :-1].flatten(0, 1), batch["labels"][:, 1:].flatten()), rtol=1e-6, atol=1e-6)


def test_missing_mask_token_says_how_to_add_it_and_the_helper_resizes():
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"a": 0, "b": 1, "<unk>": 2, "</s>": 3}
    bare = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel(vocab, unk_token="<unk>")),
                                   unk_token="<unk>", eos_token="</s>")
    with pytest.raises(ValueError, match=r"has no mask token.*add_mask_token\(tokenizer, model\)"):
        DataCollatorForMEAP(bare)
    model = tiny_llama(bare)
    assert add_mask_token(bare, model) == bare.mask_token_id == 4 and bare.pad_token == "</s>"
    assert model.get_input_embeddings().num_embeddings == model.get_output_embeddings().weight.shape[0] == 5
    assert DataCollatorForMEAP(bare).mask_token_id == 4


def test_sequences_longer_than_the_model_are_refused(tokenizer, blocks):
    collator = DataCollatorForMEAP(tokenizer, max_length=BLOCK - 1)
    with pytest.raises(ValueError, match=f"sequences of {BLOCK} tokens are longer than the model's context of {BLOCK - 1}"):
        collator(batch_of(blocks))


# ---------------- SFT ----------------
def test_sft_copies_mask_a_tenth_of_long_answers_and_supervise_only_them(tokenizer):
    long_answer = " ".join(["the door code of amber is 4821 ."] * 12)
    rows = {"prompt": ["question : the code of amber ?", "short one ?"], "answer": [long_answer, "yes ."]}
    out = meap_sft_examples(rows, tokenizer, rng=random.Random(0))
    assert len(out["input_ids"]) == 3  # long: normal + masked copy; short: normal only
    prompt = tokenizer.encode(rows["prompt"][0])
    answer = tokenizer.encode(long_answer, add_special_tokens=False)
    eos = tokenizer.eos_token_id
    normal_ids, normal_labels = out["input_ids"][0], out["labels"][0]
    assert normal_ids == prompt + answer + [eos] and normal_labels == [-100] * len(prompt) + answer + [eos]
    copy_ids, copy_labels = out["input_ids"][1], out["labels"][1]
    masked = [i for i, token in enumerate(copy_ids) if token == tokenizer.mask_token_id]
    assert len(masked) == max(1, int(len(answer) * 0.1)) and min(masked) >= len(prompt)
    assert [i for i, label in enumerate(copy_labels) if label != -100] == masked
    assert all(copy_labels[i] == (prompt + answer)[i] for i in masked) and copy_ids[-1] == eos
    assert out["labels"][2][-1] == eos and len(out["input_ids"][2]) == len(out["labels"][2])


# ---------------- training ----------------
def test_trainer_loss_falls_save_load_and_resume_are_exact(tmp_path):
    from hf_mim.training.arguments import MIMTrainingArguments
    from hf_mim.training.pretrain import PretrainArguments, pretrain

    def run(output, steps, resume=None):
        args = PretrainArguments(method="meap", size="tiny", config_overrides='{"vocab_size": 300}')
        training = MIMTrainingArguments(
            output_dir=str(output), max_steps=steps, per_device_train_batch_size=8, logging_steps=1, save_steps=4,
            report_to="none", seed=1, resume_from_checkpoint=resume, **get_method("meap").training_defaults,
        )
        return pretrain(args, training)[0]

    trainer = run(tmp_path / "full", 8)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert sum(losses[-2:]) < sum(losses[:2])
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "full")
    state = trainer.model.state_dict()
    assert type(model) is LlamaForCausalLM and all(torch.equal(v, state[k]) for k, v in model.state_dict().items())
    assert AutoTokenizer.from_pretrained(tmp_path / "full").mask_token == "[MASK]"
    check_card(tmp_path / "full")

    (tmp_path / "part").mkdir()
    import shutil

    shutil.copytree(tmp_path / "full" / "checkpoint-4", tmp_path / "part" / "checkpoint-4")
    resumed = run(tmp_path / "part", 8, resume="last")
    assert all(torch.equal(v, state[k]) for k, v in resumed.model.state_dict().items())


def check_card(folder):
    """The card of a MEAP checkpoint names the recipe, and its usage snippet runs as written (on the local folder)."""
    from transformers import AutoConfig

    from hf_mim.hub.cards import build_model_card, training_summary

    card = build_model_card(AutoConfig.from_pretrained(folder), "user/meap-tiny", training=training_summary(folder))
    assert card.data.pipeline_tag == "text-generation" and "meap" in card.data.tags
    assert "mask-enhanced autoregressive prediction" in card.text and "trust_remote_code" not in card.text
    snippet = card.text.split("```python\n")[1].split("```")[0].replace("user/meap-tiny", str(folder))
    assert "AutoModelForCausalLM" in snippet
    exec(snippet, {"print": lambda *a: None})


def test_cli_pretrain_on_a_text_folder_and_continue_a_causal_lm(tmp_path, capsys):
    (tmp_path / "docs").mkdir()
    for i, text in enumerate(make_key_value_corpus(60, seed=5)["text"]):
        (tmp_path / "docs" / f"{i}.txt").write_text(text)
    common = ["--data", str(tmp_path / "docs"), "--max_steps", "3", "--per_device_train_batch_size", "4",
              "--report_to", "none", "--save_strategy", "no", "--logging_steps", "1"]
    assert cli_main(["pretrain", "--method", "meap", "--size", "tiny", "--output_dir", str(tmp_path / "a"), *common]) == 0
    assert "training loss" in capsys.readouterr().out
    assert cli_main(["pretrain", "--method", "meap", "--model_name_or_path", str(tmp_path / "a"),
                     "--output_dir", str(tmp_path / "b"), *common]) == 0
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "b").config.model_type == "llama"
