"""``MIMTrainer``: transformers' Trainer with MIM parameter groups and reproducible in-model masks."""

import hashlib
import json
import logging
import math
import os
import tempfile
from pathlib import Path

import torch
from torch import nn
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, enable_full_determinism, set_seed

from hf_mim.training.arguments import TRAINING_ARGS_JSON

logger = logging.getLogger(__name__)
from transformers.integrations import TensorBoardCallback

NO_DECAY_NAME_PARTS = ("cls_token", "mask_token", "pos_embed", "relative_position_bias_table", "dist_token")


def no_weight_decay_names(model: nn.Module) -> set[str]:
    """timm / MAE rule: no weight decay on 1-D parameters (biases, norms, layer scales, q/v biases) nor on
    tokens and position tables."""
    return {
        name
        for name, param in model.named_parameters()
        if param.ndim <= 1 or name.endswith(".bias") or any(part in name for part in NO_DECAY_NAME_PARTS)
    }


def seed_run(args) -> None:
    """Seed every RNG from ``args.seed`` as Trainer does, but before the model is built: Trainer seeds in its own
    ``__init__``, after the model drew its initial weights, which ``--seed`` must fix too."""
    enable_full_determinism(args.seed) if args.full_determinism else set_seed(args.seed)


def check_output_dir(output_dir) -> None:
    """Fail before training, not at the final save, when ``output_dir`` cannot be written (a file in the way, no
    permission, a read-only or full disk)."""
    folder = Path(output_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write_test_"):
            pass
    except OSError as error:
        raise OSError(f"cannot write to output_dir {folder}: {error.strerror or error} (pass a writable --output_dir)") from error


def last_complete_checkpoint(output_dir) -> str | None:
    """Newest ``checkpoint-N`` folder of ``output_dir`` that was written completely. Trainer writes
    ``trainer_state.json`` last, so a run killed (or out of disk) while saving leaves a folder without a readable
    one, which transformers' ``get_last_checkpoint`` would still pick."""
    folder = Path(output_dir)
    steps = {int(p.name.rsplit("-", 1)[1]): p for p in folder.glob(f"{PREFIX_CHECKPOINT_DIR}-*") if p.name.rsplit("-", 1)[1].isdigit()}
    for step in sorted(steps, reverse=True):
        try:
            json.loads((steps[step] / "trainer_state.json").read_text())
            return str(steps[step])
        except (OSError, ValueError):
            logger.warning("skipping the incomplete checkpoint %s (no readable trainer_state.json)", steps[step])
    return None


def checkpoint_to_resume(resume, output_dir) -> str | None:
    """``--resume_from_checkpoint``: "last" (or True) means the newest complete checkpoint in ``output_dir``, if
    any; a path must be an existing checkpoint folder."""
    if resume in (True, "True", "true", "last"):
        found = last_complete_checkpoint(output_dir)
        if found is None:
            logger.warning("no complete checkpoint found in %s: starting from scratch", output_dir)
        return found
    if resume and not Path(resume).is_dir():
        raise FileNotFoundError(f"no such checkpoint folder: {resume} (pass a checkpoint-N folder or 'last')")
    return resume or None


def derived_seed(*parts) -> int:
    """A 63-bit seed from ``parts`` (sha256 of their ``:``-joined text): independent streams per step, sample..."""
    digest = hashlib.sha256(":".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def step_seed(seed: int, step: int, rank: int) -> int:
    return derived_seed(seed, step, rank)


class SeededSamples(torch.utils.data.Dataset):
    """A map-style dataset whose sample ``index`` is produced under its own RNG seed, derived from
    ``(seed, epoch, index)``: random crops and flips then no longer depend on which process fetches the sample nor
    on what drew from the global RNG before, so a resumed run (whose first batch Trainer fetches before it restores
    the RNG state) sees the augmentation of the uninterrupted run. MIMTrainer wraps its training set in it and sets
    ``epoch`` at each epoch start (with ``dataloader_persistent_workers`` the workers keep the first epoch's)."""

    def __init__(self, dataset, seed: int):
        self.dataset, self.seed, self.epoch = dataset, seed, 0
        # a datasets.Dataset with a set_transform: fetch a batch's rows in one Arrow read (as an unwrapped dataset's
        # __getitems__ would) and transform them one by one, each under its own seed; reading the rows one at a
        # time cost 3x the whole augmentation on small images
        form = getattr(dataset, "format", None) or {}
        transform = (form.get("format_kwargs") or {}).get("transform") if form.get("type") == "custom" else None
        columns = form.get("columns")
        whole_rows = (columns is None or set(columns) == set(dataset.column_names)) and not form.get("output_all_columns")
        self._rows, self._transform = (dataset.with_format(None), transform) if transform and whole_rows else (None, None)

    def __len__(self) -> int:
        return len(self.dataset)

    def _seeded(self, index):
        # the CPU generator only (what CPU augmentations draw from): torch.manual_seed also queues a seed for every
        # accelerator backend, recording a stack trace each time, which cost more than the augmentation itself
        torch.default_generator.manual_seed(derived_seed("augment", self.seed, self.epoch, index))

    def __getitem__(self, index):
        with torch.random.fork_rng(devices=[]):
            self._seeded(index)
            return self.dataset[index]

    def __getitems__(self, indices: list[int]) -> list:
        """What ``[self[i] for i in indices]`` gives, from one read of the rows."""
        if self._rows is None:
            return [self[index] for index in indices]
        rows, samples = self._rows[list(indices)], []
        with torch.random.fork_rng(devices=[]):
            for position, index in enumerate(indices):
                self._seeded(index)
                sample = self._transform({name: [values[position]] for name, values in rows.items()})
                samples.append({name: values[0] for name, values in sample.items()})
        return samples


class AugmentationEpoch(TrainerCallback):
    """Tell :class:`SeededSamples` which epoch starts (before its dataloader workers are created)."""

    def __init__(self, samples: SeededSamples):
        self.samples = samples

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.samples.epoch = int(state.epoch or 0)  # exact at epoch starts (epoch + steps / steps)


class MaskSeedCallback(TrainerCallback):
    """Reseed the model's mask RNG from (seed, global step, process rank) at every optimizer step.

    Masks therefore depend only on the step, so a run resumed from a checkpoint draws exactly the masks the
    uninterrupted run would have drawn, and each DDP rank draws different ones.
    """

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if model is None:
            return
        seed = args.seed if getattr(args, "mask_seed", None) is None else args.mask_seed
        generator = torch.Generator().manual_seed(step_seed(seed, state.global_step, args.process_index))
        for module in model.modules():
            if hasattr(module, "mask_rng"):
                module.mask_rng = generator


def update_steps_per_epoch(train_dataloader, gradient_accumulation_steps: int, max_steps: int) -> int:
    """Optimizer steps per epoch, as ``Trainer`` counts them (a dataloader without a length makes the whole run
    one epoch)."""
    try:
        batches = len(train_dataloader)
    except TypeError:
        return max(max_steps, 1)
    return max(math.ceil(batches / gradient_accumulation_steps), 1)


class ModelStepHooks(TrainerCallback):
    """Call the optional model methods ``begin_training_step(step, total_steps)`` before and
    ``end_training_step(step, total_steps)`` after every optimizer step, and ``begin_training_epoch(epoch,
    num_epochs)`` at every epoch start (a resumed epoch included): EMA target encoders update there, and schedules
    driven by training progress read it (per step, or per epoch like HPM's official easy-to-hard masking). ``step``
    counts finished optimizer steps, ``epoch`` is 0-based; the methods run on every DDP rank, so the replicas stay
    identical."""

    @staticmethod
    def _call(name, args, state, model):
        hook = getattr(model, name, None) if model is not None else None
        if hook is not None:
            hook(step=state.global_step, total_steps=state.max_steps)

    def on_epoch_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        hook = getattr(model, "begin_training_epoch", None) if model is not None else None
        if hook is not None:
            per_epoch = update_steps_per_epoch(train_dataloader, args.gradient_accumulation_steps, state.max_steps)
            hook(epoch=state.global_step // per_epoch, num_epochs=math.ceil(state.max_steps / per_epoch))

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        self._call("begin_training_step", args, state, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self._call("end_training_step", args, state, model)


class MIMTrainer(Trainer):
    """Trainer for hf_mim models: no-decay groups per :func:`no_weight_decay_names`, mask seeding, model step
    hooks (:class:`ModelStepHooks`), and the loss components (``loss_terms``) logged next to the loss."""

    def __init__(self, *args, callbacks=None, **kwargs):
        callbacks = list(callbacks or [])
        for required in (MaskSeedCallback, ModelStepHooks):
            if not any(isinstance(c, required) for c in callbacks):
                callbacks.append(required())
        super().__init__(*args, callbacks=callbacks, **kwargs)
        tensorboard = next((c for c in self.callback_handler.callbacks if isinstance(c, TensorBoardCallback)), None)
        for callback in self.callback_handler.callbacks:
            if hasattr(callback, "tensorboard"):  # callbacks that write images through the Trainer's writer
                callback.tensorboard = tensorboard
        self._loss_terms: dict[str, list[float]] = {}
        if self.train_dataset is not None and hasattr(self.train_dataset, "__len__") and not isinstance(
            self.train_dataset, torch.utils.data.IterableDataset
        ):
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            self.train_dataset = SeededSamples(self.train_dataset, seed)
            self.add_callback(AugmentationEpoch(self.train_dataset))

    def train(self, *args, **kwargs):
        """``Trainer.train``; on Ctrl-C it first saves a checkpoint of the finished optimizer steps, so the run
        continues with ``--resume_from_checkpoint last``."""
        try:
            return super().train(*args, **kwargs)
        except KeyboardInterrupt:
            step = self.state.global_step
            if step == 0:
                raise KeyboardInterrupt("no optimizer step finished, nothing to save") from None
            folder = Path(self.args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{step}"
            if not (folder / "trainer_state.json").exists():
                self._save_checkpoint(self.model, trial=None)
            raise KeyboardInterrupt(
                f"saved step {step} to {folder}; continue with --resume_from_checkpoint last"
            ) from None

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        """Save as Trainer does, plus the training settings as JSON (read by model cards instead of the pickle)."""
        super()._save(output_dir, state_dict=state_dict)
        if self.args.should_save:
            path = os.path.join(output_dir or self.args.output_dir, TRAINING_ARGS_JSON)
            with open(path, "w") as file:
                file.write(self.args.to_json_string())

    def training_step(self, model, inputs, num_items_in_batch=None):
        """Trainer's step; a batch left empty by unreadable images (the collator returns ``{}``) is skipped."""
        if not inputs:
            return torch.zeros((), device=self.args.device)
        return super().training_step(model, inputs, num_items_in_batch)

    def get_decay_parameter_names(self, model: nn.Module) -> list[str]:
        excluded = no_weight_decay_names(model)
        return [name for name, _ in model.named_parameters() if name not in excluded]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, num_items_in_batch=num_items_in_batch)
        terms = outputs.get("loss_terms") if isinstance(outputs, dict) else None
        if terms and model.training:
            for name, value in terms.items():
                self._loss_terms.setdefault(name, []).append(float(value))
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict, *args, **kwargs):
        for callback in self.callback_handler.callbacks:
            if hasattr(callback, "pop_logs"):
                logs.update(callback.pop_logs())
        if self._loss_terms and "loss" in logs:
            for name, values in self._loss_terms.items():
                logs[f"loss_{name}"] = round(sum(values) / len(values), 6)
            self._loss_terms = {}
        super().log(logs, *args, **kwargs)
