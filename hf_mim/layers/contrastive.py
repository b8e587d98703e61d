"""Contrastive objectives shared by the methods that add one to masked modeling."""

import torch
from torch import nn


def nt_xent(first: torch.Tensor, second: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's NT-Xent over a batch of pairs: ``first[i]`` and ``second[i]`` ``[N, P]`` are positives; the other
    ``2N - 2`` embeddings of the batch (both sides) are the negatives of each anchor. Cosine similarities divided
    by ``temperature``, cross-entropy averaged over all ``2N`` anchors (symmetric in its two arguments)."""
    if first.shape != second.shape or first.ndim != 2:
        raise ValueError(f"nt_xent needs two [N, P] embeddings of one shape, got {tuple(first.shape)} and {tuple(second.shape)}")
    count = first.shape[0]
    if count < 2:
        raise ValueError("the contrastive terms take their negatives from the batch: use a batch of at least 2 clips")
    embeddings = nn.functional.normalize(torch.cat([first, second]).float(), dim=-1)
    logits = embeddings @ embeddings.T / temperature
    logits = logits.masked_fill(torch.eye(2 * count, dtype=torch.bool, device=logits.device), float("-inf"))
    positives = torch.arange(2 * count, device=logits.device).roll(count)
    return nn.functional.cross_entropy(logits, positives)
