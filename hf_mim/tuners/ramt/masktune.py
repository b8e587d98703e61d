"""``hf-mim masktune``: few-shot R-AMT of a saved ``CLIPModel`` on a labelled image set, from the command line.

It draws ``--shots`` images per class (seeded), builds the zero-shot classifier from the class names and prompt
templates, trains the masks with :class:`MaskTuningTrainer` (official recipe: RandomResizedCrop scale (0.5, 1) +
flip, Adam lr 8e-5 without weight decay, cosine schedule, batch 32) and writes the 1-bit masks, the tuner config
and a card to ``--output_dir``; zero-shot and tuned accuracies on ``--eval_split`` are printed.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from types import SimpleNamespace

import torch

from hf_mim.data import (
    LABEL_COLUMN_CANDIDATES,
    MIMCollator,
    build_transform,
    find_column,
    load_image_dataset,
    prepare_dataset,
)
from hf_mim.tuners.ramt.mask_tuning import MLP_TARGETS, MaskTuningConfig, apply_mask_tuning
from hf_mim.tuners.ramt.training_ramt import DEFAULT_TEMPLATES, CLIPZeroShotClassifier, MaskTuningTrainer


@dataclass
class MaskTuneArguments:
    model: str = field(metadata={"help": "CLIPModel folder or Hub id (with its tokenizer and image processor)"})
    data: str = field(metadata={"help": "labelled images: a folder of class sub-folders, parquet, or a dataset name"})
    shots: int = field(default=16, metadata={"help": "training images per class (few-shot)"})
    class_names: list[str] = field(default=None, metadata={"help": "class names (default: the data's label names)"})
    templates: list[str] = field(default_factory=lambda: list(DEFAULT_TEMPLATES),
                                 metadata={"help": "prompt templates with one {} for the class name"})
    mask_mlp: bool = field(default=False, metadata={"help": "also mask the MLP weights (official MASK_MLP)"})
    no_gradient_dropout: bool = field(default=False, metadata={"help": "train on the task loss alone"})
    eval_split: str = field(default="test", metadata={"help": "split to report accuracy on ('' to skip)"})
    eval_samples: int = field(default=1000, metadata={"help": "evaluate on this many images of eval_split (0: all)"})


def clip_transform(image_processor, train: bool):
    """hf_mim's torchvision pipeline at the CLIP processor's crop size and statistics; training crops keep 50-100%
    of the image, as the official ``RRCROP_SCALE``."""
    crop = image_processor.crop_size if getattr(image_processor, "do_center_crop", False) else image_processor.size
    side = crop.get("height") or crop.get("shortest_edge")
    geometry = SimpleNamespace(size={"height": side, "width": side}, num_channels=3, do_normalize=True,
                               image_mean=image_processor.image_mean, image_std=image_processor.image_std)
    return build_transform(geometry, train=train, scale=(0.5, 1.0))


def few_shot_indices(labels, shots: int, seed: int) -> list[int]:
    """``shots`` indices per class, drawn without replacement with ``seed``; a class with fewer is refused."""
    by_class = {}
    for index, label in enumerate(labels):
        by_class.setdefault(int(label), []).append(index)
    rng = random.Random(seed)
    picked = []
    for label, indices in sorted(by_class.items()):
        if len(indices) < shots:
            raise ValueError(f"class {label} has {len(indices)} images, fewer than --shots {shots}; lower --shots")
        picked += rng.sample(indices, shots)
    return picked


def label_names(dataset, label_column: str, given) -> list[str]:
    if given:
        return list(given)
    feature = dataset.features.get(label_column)
    names = getattr(feature, "names", None)
    if not names:
        raise ValueError(f"the data's {label_column!r} column has no class names; pass --class_names")
    return list(names)


@torch.no_grad()
def accuracy(classifier, dataset, batch_size: int = 256) -> float:
    """Top-1 accuracy of ``classifier`` on a prepared labelled dataset."""
    classifier.eval()
    collate, correct = MIMCollator(), 0
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        correct += int((classifier(batch["pixel_values"]).logits.argmax(-1) == batch["labels"]).sum())
    return correct / len(dataset)


def masktune(args: MaskTuneArguments, training_args) -> dict:
    """Run R-AMT as described in the module docstring; returns the metrics written to ``results.json``."""
    from transformers import AutoImageProcessor, AutoTokenizer, CLIPModel

    clip = CLIPModel.from_pretrained(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    image_processor = AutoImageProcessor.from_pretrained(args.model)
    raw = load_image_dataset(args.data, "train")
    label_column = find_column(raw, LABEL_COLUMN_CANDIDATES, "label", required=True)
    names = label_names(raw, label_column, args.class_names)
    train = raw.select(few_shot_indices(raw[label_column], args.shots, training_args.seed))
    train = prepare_dataset(train, None, with_labels=True, transform=clip_transform(image_processor, train=True))

    targets = MaskTuningConfig().target_modules + (MLP_TARGETS if args.mask_mlp else ())
    config = MaskTuningConfig(target_modules=targets, gradient_dropout=not args.no_gradient_dropout,
                              base_model_name_or_path=args.model)
    tuned = apply_mask_tuning(clip, config)
    classifier = CLIPZeroShotClassifier(tuned, tokenizer, names, args.templates)
    evaluation = None
    metrics = {"shots": args.shots, "classes": len(names)}
    if args.eval_split:
        evaluation = load_image_dataset(args.data, args.eval_split)
        if args.eval_samples and len(evaluation) > args.eval_samples:
            evaluation = evaluation.shuffle(seed=training_args.seed).select(range(args.eval_samples))
        evaluation = prepare_dataset(evaluation, None, with_labels=True,
                                     transform=clip_transform(image_processor, train=False))
        metrics["zero_shot_accuracy"] = accuracy(classifier, evaluation)
    trainer = MaskTuningTrainer(model=classifier, args=training_args, train_dataset=train, data_collator=MIMCollator())
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    if losses:
        metrics.update(first_logged_loss=losses[0], last_logged_loss=losses[-1])
    tuned.save_pretrained(training_args.output_dir)
    metrics["dropped_fraction"] = tuned.dropped_fraction()
    if evaluation is not None:
        metrics["mask_tuned_accuracy"] = accuracy(classifier, evaluation)
    with open(os.path.join(training_args.output_dir, "results.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    write_card(training_args.output_dir, config, metrics, args.data)
    return metrics


def write_card(directory: str, config: MaskTuningConfig, metrics: dict, data: str) -> None:
    """A README.md that says what the masks are, which base model they belong to and how to load them."""
    results = "\n".join(f"| {key} | {value:.4f} |" if isinstance(value, float) else f"| {key} | {value} |"
                        for key, value in metrics.items())
    card = f"""---
library_name: hf_mim
base_model: {config.base_model_name_or_path}
tags: [hf_mim, r-amt, mask-tuning, clip]
---

# R-AMT masks for `{config.base_model_name_or_path}`

Binary masks on the frozen weights of `{config.base_model_name_or_path}` (layers named
{", ".join(config.target_modules)} of its `{config.tower}`), trained with Regularized Mask Tuning
(Zheng et al., ICCV 2023) by `hf-mim masktune` on `{data}`. Only the masks are stored (1 bit per weight, {len(config.layer_shapes)} layers);
the base model is not.

| metric | value |
|---|---|
{results}

```python
from transformers import CLIPModel
from hf_mim.tuners.ramt import MaskTunedModel

tuned = MaskTunedModel.from_pretrained(CLIPModel.from_pretrained("{config.base_model_name_or_path}"), "<this folder>")
clip = tuned.merge_and_unload()  # a plain CLIPModel with the masks multiplied into its weights
```
"""
    with open(os.path.join(directory, "README.md"), "w") as f:
        f.write(card)
