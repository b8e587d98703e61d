from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

import hf_mim
from hf_mim.data import MIMCollator, load_image_dataset, prepare_dataset
from hf_mim.training import MIMTrainer, MIMTrainingArguments, no_weight_decay_names
from hf_mim.training.pretrain import PretrainArguments, pretrain
from hf_mim.training.trainer import checkpoint_to_resume
from tests.conftest import real_images, tiny_config


def demo_train_set(config, count=512, train=True, method="mae"):
    spec = hf_mim.get_method(method)
    processor = spec.make_processor(config, image_mean=[0.286], image_std=[0.353])
    transform = spec.make_transform(processor, train=train, scale=(0.5, 1.0))
    return prepare_dataset(load_image_dataset(None, "train").select(range(count)), processor, transform=transform)


def train_args(tmp_path, **kwargs):
    defaults = dict(
        output_dir=str(tmp_path), per_device_train_batch_size=32, logging_steps=1, save_strategy="no",
        disable_tqdm=True, seed=0, dataloader_num_workers=0, base_learning_rate=2e-3, warmup_ratio=0.1,
    )
    return MIMTrainingArguments(**{**defaults, **kwargs})


# tiny encoders with layer scale (SimMIM) need a larger step than the MAE recipe's to move in 60 steps
BASE_LR = {"simmim": 1e-2, "mp3": 3e-2, "mto": 1e-2, "spark": 3e-2}


@pytest.mark.parametrize("method", sorted(n for n, s in hf_mim.METHODS.items() if s.modality == "image"))
def test_trainer_reduces_held_out_loss_on_real_images(method, tmp_path):
    spec = hf_mim.get_method(method)
    config = tiny_config(method, num_channels=1)
    torch.manual_seed(0)
    model = spec.pretraining_class(config)
    held_out = real_images(32, 32, 1, split="test")
    inputs = spec.make_inputs(model, held_out, torch.Generator().manual_seed(123))

    def held_out_loss():
        model.eval()
        with torch.no_grad():
            loss = model(**inputs).loss.item()
        model.train()
        return loss

    before = held_out_loss()
    args = train_args(tmp_path, max_steps=60, base_learning_rate=BASE_LR.get(method, 2e-3))
    collator = spec.collator(config, None) if spec.collator else MIMCollator()
    trainer = MIMTrainer(model=model, args=args, train_dataset=demo_train_set(config, 1024, method=method), data_collator=collator)
    trainer.train()
    after = held_out_loss()
    print(f"{method}: held-out loss {before:.4f} -> {after:.4f}")
    assert after < 0.85 * before, f"{method}: held-out loss {before:.4f} -> {after:.4f}"
    assert all(torch.isfinite(torch.tensor(e["loss"])) for e in trainer.state.log_history if "loss" in e)


def test_learning_rate_follows_the_mae_rule(tmp_path):
    args = MIMTrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=64, gradient_accumulation_steps=2)
    assert args.learning_rate == pytest.approx(1.5e-4 * 128 / 256)
    assert args.remove_unused_columns is False and args.label_names == []
    assert (args.weight_decay, args.adam_beta2, args.lr_scheduler_type) == (0.05, 0.95, "cosine")
    simmim = MIMTrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=256, base_learning_rate=1e-4, lr_batch_divisor=512)
    assert simmim.learning_rate == pytest.approx(5e-5)
    explicit = MIMTrainingArguments(output_dir=str(tmp_path), learning_rate=3e-4)
    assert explicit.learning_rate == 3e-4


def test_warmup_is_a_fraction_of_the_run(tmp_path):
    # transformers 5 dropped warmup_ratio; a silently ignored warm-up once made every run start at the peak lr
    assert MIMTrainingArguments(output_dir=str(tmp_path)).get_warmup_steps(1000) == 50
    assert MIMTrainingArguments(output_dir=str(tmp_path), warmup_ratio=0.1).get_warmup_steps(1000) == 100
    assert MIMTrainingArguments(output_dir=str(tmp_path), warmup_steps=7).get_warmup_steps(1000) == 7
    with pytest.raises(ValueError, match="warmup_ratio"):
        MIMTrainingArguments(output_dir=str(tmp_path), warmup_ratio=1.5)


def test_no_weight_decay_on_biases_norms_tokens_and_positions(tmp_path):
    model = hf_mim.SimMIMForPreTraining(tiny_config("simmim", position_embedding_type="learned"))
    excluded = no_weight_decay_names(model)
    assert "encoder.cls_token" in excluded and "encoder.mask_token" in excluded and "encoder.pos_embed" in excluded
    assert "encoder.rel_pos_bias.relative_position_bias_table" in excluded
    assert "encoder.blocks.0.ls1.gamma" in excluded and "encoder.blocks.0.attn.q_bias" in excluded
    assert "encoder.blocks.0.norm1.weight" in excluded and "encoder.blocks.0.mlp.fc1.bias" in excluded
    trainer = MIMTrainer(model=model, args=train_args(tmp_path, max_steps=1), train_dataset=[], data_collator=MIMCollator())
    optimizer = trainer.create_optimizer()
    decayed = {id(p) for group in optimizer.param_groups if group["weight_decay"] > 0 for p in group["params"]}
    names = {name for name, p in model.named_parameters() if id(p) in decayed}
    assert "encoder.blocks.0.attn.qkv.weight" in names and "decoder.0.weight" in names
    assert not names & excluded


def test_resume_continues_with_the_same_masks_and_weights(tmp_path):
    """Masks are drawn from a generator reseeded from (seed, step, rank), so a resumed run sees the masks of the
    uninterrupted one and reaches the same weights (optimizer, scheduler and mask state all restored); random
    crops are covered by the next test."""
    config = tiny_config("mae", num_channels=1, patch_size=4)
    dataset = demo_train_set(config, count=192, train=False)

    def run(output_dir, max_steps, resume=None, save_steps=None):
        torch.manual_seed(0)
        model = hf_mim.MAEForPreTraining(config)
        masks = []
        model.register_forward_hook(lambda module, args, output: masks.append(output.mask.clone()))
        save = {"save_strategy": "steps", "save_steps": save_steps} if save_steps else {}
        trainer = MIMTrainer(
            model=model, args=train_args(output_dir, max_steps=max_steps, **save),
            train_dataset=dataset, data_collator=MIMCollator(),
        )
        trainer.train(resume_from_checkpoint=resume)
        return model, masks

    full_model, full_masks = run(tmp_path / "full", 6)
    run(tmp_path / "part", 6, save_steps=3)
    resumed_model, resumed_masks = run(tmp_path / "resumed", 6, resume=str(tmp_path / "part" / "checkpoint-3"))
    assert len(resumed_masks) == 3
    for full, resumed in zip(full_masks[3:], resumed_masks):
        assert torch.equal(full, resumed)
    assert not torch.equal(full_masks[3], full_masks[4])  # masks do change from step to step
    for (name, a), b in zip(full_model.state_dict().items(), resumed_model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_model_step_hooks_are_called_once_per_optimizer_step(tmp_path):
    config = tiny_config("mae", num_channels=1)
    model = hf_mim.MAEForPreTraining(config)
    calls = []
    model.begin_training_step = lambda step, total_steps: calls.append(("begin", step, total_steps))
    model.end_training_step = lambda step, total_steps: calls.append(("end", step, total_steps))
    args = train_args(tmp_path, max_steps=3, per_device_train_batch_size=8, gradient_accumulation_steps=2)
    MIMTrainer(model=model, args=args, train_dataset=demo_train_set(config, 64), data_collator=MIMCollator()).train()
    assert calls == [("begin", 0, 3), ("end", 1, 3), ("begin", 1, 3), ("end", 2, 3), ("begin", 2, 3), ("end", 3, 3)]


class InitialWeights(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.weights = {name: value.clone() for name, value in model.state_dict().items()}


def test_seed_fixes_the_initial_weights(tmp_path):
    """Trainer seeds in its __init__, after the model drew its weights: ``pretrain`` seeds before building it."""

    def initial_weights(seed):
        record = InitialWeights()
        args = PretrainArguments(method="mae", size="tiny", max_train_samples=16, image_mean=[0.5], image_std=[0.5])
        pretrain(args, train_args(tmp_path / str(seed), max_steps=1, per_device_train_batch_size=8, seed=seed), [record])
        return record.weights

    first, again, other = initial_weights(0), initial_weights(0), initial_weights(1)
    assert all(torch.equal(first[name], again[name]) for name in first)
    assert not torch.equal(first["encoder.blocks.0.attn.qkv.weight"], other["encoder.blocks.0.attn.qkv.weight"])


def read_only_folder(tmp_path) -> Path:
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except OSError:
        return folder
    return Path("/sys")  # root ignores permissions; sysfs refuses new files even to root


def test_unwritable_output_dir_fails_before_training(tmp_path):
    """An existing read-only folder passes Trainer's makedirs: the whole run used to train, then fail at the save."""
    record = InitialWeights()
    output_dir = read_only_folder(tmp_path)
    args = PretrainArguments(method="mae", size="tiny", max_train_samples=16, image_mean=[0.5], image_std=[0.5])
    with pytest.raises(OSError, match=f"cannot write to output_dir {output_dir}: .*writable --output_dir"):
        pretrain(args, train_args(output_dir, max_steps=1, per_device_train_batch_size=8), [record])
    assert not hasattr(record, "weights")  # failed before training


def test_resume_last_skips_half_written_checkpoints(tmp_path):
    """A kill or a full disk while saving leaves checkpoint folders without a readable trainer_state.json (written
    last); "last" resumes from the newest complete one instead of crashing on them."""
    args = PretrainArguments(method="mae", size="tiny", max_train_samples=32, image_mean=[0.5], image_std=[0.5])
    run = dict(per_device_train_batch_size=8, save_strategy="steps", save_steps=2)
    pretrain(args, train_args(tmp_path, max_steps=2, **run))
    (tmp_path / "checkpoint-3").mkdir()
    (tmp_path / "checkpoint-3" / "trainer_state.json").write_text('{"global_step": 3, "log_h')  # disk full
    (tmp_path / "checkpoint-4").mkdir()
    (tmp_path / "checkpoint-4" / "model.safetensors").write_bytes(b"\0" * 10)  # killed while writing weights
    trainer, _ = pretrain(args, train_args(tmp_path, max_steps=3, resume_from_checkpoint="last", **run))
    assert trainer.state.global_step == 3
    assert [entry["step"] for entry in trainer.state.log_history if "loss" in entry] == [1, 2, 3]
    with pytest.raises(FileNotFoundError, match="no such checkpoint folder: .*nope .*'last'"):
        pretrain(args, train_args(tmp_path, max_steps=3, resume_from_checkpoint=str(tmp_path / "nope")))


class KillAtStep(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError("killed")


def test_a_killed_run_resumed_ends_with_bit_identical_weights(tmp_path):
    """Random crops and flips come from a generator seeded per (seed, epoch, sample), like the masks: a run killed
    after step 3 (checkpoint at step 2) and resumed with "last" ends exactly where the uninterrupted run does, across
    an epoch boundary (4 steps per epoch)."""
    config = tiny_config("mae", num_channels=1, patch_size=4)
    dataset = demo_train_set(config, count=64, train=True)

    def run(output_dir, resume=None, callbacks=()):
        torch.manual_seed(0)
        model = hf_mim.MAEForPreTraining(config)
        args = train_args(output_dir, max_steps=6, per_device_train_batch_size=16, save_strategy="steps", save_steps=2)
        trainer = MIMTrainer(model=model, args=args, train_dataset=dataset, data_collator=MIMCollator(), callbacks=list(callbacks))
        trainer.train(resume_from_checkpoint=checkpoint_to_resume(resume, output_dir))
        return model

    full = run(tmp_path / "full")
    with pytest.raises(RuntimeError, match="killed"):
        run(tmp_path / "killed", callbacks=[KillAtStep(3)])
    assert not (tmp_path / "killed" / "checkpoint-4").exists()
    resumed = run(tmp_path / "killed", resume="last")
    for (name, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_seeded_samples_fetch_a_batch_in_one_read_with_the_same_augmentation():
    """The DataLoader fetches a batch through ``__getitems__`` (one Arrow read); each sample must still get the
    random crop / flip of its own (seed, epoch, index), exactly as a one-by-one fetch gives it."""
    from hf_mim.training.trainer import SeededSamples

    spec = hf_mim.get_method("mae")
    processor = spec.make_processor(tiny_config("mae"))
    train = prepare_dataset(load_image_dataset(None, "train").select(range(12)), processor, train=True, with_labels=True)
    samples = SeededSamples(train, seed=3)
    samples.epoch = 2
    indices = [7, 0, 11, 3, 3]
    batched, one_by_one = samples.__getitems__(indices), [samples[index] for index in indices]
    assert samples._rows is not None  # the one-read path was taken
    for got, expected in zip(batched, one_by_one):
        assert set(got) == set(expected) and got["labels"] == expected["labels"]
        assert torch.equal(got["pixel_values"], expected["pixel_values"])
    assert not torch.equal(batched[0]["pixel_values"], SeededSamples(train, seed=4).__getitems__([7])[0]["pixel_values"])
