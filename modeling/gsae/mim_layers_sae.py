# Generated from hf_mim.layers.sae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""Building blocks of TopK sparse autoencoders on a model's activations (Gao et al. 2024, "Scaling and evaluating
sparse autoencoders", arXiv 2406.04093): a dictionary of unit-norm decoder directions, the TopK selection and the
AuxK dead-latent loss. Shared by the SAE methods (g-SAE; the SAE circuits method reuses the unit-norm decoder)."""

from contextlib import contextmanager

import torch
from torch import nn


class UnitNormDecoder(nn.Module):
    """``weight [d_in, num_latents]``: one dictionary direction per column, kept at unit norm.

    Unit norm removes the scale freedom between a latent's activation and its direction (doubling one and halving
    the other changes nothing), so activations are comparable across latents and TopK compares like with like.
    The norm is restored after every optimiser step (:meth:`normalize_`) and the gradient component along each
    direction, which the renormalisation would undo, is removed before it (:meth:`remove_parallel_gradient_`),
    as in Gao et al.'s code (``unit_norm_decoder_`` / ``unit_norm_decoder_grad_adjustment_``)."""

    def __init__(self, d_in: int, num_latents: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(d_in, num_latents))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return codes @ self.weight.t()

    @torch.no_grad()
    def normalize_(self) -> None:
        self.weight.div_(self.weight.norm(dim=0, keepdim=True).clamp_min(1e-12))

    @torch.no_grad()
    def remove_parallel_gradient_(self) -> None:
        if self.weight.grad is not None:
            parallel = (self.weight.grad * self.weight).sum(0, keepdim=True)
            self.weight.grad.sub_(parallel * self.weight)

    @torch.no_grad()
    def random_unit_(self, generator: torch.Generator | None = None) -> None:
        """Random directions (Gaussian columns made unit norm)."""
        values = torch.randn(self.weight.shape, generator=generator)
        self.weight.copy_(values.to(self.weight))
        self.normalize_()


def topk_codes(activations: torch.Tensor, k: int, scores: torch.Tensor | None = None) -> torch.Tensor:
    """Sparse codes: the ``k`` latents with the largest ``scores`` (default: the activations themselves) keep their
    ``activations`` value, every other latent is 0. ``activations`` are post-ReLU, so a selected latent whose
    activation is 0 stays 0. Gradients reach the kept values only (the choice itself is discrete)."""
    scores = activations if scores is None else scores
    winners = scores.topk(k, dim=-1, sorted=False).indices
    return torch.zeros_like(activations).scatter(-1, winners, activations.gather(-1, winners))


def auxk_loss(activations: torch.Tensor, dead: torch.Tensor, residual: torch.Tensor, decoder: UnitNormDecoder,
              k_aux: int) -> torch.Tensor:
    """Gao et al.'s AuxK loss: the ``k_aux`` largest activations among the ``dead`` latents (bool ``[num_latents]``)
    reconstruct the main reconstruction's error ``residual`` (detached), so dead latents receive gradient again.
    Mean squared error over the elements (the paper's ``||e - e_hat||^2`` up to the constant); 0 when none is dead."""
    count = min(k_aux, int(dead.sum()))
    if count == 0:
        return activations.new_zeros(())
    masked = activations.masked_fill(~dead, 0.0)
    estimate = decoder(topk_codes(masked, count))
    return (estimate - residual.detach()).pow(2).mean()


def decoder_layers(model) -> nn.ModuleList:
    """The decoder blocks of a transformers causal LM (Llama ``model.layers``, GPT-2 ``transformer.h``, ...): the
    ModuleList of the base model holding ``num_hidden_layers`` modules."""
    count = model.config.num_hidden_layers
    for module in model.base_model.children():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ValueError(f"could not find the {count} decoder blocks of {type(model).__name__} (a ModuleList of its base model)")


def check_layer(model, layer: int) -> None:
    count = model.config.num_hidden_layers
    if not 0 <= layer < count:
        raise ValueError(f"layer must be in [0, {count - 1}] ({type(model).__name__} has {count} decoder blocks), got {layer}")


@contextmanager
def replace_layer_output(model, layer: int, function):
    """While active, block ``layer``'s hidden-state output ``h`` becomes ``function(h)`` (other outputs kept)."""
    check_layer(model, layer)

    def hook(module, args, output):
        if isinstance(output, tuple):
            return (function(output[0]), *output[1:])
        return function(output)

    handle = decoder_layers(model)[layer].register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
