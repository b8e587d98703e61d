"""g-SAE vs TopK SAE on the middle layer of a small Llama trained on the WordNet text, at the same k.

1. A tiny Llama (3 layers, width 96; byte-level BPE of 2048 tokens trained on the glosses: the pattern of
   benchmarks/meap_wordnet.py) is trained for a few minutes on blocks of "lemma: definition ; example" text.
2. hf_mim's buffer (:func:`hf_mim.data.activations.collect_activations`) records the output of block 1 (the middle
   one) and the gradient of the next-token loss at it, for training blocks and for held-out blocks.
3. SAEs of the same size (8 x 96 = 768 latents, k 16) are trained from the same initial weights on the same rows in
   the same order (Adam, unit-norm decoder rule, AuxK): beta 0 (the plain TopK SAE) and g-SAE at two betas. beta is
   given in units of ``sqrt(d) / mean |g|``, so ``beta * |d_i . g|`` is about ``beta_units`` for a typical latent.

Reported on held-out tokens: reconstruction MSE, explained variance, fraction of dead latents (never selected on the
held-out tokens, and not selected in the last training epoch), and the LM's next-token loss with the reconstruction
spliced in place of block 1's output, against the clean model and zero ablation, and the fraction of the
zero-ablation loss increase recovered. g-SAEs are spliced both with plain TopK selection (no gradient, how an SAE
runs at inference) and with their gradient-aware selection (the held-out tokens' own gradients).

CPU budget: 1 thread, under 10 CPU minutes (``OMP_NUM_THREADS=1 python benchmarks/gsae_wordnet.py``).
"""

import argparse
import json
import math
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from hf_mim.data.activations import activation_and_gradient, collect_activations, spliced_lm_loss, token_losses
from hf_mim.data.text import chunk_ids, train_tokenizer, wordnet_text
from hf_mim.layers.sae import replace_layer_output
from hf_mim.models.gsae import GSAEConfig, GSAEModel

parser = argparse.ArgumentParser()
parser.add_argument("--wordnet", default="/work/shared/data/wordnet")
parser.add_argument("--lm_steps", type=int, default=300)
parser.add_argument("--batch_size", type=int, default=16)
parser.add_argument("--block_size", type=int, default=64)
parser.add_argument("--layer", type=int, default=1)
parser.add_argument("--train_blocks", type=int, default=1200)
parser.add_argument("--eval_blocks", type=int, default=128)
parser.add_argument("--expansion", type=int, default=8)
parser.add_argument("--k", type=int, default=16)
parser.add_argument("--beta_units", type=float, nargs="+", default=[1.0, 4.0])
parser.add_argument("--sae_epochs", type=int, default=4)
parser.add_argument("--sae_batch", type=int, default=256)
parser.add_argument("--sae_lr", type=float, default=1e-3)
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


lm_needed = args.lm_steps * args.batch_size
all_blocks = blocks_of(train_texts[: (lm_needed + args.train_blocks) * 6], args.block_size)
lm_blocks = torch.tensor(all_blocks[:lm_needed])
sae_blocks = torch.tensor(all_blocks[lm_needed: lm_needed + args.train_blocks])  # text the LM did not train on
eval_blocks = torch.tensor(blocks_of(held_out["text"], args.block_size)[: args.eval_blocks])
print(f"data: {len(lm_blocks)} LM blocks, {len(sae_blocks)} SAE blocks, {len(eval_blocks)} held-out blocks of "
      f"{args.block_size} tokens; {time.time() - start:.0f}s")

# 1. the language model
torch.manual_seed(0)
lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), hidden_size=96, intermediate_size=256, num_hidden_layers=3,
                                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=args.block_size,
                                  pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=eos))
optimizer = torch.optim.AdamW(lm.parameters(), lr=2e-3, betas=(0.9, 0.95), weight_decay=0.05)
warmup = max(1, args.lm_steps // 10)
schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / warmup) * (
    0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / args.lm_steps)))))
lm.train()
lm_losses = []
for step in range(args.lm_steps):
    loss = token_losses(lm, lm_blocks[step * args.batch_size:(step + 1) * args.batch_size]).mean()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(lm.parameters(), 1.0)
    optimizer.step()
    schedule.step()
    optimizer.zero_grad()
    lm_losses.append(loss.item())
lm.eval().requires_grad_(False)
print(f"LM loss {sum(lm_losses[:10]) / 10:.3f} -> {sum(lm_losses[-10:]) / 10:.3f}; {time.time() - start:.0f}s")

# 2. the buffers
train_buffer = collect_activations(lm, sae_blocks, args.layer, batch_size=16, progress=False).with_format("torch")[:]
eval_buffer = collect_activations(lm, eval_blocks, args.layer, batch_size=16, progress=False).with_format("torch")[:]
x_train, g_train = train_buffer["activations"], train_buffer["activation_grads"]
x_eval, g_eval = eval_buffer["activations"], eval_buffer["activation_grads"]
d = x_train.shape[1]
beta_unit = math.sqrt(d) / float(g_train.norm(dim=1).mean())
print(f"buffers: {len(x_train)} training / {len(x_eval)} held-out tokens of width {d}; mean |g| "
      f"{float(g_train.norm(dim=1).mean()):.3g}, beta unit {beta_unit:.3g}; {time.time() - start:.0f}s")


# 3. the SAEs
def train_sae(beta: float) -> GSAEModel:
    torch.manual_seed(0)  # the same initial weights for every SAE
    config = GSAEConfig(d_in=d, num_latents=args.expansion * d, k=args.k, beta=beta, aux_k=d // 2,
                        dead_tokens_threshold=len(x_train), source_model="wordnet tiny Llama", source_layer=args.layer)
    sae = GSAEModel(config).train()
    optimizer = torch.optim.Adam(sae.parameters(), lr=args.sae_lr)
    order = torch.Generator().manual_seed(0)
    for _ in range(args.sae_epochs):
        for rows in torch.randperm(len(x_train), generator=order).split(args.sae_batch):
            sae(x_train[rows], g_train[rows]).loss.backward()
            sae.decoder.remove_parallel_gradient_()
            optimizer.step()
            optimizer.zero_grad()
            sae.normalize_decoder_()
    return sae.eval()


@torch.no_grad()
def spliced_with_gradients(sae) -> float:
    """Spliced loss with the g-SAE's gradient-aware selection: each held-out block's own gradients (the last
    position's gradient is 0: it predicts nothing in the block)."""
    total, count = 0.0, 0
    for batch in eval_blocks.split(16):
        with torch.enable_grad():
            _, g = activation_and_gradient(lm, batch, args.layer)
        g = torch.cat([g, torch.zeros_like(g[:, :1])], dim=1)
        with replace_layer_output(lm, args.layer, lambda h: sae(h, g).reconstruction):
            losses = token_losses(lm, batch)
        total, count = total + float(losses.sum()), count + losses.numel()
    return total / count


clean = spliced_lm_loss(lm, eval_blocks, args.layer)
zero = spliced_lm_loss(lm, eval_blocks, args.layer, torch.zeros_like)
variance = float((x_eval - x_eval.mean(0)).pow(2).sum())
results = {}
for units in [0.0, *args.beta_units]:
    began = time.time()
    sae = train_sae(units * beta_unit)
    with torch.no_grad():
        out = sae(x_eval)
    spliced = spliced_lm_loss(lm, eval_blocks, args.layer, sae.reconstruct)
    row = {
        "beta": round(units * beta_unit, 4),
        "mse": round(float(out.loss), 5),
        "explained_variance": round(1 - float((out.reconstruction - x_eval).pow(2).sum()) / variance, 4),
        "dead_fraction_heldout": round(float(((out.latents != 0).sum(0) == 0).float().mean()), 4),
        "dead_fraction_last_epoch": round(sae.dead_fraction(), 4),
        "spliced_loss_topk": round(spliced, 4),
        "loss_recovered_topk": round((zero - spliced) / (zero - clean), 4),
    }
    if units > 0:
        with torch.no_grad():
            guided = sae(x_eval, g_eval)
        spliced_g = spliced_with_gradients(sae)
        row.update({
            "mse_gradient_selection": round(float(guided.loss), 5),
            "explained_variance_gradient_selection": round(1 - float((guided.reconstruction - x_eval).pow(2).sum()) / variance, 4),
            "spliced_loss_gradient_selection": round(spliced_g, 4),
            "loss_recovered_gradient_selection": round((zero - spliced_g) / (zero - clean), 4),
        })
    row["seconds"] = round(time.time() - began)
    results[f"beta_units={units}"] = row
    print(row)

summary = {"lm_loss_first_last": [round(sum(lm_losses[:10]) / 10, 3), round(sum(lm_losses[-10:]) / 10, 3)],
           "clean_loss": round(clean, 4), "zero_ablation_loss": round(zero, 4), "layer": args.layer, "d": d,
           "latents": args.expansion * d, "k": args.k, "train_tokens": len(x_train), "heldout_tokens": len(x_eval),
           "sae_epochs": args.sae_epochs, "beta_unit": round(beta_unit, 4), **results,
           "total_seconds": round(time.time() - start), "cpu_seconds": round(time.process_time())}
print(json.dumps(summary, indent=1))
if args.output:
    with open(args.output, "w") as file:
        json.dump(summary, file, indent=1)
