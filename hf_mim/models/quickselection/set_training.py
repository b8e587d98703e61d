"""Sparse Evolutionary Training as a ``Trainer`` callback (kept out of the modeling file: it needs hf_mim's training
helpers, which a remote-code checkpoint does not carry)."""

import torch
from transformers import TrainerCallback

from hf_mim.training.trainer import derived_seed, update_steps_per_epoch


class SETCallback(TrainerCallback):
    """Sparse Evolutionary Training under ``Trainer``: one :meth:`QuickSelectionForPreTraining.evolve_connections`
    at the start of every epoch after the first (= after every epoch but the last, as the official loop). The model
    counts its SET steps (``num_set_steps``, saved with it) and each step is seeded from the run's seed and that
    count, so a resumed run evolves exactly as an uninterrupted one. ``history``: the counts of every step."""

    def __init__(self):
        self.history: list[dict] = []
        self.offset = 0

    @staticmethod
    def epoch_and_steps_done(args, state, train_dataloader) -> tuple[int, int]:
        """(the epoch that starts at ``state.global_step``, SET steps this run made before it)."""
        per_epoch = update_steps_per_epoch(train_dataloader, args.gradient_accumulation_steps, state.max_steps)
        epoch, within = divmod(state.global_step, per_epoch)
        return epoch, max(0, epoch if within else epoch - 1)

    def on_train_begin(self, args, state, control, model=None, train_dataloader=None, **kwargs):
        if model is not None and hasattr(model, "evolve_connections"):
            # steps the model brought along (continued pre-training), not made by this run
            self.offset = int(model.encoder.num_set_steps) - self.epoch_and_steps_done(args, state, train_dataloader)[1]

    def on_epoch_begin(self, args, state, control, model=None, optimizer=None, train_dataloader=None, **kwargs):
        if model is None or not hasattr(model, "evolve_connections"):
            return
        epoch = self.epoch_and_steps_done(args, state, train_dataloader)[0]
        done = int(model.encoder.num_set_steps)
        if done - self.offset < epoch:  # a resumed epoch has evolved already
            generator = torch.Generator().manual_seed(derived_seed(args.seed, "set", done))
            self.history.append({"epoch": epoch, **model.evolve_connections(generator, optimizer)})
