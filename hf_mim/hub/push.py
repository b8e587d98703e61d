"""Publishing checkpoints to the Hub with a filled-in model card and a reconstruction image.

Everything is assembled in a temporary staging folder, so the local checkpoint is never modified; a failure
says which stage failed (card, repository creation, upload) and that the local files are intact.
"""

import fnmatch
import json
import logging
import shutil
import tempfile
from pathlib import Path

import torch
from huggingface_hub import HfApi
from transformers import AutoConfig

from hf_mim.hub.cards import DEMO_IMAGES, build_model_card, training_summary

logger = logging.getLogger(__name__)

# training state that belongs to the run, not to the published model
EXCLUDED = ("checkpoint-*", "runs", "optimizer.pt", "scheduler.pt", "rng_state*.pth", "*.tmp", "reconstructions")


class PushError(RuntimeError):
    pass


def load_results(results) -> dict:
    """``results``: a dict, a JSON file, or a list of JSON files (e.g. the outputs of ``hf-mim knn/probe``)."""
    if results is None:
        return {}
    if isinstance(results, dict):
        return dict(results)
    merged = {}
    for path in [results] if isinstance(results, (str, Path)) else results:
        merged.update(json.loads(Path(path).read_text()))
    return merged


def reconstruction_image(checkpoint_dir: Path, target: Path, seed: int = 0, images=None) -> bool:
    """Write ``target`` for a pixel-reconstruction model from 8 images sampled (seeded) from ``images`` (files,
    folders or a dataset, as ``hf-mim visualize`` takes them), else from the bundled demo images."""
    from transformers import AutoImageProcessor, AutoModelForPreTraining

    from hf_mim.evaluation.visualize import collect_images, evaluation_inputs, save_reconstruction_grid

    model = AutoModelForPreTraining.from_pretrained(checkpoint_dir).eval()
    processor = AutoImageProcessor.from_pretrained(checkpoint_dir)
    inputs = evaluation_inputs(model, processor, collect_images(list(images or ["demo"]), 8, seed))
    pixel_values = inputs.pop("pixel_values")
    model.mask_rng = torch.Generator().manual_seed(seed)
    try:
        save_reconstruction_grid(model, processor, pixel_values, target, **inputs)
    except ValueError as error:  # the model predicts no pixels (e.g. feature distillation)
        logger.info("no reconstruction image: %s", error)
        return False
    return True


def push_checkpoint(
    checkpoint_dir,
    repo_id: str,
    results=None,
    dataset: str | None = None,
    license: str | None = None,
    private: bool | None = None,
    token: str | None = None,
    revision: str | None = None,
    commit_message: str = "Upload hf_mim checkpoint",
    reconstructions: bool = True,
    base_model: str | None = None,
    images=None,
    eval_dataset: str | None = None,
) -> str:
    """Push a saved checkpoint folder (model, processor, remote code) with a model card; returns the commit URL.

    ``dataset``: Hub id of the pre-training data; ``eval_dataset``: of the data ``results`` were measured on
    (default: what the results record); ``images``: where the card's reconstruction image comes from (default:
    the bundled demo images, labelled as such)."""
    folder = Path(checkpoint_dir)
    if not (folder / "config.json").is_file():
        raise PushError(f"{folder} is not a saved model: config.json is missing")
    stage = "reading the checkpoint"
    try:
        config = AutoConfig.from_pretrained(folder)
        results = load_results(results)
        with tempfile.TemporaryDirectory(prefix="hf_mim_push_") as tmp:
            staging = Path(tmp)
            stage = "staging the files"
            for path in folder.iterdir():
                if any(fnmatch.fnmatch(path.name, pattern) for pattern in EXCLUDED):
                    continue
                (shutil.copytree if path.is_dir() else shutil.copy2)(path, staging / path.name)
            image = None
            from hf_mim.modalities import modality_for_config

            renders = modality_for_config(config).reconstruction_images
            if reconstructions and renders and any("ForPreTraining" in a for a in (config.architectures or [])):
                stage = "rendering the reconstruction image"
                if reconstruction_image(folder, staging / "reconstructions.png", images=images):
                    image = "reconstructions.png"
            stage = "writing the model card"
            source = f"images sampled from {', '.join(map(str, images))}" if images else DEMO_IMAGES
            card = build_model_card(
                config, repo_id, results=results, dataset=dataset, training=training_summary(folder),
                reconstruction_image=image, license=license, base_model=base_model, eval_dataset=eval_dataset,
                reconstruction_source=source,
            )
            card.save(staging / "README.md")
            api = HfApi(token=token)
            stage = f"creating the repository {repo_id}"
            api.create_repo(repo_id, private=private, exist_ok=True, token=token)
            stage = f"uploading to {repo_id}"
            info = api.upload_folder(
                folder_path=str(staging), repo_id=repo_id, commit_message=commit_message, revision=revision, token=token
            )
    except Exception as error:
        raise PushError(
            f"pushing {folder} to {repo_id} failed while {stage}: {error}. The local checkpoint {folder} was not modified."
        ) from error
    return getattr(info, "commit_url", str(info))


def push_model(model, repo_id: str, processor=None, commit_message: str | None = None, private: bool | None = None,
               token: str | None = None, revision: str | None = None, results=None, dataset: str | None = None,
               license: str | None = None, **unused) -> str:
    """``model.push_to_hub`` for hf_mim models: save (with remote code and processor) to a temporary folder, then
    :func:`push_checkpoint`."""
    if unused:
        logger.info("push_to_hub: ignoring %s", sorted(unused))
    with tempfile.TemporaryDirectory(prefix="hf_mim_save_") as tmp:
        model.save_pretrained(tmp)
        if processor is not None:
            processor.save_pretrained(tmp)
        else:
            from hf_mim.registry import method_for_config

            method_for_config(model.config).make_processor(model.config).save_pretrained(tmp)
        return push_checkpoint(
            tmp, repo_id, results=results, dataset=dataset, license=license, private=private, token=token,
            revision=revision, commit_message=commit_message or "Upload hf_mim model",
        )
