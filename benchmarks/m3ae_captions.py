"""M3AE on CIFAR-10 image-caption pairs built offline: templated captions of the class names ("a photo of a cat"),
a byte-level BPE tokenizer trained on them (hf_mim.data.text.train_tokenizer), whole-word masking, and the three
M3AE passes. Retrieval with the ITM head's matching score (what the paper ranks with) on held-out test images,
after a short pre-training vs the same architecture at random init.

Captions name only ten classes, so a "match" is a caption of the image's class: image->caption recall@1/@5 over
the ten class captions, and caption->image precision@5 over the held-out images.

CPU budget: 1 thread, --minutes of training (default 4) + evaluation, within 10 minutes.
    python benchmarks/m3ae_captions.py --minutes 4 --output benchmarks/results/m3ae_captions.json
"""

import argparse
import io
import json
import random
import time

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

from hf_mim.data.text import train_tokenizer
from hf_mim.models.m3ae import M3AEConfig, M3AEForPreTraining, whole_word_mask

torch.set_num_threads(1)
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TEMPLATES = ["a photo of a {}", "a small picture of the {}", "an image showing a {}", "this is a {}", "a blurry {}"]
MEAN, STD = torch.tensor([0.4914, 0.4822, 0.4465]).view(3, 1, 1), torch.tensor([0.247, 0.243, 0.261]).view(3, 1, 1)
LENGTH = 12


def load_images(path, count, seed):
    table = pq.read_table(path).to_pydict()
    order = random.Random(seed).sample(range(len(table["label"])), count)
    images = [np.asarray(Image.open(io.BytesIO(table["image"][i]["bytes"])).convert("RGB")) for i in order]
    pixels = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    return (pixels - MEAN) / STD, torch.tensor([table["label"][i] for i in order])


def encode(tokenizer, captions):
    """``<s> caption </s> <pad>...`` ids, attention mask, word starts (byte-level BPE marks a word start with 'Ġ')."""
    rows, starts = [], []
    for caption in captions:
        ids = [tokenizer.bos_token_id, *tokenizer.encode(caption, add_special_tokens=False), tokenizer.eos_token_id]
        tokens = tokenizer.convert_ids_to_tokens(ids)
        row_starts = [i == 1 or token.startswith("Ġ") for i, token in enumerate(tokens)]
        pad = LENGTH - len(ids)
        rows.append(ids + [tokenizer.pad_token_id] * pad)
        starts.append(row_starts + [False] * pad)
    ids = torch.tensor(rows)
    special = (ids == tokenizer.bos_token_id) | (ids == tokenizer.eos_token_id) | (ids == tokenizer.pad_token_id)
    return ids, (ids != tokenizer.pad_token_id).long(), torch.tensor(starts), special


@torch.no_grad()
def retrieval(model, tokenizer, pixels, labels):
    model.eval()
    ids, attention, _, _ = encode(tokenizer, [TEMPLATES[0].format(name) for name in CLASSES])
    scores = torch.stack([  # [images, classes]
        model.matching_scores(ids, attention, pixels[i : i + 1].expand(len(CLASSES), -1, -1, -1))
        for i in range(len(pixels))
    ])
    ranks = scores.argsort(1, descending=True)
    image_to_text = {k: (ranks[:, :k] == labels[:, None]).any(1).float().mean().item() for k in (1, 5)}
    top_images = scores.argsort(0, descending=True)[:5]  # [5, classes]
    precision5 = (labels[top_images] == torch.arange(len(CLASSES))).float().mean().item()
    return {"image_to_caption_R@1": image_to_text[1], "image_to_caption_R@5": image_to_text[5],
            "caption_to_image_P@5": precision5}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="/work/shared/data/cifar10")
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--train-images", type=int, default=5000)
    parser.add_argument("--test-images", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output")
    args = parser.parse_args()
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    train_pixels, train_labels = load_images(f"{args.data}/train.parquet", args.train_images, args.seed)
    test_pixels, test_labels = load_images(f"{args.data}/test.parquet", args.test_images, args.seed + 1)
    tokenizer = train_tokenizer([t.format(c) for t in TEMPLATES for c in CLASSES], vocab_size=320)
    config = M3AEConfig(
        vision_config=dict(image_size=32, patch_size=4, hidden_size=64, num_hidden_layers=2, num_attention_heads=1,
                           intermediate_size=256),
        text_config=dict(vocab_size=len(tokenizer), hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=256, max_position_embeddings=LENGTH + 2, pad_token_id=tokenizer.pad_token_id),
        hidden_size=64, num_fusion_layers=2, num_attention_heads=2, intermediate_size=256, mim_layer=1,
        decoder_hidden_size=64, decoder_num_hidden_layers=1, decoder_num_attention_heads=2,
    )
    model = M3AEForPreTraining(config)
    results = {"random_init": retrieval(model, tokenizer, test_pixels, test_labels)}
    print("random init", results["random_init"], flush=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01)
    generator = torch.Generator().manual_seed(args.seed)
    start, step, losses = time.time(), 0, []
    while time.time() - start < args.minutes * 60:
        model.train()
        index = torch.randint(len(train_labels), (args.batch_size,), generator=generator)
        captions = [random.choice(TEMPLATES).format(CLASSES[label]) for label in train_labels[index].tolist()]
        ids, attention, starts, special = encode(tokenizer, captions)
        mlm_ids, mlm_labels = whole_word_mask(ids, starts, special, config.mlm_probability,
                                              tokenizer.mask_token_id, len(tokenizer), generator)
        out = model(input_ids=ids, attention_mask=attention, pixel_values=train_pixels[index],
                    mlm_input_ids=mlm_ids, mlm_labels=mlm_labels)
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
        losses.append([out.loss.item(), out.mlm_loss.item(), out.mim_loss.item(), out.itm_loss.item()])
        step += 1
        if step % 50 == 0:
            print(step, np.mean(losses[-50:], 0).round(4).tolist(), flush=True)
    results["pretrained"] = retrieval(model, tokenizer, test_pixels, test_labels)
    first, last = np.mean(losses[:20], 0), np.mean(losses[-20:], 0)
    results["training"] = {"steps": step, "seconds": round(time.time() - start), "batch_size": args.batch_size,
                           "loss_first20 [total, mlm, mim, itm]": first.round(4).tolist(),
                           "loss_last20 [total, mlm, mim, itm]": last.round(4).tolist()}
    print(json.dumps(results, indent=1))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(results, handle, indent=1)


if __name__ == "__main__":
    main()
