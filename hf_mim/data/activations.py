"""Activation buffers of a causal language model, for sparse autoencoders on its residual stream.

``layer N`` is the output of decoder block ``N`` (0-based), i.e. ``hidden_states[N + 1]`` of transformers' outputs:
the residual stream after that block. :func:`collect_activations` runs a frozen ``AutoModelForCausalLM`` over token
blocks and records, for every position, the activation ``x`` and (for g-SAE) the gradient ``g = dL/dx`` of the LM's
next-token loss with respect to that same, original activation: a forward hook swaps the block's output for a
detached leaf with the same values, so the forward pass is unchanged and autograd's ``.grad`` of the leaf is the
gradient at the original activation (never at a reconstruction). ``L`` is the sum of the token losses of the block
(a position's gradient gathers the losses of every later token of its own sequence, independent of batch size).
The last position of each block predicts nothing in the block (its gradient would be 0) and is left out.

:func:`spliced_lm_loss` runs the LM with a function of the activation (an SAE's reconstruction, a zero
ablation) in place of the layer's output, for the spliced-loss fidelity metric.
"""

import numpy as np
import torch
from datasets import Dataset
from torch import nn

from hf_mim.data import DataError
from hf_mim.layers.sae import check_layer, replace_layer_output


def token_losses(model, input_ids: torch.Tensor) -> torch.Tensor:
    """``[B, T - 1]`` next-token cross-entropy of every position but the last."""
    logits = model(input_ids=input_ids, use_cache=False).logits[:, :-1]
    return nn.functional.cross_entropy(logits.flatten(0, 1).float(), input_ids[:, 1:].flatten(), reduction="none").view(
        input_ids.shape[0], -1
    )


def activation_and_gradient(model, input_ids: torch.Tensor, layer: int, with_grads: bool = True):
    """``(x, g)`` of one batch of blocks ``[B, T]``: ``x [B, T - 1, d]`` the layer's output and ``g`` the gradient of
    the summed next-token loss with respect to it (None without ``with_grads``), the last position dropped."""
    captured = {}

    def capture(hidden):
        leaf = hidden.detach().requires_grad_(with_grads)
        captured["x"] = leaf
        return leaf

    with replace_layer_output(model, layer, capture), torch.set_grad_enabled(with_grads):
        if with_grads:
            token_losses(model, input_ids).sum().backward()
        else:
            model(input_ids=input_ids, use_cache=False)
    x = captured["x"]
    grads = x.grad[:, :-1].detach() if with_grads else None
    return x.detach()[:, :-1], grads


def collect_activations(model, blocks, layer: int, with_grads: bool = True, batch_size: int = 8,
                        max_tokens: int | None = None, progress: bool = True) -> Dataset:
    """A ``datasets.Dataset`` of one row per token: ``activations`` (and ``activation_grads``), float32 ``[d]``.

    ``model``: a causal LM (kept frozen: its parameters get no gradient and its mode is restored). ``blocks``: token
    id blocks ``[N, T]`` (e.g. :func:`hf_mim.data.text.tokenize_into_blocks`), read ``batch_size`` at a time with a
    progress bar until ``max_tokens`` rows are collected."""
    from tqdm.auto import tqdm

    check_layer(model, layer)
    blocks = torch.as_tensor(np.asarray(blocks), dtype=torch.long)
    if blocks.dim() != 2 or blocks.shape[1] < 2:
        raise DataError(f"blocks must be token ids [num_blocks, length >= 2], got shape {tuple(blocks.shape)}")
    limit = model.config.max_position_embeddings if hasattr(model.config, "max_position_embeddings") else None
    if limit is not None and blocks.shape[1] > limit:
        raise DataError(f"blocks of {blocks.shape[1]} tokens are longer than the model's {limit} positions: use shorter blocks")
    was_training, requires = model.training, [p.requires_grad for p in model.parameters()]
    model.eval().requires_grad_(False)
    xs, gs, total = [], [], 0
    try:
        for start in tqdm(range(0, len(blocks), batch_size), desc=f"activations of layer {layer}", disable=not progress):
            x, g = activation_and_gradient(model, blocks[start:start + batch_size].to(model.device), layer, with_grads)
            xs.append(x.flatten(0, 1).float().cpu())
            if with_grads:
                gs.append(g.flatten(0, 1).float().cpu())
            total += xs[-1].shape[0]
            if max_tokens is not None and total >= max_tokens:
                break
    finally:
        model.train(was_training)
        for parameter, flag in zip(model.parameters(), requires):
            parameter.requires_grad_(flag)
    columns = {"activations": torch.cat(xs)[:max_tokens].numpy()}
    if with_grads:
        columns["activation_grads"] = torch.cat(gs)[:max_tokens].numpy()
    return Dataset.from_dict(columns)


@torch.no_grad()
def spliced_lm_loss(model, blocks, layer: int, function=None, batch_size: int = 8) -> float:
    """Mean next-token loss of ``model`` over ``blocks`` with block ``layer``'s output replaced by ``function(h)``
    (None: the clean model), e.g. ``sae.reconstruct`` (spliced loss) or ``torch.zeros_like`` (zero ablation)."""
    blocks = torch.as_tensor(np.asarray(blocks), dtype=torch.long)
    total, count = 0.0, 0
    for start in range(0, len(blocks), batch_size):
        batch = blocks[start:start + batch_size].to(model.device)
        if function is None:
            losses = token_losses(model, batch)
        else:
            with replace_layer_output(model, layer, function):
                losses = token_losses(model, batch)
        total, count = total + float(losses.sum()), count + losses.numel()
    return total / count


ACTIVATION_COLUMNS = ("activations", "activation_grads")


def load_activation_dataset(source: str | None = None, split: str = "train", streaming: bool = False, dataset_config=None):
    """A saved activation buffer (parquet file / folder or ``datasets`` name with an ``activations`` column and, for
    g-SAE, ``activation_grads``). There is no demo buffer: ``hf-mim sae`` collects one from a language model."""
    from hf_mim.data import load_split

    if source in (None, "demo"):
        raise DataError("SAEs train on an activation buffer: pass --data <buffer parquet> or use `hf-mim sae --model <causal "
                        "LM> --layer N --data <text>`, which collects one")
    dataset = load_split(source, split, streaming, dataset_config)
    if "activations" not in (dataset.column_names or []):
        raise DataError(f"{source} has no 'activations' column (columns: {dataset.column_names}): is it an activation buffer?")
    return dataset


def prepare_activation_dataset(dataset, processor, train=True, column=None, label_column=None, with_labels=False,
                               transform=None, scale=None):
    """Rows as float32 tensors (``activations``, and ``activation_grads`` when the buffer has them)."""
    if with_labels:
        raise DataError("activation buffers have no class labels")
    columns = [name for name in ACTIVATION_COLUMNS if name in dataset.column_names]
    return dataset.select_columns(columns).with_format("torch", dtype=torch.float32)


def build_activation_transform(processor, train: bool = True, scale=None):
    """No per-sample transform: activations are used as collected."""
    return None


def activation_config_from_data(dataset, column=None, overrides=None, estimate_stats=True):
    """The SAE's width ``d_in`` is the buffer's activation width."""
    width = len(dataset[0]["activations"])
    return {"d_in": width}, {}
