"""The deep-linear self-distillation setting of "How JEPA Avoids Noisy Features" (Littwin et al., NeurIPS 2024).

Encoder ``W = W_L ... W_1`` (bias-free ``d x d``), linear predictor / decoder ``V``, paired views ``(x, y)`` with
``Sigma_xx = diag(lambda)`` and ``E[x y^T] = diag(lambda * rho)``: ``lambda`` is a feature's variance, ``rho`` how
well ``x`` predicts ``y`` (low for noisy features). Population losses (``Syy`` terms carry no gradient):

* MAE:  ``1/2 E||V W x - y||^2``      = ``1/2 tr(V W Sxx W^T V^T) - tr(V W Sxy)`` + const
* JEPA: ``1/2 E||V W x - sg(W y)||^2`` = ``1/2 tr(V W Sxx W^T V^T) - tr(V W Sxy sg(W)^T)`` + const

With a balanced diagonal initialisation (every layer ``eps * I``, ``V = eps * I``) the statistics being
simultaneously diagonal keep every matrix diagonal, so the dynamics decouple per feature into scalars
``a_1..a_L, v`` with ``w = prod(a_l)``, which :func:`simulate` integrates (explicit Euler, float64, all features
at once). :func:`matrix_loss` is the matrix form, used by the tests to check the scalar gradients.

Claim reproduced: MAE learns features in order of ``lambda * rho``; JEPA prefers high-``rho`` features, so with a
high-variance but noisy feature the learning order inverts, and JEPA leaves the noisy feature's encoder weight
small. No official code exists; this follows the spec's own gradient-flow check.
"""

from dataclasses import dataclass

import torch


@dataclass
class DeepLinearRun:
    objective: str
    depth: int
    times: torch.Tensor  # [T] time points (lr * step)
    end_to_end: torch.Tensor  # [T, d] v * w per feature
    encoder: torch.Tensor  # [T, d] w per feature

    def time_to_learn(self, rho: torch.Tensor, fraction: float = 0.5) -> list[float | None]:
        """First time each feature's end-to-end map reaches ``fraction * rho`` (None: not within the run)."""
        reached = self.end_to_end >= fraction * torch.as_tensor(rho, dtype=self.end_to_end.dtype)
        return [float(self.times[hits.nonzero()[0, 0]]) if hits.any() else None for hits in reached.T]


def scalar_gradients(objective: str, layers: torch.Tensor, predictor: torch.Tensor, lambdas, rhos):
    """Gradients of the per-feature losses w.r.t. ``layers [L, d]`` and ``predictor [d]`` (stop-grad target)."""
    w = layers.prod(dim=0)
    if objective == "mae":  # 1/2 lam (v w)^2 - lam rho v w
        residual = lambdas * (predictor * w - rhos)
        grad_v, grad_w = residual * w, residual * predictor
    else:  # 1/2 lam (v w)^2 - lam rho v w sg(w)
        grad_v = lambdas * w * w * (predictor - rhos)
        grad_w = lambdas * predictor * w * (predictor - rhos)
    others = torch.stack([torch.cat([layers[:l], layers[l + 1 :]]).prod(dim=0) for l in range(len(layers))])
    return grad_w * others, grad_v


def matrix_loss(objective: str, layers: list[torch.Tensor], predictor: torch.Tensor, lambdas, rhos) -> torch.Tensor:
    """The population loss with full matrices (for checking :func:`scalar_gradients`)."""
    encoder = layers[0]
    for layer in layers[1:]:
        encoder = layer @ encoder
    mapped = predictor @ encoder
    sigma_xx, sigma_xy = torch.diag(lambdas), torch.diag(lambdas * rhos)
    target = torch.eye(len(lambdas), dtype=mapped.dtype) if objective == "mae" else encoder.detach()
    return 0.5 * torch.trace(mapped @ sigma_xx @ mapped.T) - torch.trace(mapped @ sigma_xy @ target.T)


def simulate(
    objective: str,
    depth: int,
    lambdas,
    rhos,
    init_scale: float = 0.1,
    lr: float = 0.01,
    total_time: float = 100.0,
    record_every: int = 10,
) -> DeepLinearRun:
    """Gradient descent with step ``lr`` for ``total_time / lr`` steps from ``a_l = v = init_scale``."""
    if objective not in ("mae", "jepa"):
        raise ValueError(f"objective must be 'mae' or 'jepa', got {objective!r}")
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    lambdas = torch.as_tensor(lambdas, dtype=torch.float64)
    rhos = torch.as_tensor(rhos, dtype=torch.float64)
    layers = torch.full((depth, len(lambdas)), init_scale, dtype=torch.float64)
    predictor = torch.full((len(lambdas),), init_scale, dtype=torch.float64)
    times, end_to_end, encoder = [], [], []
    for step in range(int(round(total_time / lr)) + 1):
        if step % record_every == 0:
            w = layers.prod(dim=0)
            times.append(step * lr)
            end_to_end.append(predictor * w)
            encoder.append(w)
        grad_layers, grad_v = scalar_gradients(objective, layers, predictor, lambdas, rhos)
        layers = layers - lr * grad_layers
        predictor = predictor - lr * grad_v
    return DeepLinearRun(objective, depth, torch.tensor(times), torch.stack(end_to_end), torch.stack(encoder))
