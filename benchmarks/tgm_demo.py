"""TGM rows of benchmarks/RESULTS.md: text-guided pre-training on the generated video demo set (moving Fashion-MNIST
objects, 4,000 train / 1,000 test clips, 10 classes) on one CPU thread, then kNN and linear probe of the encoder
against the same encoder at random init.

1. A small CLIP (transformers CLIPModel, 32 px, 4x4 patches = the tubelet grid) is trained for ``--clip_seconds`` on
   single frames of the train clips against the templated captions "a video of a moving {class}" (CLIP's
   contrastive loss over the 10 captions), saved with its tokenizer and used as TGM's frozen CLIP by path.
   It only chooses the masks. Its captions come from the class names, so the masks are guided by label
   information, as the paper's BLIP-2 captions are guided by a captioner.
2. TGM (demo preset, no contrastive term unless ``--contrastive_weight``) pre-trains for ``--minutes`` (wall clock,
   stopped by a callback; the lr schedule is laid out for ``--max_steps``), batch 16, lr 1e-3, seed 0.
3. Diagnostic: share of the object's cubes (non-black) that the text-guided mask hides, against the 60% a random
   mask hides.
4. kNN (k=20, cosine, T=0.07) and linear probe (hf_mim's protocol, 90 epochs) on mean-pooled encoder tokens.

``--tube_baseline``: the control, the same encoder and decoder trained as VideoMAE (``videomae2`` with decoder
masking off) with a random tube mask at the same ratio 0.6, same budget, no CLIP.

Run: OMP_NUM_THREADS=1 python benchmarks/tgm_demo.py --output_dir /tmp/tgm_demo [--tube_baseline]
"""

import argparse
import json
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

from hf_mim.data.video import CAPTION_TEMPLATE, DEMO_VERSION, FASHION_CLASSES, demo_video_dir, read_video  # noqa: E402
from hf_mim.masking import top_relevance_mask  # noqa: E402
from hf_mim.models.tgm import tiny_clip  # noqa: E402
from hf_mim.models.tgm.modeling_tgm import byte_level_clip_tokenizer  # noqa: E402
from hf_mim.teacher import IMAGENET_MEAN, IMAGENET_STD  # noqa: E402


def clip_frames(split: str, frames_per_clip: int, seed: int):
    """ImageNet-normalised frames ``[N, 3, 32, 32]`` and their class indices."""
    generator = torch.Generator().manual_seed(seed)
    mean, std = torch.tensor(IMAGENET_MEAN).reshape(3, 1, 1), torch.tensor(IMAGENET_STD).reshape(3, 1, 1)
    images, labels = [], []
    for label, name in enumerate(FASHION_CLASSES):
        for path in sorted((demo_video_dir() / split / name).glob("*.mp4")):
            video = torch.from_numpy(read_video(str(path))).permute(0, 3, 1, 2).float() / 255
            pick = torch.randperm(len(video), generator=generator)[:frames_per_clip]
            images.append((video[pick] - mean) / std)
            labels += [label] * len(pick)
    return torch.cat(images), torch.tensor(labels)


def train_clip(folder: Path, seconds: float, seed: int = 0) -> dict:
    from transformers import AutoConfig, CLIPModel

    torch.manual_seed(seed)
    config = dict(tiny_clip(patch_size=8, width=64, layers=2, projection_dim=64))
    config.pop("model_type")
    model = CLIPModel(AutoConfig.for_model("clip", **config)).train()
    tokenizer = byte_level_clip_tokenizer()
    tokens = tokenizer([CAPTION_TEMPLATE.format(c) for c in FASHION_CLASSES], padding=True, return_tensors="pt")
    images, labels = clip_frames("train", 8, seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    start, steps = time.time(), 0
    while time.time() - start < seconds:
        batch = torch.randint(len(images), (64,))
        out = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], pixel_values=images[batch])
        loss = torch.nn.functional.cross_entropy(out.logits_per_image, labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        steps += 1
    model.eval()
    test_images, test_labels = clip_frames("test", 4, seed + 1)
    with torch.no_grad():
        logits = model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"], pixel_values=test_images).logits_per_image
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return {"clip_steps": steps, "clip_seconds": round(time.time() - start), "clip_last_loss": float(loss),
            "clip_zero_shot_test_frames": float((logits.argmax(1) == test_labels).float().mean())}


class TimeBudget:
    """Stops training after ``seconds`` of wall clock."""

    def __new__(cls, seconds):
        from transformers import TrainerCallback

        class _Budget(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                self.start = time.time()

            def on_step_end(self, args, state, control, **kwargs):
                if time.time() - self.start > seconds:
                    control.should_training_stop = True

        return _Budget()


def object_coverage(model, processor, count: int = 40) -> dict:
    """Share of the object cubes (any pixel brighter than black) hidden by the text-guided mask of the test clips."""
    from hf_mim.data.video import load_video_dataset
    from hf_mim.models.tgm import prepare_captioned_videos

    data = prepare_captioned_videos(load_video_dataset(None, "test"), processor, train=False)
    samples = [data[i] for i in torch.randperm(len(data), generator=torch.Generator().manual_seed(0))[:count].tolist()]
    pixels = torch.stack([s["pixel_values"] for s in samples])
    tokens = model.tokenize([s["caption"] for s in samples])
    with torch.no_grad():
        relevance = model.patch_relevance(pixels, model.caption_embeddings(**tokens))
    mask = top_relevance_mask(relevance, model.config.mask_ratio, generator=torch.Generator().manual_seed(0))
    # a cube holds the object when its brightest pixel is well above the black background (normalised -2.1)
    size, tube = model.config.patch_size, model.config.tubelet_size
    cubes = pixels.amax(dim=2).unflatten(1, (-1, tube)).amax(dim=2)  # [B, T', H, W]
    cubes = cubes.unflatten(2, (-1, size)).unflatten(4, (-1, size)).amax(dim=(3, 5)).flatten(1)  # [B, T'*H'*W']
    holds_object = cubes > -1.0
    return {"object_cubes_masked_text_guided": float(mask[holds_object].float().mean()),
            "object_cube_share": float(holds_object.float().mean()), "random_mask_share": model.config.mask_ratio}


def evaluate(encoder, processor) -> dict:
    from hf_mim.data.video import load_video_dataset, prepare_video_dataset
    from hf_mim.evaluation.features import extract_features
    from hf_mim.evaluation.knn import knn_accuracies
    from hf_mim.evaluation.probe import linear_probe_accuracy

    splits = [prepare_video_dataset(load_video_dataset(None, s), processor, train=False, with_labels=True) for s in ("train", "test")]
    (train_x, train_y), (test_x, test_y) = (extract_features(encoder.eval(), d, 50, "mean") for d in splits)
    metrics = knn_accuracies(train_x, train_y, test_x, test_y, ks=(20,))
    torch.manual_seed(0)
    metrics["linear_probe_top1"] = linear_probe_accuracy(train_x, train_y, test_x, test_y)
    return metrics


def main() -> None:
    from transformers import AutoModel

    from hf_mim.training.arguments import MIMTrainingArguments
    from hf_mim.training.pretrain import PretrainArguments, pretrain

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output_dir", default="outputs/tgm_demo")
    parser.add_argument("--clip_seconds", type=float, default=120)
    parser.add_argument("--minutes", type=float, default=8)
    parser.add_argument("--max_steps", type=int, default=600)
    parser.add_argument("--contrastive_weight", type=float, default=0.0)
    parser.add_argument("--tube_baseline", action="store_true", help="VideoMAE with a random tube mask instead")
    options = parser.parse_args()
    out = Path(options.output_dir)
    results = {"data": f"generated moving Fashion-MNIST clips (demo_video_{DEMO_VERSION}), 10 classes"}
    if options.tube_baseline:
        method, overrides = "videomae2", {"mask_ratio": 0.6, "decoder_mask_ratio": 0.0}
    else:
        results.update(train_clip(out / "clip", options.clip_seconds))
        print(json.dumps(results))
        method = "tgm"
        overrides = {"clip_model_name_or_path": str(out / "clip"), "clip_model_image_mean": None,
                     "clip_model_image_std": None, "contrastive_weight": options.contrastive_weight}
    results["method"] = method
    args = PretrainArguments(method=method, size="demo", config_overrides=json.dumps(overrides))
    training_args = MIMTrainingArguments(
        output_dir=str(out / method), max_steps=options.max_steps, per_device_train_batch_size=16, learning_rate=1e-3,
        warmup_steps=30, lr_scheduler_type="cosine", weight_decay=0.05, adam_beta2=0.95, logging_steps=10,
        save_strategy="no", seed=0, dataloader_num_workers=0, disable_tqdm=True, report_to=[],
    )
    start = time.time()
    trainer, _ = pretrain(args, training_args, callbacks=[TimeBudget(options.minutes * 60)])
    losses = [e["loss"] for e in trainer.state.log_history if "loss" in e]
    results.update({"pretrain_seconds": round(time.time() - start), "pretrain_steps": trainer.state.global_step,
                    "loss_first_log": losses[0], "loss_last_log": losses[-1]})
    model, processor = trainer.model.eval(), trainer.processing_class
    if method == "tgm":
        results.update(object_coverage(model, processor))
    print(json.dumps(results))

    encoder = AutoModel.from_pretrained(out / method)
    results["pretrained"] = evaluate(encoder, processor)
    torch.manual_seed(0)
    results["random_init"] = evaluate(type(encoder)(encoder.config), processor)
    print(json.dumps(results))
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
