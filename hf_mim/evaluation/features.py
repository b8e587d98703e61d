"""Frozen-encoder feature extraction for kNN and linear probing, for any hf_mim encoder (ViT tokens or CNN
feature maps) and for transformers vision models used as baselines."""

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from hf_mim.data import MIMCollator

POOLINGS = ("cls", "mean")


def default_pooling(encoder) -> str:
    """cls when the encoder has a cls token (MAE's linear-probe protocol), mean otherwise."""
    return "cls" if getattr(encoder, "num_prefix_tokens", 0) > 0 else "mean"


def pool_features(encoder, inputs: torch.Tensor | dict, pooling: str | None = None) -> torch.Tensor:
    """``[B, D]`` features of ``inputs`` (``pixel_values``, or a dict of the model's inputs, e.g. a batch graph):
    an encoder's own ``pooled_features`` if it defines one, else cls token / mean of patch tokens of
    ``last_hidden_state``, or the spatial mean of a ``[B, C, H, W]`` feature map."""
    pooling = pooling or default_pooling(encoder)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    inputs = {"pixel_values": inputs} if torch.is_tensor(inputs) else inputs
    if hasattr(encoder, "pooled_features"):
        return encoder.pooled_features(**inputs, pooling=pooling)
    output = encoder(**inputs)
    hidden = output[0]
    if hidden.ndim == 4:
        return hidden.mean(dim=(2, 3))
    prefix = getattr(encoder, "num_prefix_tokens", 1 if hidden.shape[1] > 1 else 0)
    if pooling == "cls":
        if prefix == 0:
            raise ValueError("pooling='cls' needs an encoder with a cls token; use pooling='mean'")
        return hidden[:, 0]
    return hidden[:, prefix:].mean(dim=1)


@torch.no_grad()
def extract_features(
    encoder, dataset, batch_size: int = 256, pooling: str | None = None, device=None, num_workers: int = 0,
    desc: str = "features",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Features ``[N, D]`` (float32, on the CPU) and labels ``[N]`` of a dataset prepared with labels; samples
    labelled -100 (e.g. graph nodes outside the split) are left out. Batches are collated as the encoder's
    modality does (a batch of graphs is one graph whose nodes are the samples)."""
    from hf_mim.modalities import modality_for_config

    device = torch.device(device) if device is not None else next(encoder.parameters()).device
    was_training = encoder.training
    encoder.eval()
    make_collator = modality_for_config(encoder.config).collator or MIMCollator
    loader = DataLoader(dataset, batch_size=batch_size, collate_fn=make_collator(), num_workers=num_workers)
    features, labels = [], []
    try:
        for batch in tqdm(loader, desc=desc, leave=False):
            if "labels" not in batch:
                raise ValueError("the dataset has no labels: prepare it with with_labels=True")
            inputs = {key: value.to(device) for key, value in batch.items() if key != "labels"}
            with torch.autocast(device.type, enabled=False):
                pooled = pool_features(encoder, inputs, pooling).float().cpu()
            keep = batch["labels"].cpu() != -100
            features.append(pooled[keep])
            labels.append(batch["labels"].cpu()[keep])
    finally:
        encoder.train(was_training)
    if not features:
        raise ValueError("no features extracted: the dataset is empty")
    return torch.cat(features), torch.cat(labels)
