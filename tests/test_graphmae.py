"""GraphMAE: masking and re-masking, the official token/replacement split, the loss scope, graph batching and
input checks, Auto classes with the feature extractor, remote code, card, and the CLI on generated graphs.

Parity with the official code (THUDM/GraphMAE, PyG branch) on the same weights, graph and masks was measured
outside the suite (it needs torch_geometric): see benchmarks/RESULTS.md."""

import json
import math

import numpy as np
import pytest
import torch
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForTokenClassification,
)

import hf_mim
from hf_mim.data import DataError
from hf_mim.data.graphs import GraphCollator, load_graph_dataset, make_sbm_graphs, prepare_graph_dataset
from hf_mim.layers.graph import GATLayer, with_self_loops
from hf_mim.models.graphmae.modeling_graphmae import random_replacements
from tests.conftest import demo_graph_batch

SPEC = hf_mim.get_method("graphmae")


def tiny(**overrides):
    torch.manual_seed(0)
    return SPEC.pretraining_class(SPEC.make_config("tiny", **overrides)).eval()


def test_official_token_and_replacement_split_with_its_truncation():
    """60 nodes at 0.5: 30 masked; int(0.95 * 30) = 28 tokens, int(0.05 * 30) = 1 replaced, and the node the two
    truncations leave out keeps its own features (it is still masked, so it counts in the loss)."""
    model = tiny(mask_ratio=0.5, replace_ratio=0.05)
    generator = torch.Generator().manual_seed(0)
    mask = model.mask_generator(60, generator)
    sources = random_replacements(mask, 0.05, generator)
    assert int(mask.sum()) == 30 and bool((sources[~mask] == -1).all())
    tokens, own = sources[mask] == -1, sources[mask] == mask.nonzero().flatten()
    assert int(tokens.sum()) == 28 and int(own.sum()) == 1 and int((~tokens & ~own).sum()) == 1
    # 20 nodes: int(0.05 * 10) = 0 replaced (the official perm[-0:] would pick every masked node and fail)
    small = random_replacements(model.mask_generator(20, generator), 0.05, generator)
    assert int((small >= 0).sum()) == 1  # int(0.95 * 10) = 9 tokens, 1 left with its own features

    features = torch.randn(60, 16)
    with torch.no_grad():
        model.encoder.mask_token.normal_()
    corrupted = model.encoder.corrupt(features, mask, sources)
    assert torch.equal(corrupted[~mask], features[~mask])
    assert torch.equal(corrupted[mask][tokens], model.encoder.mask_token.expand(int(tokens.sum()), -1))
    replaced = mask.nonzero().flatten()[~tokens]
    assert torch.equal(corrupted[replaced], features[sources[replaced]])


def test_loss_reads_only_masked_nodes_and_masked_nodes_are_remasked():
    model = tiny()
    graph = demo_graph_batch(2, 16)
    num_nodes = graph["node_features"].shape[0]
    mask = model.mask_generator(num_nodes, torch.Generator().manual_seed(1))
    captured = {}
    model.decoder.register_forward_hook(lambda module, args, out: captured.update(latent=args[0], logits=out[0]))
    out = model(**graph, mask_nodes=mask)
    gradient = torch.autograd.grad(out.loss, captured["logits"])[0]
    assert gradient[~mask].abs().sum() == 0 and gradient[mask].abs().sum(1).gt(0).all()
    assert captured["latent"][mask].abs().sum() == 0 and captured["latent"][~mask].abs().sum(1).gt(0).all()
    # the loss is the scaled cosine error of the masked rows with gamma = 3
    cosine = torch.nn.functional.cosine_similarity(out.logits[mask], graph["node_features"][mask], dim=-1)
    torch.testing.assert_close(out.loss, ((1 - cosine) ** 3).mean())


def test_isolated_masked_node_is_rebuilt_from_nothing_but_the_decoder_bias():
    """Re-masking: a masked node without neighbours (only its added self-loop) has a zero decoder input, so its
    reconstruction is the decoder bias whatever its own features and encoding."""
    model = tiny()
    graph = demo_graph_batch(1, 16)
    isolated = graph["node_features"].shape[0]
    features = torch.cat([graph["node_features"], torch.randn(1, 16)])
    mask = torch.zeros(isolated + 1, dtype=torch.bool)
    mask[[0, 3, isolated]] = True
    with torch.no_grad():
        model.decoder.bias.normal_()
        out = model(node_features=features, edge_index=graph["edge_index"], mask_nodes=mask)
    torch.testing.assert_close(out.logits[isolated], model.decoder.bias)


def test_self_loops_in_the_input_are_replaced_by_one_per_node():
    edges = torch.tensor([[0, 1, 1, 2], [1, 0, 1, 2]])  # 1->1 and 2->2 given; 3 isolated
    assert sorted(map(tuple, with_self_loops(edges, 4).T.tolist())) == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 2), (3, 3)]
    model = tiny()
    graph = demo_graph_batch(1, 16)
    loops = torch.arange(5).expand(2, 5)
    mask = model.mask_generator(graph["node_features"].shape[0], torch.Generator().manual_seed(0))
    with torch.no_grad():
        plain = model(**graph, mask_nodes=mask, replace_sources=torch.full_like(mask, -1, dtype=torch.long))
        looped = model(node_features=graph["node_features"], edge_index=torch.cat([graph["edge_index"], loops, loops], 1),
                       mask_nodes=mask, replace_sources=torch.full_like(mask, -1, dtype=torch.long))
    torch.testing.assert_close(plain.loss, looped.loss)


def test_gat_attention_is_a_softmax_over_incoming_edges():
    layer = GATLayer(4, 3, 2)
    for weight in (layer.weight, layer.att_src, layer.att_dst, layer.bias):
        torch.nn.init.normal_(weight)
    edges = with_self_loops(torch.tensor([[0, 1, 2, 2], [1, 2, 0, 1]]), 3)
    out, weights = layer(torch.randn(3, 4), edges)
    sums = torch.zeros(3, 2).index_add_(0, edges[1], weights)
    torch.testing.assert_close(sums, torch.ones(3, 2))
    assert out.shape == (3, 6)


def test_bad_masks_and_bad_graphs_are_refused_with_clear_errors():
    model = tiny()
    graph = demo_graph_batch(1, 16)
    num_nodes = graph["node_features"].shape[0]
    for mask, problem in (
        (torch.zeros(num_nodes, dtype=torch.bool), "masks 0 of"),
        (torch.ones(num_nodes, dtype=torch.bool), f"masks {num_nodes} of"),
        (torch.rand(num_nodes), "must be a bool tensor"),
    ):
        with pytest.raises(ValueError, match=problem), torch.no_grad():
            model(**graph, mask_nodes=mask)
    with pytest.raises(ValueError, match="masks 0 of 1 nodes"):
        model(node_features=torch.randn(1, 16), edge_index=torch.zeros(2, 0, dtype=torch.long))
    with pytest.raises(ValueError, match=f"refers to node {num_nodes}, but the graph has {num_nodes} nodes"):
        model(node_features=graph["node_features"], edge_index=torch.tensor([[0], [num_nodes]]))
    with pytest.raises(ValueError, match="edge_index must hold integer node ids"):
        model(node_features=graph["node_features"], edge_index=graph["edge_index"].float())
    with pytest.raises(ValueError, match=r"node_features must have shape \[num_nodes, 16\]"):
        model(node_features=torch.randn(10, 8), edge_index=graph["edge_index"])
    processor = SPEC.make_processor(model.config)
    with pytest.raises(ValueError, match=r"missing \['edge_index'\]"):
        processor({"node_features": [[0.0] * 16]})
    with pytest.raises(DataError, match=r"no edge index column found .* has columns \['x', 'links'\]"):
        prepare_graph_dataset(make_sbm_graphs(1).rename_columns({"node_features": "x", "edge_index": "links"})
                              .remove_columns("labels"), processor)


def test_collator_offsets_edges_and_concatenates_graphs():
    processor = SPEC.make_processor(SPEC.make_config("tiny"))
    graphs = [{"node_features": torch.ones(2, 16), "edge_index": [[0], [1]], "labels": [0, 1]},
              {"node_features": torch.zeros(3, 16), "edge_index": [[2, 0], [1, 2]], "labels": [2, 2, 0]}]
    batch = processor(graphs)
    assert batch["node_features"].shape == (5, 16)
    assert batch["edge_index"].tolist() == [[0, 4, 2], [1, 3, 4]] and batch["labels"].tolist() == [0, 1, 2, 2, 0]
    dataset = prepare_graph_dataset(make_sbm_graphs(3, num_nodes=10), processor, with_labels=True)
    collated = GraphCollator()([dataset[i] for i in range(3)])
    assert collated["node_features"].shape == (30, 16) and collated["labels"].shape == (30,)
    assert int(collated["edge_index"].max()) >= 20  # the third graph's edges point past the first two


def test_row_normalisation_is_pyg_normalize_features():
    processor = hf_mim.GraphFeatureExtractor(3, normalize_features="row")
    out = processor({"node_features": [[1.0, 3.0, 0.0], [0.0, 0.0, 0.0]], "edge_index": [[0], [1]]})
    assert out["node_features"].tolist() == [[0.25, 0.75, 0.0], [0.0, 0.0, 0.0]]


def test_meta_build_node_head_and_seeded_masks():
    with torch.device("meta"):
        meta = SPEC.pretraining_class(SPEC.make_config("tiny"))
    assert meta.encoder.layers[0].weight.is_meta
    classifier = SPEC.classification_class(SPEC.make_config("tiny", num_labels=4)).eval()
    graph = demo_graph_batch(2, 16)
    labels = torch.full((graph["node_features"].shape[0],), -100)
    labels[:5] = torch.tensor([0, 1, 2, 3, 0])
    out = classifier(**graph, labels=labels)
    expected = torch.nn.functional.cross_entropy(out.logits[:5], labels[:5])
    torch.testing.assert_close(out.loss, expected)
    model = tiny()
    model.mask_rng = torch.Generator().manual_seed(5)
    first = model(**graph)
    model.mask_rng = torch.Generator().manual_seed(5)
    second = model(**graph)
    assert torch.equal(first.mask, second.mask) and torch.equal(first.loss, second.loss)
    assert torch.equal(first.replace_sources, second.replace_sources)


def test_save_load_auto_classes_and_card(tmp_path):
    from hf_mim.hub.cards import build_model_card

    model = tiny()
    processor = SPEC.make_processor(model.config, normalize_features="row")
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    assert type(AutoConfig.from_pretrained(checkpoint)) is hf_mim.GraphMAEConfig
    loaded = AutoModelForPreTraining.from_pretrained(checkpoint).eval()
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    inputs = SPEC.make_inputs(model, demo_graph_batch(2, 16))
    with torch.no_grad():
        assert torch.equal(model(**inputs).loss, loaded(**inputs).loss)
    reloaded = AutoFeatureExtractor.from_pretrained(checkpoint)
    assert type(reloaded) is hf_mim.GraphFeatureExtractor and reloaded.normalize_features == "row"
    assert type(AutoModel.from_pretrained(checkpoint)) is hf_mim.GraphMAEModel
    classifier, info = AutoModelForTokenClassification.from_pretrained(checkpoint, num_labels=4, output_loading_info=True)
    assert type(classifier) is hf_mim.GraphMAEForNodeClassification
    assert info["unexpected_keys"] == set() and {k.split(".")[0] for k in info["missing_keys"]} == {"classifier"}


    card = str(build_model_card(AutoConfig.from_pretrained(checkpoint), "me/graphmae-tiny", results={"linear_probe_top1": 0.5}))
    meta = card.split("---")[1]
    assert "pipeline_tag: graph-ml" in meta and "masked-graph-modeling" in meta and "type: graph-ml" in meta
    assert "AutoFeatureExtractor" in card and "{{" not in card and "(1 - cos(x̂, x))^3.0" in card


def test_cli_pretrain_on_generated_graphs_then_probe(tmp_path):
    """`hf-mim pretrain --method graphmae` on the demo graphs: the loss falls under Trainer, the saved feature size
    comes from the data, and the linear probe on frozen node embeddings runs on what it saved."""
    from hf_mim.cli import main

    out = tmp_path / "run"
    main([
        "pretrain", "--method", "graphmae", "--size", "tiny", "--max_steps", "30", "--per_device_train_batch_size", "8",
        "--learning_rate", "1e-2", "--logging_steps", "1", "--save_strategy", "no", "--output_dir", str(out),
        "--seed", "0", "--disable_tqdm", "true", "--config_overrides", '{"feature_dropout": 0.0, "attention_dropout": 0.0}',
    ])
    losses = [e["loss"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert len(losses) == 30 and sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses
    assert AutoFeatureExtractor.from_pretrained(out).feature_size == 16 == AutoConfig.from_pretrained(out).feature_size
    main(["probe", str(out), "--epochs", "20", "--output", str(tmp_path / "probe.json")])
    accuracy = json.loads((tmp_path / "probe.json").read_text())["linear_probe_top1"]
    assert 1 / 4 < accuracy <= 1.0 and math.isfinite(accuracy)


def test_demo_graph_splits_and_a_wordnet_folder_as_one_graph_with_node_splits(tmp_path):
    train, test = load_graph_dataset(None, "train"), load_graph_dataset(None, "test")
    assert len(train) == 32 and len(test) == 8 and train[0]["node_features"] != test[0]["node_features"]
    with pytest.raises(DataError, match="demo graphs have splits"):
        load_graph_dataset(None, "dev")
    make_sbm_graphs(3, num_nodes=10, feature_size=5).rename_column("node_features", "x").to_parquet(tmp_path / "g.parquet")
    from_parquet = load_graph_dataset(str(tmp_path / "g.parquet"))
    processor = hf_mim.GraphFeatureExtractor(5)
    assert prepare_graph_dataset(from_parquet, processor)[2]["node_features"].shape == (10, 5)
    assert hf_mim.get_method("graphmae").data.config_from_data(from_parquet)[0] == {"feature_size": 5}

    import pyarrow as pa
    import pyarrow.parquet as pq

    from hf_mim.evaluation.features import extract_features

    # a WordNet-shaped folder (the real one is for benchmarks only): 40 nouns, one verb, typed relations
    ids = [f"n:{i:08d}" for i in range(40)]
    pq.write_table(pa.table({
        "id": ids + ["v:00000001"], "pos": ["n"] * 40 + ["v"], "lexname": [f"noun.c{i % 3}" for i in range(40)] + ["verb.x"],
        "definition": [f"a thing of kind {i % 3} word{i}" for i in range(40)] + ["to do"],
    }), tmp_path / "synsets.parquet")
    pq.write_table(pa.table({
        "src": ids[:20] + ids[:5] + ["v:00000001"], "dst": ids[20:] + ids[1:6] + [ids[0]],
        "relation": ["@"] * 20 + ["!"] * 5 + ["@"],  # antonyms and the verb's link are not hypernym/hyponym edges
    }), tmp_path / "edges.parquet")
    graphs = {split: load_graph_dataset(str(tmp_path), split) for split in ("train", "test")}
    rows = {split: graph.with_format("numpy")[0] for split, graph in graphs.items()}
    assert rows["train"]["node_features"].shape == (40, 512) and rows["train"]["edge_index"].shape == (2, 40)
    labelled = {split: set(np.flatnonzero(row["labels"] != -100)) for split, row in rows.items()}
    assert len(labelled["train"]) == len(labelled["test"]) == 4 and not labelled["train"] & labelled["test"]
    config = SPEC.make_config("tiny", feature_size=512)
    encoder = SPEC.model_class(config)
    prepared = prepare_graph_dataset(graphs["test"], SPEC.make_processor(config), with_labels=True)
    features, labels = extract_features(encoder, prepared)
    assert features.shape == (4, 32) and labels.tolist() == [i % 3 for i in sorted(labelled["test"])]
