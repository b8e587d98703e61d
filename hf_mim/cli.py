"""``hf-mim`` command line: pretrain | demo | visualize | knn | probe | finetune | push | convert | bench.

Each command is a thin layer over the Python API of the same name; ``hf-mim <command> --help`` lists its flags.
"""

import argparse
import logging
import sys
import time
from pathlib import Path

logger = logging.getLogger("hf_mim")


def _setup_logging() -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    import transformers

    transformers.utils.logging.set_verbosity_warning()


def _peek(argv: list[str], flag: str, default: str) -> str:
    for index, value in enumerate(argv):
        if value == flag and index + 1 < len(argv):
            return argv[index + 1]
        if value.startswith(flag + "="):
            return value.split("=", 1)[1]
    return default


def cmd_pretrain(argv: list[str]) -> None:
    """Pre-train a method with transformers.Trainer (all TrainingArguments flags are accepted)."""
    from transformers import HfArgumentParser

    from hf_mim.registry import get_method
    from hf_mim.training.arguments import MIMTrainingArguments
    from hf_mim.training.pretrain import PretrainArguments, pretrain

    method = _peek(argv, "--method", "mae")
    spec = get_method(method)
    parser = HfArgumentParser((PretrainArguments, MIMTrainingArguments), prog="hf-mim pretrain")
    parser.set_defaults(output_dir=f"outputs/{spec.name}", **spec.training_defaults)
    args, training_args = parser.parse_args_into_dataclasses(argv)
    trainer, result = pretrain(args, training_args)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    if losses:
        print(f"training loss: first logged {losses[0]:.4f}, last logged {losses[-1]:.4f}")
    print(f"model, processor and remote code saved to {training_args.output_dir}")


def _demo_images(processor, count: int = 8):
    import torch

    from hf_mim.data import load_image_dataset, prepare_dataset

    test = prepare_dataset(load_image_dataset(None, split="test"), processor, train=False)
    picks = [test[i * (len(test) // count)]["pixel_values"] for i in range(count)]
    return torch.stack(picks)


def cmd_demo(argv: list[str]) -> None:
    """End-to-end demo on the bundled Fashion-MNIST subset: pre-train a small MAE on the CPU, save it with its
    processor, evaluate with kNN against a random-init encoder, and write a reconstruction grid."""
    parser = argparse.ArgumentParser(prog="hf-mim demo", description=cmd_demo.__doc__)
    parser.add_argument("--output_dir", default="hf_mim_demo")
    parser.add_argument("--method", default="mae")
    parser.add_argument("--epochs", type=float, default=6.0)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)

    import torch

    from hf_mim.evaluation.visualize import save_reconstruction_grid
    from hf_mim.registry import get_method
    from hf_mim.training.arguments import MIMTrainingArguments
    from hf_mim.training.pretrain import PretrainArguments, pretrain

    start = time.time()
    spec = get_method(options.method)
    out = Path(options.output_dir)
    args = PretrainArguments(method=spec.name, data=None, size="demo", crop_scale_min=0.5)
    training_args = MIMTrainingArguments(
        output_dir=str(out),
        num_train_epochs=options.epochs,
        per_device_train_batch_size=options.batch_size,
        save_strategy="epoch",
        save_total_limit=1,
        logging_steps=10,
        seed=options.seed,
        disable_tqdm=False,
        **{**spec.training_defaults, "base_learning_rate": 1e-3 if spec.name == "mae" else 5e-4},
    )
    print(f"[1/3] pre-training a {spec.name} model on the bundled Fashion-MNIST subset (4,000 images)...")
    trainer, _ = pretrain(args, training_args)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]

    print("[2/3] writing reconstructions of held-out test images...")
    model, processor = trainer.model.float().eval(), trainer.processing_class
    images = _demo_images(processor)
    mask_inputs = {}
    if spec.name == "mae":
        mask_inputs["noise"] = torch.rand(images.shape[0], model.config.num_patches, generator=torch.Generator().manual_seed(0))
    grid_path = out / "reconstructions.png"
    recon = save_reconstruction_grid(model, processor, images, grid_path, **mask_inputs)

    print("[3/3] kNN evaluation (k=20) of the encoder on the demo test split...")
    knn_line = _demo_knn(spec, out, processor)
    minutes = (time.time() - start) / 60
    print()
    print(f"done in {minutes:.1f} min")
    if losses:
        print(f"  training loss      {losses[0]:.4f} (first log) -> {losses[-1]:.4f} (last log)")
    print(f"  test reconstruction loss {recon.loss:.4f}")
    if knn_line:
        print(f"  {knn_line}")
    print(f"  model + processor  {out}/  (AutoModel.from_pretrained('{out}') after `import hf_mim`)")
    print(f"  reconstructions    {grid_path}")
    print(f"  training logs      {out}/trainer_state.json")


def _demo_knn(spec, out: Path, processor) -> str | None:
    try:
        from hf_mim.evaluation.knn import knn_accuracy_for_checkpoint
    except ImportError:
        return None
    from transformers import AutoModel

    trained = knn_accuracy_for_checkpoint(AutoModel.from_pretrained(out), processor, data=None)
    random_init = knn_accuracy_for_checkpoint(spec.model_class(AutoModel.from_pretrained(out).config), processor, data=None)
    return f"kNN top-1 (k=20)   {trained:.1%} pre-trained vs {random_init:.1%} random init"


def cmd_visualize(argv: list[str]) -> None:
    """Write reconstruction grids (original / masked / reconstruction / reconstruction + visible) for images."""
    parser = argparse.ArgumentParser(prog="hf-mim visualize", description=cmd_visualize.__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("images", nargs="+", help="image files, folders, or a dataset source (parquet / name)")
    parser.add_argument("--output", default="reconstructions.png")
    parser.add_argument("--mask_ratio", type=float, default=None)
    parser.add_argument("--max_images", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    from hf_mim.evaluation.visualize import visualize_checkpoint

    path = visualize_checkpoint(
        options.checkpoint, options.images, options.output, options.mask_ratio, options.max_images, options.seed
    )
    print(f"wrote {path}")


COMMANDS = {
    "pretrain": cmd_pretrain,
    "demo": cmd_demo,
    "visualize": cmd_visualize,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: hf-mim <command> [options]\n\ncommands:")
        for name, function in COMMANDS.items():
            print(f"  {name:<10} {function.__doc__.splitlines()[0]}")
        return 0
    command = argv[0]
    if command not in COMMANDS:
        print(f"hf-mim: unknown command {command!r}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    _setup_logging()
    COMMANDS[command](argv[1:])
    return 0


if __name__ == "__main__":
    sys.exit(main())
