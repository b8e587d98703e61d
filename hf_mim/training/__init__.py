"""Trainer integration: MIM-friendly TrainingArguments defaults, optimizer parameter groups, mask seeding."""

from hf_mim.training.arguments import MIMTrainingArguments
from hf_mim.training.trainer import MaskSeedCallback, MIMTrainer, ModelStepHooks, no_weight_decay_names

__all__ = ["MIMTrainer", "MIMTrainingArguments", "MaskSeedCallback", "ModelStepHooks", "no_weight_decay_names"]
