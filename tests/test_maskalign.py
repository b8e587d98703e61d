"""MaskAlign: attention-guided visible set (multinomial on the teacher's last-layer cls attention), Dynamic
Alignment, whitened per-layer targets of the intact image, 2 x smooth-L1 with top-k weights, all by hand; frozen,
unsaved teacher; clear errors."""

import pytest
import torch
from safetensors.torch import load_file

import hf_mim
from hf_mim.masking.core import mask_from_noise
from hf_mim.models.maskalign.configuration_maskalign import loss_weight_list
from tests.conftest import tiny_config


def build(**overrides):
    torch.manual_seed(0)
    return hf_mim.MaskAlignForPreTraining(tiny_config("maskalign", **overrides))


def whiten(x):
    return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)


def smooth_l1_x2(a, b):
    d = (a - b).abs()
    return 2 * torch.where(d < 1, 0.5 * d**2, d - 0.5).mean()


@pytest.mark.parametrize("loss_weights", ["top1", "mean"])
def test_loss_equals_hand_computation(loss_weights, images_rgb32):
    model = build(loss_weights=loss_weights).eval()
    with torch.no_grad():
        model.distill_weights.copy_(torch.tensor([[0.9, 0.3], [-0.2, 1.1]]))  # a non-trivial mixing
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(images_rgb32, noise=noise)
        ids_keep = mask_from_noise(noise, 0.5).ids_keep
        teacher_hidden = model.teacher.model(pixel_values=images_rgb32, output_hidden_states=True).hidden_states
        student_hidden = model.encoder(images_rgb32, noise=noise, output_hidden_states=True).hidden_states
        h1, h2 = student_hidden[1], student_hidden[2]  # block outputs before the final norm, cls + 8 visible
        fused = [0.9 * h1 + 0.3 * h2, -0.2 * h1 + 1.1 * h2]
        expected_terms = []
        for i in range(2):
            prediction = model.distill_heads[i](fused[i])
            target = whiten(teacher_hidden[i + 1])
            target = torch.cat([target[:, :1], torch.stack([target[b, 1:][ids_keep[b]] for b in range(8)])], dim=1)
            assert prediction.shape == target.shape == (8, 9, 24)
            expected_terms.append(smooth_l1_x2(prediction, target))
    weights = [0.0, 1.0] if loss_weights == "top1" else [0.5, 0.5]
    expected = sum(w * t for w, t in zip(weights, expected_terms))
    assert torch.allclose(out.loss, expected, atol=1e-6)
    assert torch.allclose(out.loss_terms["align_2"], expected_terms[1], atol=1e-6)
    assert ("align_1" in out.loss_terms) == (loss_weights == "mean")
    assert out.logits is None and out.mask.sum(1).tolist() == [8] * 8


def test_attention_guided_masking_matches_official_sampling(images_rgb32):
    model = build().eval()
    assert model.teacher.need_attentions
    with torch.no_grad():
        attentions = model.teacher(images_rgb32).attentions[-1]  # eager attention: [B, heads, 17, 17]
    importance = attentions[:, :, 0, 1:].mean(1)
    model.mask_rng = torch.Generator().manual_seed(3)
    with torch.no_grad():
        out = model(images_rgb32)
    keep = torch.multinomial(importance, 16, replacement=False, generator=torch.Generator().manual_seed(3))[:, :8]
    assert torch.equal(out.mask, torch.ones(8, 16, dtype=torch.bool).scatter(1, keep, False))
    # a strongly peaked importance keeps the attended patches visible far more often than chance
    counts = torch.zeros(16)
    peaked = torch.full((1, 16), 1e-3)
    peaked[0, :4] = 1.0
    for seed in range(50):
        perm = torch.multinomial(peaked, 16, replacement=False, generator=torch.Generator().manual_seed(seed))
        counts[perm[0, :8]] += 1
    assert counts[:4].min() == 50
    random_model = build(mask_type="random")
    assert not random_model.teacher.need_attentions


def test_dynamic_alignment_init_fusion_variants_and_learnable(images_rgb32):
    model = build()
    assert torch.allclose(model.distill_weights, torch.eye(2) + 0.01)
    deeper = hf_mim.MaskAlignForPreTraining(tiny_config("maskalign", num_hidden_layers=4, fusion_type="sum"))
    assert deeper.distill_weights.shape == (2, 4) and torch.allclose(deeper.distill_weights, torch.full((2, 4), 0.25))
    assert len(deeper.distill_heads) == 2
    out = deeper(images_rgb32, noise=torch.rand(8, 16))
    out.loss.backward()
    assert deeper.distill_weights.grad.abs().sum() > 0
    simple = build(fusion_type="simple")
    assert simple.distill_weights is None
    assert torch.isfinite(simple(images_rgb32, noise=torch.rand(8, 16)).loss)


def test_teacher_frozen_eval_unsaved_and_student_learns(images_rgb32, tmp_path):
    model = build()
    teacher = model.teacher
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    model.train()
    losses = []
    for _ in range(8):
        loss = model(images_rgb32, noise=noise).loss
        optimizer.zero_grad()
        loss.backward()
        assert all(p.grad is None for p in teacher.parameters())
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]
    assert not teacher.training and all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    model.save_pretrained(tmp_path)
    keys = load_file(tmp_path / "model.safetensors").keys()
    assert len(keys) == len(model.state_dict()) and "distill_weights" in keys
    reloaded = hf_mim.MaskAlignForPreTraining.from_pretrained(tmp_path).eval()
    assert torch.equal(reloaded.distill_weights, model.distill_weights)


def test_loss_weight_names_and_clear_errors():
    assert loss_weight_list("top5", 12) == [0.0] * 7 + [0.2] * 5
    assert loss_weight_list("mid3", 5) == [0, 0, 0, 1.0, 0]
    assert loss_weight_list("out", 3) == [0, 0, 1.0]
    assert loss_weight_list("linear_decay", 3) == pytest.approx([0, 1 / 3, 2 / 3])
    with pytest.raises(ValueError, match="loss_weights"):
        tiny_config("maskalign", loss_weights="top7")
    with pytest.raises(ValueError, match="fusion_type='sum'"):
        tiny_config("maskalign", num_hidden_layers=4)
    with pytest.raises(ValueError, match="mask_type"):
        tiny_config("maskalign", mask_type="block")
    bad = build(teacher_num_hidden_layers=3, fusion_type="sum", teacher_name_or_path="unused-id")
    bad.set_teacher(build().teacher)
    with pytest.raises(ValueError, match="teacher has 2 blocks"):
        bad(torch.randn(2, 3, 32, 32), noise=torch.rand(2, 16))
