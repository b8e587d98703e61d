"""End-to-end pre-training throughput: ``hf-mim pretrain --method mae`` against transformers' ``run_mae.py`` recipe.

The transformers side is that example's pipeline written out here (not copied): ``load_dataset`` ->
``Dataset.with_transform`` applying torchvision transforms (RGB, RandomResizedCrop(scale=(0.2, 1)), flip,
ToTensor, Normalize) per image -> a ``pixel_values`` stacking collate function -> the default ``Trainer`` with
``ViTMAEForPreTraining``. The hf_mim side is :func:`hf_mim.training.pretrain.pretrain`, what ``hf-mim pretrain``
runs. Both get the same data, ViT config (hf_mim's converted to ``ViTMAEConfig``), batch, steps, threads, dataloader
workers, seed and optimiser settings.

Measured per pipeline, each run in a fresh process, pipelines interleaved (A B, B A, ...) and the median taken:

* ``train_ips``: images / s over ``--steps`` optimizer steps after ``--warmup`` steps (wall clock between the
  Trainer's step-end callbacks), i.e. everything the loop does: decode, augment, collate, mask, step, log;
* ``loader_ips``: images / s of the same Trainer's train dataloader alone (no model);
* ``stage_cpu_ms``: CPU time per image of decoding, augmenting and collating (``time.process_time``, one thread,
  no workers): much less sensitive to other load on the machine than wall time.

    python benchmarks/e2e.py --size tiny --image_size 32 --batch 64 --steps 30 --repeats 3 --output e2e.json
    python benchmarks/e2e.py --quick            # tiny smoke run (the test suite runs this)
    python benchmarks/report.py e2e.json        # RESULTS.md table
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

# the project's CIFAR-10 parquet folder, next to the repository (set CIFAR10_DIR where it lives elsewhere)
CIFAR = os.environ.get("CIFAR10_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "cifar10"))
PIPELINES = ("hf_mim", "transformers")


def parse(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=CIFAR, help="parquet folder / file or 'demo' (bundled Fashion-MNIST)")
    parser.add_argument("--size", default="tiny", choices=("tiny", "base"), help="ViT size (hf_mim/bench.py SIZES)")
    parser.add_argument("--image_size", type=int, default=32)
    parser.add_argument("--patch_size", type=int, default=None, help="default: 4 below 64 px, else 16")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30, help="timed optimizer steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed optimizer steps before them")
    parser.add_argument("--loader_batches", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", os.cpu_count() or 1)))
    parser.add_argument("--workers", type=int, default=2, help="dataloader workers (both pipelines)")
    parser.add_argument("--bf16", action="store_true", help="bf16 autocast (GPUs)")
    parser.add_argument("--stage_samples", type=int, default=256, help="images for the per-stage CPU costs (0: skip)")
    parser.add_argument("--quick", action="store_true", help="smoke run: demo data, 2 layers, 2+1 steps, 1 repeat")
    parser.add_argument("--output", default=None)
    parser.add_argument("--worker", choices=PIPELINES, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.quick:
        options.data, options.image_size, options.batch, options.steps, options.warmup = "demo", 16, 4, 2, 1
        options.loader_batches, options.repeats, options.workers, options.stage_samples = 2, 1, 0, 8
    if options.patch_size is None:
        options.patch_size = 4 if options.image_size < 64 else 16
    return options


def mae_config(options):
    """hf_mim MAEConfig of the chosen size; ``--quick`` keeps 2 encoder layers and 1 decoder layer."""
    import hf_mim
    from hf_mim.bench import SIZES

    hidden, layers, heads, mlp = SIZES[options.size]["enc"]
    d_hidden, d_layers, d_heads, d_mlp = SIZES[options.size]["dec"]
    if options.quick:
        layers, d_layers = 2, 1
    return hf_mim.MAEConfig(
        image_size=options.image_size, patch_size=options.patch_size, num_channels=3, hidden_size=hidden,
        num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=mlp, decoder_hidden_size=d_hidden,
        decoder_num_hidden_layers=d_layers, decoder_num_attention_heads=d_heads, decoder_intermediate_size=d_mlp,
        attn_implementation="sdpa",
    )


def training_kwargs(options, output_dir: str) -> dict:
    """The TrainingArguments both pipelines share (the MAE recipe's optimiser; no checkpoints, no reporting)."""
    import torch

    return dict(
        output_dir=output_dir, max_steps=options.warmup + options.steps, per_device_train_batch_size=options.batch,
        learning_rate=1.5e-4 * options.batch / 256, weight_decay=0.05, adam_beta2=0.95, lr_scheduler_type="cosine",
        warmup_steps=0.05, logging_steps=10, save_strategy="no", report_to="none", disable_tqdm=True, seed=0,
        dataloader_num_workers=options.workers, bf16=options.bf16, use_cpu=not torch.cuda.is_available(),
        dataloader_pin_memory=torch.cuda.is_available(), max_grad_norm=1.0,
    )


def step_timer(options):
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        """Wall time at every optimizer step end (synchronised on GPUs so a step's kernels are counted)."""

        def __init__(self):
            self.times = []

        def on_step_end(self, args, state, control, **kwargs):
            import torch

            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.times.append(time.perf_counter())

    return StepTimer()


def hf_mim_trainer(options, output_dir, timer):
    from hf_mim.training import MIMTrainingArguments
    from hf_mim.training.pretrain import PretrainArguments, pretrain

    config = mae_config(options)
    overrides = {k: getattr(config, k) for k in (
        "image_size", "patch_size", "num_channels", "hidden_size", "num_hidden_layers", "num_attention_heads",
        "intermediate_size", "decoder_hidden_size", "decoder_num_hidden_layers", "decoder_num_attention_heads",
        "decoder_intermediate_size")}
    args = PretrainArguments(method="mae", data=options.data, config_overrides=json.dumps(overrides))
    kwargs = training_kwargs(options, output_dir)
    kwargs.pop("learning_rate")  # hf_mim derives it from base_learning_rate 1.5e-4 x batch / 256, the same value
    trainer, _ = pretrain(args, MIMTrainingArguments(**kwargs), callbacks=[timer])
    return trainer


def example_transform(image_size: int, mean, std):
    """run_mae.py's torchvision pipeline (PIL in, float tensor out)."""
    from torchvision.transforms import (
        Compose,
        InterpolationMode,
        Lambda,
        Normalize,
        RandomHorizontalFlip,
        RandomResizedCrop,
        ToTensor,
    )

    return Compose([
        Lambda(lambda image: image.convert("RGB") if image.mode != "RGB" else image),
        RandomResizedCrop(image_size, scale=(0.2, 1.0), interpolation=InterpolationMode.BICUBIC),
        RandomHorizontalFlip(),
        ToTensor(),
        Normalize(mean=mean, std=std),
    ])


def example_collate(examples):
    import torch

    return {"pixel_values": torch.stack([example["pixel_values"] for example in examples])}


def transformers_trainer(options, output_dir, timer):
    import torch
    from transformers import Trainer, TrainingArguments, ViTImageProcessor, ViTMAEForPreTraining

    import hf_mim
    from hf_mim.data import IMAGE_COLUMN_CANDIDATES, find_column, load_image_dataset
    from hf_mim.hub.convert import to_transformers_vitmae

    config = to_transformers_vitmae(hf_mim.MAEForPreTraining(mae_config(options))).config
    torch.manual_seed(0)
    model = ViTMAEForPreTraining(config)
    processor = ViTImageProcessor(size={"height": options.image_size, "width": options.image_size})
    dataset = load_image_dataset(options.data, "train")  # the same parquet loading; decoding is the example's
    column = find_column(dataset, IMAGE_COLUMN_CANDIDATES, "image")
    transform = example_transform(options.image_size, processor.image_mean, processor.image_std)

    def preprocess(examples):
        examples["pixel_values"] = [transform(image) for image in examples[column]]
        return examples

    args = TrainingArguments(**training_kwargs(options, output_dir), remove_unused_columns=False,
                             label_names=["pixel_values"])
    trainer = Trainer(model=model, args=args, train_dataset=dataset.with_transform(preprocess),
                      data_collator=example_collate, processing_class=processor, callbacks=[timer])
    trainer.train()
    return trainer


def loader_rate(trainer, batches: int) -> float:
    iterator = iter(trainer.get_train_dataloader())
    next(iterator)  # worker start-up is not throughput
    start, seen = time.perf_counter(), 0
    for _ in range(batches):
        seen += next(iterator)["pixel_values"].shape[0]
    return seen / (time.perf_counter() - start)


def stage_costs(pipeline: str, options, trainer) -> dict:
    """CPU ms per image of decode / augment / collate, as each pipeline does them (one thread, no workers)."""
    import torch
    from datasets import Image as ImageFeature

    from hf_mim.data import IMAGE_COLUMN_CANDIDATES, find_column, load_image_dataset, open_image

    raw = load_image_dataset(options.data, "train").select(range(options.stage_samples))
    column = find_column(raw, IMAGE_COLUMN_CANDIDATES, "image")
    values = raw.cast_column(column, ImageFeature(decode=False))[column]
    if pipeline == "hf_mim":
        from hf_mim.data import build_transform

        decode, transform, collate = open_image, build_transform(trainer.processing_class, train=True), trainer.data_collator
    else:  # datasets decodes the image feature (with_transform sees PIL images), then the example's transforms
        feature, processor = ImageFeature(), trainer.processing_class
        decode = feature.decode_example
        transform = example_transform(options.image_size, processor.image_mean, processor.image_std)
        collate = example_collate
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        start = time.process_time()
        images = [decode(value) for value in values]
        decode_ms = (time.process_time() - start) * 1e3 / len(values)
        torch.manual_seed(0)
        start = time.process_time()
        tensors = [transform(image) for image in images]
        augment_ms = (time.process_time() - start) * 1e3 / len(values)
        start = time.process_time()
        for first in range(0, len(tensors), options.batch):
            collate([{"pixel_values": t} for t in tensors[first:first + options.batch]])
        collate_ms = (time.process_time() - start) * 1e3 / len(values)
    finally:
        torch.set_num_threads(threads)
    return {"decode": decode_ms, "augment": augment_ms, "collate": collate_ms}


def training_flops_per_image(options, device) -> float:
    """FLOPs of one MAE training step (forward + backward) per image, counted by torch's FlopCounterMode on the
    model both pipelines train (the same work, so one count serves both): the MFU numerator."""
    import torch

    import hf_mim
    from hf_mim.bench import count_flops

    config = mae_config(options)
    config._attn_implementation = "eager"  # the same FLOPs as SDPA, but FlopCounterMode misses CPU SDPA's backward
    model = hf_mim.MAEForPreTraining(config).to(device)
    pixel_values = torch.randn(2, 3, options.image_size, options.image_size, device=device)

    def step():
        model(pixel_values=pixel_values).loss.backward()

    return count_flops(step) / 2


def worker(options) -> dict:
    """One pipeline's measurements in this process."""
    import torch

    torch.set_num_threads(options.threads)
    timer = step_timer(options)
    with tempfile.TemporaryDirectory() as output_dir:
        build = hf_mim_trainer if options.worker == "hf_mim" else transformers_trainer
        trainer = build(options, output_dir, timer)
    times = timer.times[options.warmup - 1:] if options.warmup > 0 else timer.times
    losses = [entry["train_loss"] for entry in trainer.state.log_history if "train_loss" in entry]
    result = {
        "train_ips": options.batch * (len(times) - 1) / (times[-1] - times[0]),
        "images": options.batch * trainer.state.global_step,
        "loss": losses[-1] if losses else float("nan"),
        "loader_ips": loader_rate(trainer, options.loader_batches),
    }
    if torch.cuda.is_available():
        result["peak_memory_mb"] = torch.cuda.max_memory_allocated() / 2**20
    if options.stage_samples:
        result["stage_cpu_ms"] = stage_costs(options.worker, options, trainer)
    return result


def main(argv=None) -> dict:
    options = parse(argv)
    if options.worker:
        print("E2E_RESULT " + json.dumps(worker(options)))
        return {}
    argv = list(argv if argv is not None else sys.argv[1:])
    runs = {name: [] for name in PIPELINES}
    for repeat in range(options.repeats):
        order = PIPELINES if repeat % 2 == 0 else PIPELINES[::-1]  # interleaved: A B, B A, ...
        for name in order:
            env = {**os.environ, "OMP_NUM_THREADS": str(options.threads)}
            done = subprocess.run([sys.executable, __file__, *argv, "--worker", name], env=env, capture_output=True,
                                  text=True)
            line = next((x for x in done.stdout.splitlines() if x.startswith("E2E_RESULT ")), None)
            if done.returncode != 0 or line is None:
                raise RuntimeError(f"{name} run failed:\n{done.stderr[-3000:]}")
            runs[name].append(json.loads(line[len("E2E_RESULT "):]))
            print(f"repeat {repeat + 1}/{options.repeats} {name}: {runs[name][-1]['train_ips']:.1f} img/s", flush=True)
    summary = {}
    for name, results in runs.items():
        summary[name] = {
            "train_ips": statistics.median(r["train_ips"] for r in results),
            "loader_ips": statistics.median(r["loader_ips"] for r in results),
            "images": results[0]["images"],
            "loss": results[-1]["loss"],
            "loss_finite": all(math.isfinite(r["loss"]) for r in results),
            "runs": results,
        }
        if "stage_cpu_ms" in results[0]:
            summary[name]["stage_cpu_ms"] = {k: statistics.median(r["stage_cpu_ms"][k] for r in results)
                                             for k in results[0]["stage_cpu_ms"]}
    import torch

    from hf_mim.bench import environment, peak_bf16_tflops

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    flops = training_flops_per_image(options, device)
    peak = peak_bf16_tflops(device) if options.bf16 else None
    for row in summary.values():
        row["mfu"] = row["train_ips"] * flops / (peak * 1e12) if peak else None
    report = {
        "e2e": summary,
        "train_flops_per_image": flops,
        "ratio": summary["hf_mim"]["train_ips"] / summary["transformers"]["train_ips"],
        "settings": {k: v for k, v in vars(options).items() if k not in ("worker", "output")},
        "environment": environment(device),
    }
    if options.output:
        with open(options.output, "w") as handle:
            json.dump(report, handle, indent=1)
    from report import e2e_table

    print(e2e_table([report]))
    return report


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
