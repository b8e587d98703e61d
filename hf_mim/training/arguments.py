"""``TrainingArguments`` with masked-image-modeling defaults, so no ``--remove_unused_columns False
--label_names pixel_values`` workarounds are needed."""

from dataclasses import dataclass, field

import torch
from transformers import TrainingArguments

# the run's settings as JSON next to every saved model: model cards read this, never the pickled training_args.bin
TRAINING_ARGS_JSON = "training_args.json"


def bf16_available() -> bool:
    return torch.cuda.is_available() and torch.cuda.is_bf16_supported()


@dataclass
class MIMTrainingArguments(TrainingArguments):
    """MAE recipe defaults: AdamW (0.9, 0.95), weight decay 0.05 (not on biases, norms, tokens, position tables),
    cosine schedule with 5% warm-up, gradient clipping at 1.0, a checkpoint every 10% of the run, bf16 on GPUs that
    support it, DDP without ``find_unused_parameters``, and
    ``learning_rate = base_learning_rate * global_batch / 256`` unless ``learning_rate`` is given explicitly.

    ``lr_batch_divisor`` is 256 for MAE and most methods; SimMIM scales by 512.
    """

    base_learning_rate: float | None = field(
        default=1.5e-4, metadata={"help": "lr = base_learning_rate * global batch / lr_batch_divisor (MAE rule)."}
    )
    lr_batch_divisor: int = field(default=256, metadata={"help": "Batch size the base learning rate refers to."})
    learning_rate: float | None = field(default=None, metadata={"help": "Absolute learning rate (overrides the base rule)."})
    mask_seed: int | None = field(
        default=None, metadata={"help": "Seed of the in-model mask RNG (defaults to --seed); reseeded every step."}
    )
    remove_unused_columns: bool = False
    weight_decay: float = 0.05
    adam_beta2: float = 0.95
    lr_scheduler_type: str = "cosine"
    # transformers 5 reads a float warmup_steps in [0, 1) as a fraction of the total steps
    warmup_steps: float = 0.05
    warmup_ratio: float | None = field(
        default=None, metadata={"help": "Fraction of steps for linear warm-up (alias of a float --warmup_steps < 1)."}
    )
    max_grad_norm: float = 1.0
    logging_steps: int = 10
    # a checkpoint every 10% of the run, whatever its length (Trainer reads a float < 1 as a share of the steps):
    # transformers' 500 steps left short runs nothing to resume from
    save_steps: float = field(
        default=0.1, metadata={"help": "Checkpoint every N steps, or every share of the run if < 1 (default 0.1)."}
    )
    save_total_limit: int | None = 3
    bf16: bool | None = None
    prediction_loss_only: bool = True
    # hf_mim models use every trainable parameter each step; False makes DDP fail loudly if that ever breaks
    ddp_find_unused_parameters: bool | None = False

    def __post_init__(self):
        if self.warmup_ratio is not None:
            if not 0 <= self.warmup_ratio < 1:
                raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
            self.warmup_steps = self.warmup_ratio
        if self.bf16 is None:
            self.bf16 = bf16_available()
        if not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # nothing to pin for, and it only warns
        explicit_lr = self.learning_rate is not None
        if not explicit_lr:
            self.learning_rate = 1e-3  # placeholder until the world size is known (set below)
        super().__post_init__()
        if not explicit_lr:
            if self.base_learning_rate is None:
                raise ValueError("give either learning_rate or base_learning_rate")
            self.learning_rate = self.base_learning_rate * self.global_batch_size / self.lr_batch_divisor
        if self.label_names is None:
            self.label_names = []

    @property
    def global_batch_size(self) -> int:
        return self.per_device_train_batch_size * self.gradient_accumulation_steps * max(1, self.world_size)
