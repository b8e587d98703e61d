"""Starbucks SRL: StarbucksLoss is the base loss at the full model plus, at every other fixed pair (none sampled),
the base loss and the KL from the full model's (detached) score distribution; sub-model export is exact."""

import pytest
import torch
import torch.nn.functional as F

import hf_mim
from hf_mim.data.text import make_key_value_corpus, train_tokenizer

pytest.importorskip("sentence_transformers")
from hf_mim.models.starbucks import StarbucksLoss, export_submodel, starbucks_sentence_transformer  # noqa: E402
from hf_mim.models.starbucks.srl_starbucks import kl_to_teacher  # noqa: E402

SPEC = hf_mim.get_method("starbucks")
QUERIES = ["the door code of amber", "basil said nothing", "the seat of cedar", "a ticket"]
DOCS = ["amber has a door code", "nothing was said by basil", "cedar sits there", "the ticket of delta"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tokenizer = train_tokenizer(make_key_value_corpus(40)["text"], vocab_size=300, model_max_length=64)
    torch.manual_seed(0)
    config = SPEC.make_config("tiny", num_hidden_layers=3, vocab_size=len(tokenizer), hidden_dropout_prob=0.0,
                              attention_probs_dropout_prob=0.0, matryoshka_layers=[1, 2, 3], matryoshka_dims=[8, 16, 32])
    model = SPEC.pretraining_class(config).eval()
    folder = tmp_path_factory.mktemp("smae")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer, starbucks_sentence_transformer(folder)


def test_loss_sums_every_fixed_pair_with_the_kl_to_the_full_scores(setup):
    model, tokenizer, st = setup
    loss = StarbucksLoss(st)
    assert loss.pairs == [(1, 8), (2, 16), (3, 32)]  # from the checkpoint's config
    features = [st.preprocess(QUERIES), st.preprocess(DOCS)]
    got = loss(features, None)
    assert torch.equal(loss(features, None), got)  # fixed pairs: nothing sampled, the same loss every call

    def embed(texts, layer, dim):
        ids = tokenizer(texts, return_tensors="pt", padding=True)
        return model.encoder.embed(ids["input_ids"], ids["attention_mask"], layer=layer, dim=dim)

    target = torch.arange(len(QUERIES))
    full = embed(QUERIES, 3, 32) @ embed(DOCS, 3, 32).T  # dot product, temperature 1 (the official retrieval SRL)
    expected = F.cross_entropy(full, target)
    teacher = F.softmax(full, dim=-1)
    for layer, dim in [(1, 8), (2, 16)]:
        scores = embed(QUERIES, layer, dim) @ embed(DOCS, layer, dim).T
        kl = (teacher * (teacher.log() - F.log_softmax(scores, dim=-1))).sum(-1).mean()  # KL(full ‖ pair)
        assert kl > 0
        torch.testing.assert_close(kl_to_teacher(scores, teacher), kl)
        expected = expected + F.cross_entropy(scores, target) + kl
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_the_kl_teacher_is_detached_and_weighted(setup):
    model, tokenizer, st = setup
    features = [st.preprocess(QUERIES), st.preprocess(DOCS)]
    last_layer = st[0].auto_model.encoder.layer[2].output.dense.weight  # only the full model reads layer 3
    grads = {}
    for weight in (0.0, 1.0, 2.0):
        st.zero_grad()
        value = StarbucksLoss(st, kl_div_weight=weight)(features, None)
        value.backward()
        grads[weight] = (float(value.detach()), last_layer.grad.clone())
    assert torch.equal(grads[0.0][1], grads[1.0][1])  # the KL term sends no gradient into the teacher
    kl = grads[1.0][0] - grads[0.0][0]
    assert kl > 0 and grads[2.0][0] - grads[0.0][0] == pytest.approx(2 * kl, rel=1e-4)


def test_exported_submodel_is_a_plain_bert_giving_the_pair_embedding(setup, tmp_path):
    from sentence_transformers import SentenceTransformer

    model, tokenizer, st = setup
    export_submodel(st, 2, 16, tmp_path / "sub")
    sub = SentenceTransformer(str(tmp_path / "sub"))
    assert type(sub[0].auto_model).__name__ == "BertModel" and sub[0].auto_model.config.num_hidden_layers == 2
    got = sub.encode(QUERIES[:2], convert_to_tensor=True)
    ids = tokenizer(QUERIES[:2], return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = model.encoder.embed(ids["input_ids"], ids["attention_mask"], layer=2, dim=16)
    assert got.shape == (2, 16)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match=r"sub-model \(4, 16\) must lie within 3 layers"):
        export_submodel(st, 4, 16, tmp_path / "bad")
