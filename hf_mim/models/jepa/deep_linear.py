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

Each objective has its own fixed point, reached from the balanced initialisation (which gradient flow keeps
balanced, ``a_l = v``): MAE fits the end-to-end map ``v w = rho``, so ``w* = rho^(L/(L+1))``; JEPA only needs
``v = rho`` (any ``w`` is then stationary) and balance gives ``w* = rho^L`` (end-to-end ``rho^(L+1)``). A feature
counts as learned when its encoder weight reaches a fraction of ITS OWN objective's ``w*``
(:func:`fixed_point`), never of the other objective's.

What this shows (``scripts/jepa_deep_linear.py``): MAE learns the features in order of ``lambda * rho`` at every
depth; JEPA's learning order moves towards high-``rho`` features as the encoder gets deeper and inverts at depth 3
for a noisy high-variance feature against a predictive one (Littwin et al.: the bias towards influential features
grows with depth), and at its fixed point JEPA shrinks the noisy feature's encoder weight by ``(rho_0/rho_1)^L``,
far more than MAE's ``(rho_0/rho_1)^(L/(L+1))``. No official code exists; this follows the spec's gradient-flow
check.
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

    def time_to_learn(self, rho, fraction: float = 0.5) -> list[float | None]:
        """First time each feature's encoder weight reaches ``fraction`` of this objective's own fixed point
        (:func:`fixed_point`; None: not within the run)."""
        target = fixed_point(self.objective, self.depth, torch.as_tensor(rho, dtype=self.encoder.dtype))
        reached = self.encoder >= fraction * target
        return [float(self.times[hits.nonzero()[0, 0]]) if hits.any() else None for hits in reached.T]


def fixed_point(objective: str, depth: int, rhos: torch.Tensor) -> torch.Tensor:
    """Encoder weight ``w = prod(a_l)`` per feature at the fixed point reached from a balanced init: ``rho^(L/(L+1))``
    for MAE (``v w = rho`` with ``v = a_l``), ``rho^L`` for JEPA (``v = rho = a_l``)."""
    exponent = depth / (depth + 1) if objective == "mae" else depth
    return torch.as_tensor(rhos, dtype=torch.float64) ** exponent


def scalar_gradients(objective: str, layers: torch.Tensor, predictor: torch.Tensor, lambdas, rhos):
    """Gradients of the per-feature losses w.r.t. ``layers [L, d]`` and ``predictor [d]`` (stop-grad target)."""
    w = layers.prod(dim=0)
    if objective == "mae":  # 1/2 lam (v w)^2 - lam rho v w
        residual = lambdas * (predictor * w - rhos)
        grad_v, grad_w = residual * w, residual * predictor
    else:  # 1/2 lam (v w)^2 - lam rho v w sg(w)
        grad_v = lambdas * w * w * (predictor - rhos)
        grad_w = lambdas * predictor * w * (predictor - rhos)
    ones = torch.ones_like(layers[:1])  # product of every layer but l: exclusive prefix * exclusive suffix
    before = torch.cumprod(torch.cat([ones, layers[:-1]]), dim=0)
    after = torch.cumprod(torch.cat([ones, layers.flip(0)[:-1]]), dim=0).flip(0)
    return grad_w * before * after, grad_v


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
    """Gradient descent with step ``lr`` for ``total_time / lr`` steps from ``a_l = v = init_scale`` (a float, or
    one value per feature)."""
    if objective not in ("mae", "jepa"):
        raise ValueError(f"objective must be 'mae' or 'jepa', got {objective!r}")
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    lambdas = torch.as_tensor(lambdas, dtype=torch.float64)
    rhos = torch.as_tensor(rhos, dtype=torch.float64)
    predictor = torch.as_tensor(init_scale, dtype=torch.float64).expand(len(lambdas)).clone()
    layers = predictor.expand(depth, -1).clone()
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
