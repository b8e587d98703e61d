"""R-AMT few-shot evidence on CIFAR-10 with a tiny CLIP built offline (1 CPU thread; 885 s wall, shared machine).

1. A tiny CLIP (ViT 32 px / patch 8, width 96, 4 layers; text transformer 2 layers on a BPE tokenizer trained on
   the captions) is trained for ``--clip_steps`` (batch 128) on the odd rows of the CIFAR-10 train split with
   templated captions ("a blurry photo of a {class}." ...): the "pre-trained VLM". Its loss is CLIP's
   image-to-text cross-entropy over the 10 distinct captions of the step (one template drawn per class), since
   in-batch negatives of a 10-caption corpus are mostly false negatives.
2. Few-shot data: 16 shots per class drawn (seeded) from the even rows, never seen by the CLIP; test: a seeded
   subset of the CIFAR-10 test split.
3. Compared at the same shots: zero-shot CLIP ("a photo of a {class}."), R-AMT with and without gradient dropout
   (``hf-mim masktune``'s Python entry with the official recipe: Adam, cosine, batch 32, 30 epochs, RRC + flip,
   attention + patch-embedding masks; learning rate 8e-4, 10x the official 8e-5, because 10 classes x 16 shots
   give 150 steps where the paper's 100-1000-class sets give 1,500-15,000; the official 8e-5 is run too), and a
   linear probe (logistic regression on the frozen, L2-normalised image embeddings of the same shots). Reports
   the fraction of masked weights dropped.

    OMP_NUM_THREADS=1 python benchmarks/ramt_fewshot.py --data /work/shared/data/cifar10 --out benchmarks/results/ramt
"""

import argparse
import json
import os
import random
import time

import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, TrainingArguments

from hf_mim.data import MIMCollator, load_image_dataset, prepare_dataset
from hf_mim.data.text import train_tokenizer
from hf_mim.tuners.ramt.masktune import MaskTuneArguments, clip_transform, few_shot_indices, masktune
from hf_mim.tuners.ramt.training_ramt import CLIPZeroShotClassifier

CAPTIONS = ("a photo of a {}.", "a blurry photo of a {}.", "a picture of the {}.", "a small photo of a {}.",
            "a low resolution photo of the {}.")


def split_data(data: str, out: str) -> str:
    """``out/fewshot``: train.parquet = the even rows of the CIFAR-10 train split (the few-shot pool; the file is
    sorted by class, so every class keeps half its images), test.parquet = the test split; the CLIP trains on
    the odd rows."""
    folder = os.path.join(out, "fewshot")
    os.makedirs(folder, exist_ok=True)
    table = pq.read_table(os.path.join(data, "train.parquet"))
    pq.write_table(table.take(list(range(0, len(table), 2))), os.path.join(folder, "train.parquet"))
    pq.write_table(pq.read_table(os.path.join(data, "test.parquet")), os.path.join(folder, "test.parquet"))
    return folder


def build_tiny_clip(data: str, out: str, steps: int, seed: int) -> str:
    """Train and save (model, tokenizer with EOS appended, image processor) the tiny CLIP; returns its folder."""
    from tokenizers import processors

    torch.manual_seed(seed)
    raw = load_image_dataset(os.path.join(data, "train.parquet"), "train")
    raw = raw.select(range(1, len(raw), 2))
    names = raw.features["label"].names
    tokenizer = train_tokenizer([c.format(n) for c in CAPTIONS for n in names] * 4, vocab_size=400)
    eos = tokenizer.eos_token_id
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", eos)])
    config = CLIPConfig(
        text_config=dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                         vocab_size=len(tokenizer), max_position_embeddings=24, eos_token_id=eos,
                         pad_token_id=tokenizer.pad_token_id),
        vision_config=dict(hidden_size=96, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
                           image_size=32, patch_size=8, hidden_act="quick_gelu"),
        projection_dim=64)
    clip = CLIPModel(config)
    processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    train = prepare_dataset(raw, None, with_labels=True, transform=clip_transform(processor, train=True))
    loader = torch.utils.data.DataLoader(train, batch_size=128, shuffle=True, collate_fn=MIMCollator(),
                                         generator=torch.Generator().manual_seed(seed))
    optimizer = torch.optim.AdamW(clip.parameters(), lr=1e-3, weight_decay=0.05)
    rng, start, step = random.Random(seed), time.time(), 0
    clip.train()
    while step < steps:
        for batch in loader:
            captions = [rng.choice(CAPTIONS).format(name) for name in names]
            logits = clip(**tokenizer(captions, padding=True, return_tensors="pt"),
                          pixel_values=batch["pixel_values"]).logits_per_image
            loss = F.cross_entropy(logits, batch["labels"])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % 50 == 0:
                print(f"clip step {step}: image-to-text loss {loss.item():.3f}", flush=True)
            if step == steps:
                break
    folder = os.path.join(out, "tiny-clip-cifar10")
    clip.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor.save_pretrained(folder)
    print(f"tiny CLIP: {steps} steps of batch 128 in {time.time() - start:.0f} s, saved to {folder}")
    return folder


def linear_probe(clip_dir: str, data: str, shots: int, eval_samples: int, seed: int) -> float:
    """Logistic regression on the frozen normalised image embeddings of the same shots."""
    from sklearn.linear_model import LogisticRegression
    from transformers import AutoTokenizer

    clip = CLIPModel.from_pretrained(clip_dir).eval()
    processor = CLIPImageProcessor.from_pretrained(clip_dir)
    names = load_image_dataset(data, "test").features["label"].names
    head = CLIPZeroShotClassifier(clip, AutoTokenizer.from_pretrained(clip_dir), names)

    def features(dataset):
        prepared = prepare_dataset(dataset, None, with_labels=True, transform=clip_transform(processor, train=False))
        batch = MIMCollator()([prepared[i] for i in range(len(prepared))])
        with torch.no_grad():
            return head.image_features(batch["pixel_values"]).numpy(), batch["labels"].numpy()

    raw = load_image_dataset(data, "train")
    x, y = features(raw.select(few_shot_indices(raw["label"], shots, seed)))
    test = load_image_dataset(data, "test").shuffle(seed=seed).select(range(eval_samples))
    tx, ty = features(test)
    return float((LogisticRegression(max_iter=2000).fit(x, y).predict(tx) == ty).mean())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="/work/shared/data/cifar10")
    parser.add_argument("--out", default="benchmarks/results/ramt")
    parser.add_argument("--clip_steps", type=int, default=300)
    parser.add_argument("--shots", type=int, default=16)
    parser.add_argument("--eval_samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args()
    torch.set_num_threads(1)
    started = time.time()
    os.makedirs(options.out, exist_ok=True)
    fewshot = split_data(options.data, options.out)
    clip_dir = build_tiny_clip(options.data, options.out, options.clip_steps, options.seed)

    results = {"shots": options.shots, "test_images": options.eval_samples, "clip_steps": options.clip_steps}
    runs = (("ramt", False, 8e-4), ("ramt_no_gradient_dropout", True, 8e-4), ("ramt_official_lr", False, 8e-5))
    for name, no_gdr, lr in runs:
        run_start = time.time()
        args = MaskTuneArguments(model=clip_dir, data=fewshot, shots=options.shots, no_gradient_dropout=no_gdr,
                                 eval_samples=options.eval_samples)
        training = TrainingArguments(
            output_dir=os.path.join(options.out, name), learning_rate=lr, weight_decay=0.0,
            lr_scheduler_type="cosine", per_device_train_batch_size=32, num_train_epochs=30, max_grad_norm=0.0,
            save_strategy="no", remove_unused_columns=False, report_to="none", logging_steps=25, seed=options.seed,
            use_cpu=True, disable_tqdm=True)
        metrics = masktune(args, training)
        results["zero_shot"] = metrics["zero_shot_accuracy"]
        results[name] = metrics["mask_tuned_accuracy"]
        results[f"{name}_dropped_fraction"] = metrics["dropped_fraction"]
        results[f"{name}_seconds"] = round(time.time() - run_start, 1)
        results[f"{name}_loss_first_last"] = [metrics["first_logged_loss"], metrics["last_logged_loss"]]
        print(name, metrics, flush=True)
    results["linear_probe"] = linear_probe(clip_dir, fewshot, options.shots, options.eval_samples, options.seed)
    results["total_seconds"] = round(time.time() - started, 1)
    print(json.dumps(results, indent=2))
    with open(os.path.join(options.out, "ramt_fewshot.json"), "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
