"""Hybrid Distillation: MIM-teacher relation KL + CL-teacher feature regression by hand, redundant tokens chosen
from the teacher's [CLS] attention, drop ratios growing with the training step, frozen unsaved teachers."""

import math
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

import hf_mim
from hf_mim.models.hybriddistill.modeling_hybriddistill import keep_counts, restrict_relation, schedule_scale
from hf_mim.teacher import TeacherOutput
from hf_mim.training.trainer import ModelStepHooks
from tests.conftest import tiny_config


def build(**overrides):
    torch.manual_seed(0)
    return hf_mim.HybridDistillForPreTraining(tiny_config("hybriddistill", **overrides))


def whiten(x):
    return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, unbiased=False, keepdim=True) + 1e-5)


def smooth_l1_x2(a, b):
    d = (a - b).abs()
    return 2 * torch.where(d < 1, 0.5 * d**2, d - 0.5).mean()


def hand_attention(block, h):
    """softmax(q k^T / sqrt(d)) of a student block, from its weights."""
    x = torch.nn.functional.layer_norm(h, (h.shape[-1],), block.norm1.weight, block.norm1.bias, block.norm1.eps)
    qkv = x @ block.attn.qkv.weight.T + block.attn.qkv.bias
    heads = block.attn.num_heads
    q, k, _ = qkv.reshape(h.shape[0], h.shape[1], 3, heads, -1).permute(2, 0, 3, 1, 4)
    return torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)


def test_loss_equals_hand_computation(images_rgb32):
    model = build().eval()
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(images_rgb32, noise=noise, mask_progress=1.0)
        order = torch.argsort(noise, dim=1)
        counts = [int(16 * 0.75), int(16 * 0.5)]  # stage before block 1 drops 25%, before block 2 50% (cumulative)
        assert out.keep_counts == tuple(counts) and torch.equal(out.ids_shuffle, order)
        # MIM teacher (transformers ViTMAEModel) on EVERY patch in raster order, read independently of FrozenTeacher
        mae = model.get_teacher("mim_teacher").model
        mae.config.mask_ratio = 0.0
        mae_attn = mae(
            pixel_values=images_rgb32, noise=torch.arange(16.0).expand(8, -1), output_attentions=True
        ).attentions
        mae.config.mask_ratio = 0.75
        assert mae_attn[0].shape == (8, 2, 17, 17)
        clip = model.get_teacher("cl_teacher").model
        clip_last = clip(pixel_values=images_rgb32, output_hidden_states=True).hidden_states[-1]

        enc = model.encoder
        tokens = enc.patch_embed(images_rgb32) + enc.pos_embed[:, 1:]
        cls = (enc.cls_token + enc.pos_embed[:, :1]).expand(8, -1, -1)
        h = torch.cat([cls, torch.stack([tokens[b, order[b, : counts[0]]] for b in range(8)])], dim=1)
        relation_terms = []
        for index, block in enumerate(enc.blocks):
            h = h[:, : 1 + counts[index]]
            keep = order[:, : counts[index]]
            student = hand_attention(block, h)
            positions = torch.cat([torch.zeros(8, 1, dtype=torch.long), keep + 1], dim=1)
            teacher = torch.stack([mae_attn[index][b][:, positions[b]][:, :, positions[b]] for b in range(8)])
            teacher = teacher / teacher.sum(-1, keepdim=True)
            kl = (teacher * (teacher.log() - student.log())).sum(-1)  # per batch, head, query row
            relation_terms.append(kl.mean())
            h = block(h)[0]
        prediction = model.feature_head(enc.norm(h))
        target = whiten(clip_last)
        final = order[:, : counts[1]]
        target = torch.cat([target[:, :1], torch.stack([target[b, 1:][final[b]] for b in range(8)])], dim=1)
        assert prediction.shape == target.shape == (8, 9, 24)
        feature = smooth_l1_x2(prediction, target)
    assert torch.allclose(out.loss_terms["relation_1"], relation_terms[0], atol=1e-5)
    assert torch.allclose(out.loss_terms["relation_2"], relation_terms[1], atol=1e-5)
    assert torch.allclose(out.loss_terms["feature"], feature, atol=1e-5)
    assert torch.allclose(out.loss, feature + sum(relation_terms), atol=1e-5)
    assert torch.equal(out.mask, torch.ones(8, 16, dtype=torch.bool).scatter(1, final, False))
    # weights are applied as configured
    weighted = build(relation_loss_weight=0.5, feature_loss_weight=2.0).eval()
    with torch.no_grad():
        loss = weighted(images_rgb32, noise=noise, mask_progress=1.0).loss
    assert torch.allclose(loss, 2.0 * feature + 0.5 * sum(relation_terms), atol=1e-5)


def test_restricted_relation_is_softmax_over_kept_tokens():
    logits = torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(1))
    kept = torch.tensor([[0, 2, 5], [0, 4, 1]])
    restricted = restrict_relation(torch.softmax(logits, -1), kept)
    for b in range(2):
        sub = logits[b][:, kept[b]][:, :, kept[b]]
        assert torch.allclose(restricted[b], torch.softmax(sub, -1), atol=1e-6)


def test_redundant_tokens_follow_teacher_cls_attention(images_rgb32):
    for source in ("cl_teacher", "mim_teacher"):
        model = build(token_importance=source).eval()
        with torch.no_grad():
            attention = model.get_teacher(source)(images_rgb32).attentions[-1]
            out = model(images_rgb32, mask_progress=1.0)
        importance = attention[:, :, 0, 1:].mean(1)  # [CLS] attention, head mean, last block
        for keep in out.keep_counts:  # at every stage: every kept patch is attended at least as much as any dropped
            kept = torch.zeros(8, 16, dtype=torch.bool).scatter(1, out.ids_shuffle[:, :keep], True)
            for b in range(8):
                assert importance[b][kept[b]].min() >= importance[b][~kept[b]].max()
        assert out.mask.sum(1).tolist() == [8] * 8 and torch.equal(out.mask, ~kept)  # mask = dropped by the end
    # a controlled attention map: the least-attended patches are the ones dropped, in order
    model = build()
    cls_row = torch.tensor([0.0] + [float(i) for i in [3, 9, 1, 7, 12, 0, 5, 15, 2, 8, 4, 11, 6, 14, 10, 13]])
    attention = torch.softmax(cls_row, -1).expand(1, 2, 17, 17).clone()
    fake = {"cl_teacher": TeacherOutput(attentions=(attention,), num_prefix_tokens=1)}
    order = model.token_order(fake, 1, 16, "cpu")
    assert order[0, :4].tolist() == [7, 13, 15, 4]  # most attended first
    assert sorted(order[0, -4:].tolist()) == [0, 2, 5, 8]  # the four least attended are dropped first
    assert not build(token_importance="random").get_teacher("cl_teacher").need_attentions


def test_drop_ratio_grows_with_the_training_step(images_rgb32):
    assert schedule_scale(0.0, "linear") == 0.0 and schedule_scale(0.5, "linear") == 0.5
    assert schedule_scale(0.25, "linear", end=0.5) == 0.5 and schedule_scale(0.9, "linear", end=0.5) == 1.0
    assert schedule_scale(0.5, "cosine") == pytest.approx(0.5) and schedule_scale(0.25, "cosine") < 0.25
    assert schedule_scale(0.0, "constant") == 1.0 and schedule_scale(0.0, "linear", start=0.2) == 0.2
    assert keep_counts(196, 12, [0, 4, 8], [0.25, 0.45, 0.65]) == [147] * 4 + [107] * 4 + [68] * 4
    model = build().eval()
    hooks = ModelStepHooks()
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    seen = []
    for step in (0, 5, 10):
        state = SimpleNamespace(global_step=step, max_steps=10)
        hooks.on_step_begin(None, state, None, model=model)  # what MIMTrainer calls before every optimizer step
        assert model.mask_progress == step / 10
        with torch.no_grad():
            seen.append(model(images_rgb32, noise=noise).keep_counts)
    assert seen == [(16, 16), (14, 12), (12, 8)]  # ratios 0 -> (0.125, 0.25) -> (0.25, 0.5)
    assert build(mask_schedule="constant").drop_ratios(0.0) == [0.25, 0.5]


def test_teachers_frozen_unsaved_and_student_learns(images_rgb32, tmp_path):
    model = build()
    teachers = [model.get_teacher("mim_teacher"), model.get_teacher("cl_teacher")]
    before = [{k: v.clone() for k, v in t.state_dict().items()} for t in teachers]
    assert not any(p.requires_grad for t in teachers for p in t.parameters())
    student_ids = {id(p) for p in model.parameters()}
    assert not any(id(p) in student_ids for t in teachers for p in t.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    model.train()
    losses = []
    for _ in range(10):
        out = model(images_rgb32, noise=noise)
        optimizer.zero_grad()
        out.loss.backward()
        assert all(p.grad is None for t in teachers for p in t.parameters())
        assert model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0  # the relation loss reaches q/k
        optimizer.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.8 * losses[0]
    for teacher, saved in zip(teachers, before):
        assert not teacher.training and all(torch.equal(v, saved[k]) for k, v in teacher.state_dict().items())
    model.save_pretrained(tmp_path)
    keys = load_file(tmp_path / "model.safetensors").keys()
    assert len(keys) == len(model.state_dict()) and not any("teacher" in k for k in keys)
    assert "feature_head.weight" in keys
    reloaded = hf_mim.HybridDistillForPreTraining.from_pretrained(tmp_path).eval()
    model.eval()
    with torch.no_grad():  # teachers rebuilt from the config (same seed): same loss
        assert torch.allclose(reloaded(images_rgb32, noise=noise).loss, model(images_rgb32, noise=noise).loss, atol=1e-6)


def test_explicit_mask_head_modes_and_clear_errors(images_rgb32):
    model = build().eval()
    mask = torch.zeros(8, 16, dtype=torch.bool)
    mask[:, ::2] = True
    with torch.no_grad():
        out = model(images_rgb32, bool_masked_pos=mask, output_attentions=True)
    assert torch.equal(out.mask, mask) and out.keep_counts == (8, 8) and out.attentions[0].shape == (8, 2, 9, 9)
    # mismatched head counts: per-head KL refuses, head-averaged maps work
    with pytest.raises(ValueError, match="relation_head_mode='mean'"):
        build(num_attention_heads=4)(images_rgb32)
    mean_model = build(num_attention_heads=4, relation_head_mode="mean")
    out = mean_model(images_rgb32)
    assert torch.isfinite(out.loss) and out.loss_terms["relation_1"] >= 0
    for bad, match in (
        (dict(drop_ratios=[0.5, 0.25]), "non-decreasing"),
        (dict(drop_layers=[0, 2]), "strictly increasing"),
        (dict(relation_layers=[3]), "relation_layers"),
        (dict(cl_teacher_name_or_path=None), "two teachers"),
        (dict(token_importance="cls"), "token_importance"),
    ):
        with pytest.raises(ValueError, match=match):
            tiny_config("hybriddistill", **bad)
