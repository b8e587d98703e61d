"""QuickSelection: a sparse denoising autoencoder trained with Sparse Evolutionary Training (SET), whose input
neurons' strengths rank the features.

One hidden layer: ``hidden = sigmoid(W1 (x + noise_factor * noise) + b1)``, ``reconstruction = W2 hidden + b2``,
both weight matrices sparse (Erdős–Rényi). After every epoch but the last, each layer loses the fraction ``zeta`` of
its negative and of its positive weights closest to zero and regrows as many connections at random cells
(:class:`~hf_mim.models.quickselection.set_training.SETCallback`). A feature's importance is the strength of its
input neuron: the sum of ``|w|`` over its connections, read from the input weights saved at the last prune.

Faithful to zahraatashgahi/QuickSelection (``Sparse_DAE.py``: ``createSparseWeights``, ``_feed_forward``,
``_back_prop``, ``weightsEvolution_II``; ``fs_utils.py``: ``fs_strength_w``; ``train_sparse_DAE.py``), where
paper and code differ we follow the code:

* the noise is drawn once before training (a fixed noisy copy of the data, reshuffled with it every epoch), not per
  epoch: ``hf-mim pretrain`` draws one ``noise`` row per sample when it prepares the data; a forward in training
  mode without ``noise`` draws fresh noise.
* the loss whose gradient the code applies is ``0.5 * sum over features of (reconstruction - x)^2``, averaged over
  the batch (``delta = y - x``, ``dW = a^T delta / batch``), i.e. ``feature_size / 2`` times the MSE it prints.
* dropout multiplies the hidden activations by a 0/1 mask (no rescaling) but the backward pass ignores the mask, so
  dropped neurons still learn; at evaluation the output pre-activation (bias included) is scaled by
  ``1 - hidden_dropout``.
* the prune thresholds are the code's: of the sorted weights, the cut indices are ``int((1 - zeta) * first)`` and
  ``int(min(n - 1, last + zeta * (n - last)))`` around the weight closest to zero, and the weights at the thresholds
  go too; regrown cells may be ones just pruned; the pruned weights' momentum is dropped, regrown ones start at 0.
* features are ranked from the input weights as pruned at the last SET step (the code saves them then and trains
  one more epoch without evolving), not from the final weights.
* not reproduced: the code decays weights by ``w -= 1e-5 w`` outside the momentum (torch's SGD adds the decay to
  the gradient). Its skipping of an epoch's last incomplete batch is ``hf-mim pretrain``'s default here.

A connection exists where its weight is nonzero: the layers are dense tensors whose zeros are absent connections
(gradients are masked to the existing ones), so the sparsity pattern is saved with the weights.
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput

from hf_mim.modeling_utils import MIMPreTrainedModel, MIMPreTrainingOutput, is_loaded
from hf_mim.models.quickselection.configuration_quickselection import QuickSelectionConfig


@dataclass
class QuickSelectionEncoderOutput(ModelOutput):
    """``last_hidden_state [B, hidden_size]``: the sigmoid hidden activations. ``hidden_states``: the (noisy) input
    and the hidden activations."""

    last_hidden_state: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None


class SparseLinear(nn.Module):
    """``in_features -> out_features`` linear layer whose connections are the nonzero cells of ``weight [out, in]``.
    The forward multiplies the weight by its own nonzero pattern, so absent connections get no gradient."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features))

    def connections(self) -> torch.Tensor:
        """Bool ``[out, in]``: True where a connection exists."""
        return self.weight.detach() != 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight * self.connections(), self.bias)

    @torch.no_grad()
    def erdos_renyi_(self, epsilon: int, std: float, generator: torch.Generator | None = None) -> None:
        """``createSparseWeights``: ``epsilon * (in + out)`` cells drawn with replacement, weights ``N(0, std)``
        (a cell drawn twice keeps its last value), every other weight 0; zero bias."""
        count = epsilon * (self.in_features + self.out_features)
        device = self.weight.device
        rows = torch.randint(0, self.in_features, (count,), generator=generator).to(device)
        cols = torch.randint(0, self.out_features, (count,), generator=generator).to(device)
        values = (torch.randn(count, generator=generator) * std).to(device, self.weight.dtype)
        self.weight.zero_()
        self.weight.index_put_((cols, rows), values)
        self.bias.zero_()

    @torch.no_grad()
    def prune_and_regrow(self, zeta: float, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
        """One SET step (``weightsEvolution_II``): drop the fraction ``zeta`` of the negative and of the positive
        weights closest to zero, regrow as many at random cells that are not kept (``N(0, std)``). Returns the
        bool ``[out, in]`` cells kept (everything else, regrown cells included, starts afresh)."""
        weight = self.weight
        values = weight[weight != 0].double().sort().values
        n = values.numel()
        closeness = values.abs()
        first = int(closeness.argmin())  # first index of the weight closest to zero
        last = n - int(closeness.flip(0).argmin())  # one past its last occurrence (find_last_pos)
        largest_negative = values[int((1 - zeta) * first)]
        smallest_positive = values[int(min(n - 1, last + zeta * (n - last)))]
        kept = (weight.double() > smallest_positive) | (weight.double() < largest_negative)
        kept &= weight != 0
        free = (~kept).flatten().nonzero().flatten()
        chosen = free[torch.randperm(free.numel(), generator=generator)[: n - int(kept.sum())].to(free.device)]
        new_values = (torch.randn(chosen.numel(), generator=generator) * std).to(weight.device, weight.dtype)
        weight.mul_(kept)
        weight.view(-1)[chosen] = new_values
        return kept


class QuickSelectionPreTrainedModel(MIMPreTrainedModel):
    config_class = QuickSelectionConfig
    main_input_name = "input_values"
    input_modalities = ("tabular",)
    _no_split_modules = []
    _supports_sdpa = False
    _supports_flash_attn = False
    _supports_attention_backend = False
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Erdős–Rényi sparse weights ``N(0, initializer_range)``, zero biases; no SET step yet."""
        if isinstance(module, SparseLinear) and not is_loaded(module.weight):
            module.erdos_renyi_(self.config.epsilon, self.config.initializer_range)
        elif isinstance(module, QuickSelectionModel):
            for buffer in (module.selection_strength, module.num_set_steps):
                if not is_loaded(buffer):
                    buffer.zero_()

    def check_inputs(self, input_values: torch.Tensor | None, noise: torch.Tensor | None) -> None:
        if input_values is None:
            raise ValueError("input_values [batch, feature_size] (standardised features) are required")
        if input_values.dim() != 2 or input_values.shape[1] != self.config.feature_size:
            raise ValueError(
                f"input_values must have shape [batch, {self.config.feature_size}] (config.feature_size), got "
                f"{tuple(input_values.shape)}"
            )
        if noise is not None and noise.shape != input_values.shape:
            raise ValueError(f"noise must have the shape of input_values {tuple(input_values.shape)} (standard "
                             f"normal draws, scaled by config.noise_factor), got {tuple(noise.shape)}")


class QuickSelectionModel(QuickSelectionPreTrainedModel):
    """The sparse input layer and sigmoid hidden layer (features out), with the feature ranking.

    Buffers: ``selection_strength [feature_size]`` (each input neuron's strength at the last prune) and
    ``num_set_steps`` (SET steps done), saved with the weights."""

    _keys_to_ignore_on_load_unexpected = [r"^decoder\."]

    def __init__(self, config: QuickSelectionConfig):
        super().__init__(config)
        self.input_layer = SparseLinear(config.feature_size, config.hidden_size)
        self.register_buffer("selection_strength", torch.zeros(config.feature_size))
        self.register_buffer("num_set_steps", torch.zeros((), dtype=torch.long))
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> QuickSelectionEncoderOutput | tuple:
        r"""
        input_values (`torch.FloatTensor` of shape `(batch_size, feature_size)`): standardised features.
        noise (`torch.FloatTensor` of shape `(batch_size, feature_size)`, *optional*): standard normal draws; the
            input becomes `input_values + config.noise_factor * noise`. None: the clean input.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        self.check_inputs(input_values, noise)
        inputs = input_values if noise is None else input_values + self.config.noise_factor * noise.to(input_values)
        hidden = torch.sigmoid(self.input_layer(inputs))
        output = QuickSelectionEncoderOutput(
            last_hidden_state=hidden, hidden_states=(inputs, hidden) if output_hidden_states else None
        )
        return output if return_dict else output.to_tuple()

    def pooled_features(self, input_values: torch.Tensor, pooling: str | None = None, **kwargs) -> torch.Tensor:
        """``[batch, hidden_size]``: the hidden activations of the clean input (for probes)."""
        return self(input_values, return_dict=True).last_hidden_state

    @torch.no_grad()
    def feature_importance(self) -> torch.Tensor:
        """``[feature_size]`` neuron strength of every input feature (``fs_strength_w``: sum of ``|w|`` over its
        connections), from the input weights saved at the last SET prune, or the current ones before any."""
        if int(self.num_set_steps) > 0:
            return self.selection_strength.clone()
        return self.input_layer.weight.abs().sum(0)

    def select_features(self, k: int | None = None) -> torch.Tensor:
        """Indices of the ``k`` strongest features (default ``config.num_selected_features``, at most all of them),
        strongest first."""
        k = min(self.config.num_selected_features, self.config.feature_size) if k is None else k
        if not 0 < k <= self.config.feature_size:
            raise ValueError(f"k must be in [1, {self.config.feature_size}] (feature_size), got {k}")
        return self.feature_importance().argsort(descending=True, stable=True)[:k]


class QuickSelectionForPreTraining(QuickSelectionPreTrainedModel):
    """The sparse denoising autoencoder: encoder (noisy input -> sigmoid hidden), dropout as the official code does
    it, sparse linear decoder, the code's squared error against the clean input."""

    def __init__(self, config: QuickSelectionConfig):
        super().__init__(config)
        self.encoder = QuickSelectionModel(config)
        self.decoder = SparseLinear(config.hidden_size, config.feature_size)
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MIMPreTrainingOutput | tuple:
        r"""
        input_values (`torch.FloatTensor` of shape `(batch_size, feature_size)`): standardised features (the
            reconstruction target).
        noise (`torch.FloatTensor` of shape `(batch_size, feature_size)`, *optional*): standard normal draws added
            (times `config.noise_factor`) to the input. Default: fresh draws from `mask_rng` in training mode, none
            at evaluation (the official test loss reads the clean input).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        self.check_inputs(input_values, noise)
        if noise is None and self.training:
            noise = torch.randn(input_values.shape, generator=self.mask_rng).to(input_values)
        encoded = self.encoder(input_values, noise=noise, output_hidden_states=output_hidden_states, return_dict=True)
        hidden = encoded.last_hidden_state
        rate = self.config.hidden_dropout
        if self.training and rate > 0:
            keep = torch.rand(hidden.shape, generator=self.mask_rng).to(hidden.device) >= rate
            hidden = hidden + (hidden * keep - hidden).detach()  # masked forward, unmasked backward (official)
        reconstruction = self.decoder(hidden)
        if not self.training and rate > 0:
            reconstruction = reconstruction * (1 - rate)  # official predict(): z * (1 - droprate) on the output
        dtype = torch.promote_types(reconstruction.dtype, torch.float32)
        loss = 0.5 * (reconstruction.to(dtype) - input_values.to(dtype)).pow(2).sum(-1).mean()
        output = MIMPreTrainingOutput(loss=loss, logits=reconstruction, hidden_states=encoded.hidden_states)
        return output if return_dict else output.to_tuple()

    def feature_importance(self) -> torch.Tensor:
        return self.encoder.feature_importance()

    def select_features(self, k: int | None = None) -> torch.Tensor:
        return self.encoder.select_features(k)

    def sparse_layers(self) -> list[SparseLinear]:
        return [self.encoder.input_layer, self.decoder]

    @torch.no_grad()
    def evolve_connections(self, generator: torch.Generator | None = None, optimizer=None) -> dict:
        """One SET step on both layers; the optimizer state (momentum) of every cell not kept is reset, so
        pruned connections stay absent and regrown ones start from rest. Saves the input neurons' strengths as
        pruned (the features' ranking). Returns per-layer ``connections``, ``pruned`` and ``regrown`` counts."""
        state = getattr(optimizer, "optimizer", optimizer).state if optimizer is not None else {}
        counts = {}
        for name, layer in zip(("input", "output"), self.sparse_layers()):
            before = int(layer.connections().sum())
            kept = layer.prune_and_regrow(self.config.zeta, self.config.initializer_range, generator)
            if layer is self.encoder.input_layer:
                self.encoder.selection_strength.copy_((layer.weight * kept).abs().sum(0))
            for value in state.get(layer.weight, {}).values():
                if torch.is_tensor(value) and value.shape == kept.shape:
                    value.mul_(kept)
            after = int(layer.connections().sum())
            counts[name] = {"connections": after, "pruned": before - int(kept.sum()), "regrown": after - int(kept.sum())}
        self.encoder.num_set_steps += 1
        return counts
