"""Trainer callbacks for pre-training: an online probe of representation quality and reconstruction images.

Both run on the main process only, every ``every_n_steps`` optimizer steps, and hand their numbers to
:class:`~hf_mim.training.trainer.MIMTrainer`, which merges them into the regular logs (console, TensorBoard, ...).
"""

import logging
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerCallback

logger = logging.getLogger(__name__)


def encoder_of(model):
    """The encoder of a pre-training model (``model.encoder``), or the model itself."""
    return getattr(model, "encoder", model)


class OnlineProbeCallback(TrainerCallback):
    """Report kNN (k=20) and linear-probe top-1 accuracy of the current encoder on small labelled sets.

    ``train_dataset`` / ``eval_dataset``: prepared with labels and without augmentation
    (``prepare_dataset(..., train=False, with_labels=True)``); a few thousand images keep it to seconds.
    """

    def __init__(self, train_dataset, eval_dataset, every_n_steps: int = 500, k: int = 20, probe_epochs: int = 30, pooling=None):
        if every_n_steps <= 0:
            raise ValueError("every_n_steps must be positive")
        self.train_dataset, self.eval_dataset = train_dataset, eval_dataset
        self.every_n_steps, self.k, self.probe_epochs, self.pooling = every_n_steps, k, probe_epochs, pooling
        self.pending: dict = {}
        self.history: list[dict] = []

    def evaluate(self, model) -> dict:
        from hf_mim.evaluation.features import extract_features
        from hf_mim.evaluation.knn import knn_accuracies
        from hf_mim.evaluation.probe import linear_probe_accuracy

        encoder = encoder_of(model)
        train_x, train_y = extract_features(encoder, self.train_dataset, pooling=self.pooling, desc="online probe")
        test_x, test_y = extract_features(encoder, self.eval_dataset, pooling=self.pooling, desc="online probe")
        knn = knn_accuracies(train_x, train_y, test_x, test_y, ks=(self.k,))[f"knn_top1_k{self.k}"]
        probe = linear_probe_accuracy(train_x, train_y, test_x, test_y, epochs=self.probe_epochs, progress=False)
        return {"online_knn_top1": round(knn, 4), "online_probe_top1": round(probe, 4)}

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every_n_steps == 0 and state.is_world_process_zero and model is not None:
            self.pending = self.evaluate(model)
            self.history.append({"step": state.global_step, **self.pending})
            control.should_log = True

    def pop_logs(self) -> dict:
        logs, self.pending = self.pending, {}
        return logs


class ReconstructionImageCallback(TrainerCallback):
    """Every ``every_n_steps`` steps, reconstruct a fixed batch with fixed masks and write the grid (original /
    masked / reconstruction / reconstruction + visible) as a PNG under ``<output_dir>/reconstructions/`` and, with
    ``--report_to tensorboard``, as the image ``reconstructions`` through the Trainer's own TensorBoard writer (so
    grids and scalars share one run; :class:`~hf_mim.training.trainer.MIMTrainer` sets ``tensorboard``)."""

    def __init__(self, pixel_values: torch.Tensor, processor, every_n_steps: int = 500, mask_inputs: dict | None = None):
        if every_n_steps <= 0:
            raise ValueError("every_n_steps must be positive")
        self.pixel_values, self.processor = pixel_values, processor
        self.every_n_steps, self.mask_inputs = every_n_steps, mask_inputs
        self.tensorboard = None  # the Trainer's TensorBoardCallback, when it reports to TensorBoard
        self.written: list[Path] = []

    def _write(self, args, state, model) -> None:
        from hf_mim.evaluation.visualize import reconstruct, reconstruction_grid

        device = next(model.parameters()).device
        if self.mask_inputs is None:  # fixed masks: every grid shows the same masked patches
            from hf_mim.registry import method_for_config

            inputs = method_for_config(model.config).make_inputs(model, self.pixel_values)
            self.mask_inputs = {k: v for k, v in inputs.items() if k != "pixel_values"}
        mask_inputs = {k: v.to(device) if torch.is_tensor(v) else v for k, v in self.mask_inputs.items()}
        with torch.autocast(device.type, enabled=False):
            recon = reconstruct(model, self.pixel_values.to(device), **mask_inputs)
        grid = reconstruction_grid(recon, self.processor)
        folder = Path(args.output_dir) / "reconstructions"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"step_{state.global_step:07d}.png"
        grid.save(path)
        self.written.append(path)
        writer = getattr(self.tensorboard, "tb_writer", None)
        if writer is not None:
            writer.add_image("reconstructions", np.asarray(grid), state.global_step, dataformats="HWC")
            writer.flush()

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every_n_steps == 0 and state.is_world_process_zero and model is not None:
            self._write(args, state, model)
