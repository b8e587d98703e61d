"""Starbucks Representation Learning (SRL): 2D Matryoshka fine-tuning at fixed (layer, dim) pairs, as a
sentence-transformers loss, and the export of one pair as a plain BERT SentenceTransformer.

Needs sentence-transformers (the ``[text]`` extra); imported on first use of these names, never by ``import
hf_mim``.

:class:`StarbucksLoss` follows ielab/Starbucks ``retrieval/modeling.py: SrlDenseModel`` with
``sub_model_sampling=False`` (the paper's SRL): the base loss at the full model (the last pair's layer, every
dimension), then at every other pair of the fixed diagonal list (not sampled, unlike 2DMSE / sentence-transformers'
``Matryoshka2dLoss``), each plus ``kl_div_weight`` × KL(full ‖ pair) between the softmaxed score distributions
of each query over all candidates, the full model's detached (the teacher). Losses are summed, not averaged, as
there. Scores: the base loss's similarity × its scale, so the official setting (dot product, temperature 1, KL
weight 1) is ``MultipleNegativesRankingLoss(model, scale=1.0, similarity_fct=util.dot_score)``, the default.
The official STS variant (``sts/starbucks_loss.py``) instead applies the KL to softmaxed *embedding* vectors;
the retrieval form is the one that matches the paper's description (scores) and the retrieval task here.
"""

import tempfile
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hf_mim.models.starbucks.configuration_starbucks import check_pairs, default_pairs


def _sentence_transformers():
    try:
        import sentence_transformers
    except ImportError as error:
        raise ImportError("SRL needs sentence-transformers: pip install 'hf_mim[text]'") from error
    return sentence_transformers


class StarbucksLoss(nn.Module):
    """SRL loss over the fixed (layer, dim) pairs of a SentenceTransformer whose first module is a transformer.

    Args:
        model: the SentenceTransformer (e.g. :func:`starbucks_sentence_transformer` of an SMAE checkpoint).
        loss: a base loss with ``compute_loss_from_embeddings`` and, for the KL term, ``similarity_fct`` and
            ``scale`` (default: ``MultipleNegativesRankingLoss`` with dot-product scores at temperature 1).
        matryoshka_layers, matryoshka_dims: the pairs (1-based layers); default: the checkpoint's config
            (``StarbucksConfig``) or :func:`default_pairs` of its size.
        kl_div_weight: weight of each pair's KL term (official 1.0; 0 turns it off).
    """

    def __init__(self, model, loss: nn.Module | None = None, matryoshka_layers: list[int] | None = None,
                 matryoshka_dims: list[int] | None = None, kl_div_weight: float = 1.0):
        super().__init__()
        st = _sentence_transformers()
        config = model[0].auto_model.config
        if loss is None:
            loss = st.sentence_transformer.losses.MultipleNegativesRankingLoss(
                model, scale=1.0, similarity_fct=st.util.dot_score)
        if not hasattr(loss, "compute_loss_from_embeddings"):
            raise ValueError(f"{type(loss).__name__} cannot score given embeddings (no compute_loss_from_embeddings): "
                             "use e.g. MultipleNegativesRankingLoss or CoSENTLoss")
        if matryoshka_layers is None or matryoshka_dims is None:
            layers, dims = default_pairs(config.num_hidden_layers, config.hidden_size)
            matryoshka_layers = matryoshka_layers or getattr(config, "matryoshka_layers", None) or layers
            matryoshka_dims = matryoshka_dims or getattr(config, "matryoshka_dims", None) or dims
        check_pairs(matryoshka_layers, matryoshka_dims, config.num_hidden_layers, model.get_embedding_dimension())
        self.model, self.loss, self.kl_div_weight = model, loss, kl_div_weight
        self.pairs = list(zip(matryoshka_layers, matryoshka_dims))

    def pair_embeddings(self, features: dict) -> dict[int, Tensor]:
        """``{layer: sentence embedding}`` for every pair's layer, from one pass of the transformer (the later
        modules, pooling and the like, run on each layer's token embeddings)."""
        transformer, rest = self.model[0], list(self.model)[1:]
        output = transformer(features)
        hidden = output.get("all_layer_embeddings")
        if hidden is None:
            raise ValueError("the transformer module returned no hidden states; enable output_hidden_states")
        embeddings = {}
        for layer in {layer for layer, _ in self.pairs}:
            layer_features = {**output, "token_embeddings": hidden[layer]}
            for module in rest:
                layer_features = module(layer_features)
            embeddings[layer] = layer_features["sentence_embedding"]
        return embeddings

    def scores(self, embeddings: list[Tensor]) -> Tensor:
        """Each query's (first column) scaled similarity to every candidate (the other columns, concatenated)."""
        return self.loss.similarity_fct(embeddings[0], torch.cat(embeddings[1:])) * self.loss.scale

    def forward(self, sentence_features: Iterable[dict[str, Tensor]], labels: Tensor | None) -> Tensor:
        config = self.model[0].auto_model.config
        previous, config.output_hidden_states = config.output_hidden_states, True
        try:
            columns = [self.pair_embeddings(features) for features in sentence_features]
        finally:
            config.output_hidden_states = previous
        full_layer = self.pairs[-1][0]
        full = [column[full_layer] for column in columns]
        loss = self.loss.compute_loss_from_embeddings(full, labels)
        teacher = F.softmax(self.scores(full).detach(), dim=-1) if self.kl_div_weight > 0 else None
        for layer, dim in self.pairs:
            if (layer, dim) == (full_layer, full[0].shape[-1]):
                continue  # the full model's loss is already in
            sub = [column[layer][:, :dim] for column in columns]
            loss = loss + self.loss.compute_loss_from_embeddings(sub, labels)
            if teacher is not None:
                loss = loss + self.kl_div_weight * kl_to_teacher(self.scores(sub), teacher)
        return loss

    def get_config_dict(self) -> dict:
        return {"loss": type(self.loss).__name__, "pairs": self.pairs, "kl_div_weight": self.kl_div_weight}


def kl_to_teacher(scores: Tensor, teacher: Tensor) -> Tensor:
    """KL(teacher ‖ softmax(scores)) averaged over queries (``F.kl_div(..., reduction="batchmean")``)."""
    return F.kl_div(F.log_softmax(scores, dim=-1), teacher, reduction="batchmean")


def starbucks_sentence_transformer(path: str, max_seq_length: int | None = None):
    """A SentenceTransformer of a saved Starbucks (or any BERT) checkpoint with [CLS] pooling, as the paper embeds
    (the checkpoint's tokenizer included; ``import hf_mim`` registers the Starbucks classes ``AutoModel`` needs)."""
    st = _sentence_transformers()
    transformer = st.base.modules.Transformer(str(path), max_seq_length=max_seq_length)
    pooling = st.sentence_transformer.modules.Pooling(transformer.get_embedding_dimension(), pooling_mode="cls")
    return st.SentenceTransformer(modules=[transformer, pooling])


def export_submodel(model, layer: int, dim: int, output_dir, tokenizer=None):
    """Save the (``layer``, ``dim``) sub-model of ``model`` (a SentenceTransformer over a Starbucks/BERT encoder, or
    a ``StarbucksModel``/``StarbucksForPreTraining`` with ``tokenizer``) as a plain ``BertModel`` with its first
    ``layer`` layers, wrapped in a SentenceTransformer that pools [CLS] and keeps the first ``dim`` dimensions
    (``truncate_dim``): it loads without hf_mim. Returns the SentenceTransformer."""
    from transformers import BertConfig, BertModel

    st = _sentence_transformers()
    if isinstance(model, st.SentenceTransformer):
        encoder, tokenizer = model[0].auto_model, model[0].tokenizer
    else:
        encoder = getattr(model, "encoder", model) if hasattr(model, "head") else model
        if tokenizer is None:
            raise ValueError("give the tokenizer that goes with the model (tokenizer=...)")
    config = encoder.config
    if not 1 <= layer <= config.num_hidden_layers or not 1 <= dim <= config.hidden_size:
        raise ValueError(f"the sub-model ({layer}, {dim}) must lie within {config.num_hidden_layers} layers and "
                         f"{config.hidden_size} dimensions")
    fields = {key: value for key, value in BertConfig().to_dict().items() if key in config.to_dict()}
    bert_config = BertConfig(**{**fields, **{k: getattr(config, k) for k in fields if hasattr(config, k)},
                                "num_hidden_layers": layer, "architectures": ["BertModel"]})
    bert_config.model_type = "bert"
    bert = BertModel(bert_config, add_pooling_layer=False)
    state = {key: value for key, value in encoder.state_dict().items()
             if not key.startswith("encoder.layer.") or int(key.split(".")[2]) < layer}
    missing, unexpected = bert.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"the encoder does not fit a BERT: missing {missing[:4]}, unexpected {unexpected[:4]}")
    with tempfile.TemporaryDirectory() as folder:
        bert.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        transformer = st.base.modules.Transformer(folder)
        pooling = st.sentence_transformer.modules.Pooling(config.hidden_size, pooling_mode="cls")
        sub = st.SentenceTransformer(modules=[transformer, pooling], truncate_dim=dim)
    sub.save(str(output_dir))
    return sub


__all__ = ["StarbucksLoss", "export_submodel", "kl_to_teacher", "starbucks_sentence_transformer"]
