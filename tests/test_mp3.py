import math

import pytest
import torch

import hf_mim
from hf_mim.models.mp3.modeling_mp3 import context_attention_bias, position_cross_entropy
from tests.conftest import tiny_config

GRID = 4  # tiny config: 32 px images, 8 px patches -> 4 x 4 = 16 positions


def tiny_model(**overrides):
    torch.manual_seed(0)
    config = tiny_config("mp3", attn_implementation="eager", **overrides)
    return hf_mim.get_method("mp3").pretraining_class(config).eval().double()


def to_patches(images: torch.Tensor, patch: int = 8) -> torch.Tensor:
    batch, channels = images.shape[:2]
    grid = images.shape[-1] // patch
    return images.reshape(batch, channels, grid, patch, grid, patch).permute(0, 2, 4, 1, 3, 5).reshape(batch, grid * grid, channels, patch, patch)


def from_patches(patches: torch.Tensor, grid: int = GRID) -> torch.Tensor:
    batch, _, channels, patch, _ = patches.shape
    return patches.reshape(batch, grid, grid, channels, patch, patch).permute(0, 3, 1, 4, 2, 5).reshape(batch, channels, grid * patch, grid * patch)


def test_context_set_size_and_explicit_mask_inputs():
    model = tiny_model()
    images = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    noise = torch.rand(3, 16, generator=torch.Generator().manual_seed(0))
    out = model(images, noise=noise)
    assert out.mask.shape == (3, 16) and out.mask.dtype == torch.bool
    assert (out.mask.sum(1) == 16 - int(16 * (1 - 0.75))).all()  # 4 context patches of 16, MAE rounding
    assert torch.equal(out.mask, noise.argsort(1).argsort(1) >= 4)  # lowest noise = context
    assert out.logits.shape == (3, 16, 16)
    same = model(images, bool_masked_pos=out.mask)
    torch.testing.assert_close(same.logits, out.logits)
    assert model(images, noise=noise, mask_ratio=0.5).mask.sum(1).tolist() == [8, 8, 8]
    # masks drawn inside the model come from mask_rng
    model.mask_rng = torch.Generator().manual_seed(5)
    first = model(images).mask
    model.mask_rng = torch.Generator().manual_seed(5)
    assert torch.equal(model(images).mask, first)


def test_no_position_information_in_the_input_path():
    """Permuting the non-context patches of the image permutes their logits the same way, and leaves the
    context tokens' logits unchanged: the encoder only sees contents, never positions."""
    model = tiny_model()
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, [0, 2, 3, 5, 6, 7, 8, 9, 11, 12, 14, 15]] = True  # context: 1, 4, 10, 13
    masked_ids = mask[0].nonzero().squeeze(1)
    perm = torch.arange(16)
    perm[masked_ids] = masked_ids[torch.randperm(len(masked_ids), generator=torch.Generator().manual_seed(2))]
    assert not torch.equal(perm, torch.arange(16))
    shuffled = from_patches(to_patches(images)[:, perm])
    before = model(images, bool_masked_pos=mask).logits
    after = model(shuffled, bool_masked_pos=mask).logits
    torch.testing.assert_close(after, before[:, perm])
    # the same holds for a permutation of all patches that carries the context set along
    full = torch.randperm(16, generator=torch.Generator().manual_seed(3))
    after = model(from_patches(to_patches(images)[:, full]), bool_masked_pos=mask[:, full]).logits
    torch.testing.assert_close(after, before[:, full])
    # and the encoder has no position parameters at all
    assert model.encoder.pos_embed is None and model.encoder.rel_pos_bias is None


def test_pretraining_refuses_position_embeddings():
    config = tiny_config("mp3", position_embedding_type="learned")
    with pytest.raises(ValueError, match="position_embedding_type='none'"):
        hf_mim.get_method("mp3").pretraining_class(config)
    with pytest.raises(ValueError, match="relative position bias"):
        tiny_config("mp3", use_shared_relative_position_bias=True)
    with pytest.raises(ValueError, match="mask_ratio"):
        tiny_config("mp3", mask_ratio=1.0)


def test_attention_bias_pattern_and_attention_weights():
    context = torch.tensor([[True, False, False, True], [False, True, False, False]])
    bias = context_attention_bias(context, num_prefix_tokens=1)
    assert bias.shape == (2, 1, 5, 5)
    expected_keys = torch.tensor([[True, True, False, False, True], [True, False, True, False, False]])
    for b in range(2):
        for q in range(5):  # every query (cls, context and masked) sees exactly the cls + context keys
            assert torch.equal(bias[b, 0, q] == 0, expected_keys[b])
            assert torch.isinf(bias[b, 0, q][~expected_keys[b]]).all()

    model = tiny_model()
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(4))
    out = model(images, noise=noise, output_attentions=True)
    keys = torch.cat([torch.ones(2, 1, dtype=torch.bool), ~out.mask], dim=1)  # cls + context
    assert len(out.attentions) == 2
    for weights in out.attentions:  # identical pattern in every layer, for every head and query
        assert weights.shape == (2, 4, 17, 17)
        assert (weights.masked_select(~keys[:, None, None, :].expand_as(weights)) == 0).all()
        assert (weights.masked_select(keys[:, None, None, :].expand_as(weights)) > 0).all()
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 17, dtype=torch.float64))


def test_non_context_patches_are_not_keys_or_values():
    """Changing a non-context patch changes only its own output token; context tokens never read it."""
    model = tiny_model()
    images = torch.randn(1, 3, 32, 32, dtype=torch.float64)
    mask = torch.ones(1, 16, dtype=torch.bool)
    mask[0, [0, 5, 10]] = False
    base = model(images, bool_masked_pos=mask).logits
    patches = to_patches(images).clone()
    patches[:, 7] += torch.randn_like(patches[:, 7])
    changed = model(from_patches(patches), bool_masked_pos=mask).logits
    differs = (changed - base).abs().amax(-1)[0] > 1e-9
    assert differs.tolist() == [i == 7 for i in range(16)]


def test_eta_zero_makes_the_attention_mask_a_no_op():
    model = tiny_model()
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    out = model(images, mask_ratio=0.0)
    assert out.mask is None
    plain = model.encoder(images).last_hidden_state
    torch.testing.assert_close(out.logits, model.head(plain[:, 1:]))
    with pytest.raises(ValueError, match="hides no patch"):  # explicit masks must mask: ratio 0 is the ablation
        model(images, bool_masked_pos=torch.zeros(2, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match="hides every patch"):
        model(images, bool_masked_pos=torch.ones(2, 16, dtype=torch.bool))


def test_loss_is_cross_entropy_against_the_raster_index():
    model = tiny_model()
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    noise = torch.rand(2, 16, generator=torch.Generator().manual_seed(6))
    out = model(images, noise=noise)
    log_probs = out.logits - out.logits.exp().sum(-1, keepdim=True).log()
    hand = -torch.stack([log_probs[b, i, i] for b in range(2) for i in range(16)]).mean().float()  # loss in fp32
    torch.testing.assert_close(out.loss, hand)
    # non-context only
    model.config.loss_on_context = False
    only_masked = model(images, noise=noise)
    picked = [-log_probs[b, i, i] for b in range(2) for i in range(16) if out.mask[b, i]]
    torch.testing.assert_close(only_masked.loss, torch.stack(picked).mean().float())
    # label smoothing follows torch's definition
    smooth = position_cross_entropy(out.logits, label_smoothing=0.1)
    torch.testing.assert_close(smooth, 0.9 * hand + 0.1 * (-log_probs.mean(-1)).mean().float())
    # uninformative head: loss = log(L)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.zero_()
    assert model(images, noise=noise).loss.item() == pytest.approx(math.log(16))


def test_classifier_runs_without_mask_and_can_add_position_embeddings(tmp_path):
    model = tiny_model().float()
    model.save_pretrained(tmp_path)
    classifier = hf_mim.get_method("mp3").classification_class.from_pretrained(
        tmp_path, num_labels=3, position_embedding_type="learned"
    )
    assert classifier.encoder.pos_embed is not None and classifier.encoder.pos_embed.requires_grad
    assert classifier.encoder.pos_embed.abs().sum() > 0  # freshly initialised, not left empty
    torch.testing.assert_close(classifier.encoder.blocks[0].attn.qkv.weight, model.encoder.blocks[0].attn.qkv.weight)
    assert classifier(torch.randn(2, 3, 32, 32)).logits.shape == (2, 3)
