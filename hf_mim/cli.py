"""``hf-mim`` command line: pretrain | demo | visualize | knn | probe | finetune | masktune | push | convert | bench | sae |
circuits.

Each command is a thin layer over the Python API of the same name; ``hf-mim <command> --help`` lists its flags.
"""

import argparse
import logging
import sys
import time
from pathlib import Path

logger = logging.getLogger("hf_mim")


def _setup_logging() -> None:
    """Log hf_mim at INFO and transformers at WARNING, without importing transformers (``--help`` stays instant):
    transformers reads ``TRANSFORMERS_VERBOSITY`` when it first logs; a value the user set is kept."""
    import os

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    if "TRANSFORMERS_VERBOSITY" not in os.environ:
        os.environ["TRANSFORMERS_VERBOSITY"] = "warning"
        if "transformers" in sys.modules:  # already imported (hf_mim.cli.main called from Python)
            sys.modules["transformers"].utils.logging.set_verbosity_warning()


def _parse(parser, argv: list[str]):
    """Parse a command's arguments, then register every method with the transformers Auto classes: the console
    script defers that (see ``hf_mim/__init__.py``) so that ``--help`` and argument errors come back at once."""
    if hasattr(parser, "parse_args_into_dataclasses"):
        parsed = parser.parse_args_into_dataclasses(argv)
    else:
        parsed = parser.parse_args(argv)
    from hf_mim.registry import discover

    discover()
    return parsed


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
    args, training_args = _parse(parser, argv)
    trainer, result = pretrain(args, training_args)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    if losses:
        print(f"training loss: first logged {losses[0]:.4f}, last logged {losses[-1]:.4f}")
    print(f"model, processor and remote code saved to {training_args.output_dir}")


def cmd_sae(argv: list[str]) -> None:
    """Train a (gradient) TopK sparse autoencoder on one layer of a causal LM (g-SAE; --beta 0: plain TopK SAE)."""
    from transformers import HfArgumentParser

    from hf_mim.registry import get_method
    from hf_mim.training.arguments import MIMTrainingArguments
    from hf_mim.training.pretrain import PretrainArguments
    from hf_mim.training.sae import SAEArguments, train_sae

    parser = HfArgumentParser((SAEArguments, PretrainArguments, MIMTrainingArguments), prog="hf-mim sae")
    parser.set_defaults(output_dir="outputs/gsae", method="gsae", **get_method("gsae").training_defaults)
    sae_args, args, training_args = _parse(parser, argv)
    trainer, result = train_sae(sae_args, args, training_args)
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    if losses:
        print(f"training loss: first logged {losses[0]:.4f}, last logged {losses[-1]:.4f}")
    print(f"SAE, feature extractor and remote code saved to {training_args.output_dir}")


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
    parser.add_argument("--knn_train_samples", type=int, default=None, help="cap the kNN memory bank (default: all)")
    options = _parse(parser, argv)

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
        **{**spec.training_defaults, "base_learning_rate": 1.5e-3 if spec.name == "mae" else 5e-4},
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
    knn_line = _demo_knn(spec, out, processor, options.knn_train_samples)
    minutes = (time.time() - start) / 60
    print()
    print(f"done in {minutes:.1f} min")
    if losses:
        print(f"  training loss      {losses[0]:.4f} (first log) -> {losses[-1]:.4f} (last log)")
    print(f"  test reconstruction loss {recon.loss:.4f}")
    print(f"  {knn_line}")
    print(f"  model + processor  {out}/  (AutoModel.from_pretrained('{out}') after `import hf_mim`)")
    print(f"  reconstructions    {grid_path}")
    print(f"  training logs      {out}/trainer_state.json")


def _demo_knn(spec, out: Path, processor, max_train=None) -> str:
    from transformers import AutoModel

    from hf_mim.evaluation.knn import knn_accuracy_for_checkpoint

    encoder = AutoModel.from_pretrained(out)
    # mean-pooled patch features: after minutes of MAE training the patch tokens hold more of what was learnt than
    # the cls token (demo model, step 150: +13.4 kNN points over random init mean-pooled, +8.9 with cls); MAE
    # fine-tuning pools the same way
    knn = {"data": None, "max_train": max_train, "pooling": "mean"}
    trained = knn_accuracy_for_checkpoint(encoder, processor, **knn)
    random_init = knn_accuracy_for_checkpoint(spec.model_class(encoder.config), processor, **knn)
    return f"kNN top-1 (k=20, mean-pooled)   {trained:.1%} pre-trained vs {random_init:.1%} random init"


def cmd_visualize(argv: list[str]) -> None:
    """Write reconstruction grids (original / masked / reconstruction / reconstruction + visible) for images."""
    parser = argparse.ArgumentParser(prog="hf-mim visualize", description=cmd_visualize.__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("images", nargs="+", help="image files, folders, or a dataset source (parquet / name)")
    parser.add_argument("--output", default="reconstructions.png")
    parser.add_argument("--mask_ratio", type=float, default=None)
    parser.add_argument("--max_images", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    options = _parse(parser, argv)
    from hf_mim.evaluation.visualize import visualize_checkpoint

    path = visualize_checkpoint(
        options.checkpoint, options.images, options.output, options.mask_ratio, options.max_images, options.seed
    )
    print(f"wrote {path}")


TEST_SPLIT_HELP = "default: the test split, else validation, else a seeded fifth of the train split held out"


def _frozen_eval_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=doc)
    parser.add_argument("checkpoint", help="hf_mim checkpoint (pre-training or encoder), or a transformers vision model")
    parser.add_argument("--data", default=None, help="labelled data (default: the bundled demo data)")
    parser.add_argument("--train_split", default="train")
    parser.add_argument("--test_split", default=None, help=TEST_SPLIT_HELP)
    parser.add_argument("--image_column", default=None)
    parser.add_argument("--label_column", default=None)
    parser.add_argument("--pooling", choices=["cls", "mean"], default=None, help="default: cls if the encoder has one")
    parser.add_argument("--batch_size", type=int, default=256)
    parser.add_argument("--max_train_samples", type=int, default=None)
    parser.add_argument("--max_test_samples", type=int, default=None)
    parser.add_argument("--device", default=None)
    parser.add_argument("--output", default=None, help="write the metrics as JSON here")
    parser.add_argument("--random_init", action="store_true", help="evaluate a randomly initialised encoder instead")
    return parser


def _frozen_eval_data(options):
    from transformers import AutoModel

    from hf_mim.data import check_local_path, load_evaluation_splits, subset
    from hf_mim.modalities import modality_for_config

    check_local_path(options.checkpoint, "a saved checkpoint folder or a Hub model id")
    encoder = AutoModel.from_pretrained(options.checkpoint)
    if options.random_init:
        encoder = type(encoder)(encoder.config)
    modality = modality_for_config(encoder.config)
    processor = modality.auto_class("processor").from_pretrained(options.checkpoint)
    splits = []
    data_splits = load_evaluation_splits(options.data, options.train_split, options.test_split, load=modality.load_dataset)
    for data, limit in zip(data_splits, (options.max_train_samples, options.max_test_samples)):
        if limit:
            data = subset(data, limit)
        splits.append(
            modality.prepare_dataset(data, processor, train=False, column=options.image_column,
                                     label_column=options.label_column, with_labels=True)
        )
    if options.device:
        encoder.to(options.device)
    return encoder, splits[0], splits[1]


def _report(metrics: dict, output: str | None, data: str | None) -> None:
    """Print the metrics; with ``output``, write them as JSON with the data they were measured on (for cards)."""
    import json

    for name, value in metrics.items():
        print(f"{name}: {value:.4f}" if isinstance(value, float) else f"{name}: {value}")
    if output:
        Path(output).write_text(json.dumps({**metrics, "eval_dataset": data or "demo"}, indent=2) + "\n")
        print(f"wrote {output}")


def cmd_knn(argv: list[str]) -> None:
    """Weighted kNN (cosine, T=0.07, k=20 and 200) top-1 accuracy of a frozen encoder."""
    parser = _frozen_eval_parser("hf-mim knn", cmd_knn.__doc__)
    parser.add_argument("--k", type=int, nargs="+", default=[20, 200])
    parser.add_argument("--temperature", type=float, default=0.07)
    options = _parse(parser, argv)
    from hf_mim.evaluation.knn import knn_evaluate

    encoder, train, test = _frozen_eval_data(options)
    metrics = knn_evaluate(encoder, train, test, ks=tuple(options.k), temperature=options.temperature,
                           pooling=options.pooling, batch_size=options.batch_size, device=options.device)
    _report(metrics, options.output, options.data)


def cmd_probe(argv: list[str]) -> None:
    """Linear probe (frozen encoder, BatchNorm neck, SGD + cosine, MAE protocol) top-1 accuracy."""
    parser = _frozen_eval_parser("hf-mim probe", cmd_probe.__doc__)
    parser.add_argument("--epochs", type=int, default=90)
    parser.add_argument("--base_lr", type=float, default=0.1)
    options = _parse(parser, argv)
    from hf_mim.evaluation.probe import linear_probe_evaluate

    encoder, train, test = _frozen_eval_data(options)
    metrics = linear_probe_evaluate(encoder, train, test, pooling=options.pooling, batch_size=options.batch_size,
                                    device=options.device, epochs=options.epochs, base_lr=options.base_lr)
    _report(metrics, options.output, options.data)


def cmd_finetune(argv: list[str]) -> None:
    """Fine-tune a pre-trained encoder for classification (layer-wise lr decay, drop path, optional --lora)."""
    from transformers import HfArgumentParser

    from hf_mim.evaluation.finetune import FinetuneArguments, finetune
    from hf_mim.training.arguments import MIMTrainingArguments

    lora = "--lora" in argv and _peek(argv, "--lora", "true").lower() not in ("false", "0", "no")
    parser = HfArgumentParser((FinetuneArguments, MIMTrainingArguments), prog="hf-mim finetune")
    parser.set_defaults(  # LoRA adapters get their own folder: never beside (or over) a full fine-tune
        output_dir="outputs/finetune-lora" if lora else "outputs/finetune", base_learning_rate=5e-4,
        adam_beta2=0.999, eval_strategy="epoch", save_strategy="epoch", label_names=["labels"],
        prediction_loss_only=False,
    )
    if argv and not argv[0].startswith("-"):  # positional checkpoint
        argv = ["--checkpoint", argv[0], *argv[1:]]
    args, training_args = _parse(parser, argv)
    _, metrics = finetune(args, training_args)
    _report({k: v for k, v in metrics.items() if k.startswith("eval_")}, args.output, args.data)
    out = Path(training_args.output_dir)
    if args.lora:
        print(f"LoRA adapters saved to {out}, the merged model to {out / 'merged'}")
    else:
        print(f"fine-tuned model saved to {out}")


def cmd_masktune(argv: list[str]) -> None:
    """Few-shot R-AMT: train binary masks on a frozen CLIP's image encoder, save only the masks (1 bit/weight)."""
    from transformers import HfArgumentParser, TrainingArguments

    from hf_mim.tuners.ramt.masktune import MaskTuneArguments, masktune

    parser = HfArgumentParser((MaskTuneArguments, TrainingArguments), prog="hf-mim masktune")
    parser.set_defaults(  # configs/trainers/MASK/vit_b16.yaml: Adam lr 8e-5, no weight decay, cosine, batch 32, 30 epochs
        output_dir="outputs/masktune", learning_rate=8e-5, weight_decay=0.0, lr_scheduler_type="cosine",
        per_device_train_batch_size=32, num_train_epochs=30, max_grad_norm=0.0, save_strategy="no",
        remove_unused_columns=False, report_to="none", logging_steps=10,
    )
    args, training_args = _parse(parser, argv)
    metrics = masktune(args, training_args)
    print(", ".join(f"{key} {value:.4f}" if isinstance(value, float) else f"{key} {value}"
                    for key, value in metrics.items()))
    print(f"masks, tuner config and card saved to {training_args.output_dir}")


def cmd_push(argv: list[str]) -> None:
    """Publish a checkpoint folder to the Hub with a filled-in model card and a reconstruction image."""
    parser = argparse.ArgumentParser(prog="hf-mim push", description=cmd_push.__doc__)
    parser.add_argument("checkpoint")
    parser.add_argument("repo_id")
    parser.add_argument("--results", nargs="*", default=None, help="JSON files of hf-mim knn / probe / finetune")
    parser.add_argument("--dataset", default=None, help="Hub id of the pre-training dataset, for the card")
    parser.add_argument("--eval_dataset", default=None,
                        help="Hub id of the data the results were measured on (default: recorded in the results)")
    parser.add_argument("--images", nargs="+", default=None,
                        help="image files, folders or a dataset for the card's reconstructions (default: demo images)")
    parser.add_argument("--license", default=None, help="Hub licence id (default: the method's)")
    parser.add_argument("--private", action="store_true")
    parser.add_argument("--revision", default=None)
    parser.add_argument("--token", default=None)
    parser.add_argument("--no_reconstructions", action="store_true")
    options = _parse(parser, argv)
    from hf_mim.hub.push import push_checkpoint

    url = push_checkpoint(
        options.checkpoint, options.repo_id, results=options.results, dataset=options.dataset,
        license=options.license, private=options.private or None, token=options.token, revision=options.revision,
        reconstructions=not options.no_reconstructions, images=options.images, eval_dataset=options.eval_dataset,
    )
    print(f"pushed {options.checkpoint} to {options.repo_id}: {url}")


def cmd_convert(argv: list[str]) -> None:
    """Convert official checkpoints (facebookresearch/mae, timm *.mae, microsoft/SimMIM, transformers ViTMAE / ViT
    MIM) into hf_mim checkpoints, or an hf_mim MAE into transformers ViTMAEForPreTraining (--to transformers)."""
    import json

    parser = argparse.ArgumentParser(prog="hf-mim convert", description=cmd_convert.__doc__)
    parser.add_argument("source", help="a .pth / .pt / .bin / .safetensors file or a checkpoint folder")
    parser.add_argument("output_dir")
    parser.add_argument("--from", dest="source_format", default="auto",
                        help="checkpoint layout: auto (detected from the keys) or one of hf_mim.hub.convert.FORMATS: "
                        "mae-official, timm-mae, simmim-official, transformers-vitmae, transformers-vit-mim")
    parser.add_argument("--to", dest="target", default="hf_mim", choices=["hf_mim", "transformers"])
    parser.add_argument("--config", default=None, help='JSON config overrides, e.g. \'{"num_attention_heads": 12}\'')
    options = _parse(parser, argv)
    from hf_mim.hub.convert import FORMATS

    if options.source_format not in ("auto", *FORMATS):
        parser.error(f"--from {options.source_format!r}: choose auto or one of {', '.join(sorted(FORMATS))}")
    if options.target == "transformers":
        from transformers import AutoModelForPreTraining

        from hf_mim.hub.convert import processor_statistics, to_transformers_processor, to_transformers_vitmae

        source = AutoModelForPreTraining.from_pretrained(options.source)
        to_transformers_vitmae(source).save_pretrained(options.output_dir)
        processor = to_transformers_processor(source.config, processor_statistics(options.source))
        processor.save_pretrained(options.output_dir)
        print(f"wrote transformers ViTMAEForPreTraining and ViTImageProcessor to {options.output_dir}")
        return
    from hf_mim.hub.convert import convert_checkpoint

    overrides = json.loads(options.config) if options.config else None
    model = convert_checkpoint(options.source, options.output_dir, options.source_format, overrides)
    print(f"wrote {type(model).__name__} ({model.config.model_type}) to {options.output_dir}")


def cmd_bench(argv: list[str]) -> None:
    """Speed and memory of hf_mim against transformers' models (same config, batch, dtype, weights)."""
    from hf_mim.bench import main as bench_main

    bench_main(argv)


def cmd_circuits(argv: list[str]) -> None:
    """Find the attention heads of a causal LM's circuit with a discrete-code SAE (SAE circuits)."""
    parser = argparse.ArgumentParser(
        prog="hf-mim circuits",
        description="Per-head attention results of the prompts, a discrete-code SAE trained on them with Trainer, and "
        "node/edge rankings of the heads written to OUTPUT_DIR/circuit.json (the SAE is saved there too).",
    )
    parser.add_argument("--model", required=True, help="causal LM (path or Hub id): GPT-2 or Llama-style")
    parser.add_argument("--data", required=True, help="prompts file (.csv/.jsonl/.json) with columns positive,negative "
                        "(one pair per row) or prompt,label")
    parser.add_argument("--output_dir", default="outputs/circuits")
    parser.add_argument("--ground_truth", default=None, help="comma-separated circuit heads (L0H1,L1H0) for ROC-AUC")
    parser.add_argument("--sae", default=None, help="a trained DiscreteCodeSAE to use instead of training one")
    parser.add_argument("--position", default="mean", choices=["mean", "last"], help="pool head results over tokens")
    parser.add_argument("--num_latents", type=int, default=200)
    parser.add_argument("--l1_coefficient", type=float, default=0.02)
    parser.add_argument("--epochs", type=int, default=500)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--normalise", action="store_true", help="normalised unique-code counts (official option)")
    parser.add_argument("--seed", type=int, default=0)
    options = _parse(parser, argv)
    from hf_mim.models.saecircuits.circuits import find_circuit

    truth = [head.strip() for head in options.ground_truth.split(",") if head.strip()] if options.ground_truth else None
    result = find_circuit(
        options.model, options.data, options.output_dir, ground_truth=truth, sae_path=options.sae,
        position=options.position, num_latents=options.num_latents, l1_coefficient=options.l1_coefficient,
        epochs=options.epochs, learning_rate=options.learning_rate, normalise=options.normalise, seed=options.seed,
    )
    top = ", ".join(f"{node['head']} {node['score']:.3f}" for node in result["nodes"][:5])
    auc = f"; ROC-AUC node {result['roc_auc']['node']:.3f} edge {result['roc_auc']['edge']:.3f}" if "roc_auc" in result else ""
    print(f"top heads: {top}{auc}; wrote {Path(options.output_dir) / 'circuit.json'}")


COMMANDS = {
    "pretrain": cmd_pretrain,
    "demo": cmd_demo,
    "visualize": cmd_visualize,
    "knn": cmd_knn,
    "probe": cmd_probe,
    "finetune": cmd_finetune,
    "masktune": cmd_masktune,
    "push": cmd_push,
    "convert": cmd_convert,
    "bench": cmd_bench,
    "sae": cmd_sae,
    "circuits": cmd_circuits,
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
    return run_command(command, argv[1:])


def _one_line(error: BaseException, limit: int = 400) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run_command(command: str, argv: list[str]) -> int:
    """Run a command; a user error (bad data, paths, settings, a failed push) or Ctrl-C prints one line on stderr
    instead of a traceback (``HF_MIM_DEBUG=1`` shows the traceback). Exit status 1 for errors, 130 for Ctrl-C."""
    import os

    try:
        COMMANDS[command](argv)
    except KeyboardInterrupt as interrupt:
        print(f"hf-mim {command}: interrupted{': ' + _one_line(interrupt) if str(interrupt) else ''}", file=sys.stderr)
        return 130
    except (ValueError, OSError, RuntimeError) as error:
        from hf_mim.hub.push import PushError

        if os.environ.get("HF_MIM_DEBUG") or (isinstance(error, RuntimeError) and not isinstance(error, PushError)):
            raise
        print(f"hf-mim {command}: error: {_one_line(error)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
