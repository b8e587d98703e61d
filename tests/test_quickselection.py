"""QuickSelection: Erdős–Rényi sparse init, the official SET prune/regrow rule and counts, gradients only on existing
connections, the official dropout backward, neuron-strength ranking from the last prune, save/load/remote code, `hf-mim pretrain` with SET under Trainer and a bit-exact resume.
(Equality with the official numpy/scipy code is checked in the comparison script reported in RESULTS.md.)"""

import json
import shutil

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForPreTraining

import hf_mim
from hf_mim.models.quickselection import SparseLinear
from tests.conftest import demo_tabular_batch

SPEC = hf_mim.get_method("quickselection")


def tiny(**overrides):
    torch.manual_seed(0)
    return SPEC.pretraining_class(SPEC.make_config("tiny", **overrides))


def layer_with(values: torch.Tensor) -> SparseLinear:
    layer = SparseLinear(values.shape[1], values.shape[0])
    with torch.no_grad():
        layer.weight.copy_(values)
        layer.bias.zero_()
    return layer


def test_erdos_renyi_init_draws_epsilon_times_fan_connections():
    model = tiny(hidden_size=200, epsilon=3)
    for layer in model.sparse_layers():
        weights = layer.weight.detach()[layer.connections()]
        draws = 3 * (layer.in_features + layer.out_features)  # 648 draws over 3,200 cells, duplicates collapse
        assert 0.85 * draws < weights.numel() <= draws
        assert 0.08 < float(weights.std()) < 0.12 and torch.equal(layer.bias, torch.zeros_like(layer.bias))


def test_set_step_prunes_the_official_fraction_around_zero_and_regrows_as_many():
    # sorted weights -10..-1, 1..10 (/10): the code's cut indices int(0.8 * 9) = 7 and int(min(19, 11 + 0.2 * 9)) = 12
    # keep < -0.3 and > 0.3: -0.3, -0.2, -0.1, 0.1, 0.2, 0.3 go (the thresholds included)
    values = torch.cat([torch.arange(-10, 0), torch.arange(1, 11)]).float() / 10
    weight = torch.zeros(8, 5)
    weight.view(-1)[torch.randperm(40, generator=torch.Generator().manual_seed(0))[:20]] = values
    layer = layer_with(weight)
    kept = layer.prune_and_regrow(0.2, 0.1, torch.Generator().manual_seed(1))
    assert sorted((weight[kept] * 10).round().int().tolist()) == [-10, -9, -8, -7, -6, -5, -4, 4, 5, 6, 7, 8, 9, 10]
    assert int(layer.connections().sum()) == 20  # density unchanged: 6 regrown
    assert torch.equal(layer.weight[kept], weight[kept])
    regrown = layer.connections() & ~kept
    assert int(regrown.sum()) == 6 and float(layer.weight[regrown].abs().max()) < 0.6


def test_evolve_keeps_density_resets_momentum_and_saves_the_pruned_strengths():
    model = tiny()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    inputs = SPEC.make_inputs(model, demo_tabular_batch(8, 16))
    densities = [[int(layer.connections().sum()) for layer in model.sparse_layers()]]
    for step in range(3):
        optimizer.zero_grad()
        model(**inputs).loss.backward()
        optimizer.step()
        before = model.encoder.input_layer.weight.detach().clone()
        counts = model.evolve_connections(torch.Generator().manual_seed(step), optimizer)
        kept = (model.encoder.input_layer.weight == before) & (before != 0)
        assert torch.equal(model.encoder.selection_strength, (before * kept).abs().sum(0))
        assert counts["input"]["pruned"] == counts["input"]["regrown"] > 0
        buffer = optimizer.state[model.encoder.input_layer.weight]["momentum_buffer"]
        assert torch.equal(buffer[~kept], torch.zeros_like(buffer[~kept]))  # pruned and regrown start at rest
        densities.append([int(layer.connections().sum()) for layer in model.sparse_layers()])
    assert all(d == densities[0] for d in densities) and int(model.encoder.num_set_steps) == 3
    # the ranking reads the strengths saved at the last prune, not weights trained since
    ranking = model.select_features(4)
    with torch.no_grad():
        model.encoder.input_layer.weight.mul_(torch.rand(16))
    assert torch.equal(model.select_features(4), ranking)
    assert torch.equal(ranking, model.encoder.selection_strength.argsort(descending=True)[:4])


def test_gradients_reach_only_existing_connections_and_dropped_neurons_still_learn():
    model = tiny(hidden_dropout=0.5).train()
    rows = demo_tabular_batch(8, 16)["input_values"]
    model.mask_rng = torch.Generator().manual_seed(0)
    out = model(input_values=rows, noise=torch.zeros_like(rows), output_hidden_states=True)
    out.loss.backward()
    # the loss whose gradient the official code applies: 0.5 * squared error summed over features, batch mean
    assert torch.allclose(out.loss, 0.5 * 16 * torch.nn.functional.mse_loss(out.logits, rows))
    for layer in model.sparse_layers():
        assert torch.equal(layer.weight.grad[~layer.connections()], torch.zeros(int((~layer.connections()).sum())))
    hidden = out.hidden_states[1]
    model.mask_rng = torch.Generator().manual_seed(0)
    keep = torch.rand(hidden.shape, generator=model.mask_rng) >= 0.5
    # official backward: delta_hidden = (delta @ W2) * sigmoid', the dropout mask is not applied to it
    delta = (out.logits - rows) / 8
    expected = ((delta @ (model.decoder.weight * model.decoder.connections())) * hidden * (1 - hidden)).T @ rows
    grad = model.encoder.input_layer.weight.grad
    torch.testing.assert_close(grad, expected * model.encoder.input_layer.connections(), atol=1e-6, rtol=1e-5)
    assert (~keep).any()  # so the true gradient (masked) would differ
    model.eval()  # evaluation scales the output pre-activation by 1 - dropout, as official predict()
    with torch.no_grad():
        clean = model.decoder(model.encoder(rows).last_hidden_state)
        torch.testing.assert_close(model(input_values=rows).logits, 0.5 * clean)


def test_bad_inputs_are_refused_with_clear_errors():
    model = tiny().eval()
    with pytest.raises(ValueError, match=r"shape \[batch, 16\]"):
        model(input_values=torch.zeros(2, 15))
    with pytest.raises(ValueError, match="noise must have the shape"):
        model(input_values=torch.zeros(2, 16), noise=torch.zeros(2, 3))
    with pytest.raises(ValueError, match="k must be in"):
        model.select_features(17)
    with pytest.raises(ValueError, match="zeta"):
        SPEC.make_config("tiny", zeta=1.0)
    with torch.device("meta"):
        assert SPEC.pretraining_class(SPEC.make_config("tiny")).decoder.weight.is_meta


def test_save_load_bit_exact_with_masks_auto_classes_and_card(tmp_path):
    from hf_mim.hub.cards import build_model_card

    model = tiny()
    model.evolve_connections(torch.Generator().manual_seed(0))
    processor = SPEC.make_processor(model.config, feature_mean=[1.0] * 16, feature_std=[2.0] * 16)
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    loaded = AutoModelForPreTraining.from_pretrained(checkpoint)
    assert type(loaded) is hf_mim.QuickSelectionForPreTraining
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    assert int(loaded.encoder.num_set_steps) == 1 and torch.equal(loaded.select_features(), model.select_features())
    encoder = AutoModel.from_pretrained(checkpoint)
    assert type(encoder) is hf_mim.QuickSelectionModel and torch.equal(encoder.select_features(5), model.select_features(5))
    reloaded = AutoFeatureExtractor.from_pretrained(checkpoint)
    assert type(reloaded) is hf_mim.TabularFeatureExtractor and reloaded.feature_std == [2.0] * 16
    assert torch.equal(reloaded(np.full((1, 16), 3.0))["input_values"], torch.ones(1, 16))
    inputs = SPEC.make_inputs(model, demo_tabular_batch(4, 16))
    with torch.no_grad():
        assert torch.equal(loaded.eval()(**inputs).loss, model.eval()(**inputs).loss)
    card = str(build_model_card(AutoConfig.from_pretrained(checkpoint), "me/quickselection-tiny"))
    meta = card.split("---")[1]
    assert "feature-selection" in meta and "tabular" in meta and "AutoFeatureExtractor" in card and "{{" not in card


def test_cli_pretrain_on_digits_with_set_then_bit_exact_resume(tmp_path):
    """`hf-mim pretrain --method quickselection --data digits`: loss falls, one SET step per epoch boundary with the
    density constant; resuming from a checkpoint at an epoch boundary and from one inside an epoch ends on the
    same weights (SET steps included) as the uninterrupted run."""
    from hf_mim.cli import main

    def pretrain(out, *extra):
        main(["pretrain", "--method", "quickselection", "--data", "digits", "--size", "tiny", "--max_train_samples", "200",
              "--per_device_train_batch_size", "25", "--num_train_epochs", "4", "--learning_rate", "0.5",
              "--logging_steps", "1", "--output_dir", str(out), "--seed", "3", "--disable_tqdm", "true", *extra])

    out = tmp_path / "run"
    pretrain(out, "--save_steps", "12", "--save_total_limit", "10")
    losses = [e["loss"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert len(losses) == 32 and np.mean(losses[-8:]) < 0.85 * np.mean(losses[:8]), losses
    model = AutoModelForPreTraining.from_pretrained(out)
    assert int(model.encoder.num_set_steps) == 3  # after epochs 1, 2, 3; none after the last
    torch.manual_seed(3)  # the initial model of the run (--seed seeds before the model is built)
    initial = SPEC.pretraining_class(SPEC.make_config("tiny", feature_size=64))
    counts = [int(layer.connections().sum()) for layer in model.sparse_layers()]
    assert counts == [int(layer.connections().sum()) for layer in initial.sparse_layers()]  # density constant
    assert not torch.equal(model.encoder.input_layer.connections(), initial.encoder.input_layer.connections())
    assert AutoFeatureExtractor.from_pretrained(out).feature_size == 64
    final = model.state_dict()
    for step in (12, 24):  # 8 steps per epoch: inside the second epoch, at the end of the third
        resumed = tmp_path / f"resumed-{step}"
        resumed.mkdir()
        shutil.copytree(out / f"checkpoint-{step}", resumed / f"checkpoint-{step}")
        pretrain(resumed, "--save_steps", "100", "--resume_from_checkpoint", "last")
        again = AutoModelForPreTraining.from_pretrained(resumed).state_dict()
        assert all(torch.equal(again[k], v) for k, v in final.items()), step
