"""Model cards filled from the config, the training run and measured results.

Templates are ``model_cards/<method>.md`` (Jinja, rendered by ``huggingface_hub.ModelCard.from_template``). The
front matter has ``library_name: transformers`` (the Hub's "Use this model" snippet), a ``pipeline_tag``, hf_mim
tags, datasets, licence, and a ``model-index`` built from ``EvalResult`` entries for kNN / linear-probe /
fine-tuning accuracy, so the numbers are machine readable on the Hub.
"""

import json
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from hf_mim.modalities import MODALITIES
from hf_mim.training.arguments import TRAINING_ARGS_JSON

# result keys written by ``hf-mim knn / probe / finetune --output``: (evaluation, metric); other keys (loss,
# runtime, epoch, ...) are not results and stay off the card
METRICS = {
    "knn_top1_k20": ("kNN (k=20) on frozen features", "top-1 accuracy"),
    "knn_top1_k200": ("kNN (k=200) on frozen features", "top-1 accuracy"),
    "linear_probe_top1": ("linear probe on frozen features", "top-1 accuracy"),
    "finetune_top1": ("fine-tuning", "top-1 accuracy"),
    "eval_accuracy": ("fine-tuning", "top-1 accuracy"),
}
# the Hub id cards give the bundled demo data (what ``--data`` left out means)
DEMO_DATASET = "zalando-datasets/fashion_mnist"
DEMO_IMAGES = "the bundled Fashion-MNIST demo test images, not this model's data"
# config fields that say nothing about the architecture
BORING = {
    "architectures", "auto_map", "dtype", "id2label", "label2id", "transformers_version", "output_hidden_states",
    "return_dict", "chunk_size_feed_forward", "is_encoder_decoder", "problem_type", "_name_or_path",
    "output_attentions", "model_type",
}


def template_path(method: str) -> Path:
    """``model_cards/<method>.md`` from a source checkout, else the copy packaged as ``hf_mim.model_cards``."""
    checkout = Path(__file__).resolve().parents[2] / "model_cards" / f"{method}.md"
    if checkout.exists():
        return checkout
    import importlib.resources

    packaged = importlib.resources.files("hf_mim.model_cards") / f"{method}.md"
    if not packaged.is_file():
        raise FileNotFoundError(f"no model card template for {method!r} (model_cards/{method}.md)")
    return Path(str(packaged))


def markdown_table(rows: list[tuple], header: tuple) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def config_table(config) -> str:
    rows = [(f"`{key}`", value) for key, value in sorted(config.to_diff_dict().items()) if key not in BORING]
    return markdown_table(rows, ("field", "value"))


def training_table(training: dict | None) -> str:
    if not training:
        return "No training information was recorded with this checkpoint."
    return markdown_table([(key.replace("_", " "), value) for key, value in training.items()], ("", ""))


def training_summary(checkpoint_dir) -> dict:
    """What a checkpoint folder written by ``hf-mim pretrain`` / Trainer says about its training run."""
    folder = Path(checkpoint_dir)
    summary = {}
    state_file = folder / "trainer_state.json"
    if state_file.exists():
        state = json.loads(state_file.read_text())
        losses = [entry["loss"] for entry in state.get("log_history", []) if "loss" in entry]
        summary.update(
            steps=state.get("global_step"),
            epochs=round(state.get("epoch") or 0, 2),
            train_batch_size=state.get("train_batch_size"),
        )
        if losses:
            summary.update(first_logged_loss=round(losses[0], 4), last_logged_loss=round(losses[-1], 4))
    args_file = folder / TRAINING_ARGS_JSON  # never training_args.bin: unpickling a pushed folder's file runs code
    if args_file.exists():
        try:
            summary.update(settings_summary(json.loads(args_file.read_text())))
        except (ValueError, AttributeError):  # a card must not fail because of an unreadable settings file
            pass
    return {k: v for k, v in summary.items() if v is not None}


def settings_summary(args: dict) -> dict:
    """The card's view of a run's ``TrainingArguments`` (as a dict): a fractional ``warmup_steps`` is a share of
    the run (transformers 5), so it is shown as one."""
    warmup = args.get("warmup_ratio") or args.get("warmup_steps")
    if isinstance(warmup, float) and 0 < warmup < 1:
        warmup = f"{warmup:.0%} of the steps"
    elif warmup is not None:
        warmup = f"{int(warmup)} steps"
    return {
        "learning_rate": args.get("learning_rate"), "weight_decay": args.get("weight_decay"),
        "lr_schedule": args.get("lr_scheduler_type"), "warmup": warmup, "optimizer": args.get("optim"),
        "precision": "bf16" if args.get("bf16") else "fp32",
    }


def eval_results(results: dict, dataset: str | None, task_type: str = "image-classification") -> list[EvalResult]:
    return [
        EvalResult(
            task_type=task_type,
            task_name=f"{task_type.replace('-', ' ').capitalize()} ({evaluation})",  # "Image classification (...)"
            dataset_type=dataset or "unknown",
            dataset_name=dataset or "unknown",
            dataset_split="test",
            metric_type="accuracy",
            metric_name=f"{metric.capitalize()} ({evaluation})",
            metric_value=round(float(results[key]), 4),
        )
        for key, (evaluation, metric) in METRICS.items()
        if isinstance(results.get(key), (int, float))
    ]


def results_table(results: dict, dataset: str | None) -> str:
    rows = [
        (evaluation, dataset or "not given", metric, f"{100 * results[key]:.1f}%")
        for key, (evaluation, metric) in METRICS.items()
        if isinstance(results.get(key), (int, float))
    ]
    return markdown_table(rows, ("evaluation", "dataset", "metric", "value")) if rows else "Not evaluated yet."


def usage_snippet(repo_id: str, method: str, auto_processor: str = "AutoImageProcessor", example=None,
                  auto_model: str | None = None) -> str:
    """Runs as it is, with or without hf_mim installed (``trust_remote_code`` uses the files in the repository).
    ``example``: the modality's ``(imports, inputs name, line making the inputs)`` (:attr:`Modality.usage_example`).
    ``auto_model``: for a recipe's checkpoint (a transformers model, e.g. MEAP's causal LM), the Auto class that
    loads it; the snippet then generates with it, with no remote code."""
    header, inputs, example = example or MODALITIES["image"].usage_example
    if auto_model is not None:
        return (
            f"{header}from transformers import {auto_processor}, {auto_model}\n\n"
            "# a plain transformers checkpoint: neither hf_mim nor remote code is needed\n"
            f'processor = {auto_processor}.from_pretrained("{repo_id}")\n'
            f'model = {auto_model}.from_pretrained("{repo_id}")  # trained with {method}\n'
            f"{example}"
            f'print(processor.batch_decode(model.generate(**processor({inputs}, return_tensors="pt"), max_new_tokens=20)))'
        )
    return (
        f"{header}from transformers import {auto_processor}, AutoModel\n\n"
        "# the checkpoint's own code runs without hf_mim; with hf_mim, `import hf_mim` and trust_remote_code can go\n"
        f'processor = {auto_processor}.from_pretrained("{repo_id}", trust_remote_code=True)\n'
        f'encoder = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)  # {method} encoder, no masking\n'
        f"{example}"
        f'features = encoder(**processor({inputs}, return_tensors="pt")).last_hidden_state'
    )


def build_model_card(
    config,
    repo_id: str,
    results: dict | None = None,
    dataset: str | None = None,
    training: dict | None = None,
    reconstruction_image: str | None = None,
    license: str | None = None,
    base_model: str | None = None,
    eval_dataset: str | None = None,
    reconstruction_source: str = DEMO_IMAGES,
) -> ModelCard:
    """``dataset``: the pre-training data (front matter ``datasets``). ``eval_dataset``: the data ``results`` were
    measured on (default: the ``eval_dataset`` recorded in the results, "demo" being the bundled data)."""
    from hf_mim.registry import RECIPES, method_for_config

    spec = method_for_config(config)
    results = results or {}
    eval_dataset = eval_dataset or results.get("eval_dataset")
    eval_dataset = DEMO_DATASET if eval_dataset == "demo" else eval_dataset
    modality = spec.data
    is_classifier = any("Classification" in name for name in (config.architectures or []))
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag=modality.classification_pipeline if is_classifier else modality.feature_pipeline,
        tags=["hf_mim", modality.tags[0], spec.name, *modality.tags[1:], "self-supervised"],
        license=license or spec.license or "other",
        datasets=[dataset] if dataset else None,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results(results, eval_dataset, modality.classification_pipeline) or None,
        base_model=base_model,
    )
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path(spec.name)),
        model_name=repo_id.split("/")[-1],
        config=config,
        config_table=config_table(config),
        training_table=training_table(training),
        results_table=results_table(results, eval_dataset),
        reconstruction_image=reconstruction_image,
        reconstruction_source=reconstruction_source,
        usage=usage_snippet(repo_id, spec.name, modality.auto_processor, modality.usage_example,
                            spec.auto_pretraining if spec.name in RECIPES else None),
        license_note=license_note(spec, license),
    )


def license_note(spec, license: str | None) -> str:
    chosen = license or spec.license or "other"
    return (
        f"This checkpoint is published under `{chosen}`. The {spec.name} method's official code and weights are "
        f"released under `{spec.license or 'see the official repository'}`; weights trained from scratch with "
        "hf_mim may be licensed by their author, subject to the licence of the training data."
    )
