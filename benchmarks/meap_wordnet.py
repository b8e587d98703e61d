"""MEAP vs plain next-token prediction on the WordNet glosses, same model, data, order and steps.

A tiny Llama (3 layers, width 96) is trained twice from the same initial weights on the same blocks of
"lemma: definition ; example" text (byte-level BPE trained on the training glosses), once with MEAP's masked
inputs (hf_mim's DataCollatorForMEAP, ratio 0.15, official step-seeded shared positions), once without. Reported:

* validation perplexity on held-out synsets (unmasked inputs, every position of 128-token blocks scored);
* key-information retrieval: a context of ``K`` held-out glosses ("lemma: definition .") is followed by one of
  their lemmas ("lemma:"); the model ranks the ``K`` definitions (all present in the context) by their mean
  token log-likelihood as the continuation (glosses of at most 10 words, so a context fits the trained length); accuracy of ranking the lemma's own definition first (chance 1/K).

CPU budget: 1 thread, about 8 minutes in all (``OMP_NUM_THREADS=1 python benchmarks/meap_wordnet.py``).
"""

import argparse
import json
import math
import random
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hf_mim.data.text import chunk_ids, train_tokenizer, wordnet_text
from hf_mim.models.meap import DataCollatorForMEAP

parser = argparse.ArgumentParser()
parser.add_argument("--wordnet", default="/work/shared/data/wordnet")
parser.add_argument("--steps", type=int, default=350)
parser.add_argument("--batch_size", type=int, default=16)
parser.add_argument("--block_size", type=int, default=128)
parser.add_argument("--lr", type=float, default=2e-3)
parser.add_argument("--probe_items", type=int, default=300)
parser.add_argument("--probe_k", type=int, default=4)
parser.add_argument("--output", default=None)
args = parser.parse_args()
torch.set_num_threads(1)
start = time.time()

corpus = wordnet_text(args.wordnet).shuffle(seed=0)
held_out = corpus.select(range(3000))
train_texts = corpus.select(range(3000, len(corpus)))["text"]
tokenizer = train_tokenizer(train_texts[:30000], vocab_size=2048, model_max_length=args.block_size)
eos = tokenizer.eos_token_id


def blocks_of(texts, size):
    ids = tokenizer(list(texts), add_special_tokens=False, verbose=False)["input_ids"]
    return chunk_ids([sequence + [eos] for sequence in ids], size)


needed = args.steps * args.batch_size
train_blocks = blocks_of(train_texts[: needed * 12], args.block_size + 1)[:needed]
validation_blocks = torch.tensor(blocks_of(held_out.select(range(1500))["text"], args.block_size + 1)[:128])
print(f"data: {len(train_blocks)} training blocks of {args.block_size + 1} tokens ({len(train_blocks) // args.batch_size} "
      f"steps x {args.batch_size}), vocab {len(tokenizer)}; {time.time() - start:.0f}s")

# retrieval probe items from synsets never trained on (held_out[1500:])
probe_rows = held_out.select(range(1500, 3000)).filter(lambda row: len(row["definition"].split()) <= 10)
rng = random.Random(0)
items = []
for _ in range(args.probe_items):
    picks = rng.sample(range(len(probe_rows)), args.probe_k)
    lemmas = [probe_rows[i]["lemma"] for i in picks]
    if len(set(lemmas)) < args.probe_k:
        continue
    definitions = [probe_rows[i]["definition"] for i in picks]
    context = " ".join(f"{lemma}: {definition} ." for lemma, definition in zip(lemmas, definitions))
    target = rng.randrange(args.probe_k)
    items.append((context + f" {lemmas[target]}:", [f" {d} ." for d in definitions], target))


def make_model():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=96, intermediate_size=256, num_hidden_layers=3,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=eos)
    return LlamaForCausalLM(config)


def plain_batch(rows):
    tensor = torch.tensor(rows)
    return {"input_ids": tensor[:, :-1], "labels": tensor[:, :-1], "shift_labels": tensor[:, 1:].contiguous()}


def train(meap: bool):
    model = make_model().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.05)
    warmup = max(1, args.steps // 10)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * (
        0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.steps)))))
    collator = DataCollatorForMEAP(tokenizer, mask_ratio=0.15) if meap else plain_batch
    losses = []
    for step in range(args.steps):
        rows = train_blocks[step * args.batch_size:(step + 1) * args.batch_size]
        batch = collator([{"input_ids": row} for row in rows]) if meap else collator(rows)
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return model.eval(), losses


@torch.no_grad()
def validation_perplexity(model) -> float:
    total = 0.0
    for chunk in validation_blocks.split(32):
        total += model(input_ids=chunk[:, :-1], labels=chunk[:, :-1], shift_labels=chunk[:, 1:].contiguous()).loss.item() * len(chunk)
    return math.exp(total / len(validation_blocks))


@torch.no_grad()
def retrieval_accuracy(model) -> float:
    """The K continuations of an item in one right-padded batch; score = mean log-likelihood of their tokens."""
    correct = 0
    for context, candidates, target in items:
        prefix = tokenizer(context, add_special_tokens=False)["input_ids"]
        continuations = [tokenizer(c, add_special_tokens=False)["input_ids"] for c in candidates]
        width = len(prefix) + max(len(c) for c in continuations)
        ids = torch.tensor([prefix + c + [eos] * (width - len(prefix) - len(c)) for c in continuations])
        mask = torch.tensor([[1] * (len(prefix) + len(c)) + [0] * (width - len(prefix) - len(c)) for c in continuations])
        log_probs = torch.log_softmax(model(input_ids=ids, attention_mask=mask).logits, -1)
        scores = [log_probs[row, len(prefix) - 1 + torch.arange(len(c)), torch.tensor(c)].mean().item()
                  for row, c in enumerate(continuations)]
        correct += max(range(len(scores)), key=scores.__getitem__) == target
    return correct / len(items)


results = {}
for name, meap in (("next-token", False), ("MEAP", True)):
    began = time.time()
    model, losses = train(meap)
    trained = time.time() - began
    results[name] = {
        "train_loss_first_last": [round(sum(losses[:10]) / 10, 3), round(sum(losses[-10:]) / 10, 3)],
        "validation_perplexity": round(validation_perplexity(model), 2),
        "retrieval_accuracy": round(retrieval_accuracy(model), 3),
        "train_seconds": round(trained),
    }
    print(name, results[name], f"{time.time() - start:.0f}s")
prefix_lengths = [len(tokenizer(c, add_special_tokens=False)["input_ids"]) for c, _, _ in items]
summary = {"probe_items": len(items), "probe_k": args.probe_k, "chance": round(1 / args.probe_k, 3),
           "probe_context_tokens_mean": round(sum(prefix_lengths) / len(prefix_lengths), 1),
           "steps": args.steps, "batch": args.batch_size, "block": args.block_size,
           "total_seconds": round(time.time() - start), "cpu_seconds": round(time.process_time()), **results}
print(json.dumps(summary, indent=1))
if args.output:
    with open(args.output, "w") as file:
        json.dump(summary, file, indent=1)
