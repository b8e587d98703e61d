"""``MIMTrainer``: transformers' Trainer with MIM parameter groups and reproducible in-model masks."""

import hashlib

import torch
from torch import nn
from transformers import Trainer, TrainerCallback
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


def step_seed(seed: int, step: int, rank: int) -> int:
    digest = hashlib.sha256(f"{seed}:{step}:{rank}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


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


class ModelStepHooks(TrainerCallback):
    """Call the optional model methods ``begin_training_step(step, total_steps)`` before and
    ``end_training_step(step, total_steps)`` after every optimizer step: EMA target encoders update there, and
    schedules driven by training progress (e.g. HPM's easy-to-hard masking) read it. ``step`` counts finished
    optimizer steps; the methods run on every DDP rank, so the replicas stay identical."""

    @staticmethod
    def _call(name, args, state, model):
        hook = getattr(model, name, None) if model is not None else None
        if hook is not None:
            hook(step=state.global_step, total_steps=state.max_steps)

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
