"""Starbucks masked-autoencoder pre-training (SMAE) of a BERT encoder for 2D Matryoshka embeddings.

At each fixed (layer, dim) pair the first ``dim`` features of layer ``layer``'s hidden states go through an MLM
head whose first dense layer reads only its first ``dim`` input columns (:class:`SlicedMLMHead`); with
``use_mae_decoder`` a one-layer BERT decoder (sharing the encoder's embeddings and the head) also reconstructs a
more heavily masked copy of the text from that pair's [CLS] vector (RetroMAE). Loss: the mean over the pairs of
``(MLM CE + decoder CE) / 2``.

Faithful to ielab/Starbucks ``smae/modeling.py: BertFor2DMaekMatryoshkaMaskedLM`` (losses and gradients equal to
~1e-7 on the same weights and masks, see RESULTS.md), with three differences in how, not what:

* the official head slicing monkey-patches ``cls.predictions.transform.forward``, which does not survive
  save/load; here it is a module of its own.
* the official decoder is ``BertForMaskedLM.from_pretrained(config._name_or_path)`` cut to one layer (a network
  call inside ``__init__``, and a copy of the *pretrained* first layer); here it is a :class:`BertLayer` built
  from the config and initialised like the others; the embeddings and head are the encoder's own modules.
* the official code embeds the decoder input once per pair (same values, except for dropout draws); here once.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import initialization as init
from transformers.masking_utils import create_bidirectional_mask
from transformers.models.bert.modeling_bert import (
    BertEmbeddings,
    BertEncoder,
    BertLayer,
    BertLMPredictionHead,
    BertModel,
    BertSelfAttention,
)
from transformers.utils import ModelOutput

from hf_mim.modeling_utils import MIMPreTrainedModel
from hf_mim.models.starbucks.configuration_starbucks import StarbucksConfig

IGNORE_INDEX = -100


@dataclass
class StarbucksPreTrainingOutput(ModelOutput):
    """``loss``: mean over pairs of ½(MLM CE + decoder CE). ``mlm_loss`` / ``decoder_loss`` ``[pairs]``: each pair's
    terms (``decoder_loss`` only with the decoder). ``logits [B, T, vocab]``: the full model's MLM predictions
    (last pair). ``hidden_states``: the embedding output, then every layer's output."""

    loss: torch.Tensor | None = None
    mlm_loss: torch.Tensor | None = None
    decoder_loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    hidden_states: tuple[torch.Tensor, ...] | None = None
    attentions: tuple[torch.Tensor, ...] | None = None


class SlicedMLMHead(BertLMPredictionHead):
    """BERT's MLM head for the first ``d`` features of a hidden state: the transform's dense layer reads only its
    first ``d`` input columns (``dense.weight[:, :d]``, the full bias), so every pair shares one head whose output
    width stays ``hidden_size``."""

    def transform_sliced(self, hidden_states: torch.Tensor) -> torch.Tensor:
        dim = hidden_states.shape[-1]
        transform = self.transform
        hidden_states = F.linear(hidden_states, transform.dense.weight[:, :dim], transform.dense.bias)
        return transform.LayerNorm(transform.transform_act_fn(hidden_states))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.transform_sliced(hidden_states))


class StarbucksPreTrainedModel(MIMPreTrainedModel):
    config_class = StarbucksConfig
    base_model_prefix = "encoder"
    main_input_name = "input_ids"
    input_modalities = ("text",)
    _no_split_modules = ["BertEmbeddings", "BertLayer"]
    _can_record_outputs = {"hidden_states": BertLayer, "attentions": BertSelfAttention}

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """BERT's initialisation (``BertPreTrainedModel._init_weights``): normal(initializer_range) weights, zero
        biases and padding row, unit LayerNorm, zero MLM bias, rebuilt position / token-type buffers."""
        std = self.config.initializer_range
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        if isinstance(module, BertLMPredictionHead):
            init.zeros_(module.bias)
        elif isinstance(module, BertEmbeddings):
            init.copy_(module.position_ids, torch.arange(module.position_ids.shape[-1]).expand((1, -1)))
            init.zeros_(module.token_type_ids)

    def check_length(self, input_ids: torch.Tensor) -> None:
        limit = self.config.max_position_embeddings
        if input_ids.shape[1] > limit:
            raise ValueError(f"sequences of {input_ids.shape[1]} tokens are longer than the model's "
                             f"{limit} positions: truncate them (tokenizer(..., truncation=True, max_length={limit}))")


class StarbucksModel(StarbucksPreTrainedModel):
    """The BERT encoder (transformers' own modules and forward, no pooler). :meth:`embed` gives the embedding of
    any (layer, dim) sub-model: the first ``dim`` features of layer ``layer``'s [CLS] state."""

    def __init__(self, config: StarbucksConfig):
        super().__init__(config)
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = None
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.word_embeddings

    def set_input_embeddings(self, value):
        self.embeddings.word_embeddings = value

    _create_attention_masks = BertModel._create_attention_masks
    _bert_forward = BertModel.forward

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        if input_ids is not None:
            self.check_length(input_ids)
        return self._bert_forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def embed(self, input_ids, attention_mask=None, layer: int | None = None, dim: int | None = None) -> torch.Tensor:
        """``[B, dim]`` [CLS] embeddings of the sub-model made of the first ``layer`` layers (1-based; default all),
        cut to its first ``dim`` features (default all): the sub-models SRL fine-tunes."""
        layer = self.config.num_hidden_layers if layer is None else layer
        if not 0 <= layer <= self.config.num_hidden_layers:
            raise ValueError(f"layer must be in 0..{self.config.num_hidden_layers}, got {layer}")
        hidden = self(input_ids, attention_mask=attention_mask, output_hidden_states=True).hidden_states[layer]
        return hidden[:, 0, :dim]


class StarbucksForPreTraining(StarbucksPreTrainedModel):
    """SMAE: 2D Matryoshka MLM at every (layer, dim) pair plus, with ``use_mae_decoder``, the RetroMAE decoder.

    Inputs (:class:`~hf_mim.models.starbucks.DataCollatorForStarbucks` makes them): ``input_ids`` (masked),
    ``attention_mask``, ``labels`` (original ids at the encoder's masked positions, -100 elsewhere) and, for the
    decoder, ``decoder_input_ids`` / ``decoder_labels`` (the more heavily masked copy). The labels are the
    explicit mask: a batch that masks nothing, or a sequence whose every token is masked, is refused.
    """

    _tied_weights_keys = {
        "head.decoder.weight": "encoder.embeddings.word_embeddings.weight",
        "head.decoder.bias": "head.bias",
    }

    def __init__(self, config: StarbucksConfig):
        super().__init__(config)
        self.encoder = StarbucksModel(config)
        self.head = SlicedMLMHead(config)
        self.decoder_layer = BertLayer(config) if config.use_mae_decoder else None
        self.post_init()

    def get_output_embeddings(self):
        return self.head.decoder

    def set_output_embeddings(self, new_embeddings):
        self.head.decoder = new_embeddings
        self.head.bias = new_embeddings.bias

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        decoder_input_ids: torch.Tensor | None = None,
        decoder_labels: torch.Tensor | None = None,
        token_type_ids: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        return_dict: bool | None = None,
    ):
        return_dict = self.config.return_dict if return_dict is None else return_dict
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        encoded = self.encoder(input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                               output_hidden_states=True, output_attentions=output_attentions)
        hidden_states = encoded.hidden_states
        logits = self.head(hidden_states[-1])
        loss = mlm_losses = decoder_losses = None
        if labels is not None:
            check_masks(labels, attention_mask, "labels")
            use_decoder = self.decoder_layer is not None
            if use_decoder:
                if decoder_input_ids is None or decoder_labels is None:
                    raise ValueError("the MAE decoder needs decoder_input_ids and decoder_labels (DataCollatorForStarbucks "
                                     "makes them), or set use_mae_decoder=False")
                check_masks(decoder_labels, attention_mask, "decoder_labels")
                decoder_embeddings = self.encoder.embeddings(decoder_input_ids, token_type_ids=token_type_ids)
                decoder_mask = create_bidirectional_mask(config=self.config, inputs_embeds=decoder_embeddings,
                                                         attention_mask=attention_mask)
            mlm_losses, decoder_losses = [], []
            for layer, dim in self.config.pairs:
                sliced = hidden_states[layer][..., :dim]
                scores = logits if (layer, dim) == (len(hidden_states) - 1, self.config.hidden_size) else self.head(sliced)
                mlm_losses.append(F.cross_entropy(scores.flatten(0, 1), labels.flatten()))
                if use_decoder:
                    cls = self.head.transform_sliced(sliced[:, :1])  # the sub-model's [CLS] replaces the first input
                    decoded = self.decoder_layer(torch.cat([cls, decoder_embeddings[:, 1:]], dim=1), decoder_mask)
                    decoder_losses.append(F.cross_entropy(self.head(decoded).flatten(0, 1), decoder_labels.flatten()))
            mlm_losses = torch.stack(mlm_losses)
            decoder_losses = torch.stack(decoder_losses) if use_decoder else None
            loss = ((mlm_losses + decoder_losses) / 2 if use_decoder else mlm_losses).mean()
        output = StarbucksPreTrainingOutput(
            loss=loss, mlm_loss=mlm_losses, decoder_loss=decoder_losses, logits=logits,
            hidden_states=hidden_states if output_hidden_states else None, attentions=encoded.attentions,
        )
        return output if return_dict else output.to_tuple()


def check_masks(labels: torch.Tensor, attention_mask: torch.Tensor, name: str) -> None:
    """Refuse a mask that hides nothing (no loss) or a sequence whose every token is hidden (nothing to read)."""
    masked = labels != IGNORE_INDEX
    if not masked.any():
        raise ValueError(f"{name} mask no token (all -100): nothing to predict; mask some tokens "
                         "(DataCollatorForStarbucks) or pass no labels")
    if (masked | ~attention_mask.bool()).all(dim=1).any():
        raise ValueError(f"{name} mask every token of a sequence: nothing is left to read; mask a fraction of the tokens")
