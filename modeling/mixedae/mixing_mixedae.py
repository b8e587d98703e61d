# Generated from hf_mim.models.mixedae.mixing_mixedae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Patch-wise mixing, un-mixing and homologous targets of MixedAE (Chen et al., CVPR 2023).

Convention: the batch ``[B, ...]`` is split into ``G = B / r`` consecutive groups of ``r`` images; image
``b = g * r + i`` is source ``i`` of group ``g``. ``source_ids [G, L]`` (long) says which source supplies each
patch position of the mixed image ``g``; every source supplies exactly ``L / r`` positions.
"""

import torch
import torch.nn.functional as F

from .mim_layers_patch_embed import patchify, unpatchify


def source_ids_from_noise(noise: torch.Tensor, num_sources: int) -> torch.Tensor:
    """Random equal partition from per-group noise ``[G, L]``: the positions with the ``L / r`` smallest values go
    to source 0, the next ``L / r`` to source 1, and so on (a random permutation cut into ``r`` equal chunks)."""
    if noise.ndim != 2:
        raise ValueError(f"noise must have shape [num_groups, num_patches], got {tuple(noise.shape)}")
    groups, length = noise.shape
    if length % num_sources:
        raise ValueError(f"{length} patches cannot be split evenly among {num_sources} sources")
    order = torch.argsort(noise, dim=1)
    chunk = torch.arange(num_sources, device=noise.device).repeat_interleave(length // num_sources)
    return torch.empty_like(order).scatter_(1, order, chunk.expand(groups, -1))


def check_source_ids(source_ids: torch.Tensor, num_sources: int, num_groups: int, num_patches: int) -> None:
    if source_ids.shape != (num_groups, num_patches):
        raise ValueError(
            f"source_ids must have shape [batch / {num_sources}, num_patches] = [{num_groups}, {num_patches}], "
            f"got {tuple(source_ids.shape)}"
        )
    counts = F.one_hot(source_ids.long(), num_sources).sum(dim=1)
    if not bool((counts == num_patches // num_sources).all()):
        raise ValueError(f"every source must supply exactly {num_patches // num_sources} positions per mixed image")


def mix_tokens(tokens: torch.Tensor, source_ids: torch.Tensor, num_sources: int) -> torch.Tensor:
    """``[B, L, D]`` per-image tokens -> ``[G, L, D]`` mixed tokens: ``out[g, l] = tokens[g * r + source_ids[g, l], l]``."""
    batch, length, dim = tokens.shape
    grouped = tokens.reshape(batch // num_sources, num_sources, length, dim)
    index = source_ids.long()[:, None, :, None].expand(-1, 1, -1, dim)
    return torch.gather(grouped, 1, index).squeeze(1)


def mix_images(pixel_values: torch.Tensor, source_ids: torch.Tensor, patch_size: int, num_sources: int) -> torch.Tensor:
    """The mixed images ``[G, C, H, W]`` in pixel space (each patch copied from its source)."""
    channels, height, width = pixel_values.shape[1:]
    mixed = mix_tokens(patchify(pixel_values, patch_size), source_ids, num_sources)
    return unpatchify(mixed, patch_size, (height // patch_size, width // patch_size), channels)


def unmix_mask(source_ids: torch.Tensor, num_sources: int) -> torch.Tensor:
    """Per-image reconstruction mask ``[B, L]`` (True = masked): image ``g * r + i`` sees only the positions of
    source ``i`` in mixed image ``g``; everything else is filled with mask tokens and reconstructed."""
    sources = torch.arange(num_sources, device=source_ids.device)
    return (source_ids[:, None, :] != sources[None, :, None]).flatten(0, 1)


def homologous_targets(source_ids: torch.Tensor) -> torch.Tensor:
    """``[G, L, L]`` bool: patch ``j`` is homologous to patch ``k`` (same source image), diagonal excluded."""
    same = source_ids[:, :, None] == source_ids[:, None, :]
    eye = torch.eye(source_ids.shape[1], dtype=torch.bool, device=source_ids.device)
    return same & ~eye


def homologous_contrastive_loss(features: torch.Tensor, source_ids: torch.Tensor, temperature: float) -> torch.Tensor:
    """Patch-level supervised contrastive loss (Khosla et al. 2020, "L_out") inside each mixed image: for anchor
    ``a``, ``-mean_{p homologous to a} log softmax_{k != a}(cos(z_a, z_k) / t)[p]``, averaged over anchors and
    groups. ``features`` is ``[G, L, D]``."""
    z = F.normalize(features.float(), dim=-1)
    logits = z @ z.transpose(1, 2) / temperature
    eye = torch.eye(logits.shape[1], dtype=torch.bool, device=logits.device)
    log_prob = logits.masked_fill(eye, float("-inf")).log_softmax(dim=-1)
    positives = homologous_targets(source_ids)
    per_anchor = -(log_prob.masked_fill(~positives, 0.0).sum(-1)) / positives.sum(-1).clamp(min=1)
    return per_anchor.mean()


def topk_attention_bias(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Additive bias ``[B, H, N, N]``: 0 at each query's ``k`` largest logits, ``-inf`` elsewhere (homologous
    attention). ``k >= N`` gives all zeros, i.e. global attention."""
    if k >= logits.shape[-1]:
        return torch.zeros_like(logits)
    keep = logits.topk(k, dim=-1).indices
    return torch.full_like(logits, float("-inf")).scatter_(-1, keep, 0.0)
