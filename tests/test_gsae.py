"""g-SAE: the gradient-aware TopK selection (beta 0 = plain TopK, gradient-aligned latents preferred, winners keep
their plain values), the unit-norm decoder rule, the activation/gradient buffer (gradient at the original
activation, hand-checked on tiny GPT-2 and Llama), splicing, wrong-width refusal, save/load/remote code and
`hf-mim sae` under Trainer with a bit-exact resume."""

import json
import shutil

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForPreTraining,
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
)

import hf_mim
from hf_mim.data.activations import collect_activations, spliced_lm_loss, token_losses
from hf_mim.layers.sae import decoder_layers, topk_codes
from tests.conftest import demo_activation_batch

SPEC = hf_mim.get_method("gsae")


def tiny(**overrides):
    torch.manual_seed(0)
    return SPEC.pretraining_class(SPEC.make_config("tiny", **overrides))


def tiny_lm(kind: str = "llama", width: int = 32):
    torch.manual_seed(0)
    if kind == "gpt2":
        return GPT2LMHeadModel(GPT2Config(n_layer=2, n_embd=width, n_head=2, vocab_size=64, n_positions=32, bos_token_id=0, eos_token_id=0)).eval()
    config = LlamaConfig(hidden_size=width, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         num_key_value_heads=2, vocab_size=64, max_position_embeddings=32)
    return LlamaForCausalLM(config).eval()


def blocks(count: int = 4, length: int = 12) -> torch.Tensor:
    return torch.randint(0, 64, (count, length), generator=torch.Generator().manual_seed(1))


def test_beta_zero_and_no_gradient_are_plain_topk():
    inputs = demo_activation_batch(8, 32)
    model = tiny().eval()
    pre = torch.relu(model.encoder(inputs["activations"] - model.pre_bias))
    expected = torch.zeros_like(pre)
    top = pre.topk(4, dim=-1)
    expected.scatter_(-1, top.indices, top.values)
    plain = model(inputs["activations"]).latents
    assert torch.equal(plain, expected) and torch.equal((plain != 0).sum(-1), torch.full((8,), 4))
    baseline = tiny(beta=0.0).eval()
    assert torch.equal(baseline(**inputs).latents, plain)
    assert torch.equal(baseline(**inputs).reconstruction, model(inputs["activations"]).reconstruction)
    assert not torch.equal(model(**inputs).latents, plain)  # beta 1 with gradients: another choice
    assert torch.equal(model.reconstruct(inputs["activations"]), model(inputs["activations"]).reconstruction)
    assert model.reconstruct(inputs["activations"].bfloat16()).dtype == torch.bfloat16  # a bf16 LM's activations


def test_gradient_aligned_latent_wins_and_keeps_its_plain_value():
    # 4 latents, k 1: latent 0 has the largest activation (1.0), latent 2 a smaller one (0.8) but its decoder
    # direction is the gradient's (either sign): score 0.8 + beta * 0.8 * |d_2 . g| beats 1.0 + beta * 1.0 * 0
    model = tiny(d_in=4, num_latents=4, k=1, aux_k=2, beta=1.0).eval()
    with torch.no_grad():
        model.pre_bias.zero_()
        model.encoder.weight.copy_(torch.eye(4))
        model.encoder.bias.zero_()
        model.decoder.weight.copy_(torch.eye(4))
    x = torch.tensor([[1.0, 0.0, 0.8, 0.0]])
    for sign in (1.0, -1.0):
        g = sign * torch.tensor([[0.0, 0.0, 1.0, 0.0]])
        latents = model(x, g).latents
        assert torch.equal(latents, x * torch.tensor([0.0, 0.0, 1.0, 0.0]))  # selected by the gradient, valued by z
    assert torch.equal(model(x).latents, x * torch.tensor([1.0, 0.0, 0.0, 0.0]))  # plain TopK keeps the largest
    # the paper's score by hand on random weights
    model = tiny().eval()
    inputs = demo_activation_batch(6, 32)
    z = torch.relu(model.encoder(inputs["activations"] - model.pre_bias))
    score = z + 1.0 * z * (inputs["activation_grads"] @ model.decoder.weight).abs()
    assert torch.equal(model(**inputs).latents, topk_codes(z, 4, score))


def test_decoder_stays_unit_norm_and_its_radial_gradient_is_removed():
    from hf_mim.models.gsae import UnitNormDecoderCallback

    model = tiny()
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    callback = UnitNormDecoderCallback()
    model(**demo_activation_batch(16, 32)).loss.backward()
    callback.on_pre_optimizer_step(None, None, None, model=model)
    radial = (model.decoder.weight.grad * model.decoder.weight).sum(0)
    assert radial.abs().max() < 1e-6 and model.decoder.weight.grad.abs().sum() > 0
    optimizer.step()
    assert (model.decoder.weight.norm(dim=0) - 1).abs().max() > 1e-3  # the step leaves the sphere
    callback.on_optimizer_step(None, None, None, model=model)
    torch.testing.assert_close(model.decoder.weight.norm(dim=0), torch.ones(128))


def test_dead_latents_are_counted_and_get_the_auxk_loss():
    model = tiny(dead_tokens_threshold=16).train()
    inputs = demo_activation_batch(8, 32)
    first = model(**inputs)
    assert float(first.loss_terms["auxk"]) == 0.0  # nothing dead yet: 8 tokens seen
    second = model(**inputs)
    fired = (second.latents != 0).any(0)
    assert torch.equal(model.tokens_since_fired == 16, ~fired & ((first.latents != 0).any(0) == 0))
    assert float(second.loss_terms["auxk"]) > 0 and model.dead_fraction() > 0
    torch.testing.assert_close(second.loss, second.loss_terms["mse"] + second.loss_terms["auxk"] / 32)


@pytest.mark.parametrize("kind", ["gpt2", "llama"])
def test_buffer_gradient_is_taken_at_the_original_activation(kind):
    lm = tiny_lm(kind)
    ids = blocks()
    buffer = collect_activations(lm, ids, layer=0, batch_size=3, progress=False).with_format("torch")[:]
    assert buffer["activations"].shape == (4 * 11, 32) and lm.training is False
    assert all(p.grad is None and p.requires_grad for p in lm.parameters())  # frozen while collecting, restored
    hidden = lm(input_ids=ids, output_hidden_states=True).hidden_states[1]  # output of block 0
    torch.testing.assert_close(buffer["activations"], hidden[:, :-1].reshape(-1, 32))
    # by hand: a zero offset added to block 0's output; dL/d(offset) is dL/dx at the original x
    offset = torch.zeros(4, 12, 32, requires_grad=True)
    handle = decoder_layers(lm)[0].register_forward_hook(
        lambda module, args, out: (out[0] + offset, *out[1:]) if isinstance(out, tuple) else out + offset
    )
    token_losses(lm, ids).sum().backward()
    handle.remove()
    torch.testing.assert_close(buffer["activation_grads"], offset.grad[:, :-1].reshape(-1, 32))
    assert buffer["activation_grads"].abs().sum() > 0


def test_splice_and_wrong_width_refused():
    lm = tiny_lm("llama")
    model = tiny(source_model="tiny-llama", source_layer=0).eval()
    ids = blocks()
    clean = spliced_lm_loss(lm, ids, 0)
    with torch.no_grad():
        assert clean == pytest.approx(float(token_losses(lm, ids).mean()), rel=1e-6)
    with model.splice(lm), torch.no_grad():
        spliced = float(token_losses(lm, ids).mean())
    assert spliced == pytest.approx(spliced_lm_loss(lm, ids, 0, model.reconstruct), rel=1e-6) and spliced != clean
    assert spliced_lm_loss(lm, ids, 0) == clean  # the hook is gone
    wide = tiny_lm("llama", width=48)
    with pytest.raises(ValueError, match="width 48 but this SAE was trained on width 32 \\(tiny-llama layer 0\\)"):
        model.splice(wide)
    with pytest.raises(ValueError, match="activations have width 48 but this SAE was trained on width 32"):
        model(torch.zeros(2, 48))
    with pytest.raises(ValueError, match="activation_grads must have the shape"):
        model(torch.zeros(2, 32), torch.zeros(2, 31))
    with pytest.raises(ValueError, match="layer must be in \\[0, 1\\]"):
        model.splice(lm, layer=2)
    with pytest.raises(ValueError, match="must have width 32"):
        SPEC.make_processor(model.config)(torch.zeros(1, 48))
    for k in (128, 200):
        with pytest.raises(ValueError, match=f"k \\({k}\\) must be smaller than num_latents \\(128\\)"):
            SPEC.make_config("tiny", k=k)
    with pytest.raises(ValueError, match="longer than the model's 32 positions"):
        collect_activations(lm, torch.zeros(1, 40, dtype=torch.long), 0, progress=False)


def test_save_load_bit_exact_auto_classes_and_card(tmp_path):
    from hf_mim.hub.cards import build_model_card

    model = tiny(source_model="tiny-llama", source_layer=1).train()
    model(**demo_activation_batch(8, 32))  # the dead-latent counters move
    processor = SPEC.make_processor(model.config)
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    for auto in (AutoModel, AutoModelForPreTraining):
        loaded = auto.from_pretrained(checkpoint)
        assert type(loaded) is hf_mim.GSAEModel
        assert all(torch.equal(loaded.state_dict()[k], v) for k, v in model.state_dict().items())
    assert int(loaded.tokens_since_fired.max()) == 8
    assert (loaded.config.source_model, loaded.config.source_layer) == ("tiny-llama", 1)
    reloaded = AutoFeatureExtractor.from_pretrained(checkpoint)
    assert type(reloaded) is hf_mim.ActivationFeatureExtractor and reloaded.feature_size == 32
    card = str(build_model_card(AutoConfig.from_pretrained(checkpoint), "me/gsae-tiny"))
    meta = card.split("---")[1]
    assert "sparse-autoencoder" in meta and "AutoFeatureExtractor" in card and "{{" not in card


def test_cli_sae_collects_trains_with_falling_loss_then_resumes_bit_exact(tmp_path, capsys):
    """`hf-mim sae --model <tiny Llama> --layer 1 --data demo`: the buffer is collected once (activations and
    gradients), the loss falls, the decoder ends unit-norm, the config records the source; a run resumed from a
    mid-run checkpoint ends on the same weights."""
    from hf_mim.cli import main
    from hf_mim.data.text import load_text_dataset, train_tokenizer

    tokenizer = train_tokenizer(load_text_dataset(None)["text"], vocab_size=300, model_max_length=32)
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                      num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=32))
    lm.save_pretrained(tmp_path / "lm")
    tokenizer.save_pretrained(tmp_path / "lm")

    def sae(out, *extra):
        main(["sae", "--model", str(tmp_path / "lm"), "--layer", "1", "--data", "demo", "--k", "4", "--beta", "1",
              "--expansion", "4", "--max_tokens", "768", "--block_size", "32", "--buffer_dir", str(tmp_path / "buffer"),
              "--per_device_train_batch_size", "64", "--num_train_epochs", "2", "--learning_rate", "0.01",
              "--logging_steps", "1", "--output_dir", str(out), "--seed", "3", "--disable_tqdm", "true", *extra])

    assert main(["sae", "--layer", "1", "--data", "demo", "--output_dir", str(tmp_path / "x")]) == 1
    assert "give --model" in capsys.readouterr().err
    out = tmp_path / "run"
    sae(out, "--save_steps", "12", "--config_overrides", '{"dead_tokens_threshold": 256}')
    losses = [e["loss"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert len(losses) == 24 and sum(losses[-4:]) < 0.7 * sum(losses[:4]), losses
    model = AutoModel.from_pretrained(out)
    assert (model.config.source_model, model.config.source_layer, model.config.num_latents) == (str(tmp_path / "lm"), 1, 128)
    torch.testing.assert_close(model.decoder.weight.norm(dim=0), torch.ones(128))
    import pandas

    buffer = pandas.read_parquet(tmp_path / "buffer" / "train.parquet")
    assert len(buffer) == 768 and set(buffer.columns) == {"activations", "activation_grads"}
    final = model.state_dict()
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(out / "checkpoint-12", resumed / "checkpoint-12")
    sae(resumed, "--save_steps", "100", "--resume_from_checkpoint", "last", "--config_overrides", '{"dead_tokens_threshold": 256}')
    again = AutoModel.from_pretrained(resumed).state_dict()
    assert all(torch.equal(again[k], v) for k, v in final.items())
