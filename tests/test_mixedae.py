import math

import pytest
import torch

import hf_mim
from hf_mim.layers.patch_embed import patchify, unpatchify
from hf_mim.models.mae.modeling_mae import masked_mse
from hf_mim.models.mixedae.mixing_mixedae import (
    homologous_contrastive_loss,
    homologous_targets,
    mix_images,
    mix_tokens,
    source_ids_from_noise,
    topk_attention_bias,
    unmix_mask,
)
from tests.conftest import real_images, tiny_config

R = 4


def tiny_model(**overrides):
    torch.manual_seed(0)
    return hf_mim.get_method("mixedae").pretraining_class(tiny_config("mixedae", **overrides)).eval()


def test_source_ids_are_an_equal_random_partition():
    noise = torch.rand(3, 16, generator=torch.Generator().manual_seed(0))
    ids = source_ids_from_noise(noise, R)
    assert all((ids[g] == i).sum() == 4 for g in range(3) for i in range(R))
    order = noise.argsort(dim=1)
    for g in range(3):  # the 4 smallest noise values -> source 0, next 4 -> source 1, ...
        for rank, position in enumerate(order[g].tolist()):
            assert ids[g, position] == rank // 4


def test_mixing_and_unmixing():
    images = real_images(8, 32)
    ids = source_ids_from_noise(torch.rand(2, 16, generator=torch.Generator().manual_seed(1)), R)
    mixed = mix_images(images, ids, 8, R)
    assert mixed.shape == (2, 3, 32, 32)
    src, mix = patchify(images, 8), patchify(mixed, 8)
    for g in range(2):
        for position in range(16):
            assert torch.equal(mix[g, position], src[g * R + ids[g, position], position])
    mask = unmix_mask(ids, R)  # [8, 16], True = reconstructed
    assert mask.shape == (8, 16) and mask.sum(dim=1).tolist() == [12] * 8
    # the visible parts of the r sources of a group partition the positions ...
    assert torch.equal((~mask).reshape(2, R, 16).sum(dim=1), torch.ones(2, 16, dtype=torch.long))
    # ... and un-mixing gives back each source exactly at its visible positions
    for b in range(8):
        visible = ~mask[b]
        assert torch.equal(mix[b // R][visible], src[b][visible])


def test_token_mixing_equals_patch_embedding_the_mixed_image():
    model = tiny_model()
    images = real_images(8, 32)
    ids = source_ids_from_noise(torch.rand(2, 16, generator=torch.Generator().manual_seed(2)), R)
    tokens, _, _ = model.encoder.embed(images)
    mixed_tokens, _, _ = model.encoder.embed(mix_images(images, ids, 8, R))
    assert torch.allclose(mix_tokens(tokens, ids, R), mixed_tokens, atol=1e-6)


def test_homologous_targets_by_hand():
    ids = torch.tensor([[0, 1, 0, 1]])
    expected = torch.tensor([[0, 0, 1, 0], [0, 0, 0, 1], [1, 0, 0, 0], [0, 1, 0, 0]], dtype=torch.bool)
    assert torch.equal(homologous_targets(ids)[0], expected)


def test_homologous_contrastive_loss_by_hand():
    features = torch.randn(2, 8, 5, generator=torch.Generator().manual_seed(0))
    ids = source_ids_from_noise(torch.rand(2, 8, generator=torch.Generator().manual_seed(3)), 2)
    tau = 0.5
    total, count = 0.0, 0
    for g in range(2):
        z = torch.nn.functional.normalize(features[g], dim=-1)
        for a in range(8):
            others = [k for k in range(8) if k != a]
            denominator = sum(math.exp(float(z[a] @ z[k]) / tau) for k in others)
            positives = [p for p in others if ids[g, p] == ids[g, a]]
            total += -sum(float(z[a] @ z[p]) / tau - math.log(denominator) for p in positives) / len(positives)
            count += 1
    assert homologous_contrastive_loss(features, ids, tau).item() == pytest.approx(total / count, rel=1e-5)
    # features that identify the source (orthogonal per source) reach SupCon's floor log(3 + 4 exp(-1/tau))
    # (3 positives at similarity 1, 4 negatives at 0), well below random features
    separable = torch.nn.functional.one_hot(ids, 2).float()
    floor = math.log(3 + 4 * math.exp(-1 / tau))
    assert homologous_contrastive_loss(separable, ids, tau).item() == pytest.approx(floor, rel=1e-5)
    assert homologous_contrastive_loss(separable, ids, tau) < homologous_contrastive_loss(features, ids, tau) - 0.5


def test_topk_bias_keeps_k_largest_and_full_k_is_global():
    logits = torch.randn(2, 3, 5, 5, generator=torch.Generator().manual_seed(0))
    bias = topk_attention_bias(logits, 2)
    assert ((bias == 0).sum(-1) == 2).all()
    kept = logits.masked_fill(bias != 0, float("-inf"))
    assert torch.equal(kept.amax(-1), logits.amax(-1))
    assert torch.equal(topk_attention_bias(logits, 5), torch.zeros_like(logits))


def test_homologous_attention_in_the_encoder():
    model = tiny_model(attn_implementation="eager")
    images = real_images(8, 32)
    ids = source_ids_from_noise(torch.rand(2, 16, generator=torch.Generator().manual_seed(4)), R)
    out = model.encoder.encode_mixed(images, ids, True, output_attentions=True)
    k = int(17 * 0.25)  # 16 patches + cls, ratio 1/r
    for weights in out.attentions:
        assert ((weights > 0).sum(-1) == k).all()
    # TopK with K = N is exactly global attention, which equals the plain ViT on the mixed image
    full = tiny_model(attn_implementation="eager", homologous_topk_ratio=1.0)
    topk_all = full.encoder.encode_mixed(images, ids, True).last_hidden_state
    global_ = full.encoder.encode_mixed(images, ids, False).last_hidden_state
    plain = full.encoder(mix_images(images, ids, 8, R)).last_hidden_state
    assert torch.allclose(topk_all, global_, atol=1e-6) and torch.allclose(global_, plain, atol=1e-5)
    # only the chosen layers use TopK
    one = tiny_model(attn_implementation="eager", homologous_attention_layers=[1])
    attentions = one.encoder.encode_mixed(images, ids, True, output_attentions=True).attentions
    assert ((attentions[0] > 0).sum(-1) == 17).all() and ((attentions[1] > 0).sum(-1) == k).all()


def test_forward_losses_and_hidden_patches():
    model = tiny_model()
    images = real_images(8, 32)
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(5))
    out = model(images, noise=noise)
    ids = source_ids_from_noise(noise, R)
    assert torch.equal(out.mask, unmix_mask(ids, R))
    rec = masked_mse(out.logits, model.target(images), out.mask)
    latent = model.encoder.encode_mixed(images, ids).last_hidden_state[:, 1:]
    homo = homologous_contrastive_loss(latent, ids, model.config.homologous_temperature)
    assert torch.allclose(out.loss_terms["reconstruction"], rec) and torch.allclose(out.loss_terms["homologous"], homo)
    assert torch.allclose(out.loss, rec + model.config.homologous_loss_weight * homo)
    # patches that no mixed image contains (image 0 at positions of other sources) never reach the model:
    # changing them leaves every prediction unchanged
    hidden = patchify(images, 8)
    hidden[0, out.mask[0]] = 5.0
    altered = unpatchify(hidden, 8, (4, 4), 3)
    again = model(altered, noise=noise)
    assert torch.allclose(again.logits, out.logits, atol=1e-6)
    assert not torch.allclose(again.loss, out.loss)


def test_mixing_comes_from_mask_rng_and_gradients_flow():
    model = tiny_model()
    images = real_images(8, 32)
    model.mask_rng = torch.Generator().manual_seed(3)
    first = model(images)
    model.mask_rng = torch.Generator().manual_seed(3)
    again = model(images)
    model.mask_rng = torch.Generator().manual_seed(4)
    other = model(images)
    assert torch.equal(first.mask, again.mask) and not torch.equal(first.mask, other.mask)
    model.train()
    model(images, noise=torch.rand(2, 16)).loss.backward()
    assert model.encoder.blocks[0].attn.qkv.weight.grad is not None
    assert model.decoder.pred.weight.grad is not None


def test_errors():
    model = tiny_model()
    with pytest.raises(ValueError, match="multiple of 4"):
        model(real_images(6, 32))
    bad = torch.zeros(2, 16, dtype=torch.long)
    with pytest.raises(ValueError, match="exactly 4 positions"):
        model(real_images(8, 32), source_ids=bad)
    with pytest.raises(ValueError, match="noise must have shape"):
        model(real_images(8, 32), noise=torch.rand(8, 16))
    with pytest.raises(ValueError, match="mixing_num_sources must be >= 2"):
        tiny_config("mixedae", mixing_num_sources=1)
    with pytest.raises(ValueError, match="split evenly"):
        tiny_config("mixedae", mixing_num_sources=3)
    with pytest.raises(ValueError, match="homologous_attention_layers"):
        tiny_config("mixedae", homologous_attention_layers=[5])
