"""Circuit identification with a discrete-code SAE (SAE circuits, O'Neill & Bui 2024): per-head attention results
of a transformers causal LM, the SAE trained on them with ``Trainer``, node and edge scores, ROC-AUC.

Head results are read from the model as it runs: a forward pre-hook on each layer's attention output projection
(GPT-2 ``attn.c_proj``, a ``Conv1D`` with weight ``[in, out]``; Llama-style ``o_proj``, a ``Linear`` with weight
``[out, in]``) takes its input ``z`` (the heads' weighted values, concatenated), splits it into heads and multiplies
each slice by its block of ``W_O``. The heads' results plus the projection's bias are the attention output.
TransformerLens' ``stack_head_results`` (what the official data builders store) differs by its weight processing
at load time: ``fold_value_biases`` moves each head's value-bias contribution ``b_V W_O`` out of the head into
``b_O``, and ``center_writing_weights`` centres every head's ``W_O`` over the model dimension (``fold_ln`` changes no
head result). So a head result here equals TransformerLens' plus a per-head constant ``b_V W_O`` and without the
centring; models without value biases (Llama) differ only by the centring.

The official code assumes the first half of the prompts is positive and the second half negative
(``main.py``, "BIG ASSUMPTION"); here every prompt carries an explicit label.

This module is not part of the remote-code bundle: it needs hf_mim (and tqdm, transformers' Trainer).
"""

import csv
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from hf_mim.models.saecircuits.configuration_saecircuits import SAECircuitsConfig
from hf_mim.models.saecircuits.modeling_saecircuits import DiscreteCodeSAE

# ---------------------------------------------------------------------------------------------------------------
# head results


def attention_output_projections(model: nn.Module) -> list[nn.Module]:
    """Each layer's attention output projection, in layer order (GPT-2 ``attn.c_proj``, Llama-style ``o_proj``)."""
    projections = [
        module for name, module in model.named_modules() if name.endswith(".attn.c_proj") or name.endswith(".o_proj")
    ]
    layers = getattr(model.config, "num_hidden_layers", None)
    if not projections or (layers is not None and len(projections) != layers):
        raise ValueError(
            f"unsupported attention layout in {type(model).__name__}: found {len(projections)} attention output "
            f"projections (modules named '*.attn.c_proj' or '*.o_proj') for {layers} layers; head results need "
            "a GPT-2 or Llama-style model"
        )
    return projections


def head_weight_blocks(projection: nn.Module, num_heads: int) -> torch.Tensor:
    """``W_O`` as ``[heads, head_dim, hidden]`` blocks: head ``h``'s result is ``z_h @ blocks[h]``."""
    weight = projection.weight
    if type(projection).__name__ == "Conv1D":  # transformers.pytorch_utils.Conv1D: y = x @ weight + bias
        matrix = weight
    elif isinstance(projection, nn.Linear):  # y = x @ weight.T + bias
        matrix = weight.T
    else:
        raise ValueError(f"unsupported attention output projection {type(projection).__name__}: expected Conv1D or Linear")
    width = matrix.shape[0]
    if width % num_heads:
        raise ValueError(f"attention output projection input width {width} is not divisible by {num_heads} heads")
    return matrix.reshape(num_heads, width // num_heads, matrix.shape[1])


def head_layout(model: nn.Module) -> tuple[int, int]:
    """``(num_layers, num_heads)`` of a transformers causal LM."""
    heads = getattr(model.config, "num_attention_heads", None)
    if not heads:
        raise ValueError(f"{type(model).__name__}'s config has no num_attention_heads: unsupported attention layout")
    return len(attention_output_projections(model)), heads


def token_head_results(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """``[batch, tokens, layers * heads, hidden]``: every head's result at every token (layer-major stacking)."""
    projections = attention_output_projections(model)
    _, num_heads = head_layout(model)
    limit = getattr(model.config, "max_position_embeddings", None) or getattr(model.config, "n_positions", None)
    if limit is not None and input_ids.shape[-1] > limit:
        raise ValueError(f"a prompt has {input_ids.shape[-1]} tokens, longer than the model's {limit} positions: shorten it")
    captured: list[torch.Tensor | None] = [None] * len(projections)

    def capture(index):
        def hook(module, args):
            captured[index] = args[0].detach()

        return hook

    handles = [projection.register_forward_pre_hook(capture(i)) for i, projection in enumerate(projections)]
    try:
        with torch.no_grad():
            model(input_ids=input_ids, attention_mask=attention_mask)
    finally:
        for handle in handles:
            handle.remove()
    results = []
    for z, projection in zip(captured, projections):
        blocks = head_weight_blocks(projection, num_heads).detach()
        z = z.reshape(*z.shape[:-1], num_heads, blocks.shape[1])
        results.append(torch.einsum("bthk,hkd->bthd", z.to(blocks.dtype), blocks))
    return torch.cat(results, dim=2)


def pool_positions(results: torch.Tensor, attention_mask: torch.Tensor | None, position: str) -> torch.Tensor:
    """``[batch, tokens, heads, hidden]`` -> ``[batch, heads, hidden]``: mean over the prompt's tokens or its last."""
    mask = torch.ones(results.shape[:2], device=results.device) if attention_mask is None else attention_mask.to(results)
    if position == "mean":
        return (results * mask[..., None, None]).sum(1) / mask.sum(1)[:, None, None]
    if position == "last":
        last = (mask * torch.arange(mask.shape[1], device=mask.device)).argmax(1)
        return results[torch.arange(len(results)), last]
    raise ValueError(f"position must be 'mean' or 'last', got {position!r}")


def head_results(model: nn.Module, prompts, position: str = "mean", progress: bool = False) -> torch.Tensor:
    """``[prompts, layers * heads, hidden]`` head results of each prompt, pooled over its tokens (``position``).

    ``prompts``: a ``[prompts, tokens]`` LongTensor (run as one batch) or a list of token-id sequences (run one at a
    time, with a progress bar when ``progress``, so prompts of any length need no padding)."""
    model.eval()
    if torch.is_tensor(prompts) and prompts.dim() == 2:
        return pool_positions(token_head_results(model, prompts), None, position)
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    pooled = []
    for ids in tqdm(prompts, desc="head results", disable=not progress):
        ids = torch.as_tensor(ids, dtype=torch.long, device=device).reshape(1, -1)
        if ids.shape[1] == 0:
            raise ValueError("a prompt has no tokens: remove empty prompts")
        pooled.append(pool_positions(token_head_results(model, ids), None, position))
    return torch.cat(pooled)


# ---------------------------------------------------------------------------------------------------------------
# prompts


def load_prompts(path) -> tuple[list[str], torch.Tensor]:
    """Prompts and labels from a ``.csv``, ``.jsonl`` or ``.json`` (list of objects) file with either columns
    ``positive`` and ``negative`` (one prompt and its counterfactual per row) or ``prompt`` and ``label`` (1/0,
    true/false or positive/negative). Returns ``(prompts, labels)`` with ``labels`` bool, True = positive."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompts file {path} does not exist")
    if path.suffix == ".csv":
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    elif path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    elif path.suffix == ".json":
        rows = json.loads(path.read_text())
    else:
        raise ValueError(f"prompts file {path} must be .csv, .jsonl or .json, got {path.suffix!r}")
    if not rows or not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"prompts file {path} must hold a non-empty list of rows (objects)")
    columns = set(rows[0])
    if {"positive", "negative"} <= columns:
        for i, row in enumerate(rows):
            if not row.get("positive") or not row.get("negative"):
                raise ValueError(f"row {i} of {path} misses its 'positive' or 'negative' prompt: every pair needs both")
        prompts = [row["positive"] for row in rows] + [row["negative"] for row in rows]
        labels = torch.tensor([True] * len(rows) + [False] * len(rows))
    elif {"prompt", "label"} <= columns:
        prompts, labels = [], []
        for i, row in enumerate(rows):
            if not row.get("prompt") or row.get("label") in (None, ""):
                raise ValueError(f"row {i} of {path} misses its 'prompt' or 'label'")
            prompts.append(row["prompt"])
            labels.append(parse_label(row["label"], f"row {i} of {path}"))
        labels = torch.tensor(labels)
    else:
        raise ValueError(
            f"prompts file {path} has columns {sorted(columns)}; it needs 'positive' and 'negative' (pairs) or "
            "'prompt' and 'label'"
        )
    check_labels(labels, len(prompts))
    return prompts, labels


def parse_label(value, where: str) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "positive", "pos"):
        return True
    if text in ("0", "false", "negative", "neg"):
        return False
    raise ValueError(f"{where}: label {value!r} is not 1/0, true/false or positive/negative")


def check_labels(labels: torch.Tensor, count: int) -> torch.Tensor:
    labels = torch.as_tensor(labels).bool().flatten()
    if labels.numel() != count:
        raise ValueError(f"{labels.numel()} labels for {count} prompts: give one label per prompt")
    if labels.all() or not labels.any():
        raise ValueError("the prompts need both positive and negative examples (codes are compared between them)")
    return labels


# ---------------------------------------------------------------------------------------------------------------
# node and edge scores


def roc_auc(scores, ground_truth) -> float:
    """Area under the ROC curve of ``scores`` against the bool ``ground_truth`` (scikit-learn's ``roc_curve`` and
    ``auc`` as the official ``evaluate_circuit`` when installed, else the equal rank statistic, ties counted half)."""
    scores = np.asarray(scores, dtype=np.float64).ravel()
    truth = np.asarray(ground_truth, dtype=bool).ravel()
    if truth.all() or not truth.any():
        raise ValueError("the ground truth needs both circuit and non-circuit heads for a ROC-AUC")
    try:
        from sklearn.metrics import auc, roc_curve
    except ImportError:
        positives, negatives = scores[truth], scores[~truth]
        wins = (positives[:, None] > negatives[None]).sum() + 0.5 * (positives[:, None] == negatives[None]).sum()
        return float(wins / (len(positives) * len(negatives)))
    fpr, tpr, _ = roc_curve(truth, scores)
    return float(auc(fpr, tpr))


class CircuitFinder:
    """Node and edge scores of the heads from their discrete codes (``src/node.py``, ``src/edge.py``).

    * node score of a head: the number of distinct codes it takes on positive prompts but never on negative ones
      (``normalise``: divided by its number of distinct codes), softmax over all heads.
    * edge score of a head pair ``(a, b)``: the number of distinct code pairs ``(code_a, code_b)`` seen together on
      a positive prompt and never on a negative one (``normalise``: divided by the number of distinct pairs on
      positives plus on negatives). Pairs are ranked by it (ties ordered as the official ``np.argsort(...)[::-1]``),
      each pair contributes its two heads in turn, and a head's edge score is how many of the first
      ``k`` (default ``heads**2 // 2``) contributions are its own, softmax over all heads.
    """

    def __init__(self, sae: DiscreteCodeSAE, normalise: bool = False):
        self.sae, self.normalise = sae, normalise
        self.config: SAECircuitsConfig = sae.config
        self.names = self.config.head_labels  # refuses an SAE without a head layout

    def codes(self, head_vectors: torch.Tensor) -> torch.Tensor:
        """``[prompts, heads]`` argmax codes (all-zero latents give code 0, as ``np.argmax`` in ``main.py``)."""
        heads = len(self.names)
        if head_vectors.dim() != 3 or head_vectors.shape[1] != heads:
            raise ValueError(
                f"head vectors must be [prompts, {heads}, {self.config.feature_size}] (the SAE's head layout "
                f"{self.config.num_layers} layers x {self.config.num_heads} heads), got {tuple(head_vectors.shape)}"
            )
        self.sae.eval()
        return self.sae.codes(head_vectors.to(self.sae.dtype))

    def grid(self, values: torch.Tensor) -> torch.Tensor:
        """A flat per-head vector as ``[layers, heads]``."""
        return values.reshape(self.config.num_layers, self.config.num_heads)

    def node_counts(self, codes: torch.Tensor, labels) -> torch.Tensor:
        """``[heads]`` distinct codes unique to positives (``unique_to_positives_and_negatives``)."""
        labels = check_labels(labels, len(codes))
        counts = torch.zeros(codes.shape[1], dtype=torch.float64)
        for head in range(codes.shape[1]):
            positive, negative = set(codes[labels, head].tolist()), set(codes[~labels, head].tolist())
            unique = len(positive - negative)
            counts[head] = unique / len(positive | negative) if self.normalise else unique
        return counts

    def node_scores(self, codes: torch.Tensor, labels) -> torch.Tensor:
        """``[layers, heads]`` softmax-normalised node counts (``node_circuit_prediction``)."""
        return self.grid(torch.softmax(self.node_counts(codes, labels), 0))

    def edge_counts(self, codes: torch.Tensor, labels) -> torch.Tensor:
        """``[heads, heads]`` distinct co-occurring code pairs unique to positives (``unique_co_occurrences``),
        zero on the diagonal; computed from the sets of pairs, not the official ``[heads, heads, latents, latents]``
        count tensor (which is 830M cells for GPT-2 small)."""
        labels = check_labels(labels, len(codes))
        heads, latents = codes.shape[1], self.config.num_latents
        pair_index = torch.arange(heads * heads).reshape(heads, heads)

        def distinct_pairs(subset):  # sorted unique keys (pair index, code_a, code_b) seen on these prompts
            keys = (pair_index[None] * latents + subset[:, :, None]) * latents + subset[:, None, :]
            return torch.unique(keys.flatten())

        def per_pair(keys):  # how many keys each head pair has
            return torch.bincount(keys // latents**2, minlength=heads * heads).double()

        positive, negative = distinct_pairs(codes[labels]), distinct_pairs(codes[~labels])
        unique = positive[~torch.isin(positive, negative)]
        counts = per_pair(unique)
        if self.normalise:
            total = per_pair(positive) + per_pair(negative)
            counts = torch.where(total > 0, counts / total.clamp(min=1), 0.0)
        counts = counts.reshape(heads, heads)
        counts.fill_diagonal_(0)
        return counts

    def ranked_edges(self, counts: torch.Tensor) -> list[tuple[int, int]]:
        """Head pairs by descending edge count, ties in row-major pair order. (The official
        ``np.argsort(flat)[::-1]`` leaves the order of ties to numpy's unstable sort, which depends on the CPU's
        SIMD sort; a stable order makes the ranking reproducible.)"""
        order = torch.argsort(counts.flatten(), descending=True, stable=True)
        return [divmod(int(i), counts.shape[0]) for i in order]

    def edge_scores(self, codes: torch.Tensor, labels, k: int | None = None) -> torch.Tensor:
        """``[layers, heads]`` softmax of each head's share of the first ``k`` contributions (``edge_circuit_prediction``)."""
        counts = self.edge_counts(codes, labels)
        heads = counts.shape[0]
        k = heads**2 // 2 if k is None else k
        components = [head for pair in self.ranked_edges(counts) for head in pair][:k]
        membership = torch.bincount(torch.tensor(components, dtype=torch.long), minlength=heads).double()
        return self.grid(torch.softmax(membership, 0))

    def find(self, head_vectors: torch.Tensor, labels, ground_truth=None, k: int | None = None) -> dict:
        """Node and edge rankings (JSON-ready), with the ROC-AUC of both against ``ground_truth`` (head labels like
        ``"L0H1"``) when given."""
        codes = self.codes(head_vectors)
        names = self.names
        nodes, edges = self.node_scores(codes, labels).flatten(), self.edge_scores(codes, labels, k).flatten()
        counts = self.edge_counts(codes, labels)
        result = {
            "heads": names,
            "nodes": [{"head": names[i], "score": float(nodes[i])} for i in nodes.argsort(descending=True, stable=True)],
            "edge_nodes": [{"head": names[i], "score": float(edges[i])} for i in edges.argsort(descending=True, stable=True)],
            "edges": [
                {"from": names[a], "to": names[b], "unique_code_pairs": float(counts[a, b])}
                for a, b in self.ranked_edges(counts) if a != b and counts[a, b] > 0
            ],
            "codes_per_head": {name: sorted(set(codes[:, i].tolist())) for i, name in enumerate(names)},
        }
        if ground_truth is not None:
            truth = ground_truth_mask(ground_truth, names)
            result["ground_truth"] = [names[i] for i in truth.nonzero()[0]]
            result["roc_auc"] = {"node": roc_auc(nodes, truth), "edge": roc_auc(edges, truth)}
        return result


def ground_truth_mask(ground_truth, names: list[str]) -> np.ndarray:
    """Bool ``[heads]`` from head labels (``"L1H0"``) or ``(layer, head)`` pairs."""
    wanted = {item if isinstance(item, str) else f"L{item[0]}H{item[1]}" for item in ground_truth}
    unknown = sorted(wanted - set(names))
    if unknown:
        raise ValueError(f"ground-truth heads {unknown} are not heads of the model (L<layer>H<head>, e.g. {names[0]})")
    return np.array([name in wanted for name in names])


# ---------------------------------------------------------------------------------------------------------------
# training and the end-to-end command


def train_sae(head_vectors: torch.Tensor, config: SAECircuitsConfig | DiscreteCodeSAE, output_dir, epochs: int = 500,
              learning_rate: float = 1e-3, batch_size: int | None = None, seed: int = 0, progress: bool = False,
              **training_arguments) -> tuple[DiscreteCodeSAE, list[float]]:
    """Train a :class:`DiscreteCodeSAE` on ``[prompts, heads, hidden]`` head vectors with transformers' ``Trainer``
    as ``src/train.py`` does: Adam (AdamW without decay) at lr 1e-3, full batch, constant lr, no clipping.
    ``config``: a config (a new SAE, initialised after seeding with ``seed``) or an SAE to train further.
    Returns the model and its logged training losses (one per step)."""
    from transformers import PrinterCallback, Trainer, TrainingArguments, set_seed

    set_seed(seed)
    sae = config if isinstance(config, DiscreteCodeSAE) else DiscreteCodeSAE(config)
    rows = [{"input_values": vector} for vector in head_vectors.float()]
    arguments = TrainingArguments(
        output_dir=str(output_dir), per_device_train_batch_size=batch_size or len(rows), num_train_epochs=epochs,
        learning_rate=learning_rate, weight_decay=0.0, adam_beta2=0.999, lr_scheduler_type="constant",
        warmup_steps=0, max_grad_norm=0.0, optim="adamw_torch", logging_steps=1, save_strategy="no",
        report_to="none", seed=seed, disable_tqdm=not progress, use_cpu=not torch.cuda.is_available(),
        **training_arguments,
    )
    trainer = Trainer(model=sae, args=arguments, train_dataset=rows)
    if not progress:  # one log line per step otherwise (the losses are read from the log history)
        trainer.remove_callback(PrinterCallback)
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    return sae.eval(), losses


def find_circuit(model_name_or_path: str, prompts_path, output_dir, ground_truth=None, sae_path=None,
                 position: str = "mean", num_latents: int = 200, l1_coefficient: float = 0.02, epochs: int = 500,
                 learning_rate: float = 1e-3, normalise: bool = False, seed: int = 0, progress: bool = True) -> dict:
    """``hf-mim circuits``: head results of the prompts, the SAE trained on them (or loaded from ``sae_path``),
    node/edge rankings written to ``output_dir/circuit.json`` and the SAE saved to ``output_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prompts, labels = load_prompts(prompts_path)
    tokenizer = AutoTokenizer.from_pretrained(model_name_or_path)
    model = AutoModelForCausalLM.from_pretrained(model_name_or_path)
    num_layers, num_heads = head_layout(model)
    width = head_weight_blocks(attention_output_projections(model)[0], num_heads).shape[-1]
    output_dir = Path(output_dir)
    sae = None
    if sae_path is not None:  # checked before the prompts run
        sae = DiscreteCodeSAE.from_pretrained(sae_path)
        layout = (sae.config.feature_size, sae.config.num_layers, sae.config.num_heads)
        if layout != (width, num_layers, num_heads):
            raise ValueError(
                f"the SAE in {sae_path} was trained on width {layout[0]} with {layout[1]} layers x {layout[2]} heads; "
                f"{model_name_or_path} has width {width} with {num_layers} x {num_heads}: train one for this model"
            )
    ids = [tokenizer(prompt)["input_ids"] for prompt in prompts]
    vectors = head_results(model, ids, position=position, progress=progress)
    losses = []
    if sae is None:
        config = SAECircuitsConfig(
            feature_size=width, num_latents=num_latents, l1_coefficient=l1_coefficient,
            source_model=str(model_name_or_path), num_layers=num_layers, num_heads=num_heads, position=position,
        )
        sae, losses = train_sae(vectors, config, output_dir / "trainer", epochs, learning_rate, seed=seed, progress=progress)
        sae.save_pretrained(output_dir)
    result = CircuitFinder(sae, normalise=normalise).find(vectors, labels, ground_truth)
    result["source_model"] = str(model_name_or_path)
    result["num_prompts"] = {"positive": int(labels.sum()), "negative": int((~labels).sum())}
    if losses:
        result["sae_loss"] = {"first": losses[0], "last": losses[-1]}
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "circuit.json").write_text(json.dumps(result, indent=2))
    return result


__all__ = [
    "CircuitFinder", "attention_output_projections", "find_circuit", "head_results", "load_prompts", "roc_auc",
    "token_head_results", "train_sae",
]
