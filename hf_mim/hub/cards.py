"""Model cards filled from the config, the training run and measured results.

Templates are ``model_cards/<method>.md`` (Jinja, rendered by ``huggingface_hub.ModelCard.from_template``). The
front matter has ``library_name: transformers`` (the Hub's "Use this model" snippet), a ``pipeline_tag``, hf_mim
tags, datasets, licence, and a ``model-index`` built from ``EvalResult`` entries for kNN / linear-probe /
fine-tuning accuracy, so the numbers are machine readable on the Hub.
"""

import json
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

PROTOCOLS = {
    "knn_top1_k20": "kNN (k=20)",
    "knn_top1_k200": "kNN (k=200)",
    "linear_probe_top1": "linear probe",
    "finetune_top1": "fine-tune",
    "eval_accuracy": "fine-tune",
}
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
    args_file = folder / "training_args.bin"
    if args_file.exists():
        try:
            import torch

            args = torch.load(args_file, weights_only=False)
            summary.update(
                learning_rate=args.learning_rate, weight_decay=args.weight_decay,
                lr_schedule=getattr(args.lr_scheduler_type, "value", args.lr_scheduler_type),
                warmup_steps=args.warmup_steps, optimizer=getattr(args.optim, "value", args.optim),
                precision="bf16" if args.bf16 else "fp32",
            )
        except Exception:  # noqa: BLE001 - a card must not fail because of an unreadable args file
            pass
    return {k: v for k, v in summary.items() if v is not None}


def eval_results(results: dict, dataset: str | None) -> list[EvalResult]:
    entries = []
    for key, value in results.items():
        protocol = PROTOCOLS.get(key)
        if protocol is None or not isinstance(value, (int, float)):
            continue
        entries.append(
            EvalResult(
                task_type="image-classification",
                task_name=f"Image classification ({protocol})",
                dataset_type=dataset or "unknown",
                dataset_name=dataset or "unknown",
                dataset_split="test",
                metric_type="accuracy",
                metric_name=f"Top-1 accuracy ({protocol})",
                metric_value=round(float(value), 4),
            )
        )
    return entries


def usage_snippet(repo_id: str, method: str, auto_processor: str = "AutoImageProcessor") -> str:
    inputs = "videos" if "Video" in auto_processor else "images"
    return (
        "import hf_mim  # registers the hf_mim models with the Auto classes\n"
        f"from transformers import {auto_processor}, AutoModel\n\n"
        f'processor = {auto_processor}.from_pretrained("{repo_id}")\n'
        f'encoder = AutoModel.from_pretrained("{repo_id}")  # {method} encoder, all patches, no masking\n'
        f"features = encoder(**processor({inputs}, return_tensors=\"pt\")).last_hidden_state\n\n"
        "# without hf_mim installed, the checkpoint's own code is used:\n"
        f'encoder = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True)'
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
) -> ModelCard:
    from hf_mim.registry import method_for_config

    spec = method_for_config(config)
    results = results or {}
    modality = spec.data
    is_classifier = any("Classification" in name for name in (config.architectures or []))
    card_data = ModelCardData(
        library_name="transformers",
        pipeline_tag=modality.classification_pipeline if is_classifier else modality.feature_pipeline,
        tags=["hf_mim", modality.tags[0], spec.name, *modality.tags[1:], "self-supervised"],
        license=license or spec.license or "other",
        datasets=[dataset] if dataset else None,
        model_name=repo_id.split("/")[-1],
        eval_results=eval_results(results, dataset) or None,
        base_model=base_model,
    )
    rows = [(PROTOCOLS.get(key, key), dataset or "-", f"{value:.4f}" if isinstance(value, float) else value)
            for key, value in results.items()]
    return ModelCard.from_template(
        card_data,
        template_path=str(template_path(spec.name)),
        model_name=repo_id.split("/")[-1],
        config=config,
        config_table=config_table(config),
        training_table=training_table(training),
        results_table=markdown_table(rows, ("protocol", "dataset", "top-1 accuracy")) if rows else "Not evaluated yet.",
        reconstruction_image=reconstruction_image,
        usage=usage_snippet(repo_id, spec.name, modality.auto_processor),
        license_note=license_note(spec, license),
    )


def license_note(spec, license: str | None) -> str:
    chosen = license or spec.license or "other"
    return (
        f"This checkpoint is published under `{chosen}`. The {spec.name} method's official code and weights are "
        f"released under `{spec.license or 'see the official repository'}`; weights trained from scratch with "
        "hf_mim may be licensed by their author, subject to the licence of the training data."
    )
