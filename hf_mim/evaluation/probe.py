"""Linear probing with the MAE protocol: frozen encoder, BatchNorm1d without affine parameters (eps 1e-6) then a
linear layer (weights normal std 0.01), SGD with momentum, lr 0.1 x batch/256, 10% warm-up, cosine decay, no weight
decay. Features are extracted once without augmentation (the official probe uses random crops; caching makes a
probe a matter of seconds on a CPU)."""

import math

import torch
from torch import nn
from tqdm.auto import tqdm

from hf_mim.evaluation.features import extract_features
from hf_mim.evaluation.metrics import accuracy


class LinearProbe(nn.Module):
    def __init__(self, dim: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(dim, affine=False, eps=1e-6)
        self.head = nn.Linear(dim, num_classes)
        nn.init.trunc_normal_(self.head.weight, std=0.01)
        nn.init.zeros_(self.head.bias)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(features))


def train_linear_probe(
    features: torch.Tensor,
    labels: torch.Tensor,
    num_classes: int | None = None,
    epochs: int = 90,
    batch_size: int = 256,
    base_lr: float = 0.1,
    warmup_fraction: float = 0.1,
    seed: int = 0,
    progress: bool = True,
) -> LinearProbe:
    if len(features) == 0:
        raise ValueError("a linear probe needs training features")
    num_classes = num_classes or int(labels.max()) + 1
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    probe = LinearProbe(features.shape[1], num_classes)
    optimizer = torch.optim.SGD(probe.parameters(), lr=base_lr * batch_size / 256, momentum=0.9, weight_decay=0.0)
    steps_per_epoch = math.ceil(len(features) / batch_size)
    total, warmup = epochs * steps_per_epoch, int(warmup_fraction * epochs * steps_per_epoch)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: (step + 1) / max(1, warmup) if step < warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(1, total - warmup))),
    )
    probe.train()
    threads = torch.get_num_threads()
    # the probe's matmuls are tiny: on a busy CPU, thread hand-offs made it 60x slower than one thread
    torch.set_num_threads(1)
    try:
        for _ in tqdm(range(epochs), desc="linear probe", leave=False, disable=not progress):
            order = torch.randperm(len(features), generator=generator)
            for start in range(0, len(features), batch_size):
                index = order[start : start + batch_size]
                if len(index) < 2:  # BatchNorm needs two samples
                    continue
                loss = nn.functional.cross_entropy(probe(features[index]), labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
    finally:
        torch.set_num_threads(threads)
    return probe.eval()


@torch.no_grad()
def probe_predict(probe: LinearProbe, features: torch.Tensor) -> torch.Tensor:
    return probe.eval()(features).argmax(dim=1)


def linear_probe_accuracy(train_features, train_labels, test_features, test_labels, **kwargs) -> float:
    num_classes = int(max(train_labels.max(), test_labels.max())) + 1
    probe = train_linear_probe(train_features, train_labels, num_classes, **kwargs)
    return accuracy(probe_predict(probe, test_features).tolist(), test_labels.tolist())


def linear_probe_evaluate(encoder, train_dataset, test_dataset, pooling=None, batch_size=256, device=None, **probe_kwargs) -> dict:
    """Top-1 accuracy of a linear probe on a frozen encoder (datasets prepared with labels, no augmentation)."""
    train_features, train_labels = extract_features(encoder, train_dataset, batch_size, pooling, device, desc="probe train")
    test_features, test_labels = extract_features(encoder, test_dataset, batch_size, pooling, device, desc="probe test")
    return {"linear_probe_top1": linear_probe_accuracy(train_features, train_labels, test_features, test_labels, **probe_kwargs)}
