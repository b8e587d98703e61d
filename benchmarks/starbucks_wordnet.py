"""Starbucks (SMAE pre-training + SRL fine-tuning) vs MLM pre-training + sentence-transformers' Matryoshka2dLoss, on
WordNet retrieval, same initial weights, data, order and steps.

A tiny BERT (4 layers, width 128, 4 heads; byte-level BPE of 2,048 tokens trained on the training glosses) starts
from one random initialisation. Stage 1 (``--pretrain_steps`` x ``--pretrain_batch`` glosses "lemma: definition ;
examples", at most 64 tokens): SMAE (hf_mim ``starbucks``: pairs (1, 16), (2, 32), (3, 64), (4, 128), the RetroMAE decoder, whole-word
masks 20% / 40%) for Starbucks; plain MLM (the same model class with one pair (4, 128), no decoder, the same 20%
encoder masks) for the baseline. Stage 2 (``--finetune_steps`` x ``--finetune_batch`` (query, definition) pairs of training synsets,
in-batch negatives; a query is the lemma or one of the synset's example sentences): ``StarbucksLoss`` (fixed pairs +
KL to the full model's scores) vs ``Matryoshka2dLoss`` (sentence-transformers defaults: one sampled layer and one
sampled dimension per step, KL temperature 0.3), both over ``MultipleNegativesRankingLoss`` (cosine, scale 20, the
sentence-transformers default, used for both arms). [CLS] pooling, AdamW lr 1e-3 (pre-training) /
``--finetune_lr`` 1e-3.

Fine-tuning runs without dropout (``--finetune_dropout 0``, both arms). Why (probes: the Starbucks section of RESULTS.md):
at this size and budget the [CLS] vectors of different texts are nearly identical (cosine 0.9995 between unrelated
texts at initialisation), and BERT's dropout 0.1 moves each vector far more than the texts do, so the in-batch
contrastive gradient is almost all dropout noise: the gradient norm on the word embeddings of the first
``MultipleNegativesRankingLoss`` step is 2.18 with dropout and 0.0099 without, and 80 steps left the loss at chance
(3.51 -> 3.47, ln 32 = 3.47) with dropout but moved it (3.46 -> 3.33) without. The first run of this script (100
+ 100 steps, dropout on, lr 5e-4) left both arms at chance for that reason. The similarity is cosine x 20 for both
arms (the library's ``StarbucksLoss`` default stays the official dot product at temperature 1).

Evaluation on ``--held_out`` (1,000) held-out synsets: each lemma query and each example-sentence query retrieves
among their definitions (one relevant); MRR@10 and nDCG@10 of the (layer, dim) sub-model for every pair.

CPU budget: 1 thread, about 10 minutes wall on the shared 2 cores
(``OMP_NUM_THREADS=1 python benchmarks/starbucks_wordnet.py``).
"""

import argparse
import json
import math
import random
import tempfile
import time

import torch
from sentence_transformers.sentence_transformer.losses import Matryoshka2dLoss, MultipleNegativesRankingLoss
from tokenizers import processors

from hf_mim.data.text import train_tokenizer, wordnet_text
from hf_mim.models.starbucks import (
    DataCollatorForStarbucks,
    StarbucksConfig,
    StarbucksForPreTraining,
    StarbucksLoss,
    prepare_documents,
    starbucks_sentence_transformer,
)

parser = argparse.ArgumentParser()
parser.add_argument("--wordnet", default="/work/shared/data/wordnet")
parser.add_argument("--pretrain_steps", type=int, default=200)
parser.add_argument("--finetune_steps", type=int, default=400)
parser.add_argument("--pretrain_batch", type=int, default=16)
parser.add_argument("--finetune_batch", type=int, default=32)
parser.add_argument("--finetune_lr", type=float, default=1e-3)
parser.add_argument("--finetune_dropout", type=float, default=0.0)
parser.add_argument("--held_out", type=int, default=1000)
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--output", default=None)
args = parser.parse_args()
torch.set_num_threads(1)
start = time.time()

corpus = wordnet_text(args.wordnet)  # "lemma: definition ; example ; ..."
texts, lemmas, definitions = corpus["text"], corpus["lemma"], corpus["definition"]
order = list(range(len(corpus)))
random.Random(0).shuffle(order)
held_out, train_ids = order[:args.held_out], order[args.held_out:]
tokenizer = train_tokenizer([texts[i] for i in train_ids[:30000]], vocab_size=2048, model_max_length=64)
# [CLS]-pooled sentence embeddings need the [CLS] (BOS) the pre-training rows start with
tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
    single="<s> $A </s>", special_tokens=[("<s>", tokenizer.bos_token_id), ("</s>", tokenizer.eos_token_id)])

size = dict(vocab_size=len(tokenizer), hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=512,
            max_position_embeddings=64, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id)
PAIRS = StarbucksConfig(**size).pairs


def examples_of(index) -> list[str]:
    return [part.strip() for part in texts[index].split(" ; ")[1:] if part.strip()]


# ---- stage 1: SMAE vs plain MLM ----
batch = args.pretrain_batch
pretrain_rows = prepare_documents(corpus.select(train_ids[: args.pretrain_steps * batch]), tokenizer)["input_ids"]


def pretrain(config: StarbucksConfig, initial: dict) -> StarbucksForPreTraining:
    model = StarbucksForPreTraining(config)
    model.load_state_dict(initial, strict=False)
    collator = DataCollatorForStarbucks(tokenizer, config.mlm_probability, config.decoder_mlm_probability, 64, seed=args.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.001)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 15) * 0.5 * (1 + math.cos(math.pi * s / args.pretrain_steps)))
    model.train()
    losses = []
    for step in range(args.pretrain_steps):
        batch = collator([{"input_ids": row} for row in pretrain_rows[step * args.pretrain_batch:][:args.pretrain_batch]])
        loss = model(**batch).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
    print(f"  pre-training loss {sum(losses[:10]) / 10:.3f} -> {sum(losses[-10:]) / 10:.3f}; {time.time() - start:.0f}s")
    return model.eval()


torch.manual_seed(args.seed)
initial = StarbucksForPreTraining(StarbucksConfig(**size)).state_dict()
smae = pretrain(StarbucksConfig(**size), initial)
mlm = pretrain(StarbucksConfig(**size, matryoshka_layers=[4], matryoshka_dims=[128], use_mae_decoder=False), initial)

# ---- stage 2: SRL vs Matryoshka2dLoss ----
rng = random.Random(args.seed)
train_pairs = []
for index in train_ids[: args.finetune_steps * args.finetune_batch]:
    train_pairs.append((rng.choice([lemmas[index], *examples_of(index)]), definitions[index]))


def sentence_transformer(model):
    folder = tempfile.mkdtemp()
    model.config.hidden_dropout_prob = model.config.attention_probs_dropout_prob = args.finetune_dropout
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return starbucks_sentence_transformer(folder)


def finetune(st, make_loss):
    torch.manual_seed(args.seed)
    random.seed(args.seed)
    loss_fn = make_loss(st)
    optimizer = torch.optim.AdamW(st.parameters(), lr=args.finetune_lr, weight_decay=0.01)
    st.train()
    losses = []
    for step in range(args.finetune_steps):
        chunk = train_pairs[step * args.finetune_batch:][:args.finetune_batch]
        features = [st.preprocess([q for q, _ in chunk]), st.preprocess([d for _, d in chunk])]
        loss = loss_fn(features, None)
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(st.parameters(), 1.0)
        optimizer.step()
        losses.append(float(loss.detach()))
    print(f"  fine-tuning loss {sum(losses[:10]) / 10:.3f} -> {sum(losses[-10:]) / 10:.3f}; {time.time() - start:.0f}s")
    return st.eval()


def base_loss(st):
    return MultipleNegativesRankingLoss(st)


arms = {
    "starbucks (SMAE + SRL)": finetune(sentence_transformer(smae), lambda st: StarbucksLoss(st, base_loss(st))),
    "baseline (MLM + Matryoshka2dLoss)": finetune(
        sentence_transformer(mlm), lambda st: Matryoshka2dLoss(st, base_loss(st), [d for _, d in PAIRS][::-1])),
}

# ---- evaluation: held-out queries -> held-out definitions ----
documents = [definitions[index] for index in held_out]
lemma_queries = [(lemmas[index], i) for i, index in enumerate(held_out)]
example_queries = [(example, i) for i, index in enumerate(held_out) for example in examples_of(index)]


@torch.no_grad()
def layer_embeddings(st, texts: list[str]) -> dict[int, torch.Tensor]:
    encoder = st[0].auto_model
    out = {layer: [] for layer, _ in PAIRS}
    for i in range(0, len(texts), 256):
        ids = tokenizer(texts[i: i + 256], return_tensors="pt", padding=True, truncation=True, max_length=64)
        hidden = encoder(ids["input_ids"], attention_mask=ids["attention_mask"], output_hidden_states=True).hidden_states
        for layer in out:
            out[layer].append(hidden[layer][:, 0])
    return {layer: torch.cat(parts) for layer, parts in out.items()}


def metrics(query_emb, doc_emb, targets) -> dict:
    scores = torch.nn.functional.normalize(query_emb, dim=-1) @ torch.nn.functional.normalize(doc_emb, dim=-1).T
    top = scores.topk(10, dim=-1).indices
    hits = top == torch.tensor(targets)[:, None]
    rank = torch.where(hits.any(-1), hits.float().argmax(-1) + 1, torch.zeros(len(targets), dtype=torch.long))
    mrr = torch.where(rank > 0, 1.0 / rank.clamp(min=1), torch.zeros(())).mean()
    ndcg = torch.where(rank > 0, 1.0 / torch.log2(rank.float() + 1), torch.zeros(())).mean()
    return {"mrr@10": round(float(mrr), 4), "ndcg@10": round(float(ndcg), 4)}


results = {"pairs": PAIRS, "queries": {"lemma": len(lemma_queries), "example": len(example_queries)},
           "documents": len(documents), "args": vars(args), "arms": {}}
for name, st in arms.items():
    docs = layer_embeddings(st, documents)
    per_kind = {}
    for kind, queries in (("lemma", lemma_queries), ("example", example_queries)):
        emb = layer_embeddings(st, [q for q, _ in queries])
        per_kind[kind] = {f"{layer},{dim}": metrics(emb[layer][:, :dim], docs[layer][:, :dim], [t for _, t in queries])
                          for layer, dim in PAIRS}
    results["arms"][name] = per_kind
results["seconds"] = round(time.time() - start)
print(json.dumps(results, indent=1))
if args.output:
    with open(args.output, "w") as stream:
        json.dump(results, stream, indent=1)
