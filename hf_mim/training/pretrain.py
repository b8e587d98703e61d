"""``pretrain()``: the Python API behind ``hf-mim pretrain``.

Builds (or loads) a model, its processor and the data, then trains with :class:`MIMTrainer`. The result in
``output_dir`` is a normal transformers checkpoint (safetensors + config + processor + remote code).
"""

import inspect
import json
import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
import transformers
from transformers import AutoConfig, TrainerCallback

from hf_mim.data import (
    DataError,
    MIMCollator,
    load_evaluation_splits,
    load_image_dataset,
    prepare_dataset,
    read_image,
    subset,
    to_mode,
    undecoded,
)
from hf_mim.registry import RECIPE_FIELD, RECIPES, check_config_fields, get_method
from hf_mim.training.arguments import MIMTrainingArguments
from hf_mim.training.trainer import MIMTrainer, check_output_dir, checkpoint_to_resume, seed_run

logger = logging.getLogger(__name__)

GRAY_MODES = ("L", "I", "I;16", "I;16L", "I;16B", "I;16N", "F", "1", "LA")


@dataclass
class PretrainArguments:
    """What to train on and which model to build (``hf-mim pretrain --help`` lists these and every
    ``TrainingArguments`` flag)."""

    method: str = field(default="mae", metadata={"help": "Method name, e.g. mae or simmim."})
    data: str | None = field(
        default=None,
        metadata={"help": "Bundled demo data when omitted; else an image folder, parquet file(s) or dataset name."},
    )
    validation_data: str | None = field(default=None, metadata={"help": "Separate validation source (same kinds)."})
    train_split: str = field(default="train", metadata={"help": "Split of --data to train on."})
    validation_split: str | None = field(default=None, metadata={"help": "Split of --data used for validation."})
    image_column: str | None = field(default=None, metadata={"help": "Image (or video) column (auto-detected)."})
    caption_column: str | None = field(
        default=None,
        metadata={"help": "Caption column for text-guided methods (tgm); default 'caption', else captions derived from class names."},
    )
    streaming: bool = field(default=False, metadata={"help": "Stream the training data (needs --max_steps)."})
    shuffle_buffer_size: int = field(
        default=10_000, metadata={"help": "With --streaming: shuffle shard order and a buffer of this many images (0: off)."}
    )
    model_name_or_path: str | None = field(default=None, metadata={"help": "Continue from this checkpoint."})
    size: str = field(default="base", metadata={"help": "Config preset: base (paper), demo or tiny."})
    config_overrides: str | None = field(
        default=None, metadata={"help": 'JSON of config fields, e.g. \'{"mask_ratio": 0.9, "image_size": 64}\'.'}
    )
    processor_overrides: str | None = field(
        default=None, metadata={"help": 'JSON of processor fields, e.g. \'{"frame_stride": 2}\' for video.'}
    )
    image_mean: list[float] | None = field(default=None, metadata={"help": "Per-channel mean (default: estimated)."})
    image_std: list[float] | None = field(default=None, metadata={"help": "Per-channel std (default: estimated)."})
    crop_scale_min: float = field(default=0.2, metadata={"help": "RandomResizedCrop lower scale (MAE: 0.2)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Use a seeded random subset of N training images."})
    online_probe_steps: int = field(
        default=0, metadata={"help": "Every N steps report kNN and linear-probe accuracy on labelled data (0: off)."}
    )
    probe_data: str | None = field(
        default=None, metadata={"help": "Labelled data for the online probe (default: --data, which needs labels)."}
    )
    probe_samples: int = field(default=2000, metadata={"help": "Images per probe split (train / test)."})
    reconstruction_steps: int = field(
        default=0, metadata={"help": "Every N steps write reconstruction grids (PNG + TensorBoard) (0: off)."}
    )


def detect_num_channels(dataset, image_column: str, sample: int = 64) -> int:
    """1 for grayscale data, 3 otherwise (RGBA / palette images are converted to RGB), decided on a seeded sample
    of up to ``sample`` readable images: a folder mixing both trains on 3 channels, with a warning."""
    dataset = undecoded(dataset, image_column)
    rows = subset(dataset, sample) if hasattr(dataset, "select") else dataset.take(sample)
    images = [read_image(row[image_column]) for row in rows]
    channels = Counter(1 if image.mode in GRAY_MODES else 3 for image in images if image is not None)
    if not channels:
        raise DataError(f"none of {len(images)} sampled images could be read: check the data")
    if len(channels) > 1:
        logger.warning(
            "the data mixes grayscale (%d) and colour (%d) images in a sample of %d: training on 3 channels "
            "(grayscale repeated); pass --config_overrides '{\"num_channels\": 1}' to train on grayscale",
            channels[1], channels[3], len(images),
        )
        return 3
    return next(iter(channels))


def estimate_channel_stats(dataset, image_column: str, num_channels: int, limit: int = 2000):
    """Per-channel mean/std of ``[0, 1]`` pixel values over up to ``limit`` images (so the processor can carry
    statistics of non-ImageNet data such as grayscale or multispectral sets)."""
    mode = {1: "L", 3: "RGB"}.get(num_channels)
    total, total_sq, count = torch.zeros(num_channels, dtype=torch.float64), torch.zeros(num_channels, dtype=torch.float64), 0
    dataset = undecoded(dataset, image_column)
    rows = subset(dataset, limit) if hasattr(dataset, "select") else dataset.take(limit)
    for row in rows:
        image = read_image(row[image_column])
        if image is None:
            continue
        image = to_mode(image, mode)
        pixels = torch.tensor(np.asarray(image), dtype=torch.float64).reshape(-1, num_channels) / 255.0
        total += pixels.sum(0)
        total_sq += (pixels**2).sum(0)
        count += pixels.shape[0]
    if count == 0:
        raise DataError("no readable images to estimate channel statistics from")
    mean = total / count
    std = (total_sq / count - mean**2).clamp(min=1e-12).sqrt()
    return [round(float(v), 4) for v in mean], [round(float(v), 4) for v in std]


def build_model_and_processor(args: PretrainArguments, train_dataset, image_column: str | None = None):
    """The model and processor ``args`` describe; what the data says (e.g. grayscale images -> one channel and
    their statistics) comes from the method's modality (``spec.data.config_from_data``)."""
    spec = get_method(args.method)
    overrides = json.loads(args.config_overrides) if args.config_overrides else {}
    processor_overrides = json.loads(args.processor_overrides) if args.processor_overrides else {}
    if args.model_name_or_path:
        check_config_fields(type(AutoConfig.from_pretrained(args.model_name_or_path)), overrides)
        model = getattr(transformers, spec.auto_pretraining).from_pretrained(args.model_name_or_path, **overrides)
        try:
            processor = spec.data.auto_class("processor").from_pretrained(args.model_name_or_path)
        except OSError:
            processor = spec.make_processor(model.config, **processor_overrides)
        return spec, model, processor
    if (args.image_mean is None) != (args.image_std is None):
        raise ValueError("give both --image_mean and --image_std")
    stats = {}
    if spec.data.config_from_data is not None:
        from_data, stats = spec.data.config_from_data(
            train_dataset, image_column, overrides, estimate_stats=args.image_mean is None
        )
        overrides = {**from_data, **overrides}
    config = spec.make_config(args.size, **overrides)
    if args.image_mean is not None:
        stats = {"image_mean": args.image_mean, "image_std": args.image_std}
    processor = spec.make_processor(config, **{**stats, **processor_overrides})
    model = spec.pretraining_class(config)
    return spec, model, processor


def load_training_data(args: PretrainArguments, training_args: MIMTrainingArguments):
    spec = get_method(args.method)
    train = spec.load_data(args.data, split=args.train_split, streaming=args.streaming)
    if args.max_train_samples is not None and not args.streaming:
        train = subset(train, args.max_train_samples)
    if args.streaming and training_args.max_steps <= 0:
        raise ValueError("streaming datasets have no length: set --max_steps")
    validation = None
    if args.validation_data is not None or args.validation_split is not None:
        validation = spec.load_data(
            args.validation_data if args.validation_data is not None else args.data,
            split=args.validation_split or "train",
        )
    return train, validation


def prepare_stream(train, args: PretrainArguments, training_args: MIMTrainingArguments):
    """Set a streaming dataset up for several processes and for exact resumes, with the libraries' own mechanisms:

    * order: ``IterableDataset.shuffle(seed, buffer_size)`` (shard order + a sample buffer); Trainer calls the
      dataloader's ``set_epoch``, which accelerate forwards to the dataset, so every pass is reshuffled
      deterministically.
    * split across processes: each process reads its own shards. We do not call
      ``datasets.distributed.split_dataset_by_node`` ourselves because accelerate would split the result again
      (with ``dispatch_batches=False`` it calls ``dataset.shard(world_size, rank)`` when there are at least
      ``world_size`` shards, else it keeps every ``world_size``-th batch): a stream of 4 shards on 2 processes would
      lose half its data. We set ``dispatch_batches=False`` (accelerate's default for streams, ``True``, reads
      everything on rank 0 and sends slices) and let accelerate make the split, which is the whole-shard split
      ``split_dataset_by_node`` makes when the shard count divides by the number of processes.
    * resume: Trainer's data skip (``ignore_data_skip=False``): the resumed run replays the stream past the batches
      already trained on, then restores the checkpoint's RNG states, so it sees the same samples with the same
      augmentations as an uninterrupted run (the stream has no random access, so skipping costs reading them).
    """
    if args.shuffle_buffer_size > 0:
        train = train.shuffle(seed=training_args.seed, buffer_size=args.shuffle_buffer_size)
    if training_args.world_size > 1 and training_args.accelerator_config.dispatch_batches is None:
        training_args.accelerator_config.dispatch_batches = False
    return train


def probe_datasets(args: PretrainArguments, processor):
    """Small labelled train / test sets for the online probe: the source's test (or validation) split when it has
    one, else a held-out part of its train split."""
    spec = get_method(args.method)
    source = args.probe_data if args.probe_data is not None else args.data
    train, test = load_evaluation_splits(source, load=spec.load_data)
    return tuple(
        spec.prepare_data(subset(part, args.probe_samples), processor, train=False, column=args.image_column, with_labels=True)
        for part in (train, test)
    )


def monitoring_callbacks(args: PretrainArguments, spec, processor) -> list:
    from hf_mim.training.callbacks import OnlineProbeCallback, ReconstructionImageCallback

    callbacks = []
    if args.online_probe_steps > 0:
        probe_train, probe_test = probe_datasets(args, processor)
        callbacks.append(OnlineProbeCallback(probe_train, probe_test, every_n_steps=args.online_probe_steps))
    if args.reconstruction_steps > 0:
        if spec is not None and not spec.data.reconstruction_images:
            raise ValueError(f"--reconstruction_steps draws image grids; {spec.name} reads {spec.data.name} data: leave it at 0")
        source = args.probe_data if args.probe_data is not None else args.data
        images = prepare_dataset(subset(load_image_dataset(source, "train"), 16), processor, train=False)
        readable = [image for image in (images[i]["pixel_values"] for i in range(len(images))) if image is not None]
        if not readable:
            raise DataError(f"none of 16 images of {source or 'demo'} could be read for the reconstruction grids")
        pixel_values = torch.stack(readable[:8])
        callbacks.append(ReconstructionImageCallback(pixel_values, processor, every_n_steps=args.reconstruction_steps))
    return callbacks


def caption_arguments(spec, caption_column: str | None) -> dict:
    """``--caption_column`` for the data preparer of a method that reads captions; refused for the others."""
    if caption_column is None:
        return {}
    if "caption_column" not in inspect.signature(spec.prepare_dataset or spec.data.prepare_dataset).parameters:
        raise ValueError(f"--caption_column is only read by methods trained on captions (tgm), not by {spec.name}")
    return {"caption_column": caption_column}


def pretrain(args: PretrainArguments, training_args: MIMTrainingArguments, callbacks=None):
    """Train and save; returns ``(trainer, train_result)``. Resumes from the last checkpoint in ``output_dir``
    when ``resume_from_checkpoint`` is True (or from the given path)."""
    check_output_dir(training_args.output_dir)
    captions = caption_arguments(get_method(args.method), args.caption_column)
    resume = checkpoint_to_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    train_raw, validation_raw = load_training_data(args, training_args)
    seed_run(training_args)
    spec, model, processor = build_model_and_processor(args, train_raw, args.image_column)
    if spec.name in RECIPES:  # a transformers model: its saved config says which recipe trained it (cards, push)
        setattr(model.config, RECIPE_FIELD, spec.name)
    if args.streaming:  # after the channel detection in build_model_and_processor, which reads the first images
        train_raw = prepare_stream(train_raw, args, training_args)
    scale = (args.crop_scale_min, 1.0)
    train = spec.prepare_data(
        train_raw, processor, train=True, column=args.image_column,
        transform=spec.make_transform(processor, train=True, scale=scale), **captions,
    )
    validation = None
    if validation_raw is not None:
        validation = spec.prepare_data(
            validation_raw, processor, train=False, column=args.image_column,
            transform=spec.make_transform(processor, train=False, scale=scale), **captions,
        )
    if spec.collator is not None:
        collator = spec.collator(model.config, processor)
    else:
        collator = spec.data.collator() if spec.data.collator is not None else MIMCollator()
    callbacks = list(callbacks or []) + (spec.callbacks() if spec.callbacks else []) + monitoring_callbacks(args, spec, processor)
    if isinstance(collator, TrainerCallback):  # a collator that follows the training step (MEAP's step-seeded masks)
        callbacks.append(collator)
    trainer = MIMTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=validation,
        data_collator=collator,
        processing_class=processor,
        callbacks=callbacks,
    )
    logger.info(
        "%s: %.2fM parameters, global batch %d, learning rate %.3g",
        spec.name,
        sum(p.numel() for p in model.parameters()) / 1e6,
        training_args.global_batch_size,
        training_args.learning_rate,
    )
    result = trainer.train(resume_from_checkpoint=resume)
    if getattr(collator, "skipped", 0):
        logger.warning("skipped %d unreadable sample(s) in total during training", collator.skipped)
    trainer.save_model()
    trainer.save_state()
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    if validation is not None:
        metrics = trainer.evaluate()
        trainer.log_metrics("eval", metrics)
        trainer.save_metrics("eval", metrics)
    return trainer, result
