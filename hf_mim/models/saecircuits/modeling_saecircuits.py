"""The discrete-code sparse autoencoder of SAE circuits: ``latents = ReLU(W_enc (x - b) + b_enc)``,
``reconstruction = W_dec latents + b`` with one tied bias ``b`` (subtracted before encoding, added after decoding),
trained with ``MSE + l1_coefficient * mean_rows ||latents||_1``; a head's code is its argmax latent.

Faithful to charlieoneill11/sae-circuits (``src/sae.py``: ``TiedBias``, ``ConstrainedUnitNormLinear``,
``SparseAutoencoder``; ``src/train.py``: ``loss_fn``; ``src/main.py``). Where the paper's description and the code
differ we follow the code:

* both the encoder and the decoder are ``ConstrainedUnitNormLinear`` with the unit norm taken over the last axis of
  their ``[out, in]`` weight: every latent's encoder row has unit norm, and for the decoder ``[feature_size,
  num_latents]`` every *output feature's* row over the latents has unit norm (not every dictionary atom).
* the weights are renormalised in place at every training forward (Adam drifts them off the sphere) and the forward
  uses the renormalised weight; the official backward hook removes the gradient's component along each unit row,
  which is exactly the gradient of ``normalize(weight)`` at a unit row, so the gradient flows through the
  normalisation here (no hook to lose when transformers re-creates parameters on load). At evaluation the weight
  is normalised on the fly and the stored one left untouched.
* the tied bias starts at zero (``main.py`` passes no geometric median); the encoder bias is PyTorch's fan-in
  uniform, the weights are normal draws normalised to unit rows.
* the loss is over every head vector of the batch: ``F.mse_loss`` over all elements plus the L1 norm of each
  vector's latents averaged over vectors, so ``[batch, heads, feature_size]`` and the flattened
  ``[batch * heads, feature_size]`` give the same loss.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from hf_mim.modeling_utils import MIMEncoderOutput, MIMPreTrainedModel, MIMPreTrainingOutput, is_loaded
from hf_mim.models.saecircuits.configuration_saecircuits import SAECircuitsConfig


class UnitNormLinear(nn.Module):
    """``ConstrainedUnitNormLinear``: a linear layer whose ``weight [out, in]`` rows are kept at unit norm."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None

    def unit_weight(self) -> torch.Tensor:
        if self.training and torch.is_grad_enabled():
            # the official in-place renormalisation before every training forward, through ``.data`` so that a
            # graph built by an earlier forward (two forwards, one backward) stays valid
            self.weight.data.copy_(F.normalize(self.weight.data, dim=-1))
        return F.normalize(self.weight, dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.unit_weight(), self.bias)

    @torch.no_grad()
    def reset_parameters(self) -> None:
        if not is_loaded(self.weight):
            self.weight.copy_(F.normalize(torch.randn_like(self.weight), dim=-1))
        if self.bias is not None and not is_loaded(self.bias):
            bound = 1 / math.sqrt(self.in_features)
            self.bias.uniform_(-bound, bound)


class SAECircuitsPreTrainedModel(MIMPreTrainedModel):
    config_class = SAECircuitsConfig
    main_input_name = "input_values"
    input_modalities = ("tabular",)
    _no_split_modules = []
    _supports_sdpa = False
    _supports_flash_attn = False
    _supports_attention_backend = False
    supports_gradient_checkpointing = False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, UnitNormLinear):
            module.reset_parameters()
        elif isinstance(module, DiscreteCodeSAEModel) and not is_loaded(module.tied_bias):
            module.tied_bias.zero_()

    def check_inputs(self, input_values: torch.Tensor | None) -> None:
        size = self.config.feature_size
        if input_values is None or input_values.dim() < 2 or input_values.shape[-1] != size:
            shape = None if input_values is None else tuple(input_values.shape)
            raise ValueError(
                f"input_values must be head result vectors [batch, {size}] or [batch, heads, {size}] "
                f"(config.feature_size = the source model's hidden size), got {shape}"
            )


class DiscreteCodeSAEModel(SAECircuitsPreTrainedModel):
    """The encoder: the tied bias and ``ReLU(W_enc (x - b) + b_enc)``; ``last_hidden_state`` are the latents."""

    def __init__(self, config: SAECircuitsConfig):
        super().__init__(config)
        self.tied_bias = nn.Parameter(torch.empty(config.feature_size))
        self.encoder = UnitNormLinear(config.feature_size, config.num_latents)
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MIMEncoderOutput | tuple:
        r"""
        input_values (`torch.FloatTensor` of shape `(..., feature_size)`): head result vectors.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        self.check_inputs(input_values)
        latents = F.relu(self.encoder(input_values - self.tied_bias))
        output = MIMEncoderOutput(
            last_hidden_state=latents, hidden_states=(input_values, latents) if output_hidden_states else None
        )
        return output if return_dict else output.to_tuple()

    def codes(self, input_values: torch.Tensor) -> torch.Tensor:
        """The discrete code of every vector: its argmax latent (``np.argmax`` as ``main.py``: a vector whose
        latents are all zero gets code 0, the first index, indistinguishable from a vector coded by latent 0)."""
        with torch.no_grad():
            return self(input_values, return_dict=True).last_hidden_state.argmax(-1)

    def pooled_features(self, input_values: torch.Tensor, pooling: str | None = None, **kwargs) -> torch.Tensor:
        """``[batch, num_latents]``: the latents of ``[batch, feature_size]`` vectors (for probes)."""
        return self(input_values, return_dict=True).last_hidden_state


class DiscreteCodeSAE(SAECircuitsPreTrainedModel):
    """The sparse autoencoder with the official loss; ``logits`` is the reconstruction."""

    def __init__(self, config: SAECircuitsConfig):
        super().__init__(config)
        self.encoder = DiscreteCodeSAEModel(config)
        self.decoder = UnitNormLinear(config.num_latents, config.feature_size, bias=False)
        self.post_init()

    def forward(
        self,
        input_values: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> MIMPreTrainingOutput | tuple:
        r"""
        input_values (`torch.FloatTensor` of shape `(..., feature_size)`): head result vectors (the target).
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        encoded = self.encoder(input_values, output_hidden_states=output_hidden_states, return_dict=True)
        latents = encoded.last_hidden_state
        reconstruction = self.decoder(latents) + self.encoder.tied_bias
        dtype = torch.promote_types(reconstruction.dtype, torch.float32)
        mse = F.mse_loss(reconstruction.to(dtype), input_values.to(dtype))
        l1 = latents.to(dtype).flatten(0, -2).norm(p=1, dim=-1).mean()
        loss = mse + self.config.l1_coefficient * l1
        output = MIMPreTrainingOutput(
            loss=loss, logits=reconstruction, loss_terms={"mse": mse.detach(), "l1": l1.detach()},
            hidden_states=encoded.hidden_states,
        )
        return output if return_dict else output.to_tuple()

    def codes(self, input_values: torch.Tensor) -> torch.Tensor:
        return self.encoder.codes(input_values)
