# Generated from hf_mim.models.gsae.modeling_gsae by scripts/export_modeling.py (hf_mim 0.1.0). Do not edit: change hf_mim and
# re-export. This copy lets checkpoints load with trust_remote_code=True where hf_mim is not installed.
"""g-SAE: a TopK sparse autoencoder whose TopK also weighs each latent's effect on the language model's loss.

Olmo, Wilson, Forsey, Hepner, Howe, Wingate, "Features that Make a Difference: Leveraging Gradients for Improved
Dictionary Learning" (NAACL Findings 2025, arXiv 2411.10397). No official code is public; this follows the paper's
text as read (arXiv abstract / HTML v2 and its summary pages):

* the SAE is Gao et al.'s TopK SAE: ``z = ReLU(W_enc (x - b_pre) + b_enc)``, ``x_hat = W_dec TopK(z) + b_pre`` with
  unit-norm decoder columns;
* g-SAE changes only which ``k`` latents are kept: the top ``k`` of ``z + beta * z * |W_dec^T grad_x L(x)|``
  (elementwise), ``grad_x L`` being the gradient of the LM's loss at the original activation ``x``; the winners keep
  their plain values ``z`` and the loss stays the reconstruction error (the gradient enters only the choice);
* without a gradient (inference, a new model) or with ``beta = 0`` it is the plain TopK SAE (the baseline).

Not verifiable from what we could read, so chosen here and documented: the absolute value is taken per latent of
``W_dec^T g`` (as the formula is printed; the sign of a latent's effect does not matter); ``g`` is not rescaled
(``beta`` absorbs its scale; :mod:`hf_mim.data.activations` takes it from the summed token losses of a sequence);
dead latents get Gao et al.'s AuxK loss (``aux_k`` dead latents reconstruct the residual, weight ``aux_k_coef``,
dead = not selected in ``dead_tokens_threshold`` training tokens), whether the paper uses AuxK is unverified;
``b_pre`` starts at 0 (Gao et al. start it at the geometric median of the data).
"""

from dataclasses import dataclass

import torch
from torch import nn
from transformers.utils import ModelOutput

from .mim_layers_sae import UnitNormDecoder, auxk_loss, check_layer, replace_layer_output, topk_codes
from .mim_modeling_utils import MIMPreTrainedModel, is_loaded
from .configuration_gsae import GSAEConfig


@dataclass
class GSAEOutput(ModelOutput):
    """loss: reconstruction MSE (+ ``aux_k_coef`` x AuxK while training). reconstruction ``[..., d_in]``.
    latents ``[..., num_latents]``: the sparse codes (``k`` nonzero at most). loss_terms: the detached parts of the
    loss. hidden_states: the input activations and the codes, on request."""

    loss: torch.Tensor | None = None
    reconstruction: torch.Tensor | None = None
    latents: torch.Tensor | None = None
    loss_terms: dict[str, torch.Tensor] | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None

    @property
    def last_hidden_state(self) -> torch.Tensor | None:
        """The codes under the name transformers' feature extractors read."""
        return self.latents


class GSAEModel(MIMPreTrainedModel):
    """The whole SAE (loaded by ``AutoModel`` and ``AutoModelForPreTraining``): the encoder's selection needs the
    decoder directions, so encoder and decoder are one model.

    Weights: ``pre_bias [d_in]``, ``encoder`` (``W_enc``, latent bias ``b_enc``), ``decoder.weight [d_in,
    num_latents]`` (unit-norm columns). Buffer ``tokens_since_fired [num_latents]``: training tokens since each latent
    was last selected (dead latents, AuxK), saved with the weights so a resumed run goes on exactly."""

    config_class = GSAEConfig
    base_model_prefix = "sae"
    main_input_name = "activations"
    input_modalities = ("activations",)
    _no_split_modules = []
    _supports_sdpa = False
    _supports_flash_attn = False
    _supports_attention_backend = False
    supports_gradient_checkpointing = False

    def __init__(self, config: GSAEConfig):
        super().__init__(config)
        self.pre_bias = nn.Parameter(torch.empty(config.d_in))
        self.encoder = nn.Linear(config.d_in, config.num_latents)
        self.decoder = UnitNormDecoder(config.d_in, config.num_latents)
        self.register_buffer("tokens_since_fired", torch.zeros(config.num_latents, dtype=torch.long))
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """Gao et al.: random unit-norm decoder columns, the encoder initialised to the decoder's transpose, zero
        biases."""
        if not isinstance(module, GSAEModel):
            return
        if not is_loaded(module.decoder.weight):
            module.decoder.random_unit_()
        if not is_loaded(module.encoder.weight):
            module.encoder.weight.copy_(module.decoder.weight.t())
        for tensor in (module.encoder.bias, module.pre_bias, module.tokens_since_fired):
            if not is_loaded(tensor):
                tensor.zero_()

    def check_inputs(self, activations: torch.Tensor | None, activation_grads: torch.Tensor | None) -> None:
        if activations is None:
            raise ValueError("activations [..., d_in] (a layer's residual-stream vectors) are required")
        width = self.config.d_in
        if activations.shape[-1] != width:
            source = f" ({self.config.source_model} layer {self.config.source_layer})" if self.config.source_model else ""
            raise ValueError(
                f"activations have width {activations.shape[-1]} but this SAE was trained on width {width}{source}: "
                f"use an SAE trained on this model and layer"
            )
        if activation_grads is not None and activation_grads.shape != activations.shape:
            raise ValueError(f"activation_grads must have the shape of activations {tuple(activations.shape)} (dL/dx at "
                             f"each activation), got {tuple(activation_grads.shape)}")

    def pre_activations(self, activations: torch.Tensor) -> torch.Tensor:
        """``z = ReLU(W_enc (x - b_pre) + b_enc)`` for every latent."""
        return torch.relu(self.encoder(activations - self.pre_bias))

    def selection_scores(self, pre_activations: torch.Tensor, activation_grads: torch.Tensor | None) -> torch.Tensor:
        """``z + beta * z * |W_dec^T g|``: what TopK ranks (``z`` itself without a gradient or with beta 0). The
        decoder enters detached: the choice is discrete, no gradient flows through it."""
        if activation_grads is None or self.config.beta == 0:
            return pre_activations
        effect = (activation_grads.to(pre_activations.dtype) @ self.decoder.weight.detach()).abs()
        return pre_activations + self.config.beta * pre_activations * effect

    def select(self, pre_activations: torch.Tensor, activation_grads: torch.Tensor | None = None) -> torch.Tensor:
        """The sparse codes: the top ``k`` selection scores, valued by the pre-activations."""
        return topk_codes(pre_activations, self.config.k, self.selection_scores(pre_activations, activation_grads))

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents) + self.pre_bias

    def forward(
        self,
        activations: torch.Tensor | None = None,
        activation_grads: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **kwargs,
    ) -> GSAEOutput | tuple:
        r"""
        activations (`torch.FloatTensor` of shape `(..., d_in)`): residual-stream vectors of the source layer.
        activation_grads (`torch.FloatTensor` of the same shape, *optional*): the LM loss gradient at each
            activation (:func:`hf_mim.data.activations.collect_activations`); None: plain TopK selection.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        self.check_inputs(activations, activation_grads)
        pre = self.pre_activations(activations)
        latents = self.select(pre, activation_grads)
        reconstruction = self.decode(latents)
        dtype = torch.promote_types(reconstruction.dtype, torch.float32)
        mse = (reconstruction.to(dtype) - activations.to(dtype)).pow(2).mean()
        loss, terms = mse, {"mse": mse.detach()}
        if self.training:
            dead = self.update_dead_latents(latents)
            if self.config.aux_k_coef > 0:
                aux = auxk_loss(pre, dead, activations - reconstruction, self.decoder, self.config.aux_k)
                loss, terms["auxk"] = loss + self.config.aux_k_coef * aux, aux.detach()
        output = GSAEOutput(
            loss=loss, reconstruction=reconstruction, latents=latents, loss_terms=terms,
            hidden_states=(activations, latents) if output_hidden_states else None,
        )
        return output if return_dict else output.to_tuple()

    @torch.no_grad()
    def update_dead_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Count this batch's tokens for every latent, reset the selected ones; returns the dead latents (bool)."""
        fired = (latents != 0).flatten(0, -2).any(0)
        self.tokens_since_fired.add_(latents[..., 0].numel()).masked_fill_(fired, 0)
        return self.tokens_since_fired >= self.config.dead_tokens_threshold

    def dead_fraction(self) -> float:
        """Fraction of latents dead at the end of training (not selected in ``dead_tokens_threshold`` tokens)."""
        return float((self.tokens_since_fired >= self.config.dead_tokens_threshold).float().mean())

    def reconstruct(self, activations: torch.Tensor) -> torch.Tensor:
        """The SAE's reconstruction (plain TopK: no gradient at inference; no loss or dead-latent counting), in the
        shape and dtype of ``activations`` (e.g. a bf16 language model's)."""
        self.check_inputs(activations, None)
        latents = self.select(self.pre_activations(activations.to(self.pre_bias.dtype)))
        return self.decode(latents).to(activations.dtype)

    def check_source(self, language_model, layer: int | None = None) -> int:
        """Refuse a language model whose width is not this SAE's; returns the layer (default: the trained one)."""
        layer = self.config.source_layer if layer is None else layer
        if layer is None:
            raise ValueError("this SAE records no source_layer: pass layer=")
        width = language_model.config.hidden_size
        if width != self.config.d_in:
            raise ValueError(
                f"{type(language_model).__name__} has width {width} but this SAE was trained on width {self.config.d_in} "
                f"({self.config.source_model or 'unknown model'} layer {self.config.source_layer}): use an SAE trained on it"
            )
        check_layer(language_model, layer)
        return layer

    def splice(self, language_model, layer: int | None = None):
        """Context manager: the LM runs with its block ``layer`` output replaced by this SAE's reconstruction
        (default layer: the one trained on), e.g. for the spliced next-token loss."""
        return replace_layer_output(language_model, self.check_source(language_model, layer), self.reconstruct)

    @torch.no_grad()
    def normalize_decoder_(self) -> None:
        self.decoder.normalize_()
