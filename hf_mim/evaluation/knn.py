"""Weighted k-nearest-neighbour classification on frozen features (the protocol of InstDisc / DINO:
cosine similarity, top-k neighbours voting with weight exp(similarity / T), T = 0.07, k = 20 and 200)."""

import torch

from hf_mim.evaluation.features import extract_features
from hf_mim.evaluation.metrics import accuracy


def knn_predict(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    query_features: torch.Tensor,
    k: int = 20,
    temperature: float = 0.07,
    num_classes: int | None = None,
    chunk_size: int = 1024,
) -> torch.Tensor:
    """Predicted class per query. Features are L2-normalised here (cosine similarity)."""
    if len(train_features) == 0:
        raise ValueError("kNN needs at least one training feature")
    num_classes = num_classes or int(train_labels.max()) + 1
    k = min(k, len(train_features))
    bank = torch.nn.functional.normalize(train_features.float(), dim=1)
    queries = torch.nn.functional.normalize(query_features.float(), dim=1)
    predictions = []
    for start in range(0, len(queries), chunk_size):
        similarity = queries[start : start + chunk_size] @ bank.T
        top_sim, top_idx = similarity.topk(k, dim=1)
        votes = torch.zeros(len(top_sim), num_classes)
        votes.scatter_add_(1, train_labels[top_idx], (top_sim / temperature).exp())
        predictions.append(votes.argmax(dim=1))
    return torch.cat(predictions)


def knn_accuracies(train_features, train_labels, test_features, test_labels, ks=(20, 200), temperature=0.07) -> dict:
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    return {
        f"knn_top1_k{k}": accuracy(
            knn_predict(train_features, train_labels, test_features, k, temperature, num_classes).tolist(),
            test_labels.tolist(),
        )
        for k in ks
    }


def knn_evaluate(encoder, train_dataset, test_dataset, ks=(20, 200), temperature=0.07, pooling=None, batch_size=256, device=None) -> dict:
    """kNN top-1 accuracies of a frozen encoder; datasets prepared with labels (``prepare_dataset(...,
    with_labels=True, train=False)``)."""
    train_features, train_labels = extract_features(encoder, train_dataset, batch_size, pooling, device, desc="kNN bank")
    test_features, test_labels = extract_features(encoder, test_dataset, batch_size, pooling, device, desc="kNN queries")
    return knn_accuracies(train_features, train_labels, test_features, test_labels, ks, temperature)


def knn_accuracy_for_checkpoint(encoder, processor, data=None, k=20, max_train=None, pooling=None) -> float:
    """Convenience for the demo: kNN top-1 on ``data``'s train/test splits (bundled demo data by default)."""
    from hf_mim.data import subset
    from hf_mim.modalities import modality_for_config

    modality = modality_for_config(encoder.config)
    train = modality.load_dataset(data, "train")
    if max_train:
        train = subset(train, max_train)
    train = modality.prepare_dataset(train, processor, train=False, with_labels=True)
    test = modality.prepare_dataset(modality.load_dataset(data, "test"), processor, train=False, with_labels=True)
    return knn_evaluate(encoder, train, test, ks=(k,), pooling=pooling)[f"knn_top1_k{k}"]
