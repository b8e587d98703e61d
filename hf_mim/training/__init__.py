"""Trainer integration: MIM-friendly TrainingArguments defaults, optimizer parameter groups, mask seeding."""

from hf_mim.training.arguments import MIMTrainingArguments
from hf_mim.training.trainer import MaskSeedCallback, MIMTrainer, no_weight_decay_names

__all__ = ["MIMTrainer", "MIMTrainingArguments", "MaskSeedCallback", "no_weight_decay_names"]
