"""Fine-tuning a pre-trained hf_mim encoder for image classification with transformers.Trainer: layer-wise
learning-rate decay (BEiT / MAE), drop path, accuracy through ``evaluate``, and LoRA through ``peft``.

MAE's fine-tuning recipe also uses RandAugment, mixup/cutmix and label smoothing; here augmentation is
RandomResizedCrop(0.08-1) + flip, and label smoothing is available via ``--label_smoothing_factor``.
"""

import copy
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from transformers import AutoImageProcessor, AutoModelForImageClassification

from hf_mim.data import (
    LABEL_COLUMN_CANDIDATES,
    MIMCollator,
    check_local_path,
    find_column,
    load_evaluation_splits,
    prepare_dataset,
    subset,
)
from hf_mim.evaluation.metrics import compute_classification_metrics
from hf_mim.training.arguments import MIMTrainingArguments
from hf_mim.training.trainer import (
    MIMTrainer,
    check_output_dir,
    checkpoint_to_resume,
    no_weight_decay_names,
    seed_run,
)

logger = logging.getLogger(__name__)

# the LoRA targets we document: the fused attention projection of every encoder block (optionally also the
# attention output and the MLP: r"encoder\.blocks\.\d+\.(attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)")
DEFAULT_LORA_TARGETS = r"encoder\.blocks\.\d+\.attn\.qkv"


@dataclass
class FinetuneArguments:
    checkpoint: str = field(metadata={"help": "Pre-trained hf_mim checkpoint (local folder or Hub id)."})
    data: str | None = field(default=None, metadata={"help": "Labelled data (bundled demo data when omitted)."})
    train_split: str = field(default="train")
    eval_split: str | None = field(
        default=None, metadata={"help": "Default: the test split, else validation, else a seeded fifth of train held out."}
    )
    image_column: str | None = field(default=None)
    label_column: str | None = field(default=None)
    layer_decay: float = field(default=0.75, metadata={"help": "Layer-wise lr decay (MAE: 0.75 ViT-B/L, 0.65 ViT-B)."})
    drop_path_rate: float = field(default=0.1)
    pooling: str | None = field(default=None, metadata={"help": "mean (MAE fine-tuning) or cls; default from config."})
    crop_scale_min: float = field(default=0.08)
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)
    lora: bool = field(default=False, metadata={"help": "Train LoRA adapters (peft) instead of all weights."})
    lora_r: int = field(default=8)
    lora_alpha: int = field(default=16)
    lora_dropout: float = field(default=0.0)
    lora_target_modules: str = field(default=DEFAULT_LORA_TARGETS, metadata={"help": "Regex over module names."})
    output: str | None = field(default=None, metadata={"help": "Write the test metrics as JSON here (for hf-mim push)."})


def layer_id(name: str, num_layers: int) -> int:
    """0 for embeddings and tokens, i + 1 for encoder block i, num_layers + 1 for everything after the blocks."""
    name = name.replace("base_model.model.", "")
    match = re.search(r"encoder\.blocks\.(\d+)\.", name)
    if match:
        return int(match.group(1)) + 1
    if re.match(r"encoder\.(patch_embed|cls_token|pos_embed|mask_token|rel_pos_bias)", name):
        return 0
    return num_layers + 1


def layer_decay_parameter_groups(model, weight_decay: float, layer_decay: float) -> list[dict]:
    """One group per (layer, decay) with ``lr_scale = layer_decay ** (num_layers + 1 - layer)``; models without
    ``encoder.blocks`` (e.g. CNN encoders) get a single scale of 1."""
    names = [name for name, param in model.named_parameters() if param.requires_grad]
    block_ids = [int(m.group(1)) for name in names if (m := re.search(r"encoder\.blocks\.(\d+)\.", name))]
    num_layers = max(block_ids) + 1 if block_ids else 0
    excluded = no_weight_decay_names(model)
    groups: dict[tuple[int, bool], dict] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lid = layer_id(name, num_layers) if num_layers else 0
        decay = name not in excluded
        scale = layer_decay ** (num_layers + 1 - lid) if num_layers else 1.0
        group = groups.setdefault((lid, decay), {"params": [], "weight_decay": weight_decay if decay else 0.0, "lr_scale": scale})
        group["params"].append(param)
    return list(groups.values())


class FinetuneTrainer(MIMTrainer):
    """MIMTrainer (settings saved as JSON, step hooks) whose optimizer (``--optim``, AdamW by default) gets
    parameter groups with layer-wise learning-rate scales."""

    def __init__(self, *args, layer_decay: float = 0.75, **kwargs):
        super().__init__(*args, **kwargs)
        self.layer_decay = layer_decay

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            groups = layer_decay_parameter_groups(self.model, self.args.weight_decay, self.layer_decay)
            for group in groups:
                group["lr"] = self.args.learning_rate * group.pop("lr_scale")
            optimizer_class, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, self.model)
            self.optimizer = optimizer_class(groups, **optimizer_kwargs)
        return self.optimizer


def finetune_training_arguments(**kwargs) -> MIMTrainingArguments:
    """MAE fine-tuning defaults: base lr 5e-4 per 256 images, AdamW (0.9, 0.999), weight decay 0.05, 5% warm-up,
    cosine, evaluation every epoch, accuracy reported."""
    defaults = dict(
        base_learning_rate=5e-4, adam_beta2=0.999, weight_decay=0.05, eval_strategy="epoch", save_strategy="epoch",
        label_names=["labels"], prediction_loss_only=False, load_best_model_at_end=False,
    )
    return MIMTrainingArguments(**{**defaults, **kwargs})


def load_classifier(args: FinetuneArguments, label_names: list[str] | None, num_labels: int):
    overrides = {"num_labels": num_labels, "drop_path_rate": args.drop_path_rate}
    if label_names:
        overrides["id2label"] = dict(enumerate(label_names))
        overrides["label2id"] = {name: i for i, name in enumerate(label_names)}
    if args.pooling:
        overrides["pooling"] = args.pooling
    model = AutoModelForImageClassification.from_pretrained(args.checkpoint, **overrides)
    if args.lora:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
            target_modules=args.lora_target_modules, modules_to_save=["classifier", "fc_norm"],
        )
        model = get_peft_model(model, lora)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
        logger.info("LoRA: %d of %d parameters trainable (%.2f%%)", trainable, total, 100 * trainable / total)
    return model


def finetune(args: FinetuneArguments, training_args: MIMTrainingArguments):
    """Fine-tune and evaluate; returns ``(trainer, eval_metrics)``. With LoRA, the adapters are saved to
    ``output_dir`` and the merged model to ``output_dir/merged``."""
    check_output_dir(training_args.output_dir)
    check_local_path(args.checkpoint, "a saved checkpoint folder or a Hub model id")
    processor = AutoImageProcessor.from_pretrained(args.checkpoint)
    train_raw, eval_raw = load_evaluation_splits(args.data, args.train_split, args.eval_split, seed=training_args.seed)
    if args.max_train_samples:
        train_raw = subset(train_raw, args.max_train_samples)
    if args.max_eval_samples:
        eval_raw = subset(eval_raw, args.max_eval_samples)
    label_column = find_column(train_raw, LABEL_COLUMN_CANDIDATES, "label", explicit=args.label_column)
    feature = train_raw.features[label_column]
    label_names = getattr(feature, "names", None)
    num_labels = len(label_names) if label_names else int(max(train_raw[label_column])) + 1
    train = prepare_dataset(train_raw, processor, True, args.image_column, label_column, True, (args.crop_scale_min, 1.0))
    evaluation = prepare_dataset(eval_raw, processor, False, args.image_column, label_column, True)
    seed_run(training_args)  # the new head's initial weights
    model = load_classifier(args, label_names, num_labels)
    trainer = FinetuneTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=MIMCollator(),
        processing_class=processor,
        compute_metrics=compute_classification_metrics,
        layer_decay=args.layer_decay,
    )
    trainer.train(resume_from_checkpoint=checkpoint_to_resume(training_args.resume_from_checkpoint, training_args.output_dir))
    metrics = trainer.evaluate()
    trainer.save_model()
    trainer.save_metrics("eval", metrics)
    if args.lora:  # merge a copy: merge_and_unload() strips the adapters from the model it is called on
        merged = copy.deepcopy(trainer.model).merge_and_unload()
        merged.save_pretrained(Path(training_args.output_dir) / "merged")
        processor.save_pretrained(Path(training_args.output_dir) / "merged")
    return trainer, metrics
