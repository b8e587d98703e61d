"""SAE circuits: per-head attention results of GPT-2 and Llama-style models, the official SAE loss and unit-norm rules,
codes and node/edge scores against hand computations, a planted circuit ranked first, explicit labels,
save/load, ``hf-mim circuits`` end to end and its errors. (Equality with the official code on the same head vectors
and init is checked by the comparison script reported in RESULTS.md.)"""

import json

import numpy as np
import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
)

from hf_mim.models.saecircuits import DiscreteCodeSAE, SAECircuitsConfig
from hf_mim.models.saecircuits.circuits import (
    CircuitFinder,
    head_results,
    load_prompts,
    roc_auc,
    token_head_results,
    train_sae,
)

VOCAB, TRIGGER = 64, 7


def tiny_gpt2(seed: int = 0) -> GPT2LMHeadModel:
    """2 layers x 2 heads, width 32, with random (nonzero) biases so the value and output biases are exercised."""
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=32, n_layer=2, n_head=2)).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("bias"):
                parameter.normal_(std=0.1)
    return model


def tiny_sae(feature_size: int = 32, **overrides) -> DiscreteCodeSAE:
    torch.manual_seed(0)
    return DiscreteCodeSAE(SAECircuitsConfig(feature_size=feature_size, num_latents=24, num_layers=2, num_heads=2, **overrides))


def attention_outputs(model, input_ids) -> list[torch.Tensor]:
    """Each layer's attention output (the output projection's output, bias included)."""
    outputs = []
    names = [n for n, _ in model.named_modules() if n.endswith(".attn.c_proj") or n.endswith(".o_proj")]
    handles = [model.get_submodule(n).register_forward_hook(lambda m, a, out: outputs.append(out)) for n in names]
    with torch.no_grad():
        model(input_ids=input_ids)
    for handle in handles:
        handle.remove()
    return outputs


def test_head_results_plus_bias_sum_to_the_attention_output_gpt2_and_llama():
    torch.manual_seed(1)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                                         attention_bias=True)).eval()
    with torch.no_grad():
        for layer in llama.model.layers:
            layer.self_attn.o_proj.bias.normal_(std=0.1)
    ids = torch.randint(0, VOCAB, (3, 9), generator=torch.Generator().manual_seed(0))
    for model, heads in ((tiny_gpt2(), 2), (llama, 4)):
        results = token_head_results(model, ids)
        assert results.shape == (3, 9, 2 * heads, 32)
        projections = [m for n, m in model.named_modules() if n.endswith(".attn.c_proj") or n.endswith(".o_proj")]
        for layer, (output, projection) in enumerate(zip(attention_outputs(model, ids), projections)):
            summed = results[:, :, layer * heads:(layer + 1) * heads].sum(2) + projection.bias
            torch.testing.assert_close(summed, output, atol=1e-5, rtol=1e-5)
        assert not torch.allclose(results[:, :, 0], results[:, :, 1])  # heads differ
    # pooling: mean over tokens and the last token; a batch equals prompts run one at a time
    model = tiny_gpt2()
    full = token_head_results(model, ids)
    torch.testing.assert_close(head_results(model, ids), full.mean(1))
    torch.testing.assert_close(head_results(model, ids, position="last"), full[:, -1])
    torch.testing.assert_close(head_results(model, [row.tolist() for row in ids]), full.mean(1), atol=1e-6, rtol=1e-5)


def test_loss_is_mse_plus_l1_and_the_unit_norm_rules_hold():
    sae = tiny_sae(16)
    x = torch.randn(5, 4, 16)
    out = sae(x)
    latents = torch.relu(torch.nn.functional.linear(x - sae.encoder.tied_bias, sae.encoder.encoder.weight, sae.encoder.encoder.bias))
    reconstruction = latents @ sae.decoder.weight.T + sae.encoder.tied_bias
    expected = ((reconstruction - x) ** 2).mean() + 0.02 * latents.abs().sum(-1).mean()
    torch.testing.assert_close(out.loss, expected)
    torch.testing.assert_close(sae(x.reshape(20, 16)).loss, out.loss)  # per-vector: layout does not matter
    assert torch.equal(sae.encoder.tied_bias, torch.zeros(16))
    # the gradient of a unit row has no component along it (the official backward hook)
    out.loss.backward()
    for layer in (sae.encoder.encoder, sae.decoder):
        along = (layer.weight.grad * layer.weight).sum(-1)
        assert along.abs().max() < 1e-6 and layer.weight.grad.abs().max() > 1e-4
    # an optimiser step drifts the rows off the sphere; the next training forward puts them back
    with torch.no_grad():
        sae.decoder.weight.mul_(3)
    sae.eval()
    evaluated = sae(x).loss
    assert torch.allclose(sae.decoder.weight.norm(dim=-1), torch.full((16,), 3.0))  # evaluation leaves them alone
    sae.train()
    torch.testing.assert_close(sae(x).loss, evaluated)
    torch.testing.assert_close(sae.decoder.weight.norm(dim=-1), torch.ones(16))


def test_codes_and_node_edge_scores_match_a_hand_computation():
    sae = DiscreteCodeSAE(SAECircuitsConfig(feature_size=4, num_latents=6, num_layers=1, num_heads=3))
    codes = torch.tensor([[0, 1, 2], [3, 1, 2], [0, 1, 5], [0, 4, 2], [0, 1, 2]])
    labels = torch.tensor([True, True, False, False, False])
    finder = CircuitFinder(sae)
    # head 0: positives {0, 3}, negatives {0} -> 1 unique; heads 1 and 2: none
    assert finder.node_counts(codes, labels).tolist() == [1, 0, 0]
    torch.testing.assert_close(finder.node_scores(codes, labels), torch.softmax(torch.tensor([[1.0, 0, 0]], dtype=torch.float64), -1))
    assert CircuitFinder(sae, normalise=True).node_counts(codes, labels).tolist() == [0.5, 0, 0]
    # pairs (0,1): positives {(0,1), (3,1)}, negatives {(0,1), (0,4)} -> 1; (0,2) likewise; (1,2): (1,2) is negative too
    counts = finder.edge_counts(codes, labels)
    assert counts.tolist() == [[0, 1, 1], [1, 0, 0], [1, 0, 0]]
    assert CircuitFinder(sae, normalise=True).edge_counts(codes, labels)[0, 1] == 0.25  # 1 / (2 + 2 distinct pairs)
    # descending, ties in pair order: (0,1), (0,2), (1,0), (2,0); k = 9 // 2 = 4 contributions -> heads 0,1,0,2
    assert finder.ranked_edges(counts)[:4] == [(0, 1), (0, 2), (1, 0), (2, 0)]
    torch.testing.assert_close(finder.edge_scores(codes, labels), torch.softmax(torch.tensor([[2.0, 1, 1]], dtype=torch.float64), -1))
    # argmax codes; latents all zero (ReLU of a very negative bias) give code 0
    with torch.no_grad():
        sae.encoder.encoder.weight.copy_(torch.eye(6, 4))
        sae.encoder.encoder.bias.zero_()
    vectors = torch.tensor([[[0.0, 0, 3, 1], [0, 2, 0, 0], [-1, -1, -1, -1]]])
    assert finder.codes(vectors).tolist() == [[2, 1, 0]]
    # ROC-AUC: scikit-learn's and the rank statistic agree, ties counted half
    assert roc_auc([0.9, 0.5, 0.5, 0.1], [1, 1, 0, 0]) == pytest.approx(0.875)


def planted_prompts(count: int = 12, length: int = 8, seed: int = 0):
    """Positives hold the trigger token at a random position; each negative is its positive with the trigger
    replaced by another token."""
    g = torch.Generator().manual_seed(seed)
    positives = torch.randint(8, VOCAB, (count, length), generator=g)
    where = torch.randint(0, length, (count,), generator=g)
    positives[torch.arange(count), where] = TRIGGER
    negatives = positives.clone()
    negatives[torch.arange(count), where] = torch.randint(8, VOCAB, (count,), generator=g)
    return torch.cat([positives, negatives]), torch.arange(2 * count) < count


def planted_model(layer: int = 0, head: int = 1) -> GPT2LMHeadModel:
    """Head (layer, head) reads only the trigger token: the trigger embedding is a direction ``u`` (orthogonal to
    the all-ones vector, so layer norm keeps it) that every other token and position embedding lacks, and the head's
    values are ``u``'s coordinate times a fixed vector. Its output differs systematically between the prompts."""
    model = tiny_gpt2()
    g = torch.Generator().manual_seed(5)
    u = torch.randn(32, generator=g)
    u = torch.nn.functional.normalize(u - u.mean(), dim=0)
    with torch.no_grad():
        for table in (model.transformer.wte.weight, model.transformer.wpe.weight):
            table.sub_(torch.outer(table @ u, u))
        model.transformer.wte.weight[TRIGGER] = u
        model.transformer.h[layer].ln_1.bias.zero_()
        attention = model.transformer.h[layer].attn
        attention.c_attn.weight[:, 64 + 16 * head: 64 + 16 * (head + 1)] = torch.outer(u, torch.randn(16, generator=g))
        attention.c_attn.bias[64 + 16 * head: 64 + 16 * (head + 1)] = 0
        attention.c_proj.weight[16 * head: 16 * (head + 1)] *= 30  # a loud head, as circuit heads are
    return model


def test_a_planted_circuit_is_ranked_first_and_explicit_labels_are_respected(tmp_path):
    model = planted_model(layer=0, head=1)
    ids, labels = planted_prompts()
    vectors = head_results(model, ids)
    config = SAECircuitsConfig(feature_size=32, num_latents=24, num_layers=2, num_heads=2)
    sae, losses = train_sae(vectors, config, tmp_path, epochs=25, seed=0)
    assert losses[-1] < 0.9 * losses[0]
    result = CircuitFinder(sae).find(vectors, labels, ground_truth=["L0H1"])
    assert result["nodes"][0]["head"] == "L0H1" and result["edge_nodes"][0]["head"] == "L0H1"
    assert result["nodes"][0]["score"] > result["nodes"][1]["score"]
    assert result["roc_auc"] == {"node": 1.0, "edge": 1.0}
    assert {edge["from"] for edge in result["edges"]} | {edge["to"] for edge in result["edges"]} >= {"L0H1"}
    # labels, not positions, decide: shuffled prompts with their labels give the same scores
    finder = CircuitFinder(sae)
    order = torch.randperm(len(ids), generator=torch.Generator().manual_seed(1))
    codes = finder.codes(vectors)
    torch.testing.assert_close(finder.node_scores(codes[order], labels[order]), finder.node_scores(codes, labels))
    torch.testing.assert_close(finder.edge_counts(codes[order], labels[order]), finder.edge_counts(codes, labels))
    # the official convention (first half positive) read on interleaved pairs would lose the circuit
    interleaved = torch.stack([torch.arange(12), torch.arange(12, 24)], 1).flatten()
    assert finder.node_counts(codes[interleaved], labels[interleaved])[1] == finder.node_counts(codes, labels)[1] > 0
    assert finder.node_counts(codes[interleaved], torch.arange(24) < 12)[1] == 0


def test_save_load_bit_exact_records_the_source_model_and_head_layout(tmp_path):
    sae = tiny_sae(source_model="me/tiny-gpt2", position="last")
    sae.save_pretrained(tmp_path)
    config = AutoConfig.from_pretrained(tmp_path)
    assert (config.source_model, config.num_layers, config.num_heads, config.position) == ("me/tiny-gpt2", 2, 2, "last")
    assert config.head_labels == ["L0H0", "L0H1", "L1H0", "L1H1"]
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path)
    assert type(loaded) is DiscreteCodeSAE
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in sae.state_dict().items())
    x = torch.randn(3, 4, 32)
    assert torch.equal(loaded.eval()(x).loss, sae.eval()(x).loss) and torch.equal(loaded.codes(x), sae.codes(x))
    encoder = AutoModel.from_pretrained(tmp_path)
    assert torch.equal(encoder.codes(x), sae.codes(x))


def write_rows(path, rows):
    path.write_text("\n".join(json.dumps(row) for row in rows))
    return path


def test_bad_inputs_are_refused_with_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="needs 'positive' and 'negative'"):
        load_prompts(write_rows(tmp_path / "a.jsonl", [{"positive": "a b"}]))
    with pytest.raises(ValueError, match="misses its 'positive' or 'negative'"):
        load_prompts(write_rows(tmp_path / "b.jsonl", [{"positive": "a", "negative": "b"}, {"positive": "c", "negative": ""}]))
    with pytest.raises(ValueError, match="both positive and negative"):
        load_prompts(write_rows(tmp_path / "c.jsonl", [{"prompt": "a", "label": 1}, {"prompt": "b", "label": "true"}]))
    with pytest.raises(ValueError, match="label 'maybe'"):
        load_prompts(write_rows(tmp_path / "d.jsonl", [{"prompt": "a", "label": "maybe"}]))
    (tmp_path / "e.csv").write_text("prompt,label\nthe cat,positive\nthe dog,0\n")
    prompts, labels = load_prompts(tmp_path / "e.csv")
    assert prompts == ["the cat", "the dog"] and labels.tolist() == [True, False]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_prompts(tmp_path / "missing.csv")
    finder = CircuitFinder(tiny_sae())
    with pytest.raises(ValueError, match=r"head vectors must be \[prompts, 4, 32\]"):
        finder.codes(torch.randn(2, 3, 32))
    with pytest.raises(ValueError, match="3 labels for 2 prompts"):
        finder.node_counts(torch.zeros(2, 4, dtype=torch.long), [1, 0, 1])
    with pytest.raises(ValueError, match="no head layout"):
        CircuitFinder(DiscreteCodeSAE(SAECircuitsConfig(feature_size=8, num_latents=4)))
    with pytest.raises(ValueError, match=r"input_values must be head result vectors \[batch, 32\]"):
        tiny_sae()(torch.randn(2, 16))
    with pytest.raises(ValueError, match="longer than the model's 32 positions"):
        head_results(tiny_gpt2(), torch.zeros(1, 40, dtype=torch.long))
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    neox = GPTNeoXForCausalLM(GPTNeoXConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                            intermediate_size=64, max_position_embeddings=32))
    with pytest.raises(ValueError, match="unsupported attention layout in GPTNeoXForCausalLM"):
        head_results(neox, torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="ground-truth heads \\['L5H0'\\]"):
        CircuitFinder(tiny_sae()).find(torch.randn(4, 4, 32), [1, 1, 0, 0], ground_truth=["L5H0"])


def test_cli_circuits_end_to_end_and_a_foreign_sae_is_refused(tmp_path, capsys):
    from hf_mim.cli import main, run_command
    from hf_mim.data.text import train_tokenizer

    words = [f"w{i}" for i in range(40)]
    tokenizer = train_tokenizer([" ".join(words)] * 4, vocab_size=300)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=32, n_layer=2, n_head=2))
    model.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")
    rng = np.random.default_rng(0)
    rows = [{"positive": " ".join(rng.choice(words, 5)) + " w0", "negative": " ".join(rng.choice(words, 5)) + " w1"} for _ in range(6)]
    (tmp_path / "prompts.csv").write_text("positive,negative\n" + "".join(f"{r['positive']},{r['negative']}\n" for r in rows))
    out = tmp_path / "circuit"
    assert main(["circuits", "--model", str(tmp_path / "lm"), "--data", str(tmp_path / "prompts.csv"), "--output_dir", str(out),
                 "--epochs", "25", "--num_latents", "16", "--ground_truth", "L1H1"]) == 0
    result = json.loads((out / "circuit.json").read_text())
    assert sorted(n["head"] for n in result["nodes"]) == ["L0H0", "L0H1", "L1H0", "L1H1"]
    assert result["num_prompts"] == {"positive": 6, "negative": 6} and set(result["roc_auc"]) == {"node", "edge"}
    assert result["sae_loss"]["last"] < result["sae_loss"]["first"]
    config = AutoConfig.from_pretrained(out)
    assert (config.source_model, config.num_layers, config.num_heads, config.feature_size) == (str(tmp_path / "lm"), 2, 2, 32)
    assert "top heads:" in capsys.readouterr().out
    wider = GPT2LMHeadModel(GPT2Config(vocab_size=len(tokenizer), n_positions=32, n_embd=48, n_layer=2, n_head=2))
    wider.save_pretrained(tmp_path / "wide")
    tokenizer.save_pretrained(tmp_path / "wide")
    code = run_command("circuits", ["--model", str(tmp_path / "wide"), "--data", str(tmp_path / "prompts.csv"),
                                    "--output_dir", str(tmp_path / "again"), "--sae", str(out)])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hf-mim circuits: error")]
    assert code == 1 and len(errors) == 1 and "trained on width 32 with 2 layers x 2 heads" in errors[0]
    assert not (tmp_path / "again").exists()  # refused before any work
