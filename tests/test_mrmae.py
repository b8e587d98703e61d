"""MR-MAE: pixel loss on masked patches + whitened-teacher mimic losses on visible tokens, each by hand; frozen
teachers; focused (teacher-attention) visible selection; clear errors."""

import pytest
import torch
from safetensors.torch import load_file

import hf_mim
from hf_mim.layers.patch_embed import normalize_patches, patchify
from hf_mim.masking.core import mask_from_noise
from tests.conftest import tiny_config


def build(**overrides):
    torch.manual_seed(0)
    return hf_mim.MRMAEForPreTraining(tiny_config("mrmae", **overrides))


def test_each_loss_term_equals_a_hand_computation(images_rgb32):
    model = build(mimic_fusion_layers=[2]).eval()  # last block only: the mimic features are the encoder output
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(images_rgb32, noise=noise)
        info = mask_from_noise(noise, 0.75)
        visible = model.encoder(images_rgb32, noise=noise).last_hidden_state[:, 1:]  # final-norm output, no cls
        assert visible.shape == (8, 4, 32)
        expected = {}
        for name in ("teacher", "second_teacher"):
            backbone = model.get_teacher(name).model
            hidden = backbone(pixel_values=images_rgb32, output_hidden_states=True).hidden_states[-1]
            whitened = (hidden - hidden.mean(-1, keepdim=True)) / torch.sqrt(hidden.var(-1, unbiased=False, keepdim=True) + 1e-5)
            target = torch.stack([whitened[b, 1:][info.ids_keep[b]] for b in range(8)])
            prediction = visible @ model.mimic_heads[name].weight.T + model.mimic_heads[name].bias
            expected[f"mimic_{name}"] = (prediction - target).pow(2).mean()
        patches = normalize_patches(patchify(images_rgb32, 8))[0]
        per_patch = (out.logits - patches).pow(2).mean(-1)
        expected["pixel"] = per_patch[info.mask].mean()
    assert torch.equal(out.mask, info.mask) and out.mask.sum(1).tolist() == [12] * 8
    assert out.loss_terms.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.allclose(out.loss_terms[key], value, atol=1e-5), key
    assert torch.allclose(out.loss, sum(expected.values()), atol=1e-5)
    # loss weights scale the mimic terms
    weighted = build(mimic_loss_weight=0.5, second_mimic_loss_weight=2.0, mimic_fusion_layers=[2]).eval()
    with torch.no_grad():
        total = weighted(images_rgb32, noise=noise)
    terms = total.loss_terms
    assert torch.allclose(total.loss, terms["pixel"] + 0.5 * terms["mimic_teacher"] + 2.0 * terms["mimic_second_teacher"])


def test_gradients_mimic_reaches_encoder_not_decoder_and_teacher_gets_none(images_rgb32):
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    grads = []
    for weight in (1.0, 0.0):  # same initial weights; only the mimic weights differ
        model = build(mimic_loss_weight=weight, second_mimic_loss_weight=weight)
        model(images_rgb32, noise=noise).loss.backward()
        grads.append({k: p.grad for k, p in model.named_parameters()})
        assert all(p.grad is None for name in ("teacher", "second_teacher") for p in model.get_teacher(name).parameters())
    with_mimic, without = grads
    assert with_mimic["mimic_heads.teacher.weight"].abs().sum() > 0
    assert without["mimic_heads.teacher.weight"].abs().sum() == 0
    assert not torch.allclose(with_mimic["encoder.blocks.0.attn.qkv.weight"], without["encoder.blocks.0.attn.qkv.weight"])
    # the decoder only sees the pixel loss
    decoder = [k for k in with_mimic if k.startswith("decoder.") and with_mimic[k] is not None]
    assert len(decoder) > 10 and all(torch.equal(with_mimic[k], without[k]) for k in decoder)


def test_teacher_frozen_eval_unsaved_and_student_learns(images_rgb32, tmp_path):
    model = build()
    teachers = [model.get_teacher(name) for name in ("teacher", "second_teacher")]
    before = [{k: v.clone() for k, v in t.state_dict().items()} for t in teachers]
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    model.train()
    losses = []
    for _ in range(8):
        loss = model(images_rgb32, noise=noise).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]
    assert all(not t.training for t in teachers)
    for teacher, saved in zip(teachers, before):
        assert all(torch.equal(v, saved[k]) for k, v in teacher.state_dict().items())
    model.save_pretrained(tmp_path)
    keys = load_file(tmp_path / "model.safetensors").keys()
    assert not any(k.startswith("frozen_") for k in keys) and "mimic_heads.teacher.weight" in keys
    assert len(keys) == len(model.state_dict())
    reloaded = hf_mim.MRMAEForPreTraining.from_pretrained(tmp_path).eval()
    model.eval()
    with torch.no_grad():  # the teacher is rebuilt from the config: identical loss
        assert torch.equal(reloaded(images_rgb32, noise=noise).loss, model(images_rgb32, noise=noise).loss)


def test_paper_defaults_focused_mimicking_and_multi_layer_fusion(images_rgb32):
    # Gao et al. 2023 Sec. 3: visible tokens chosen from the teacher's attention, mimic from fused encoder layers
    config = tiny_config("mrmae")
    assert config.visible_selection == "teacher_attention_topk" and config.mimic_fusion_layers is None
    model = build().eval()
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(images_rgb32, noise=noise)
        hidden = model.encoder(images_rgb32, noise=noise, output_hidden_states=True).hidden_states
        fused = model.encoder.norm((hidden[1] + hidden[2]) / 2)[:, 1:]  # both blocks of the tiny encoder
        teacher = model.get_teacher("teacher").model(pixel_values=images_rgb32, output_hidden_states=True)
        features = teacher.hidden_states[-1]
        whitened = (features - features.mean(-1, keepdim=True)) / torch.sqrt(features.var(-1, unbiased=False, keepdim=True) + 1e-5)
        ids_keep = mask_from_noise(noise, 0.75).ids_keep
        target = torch.stack([whitened[b, 1:][ids_keep[b]] for b in range(8)])
        expected = (model.mimic_heads["teacher"](fused) - target).pow(2).mean()
        last_only = build(mimic_fusion_layers=[2]).eval()(images_rgb32, noise=noise).loss_terms["mimic_teacher"]
        unmasked = model(images_rgb32)  # no mask given: focused mimicking picks the visible set
        importance = model.get_teacher("teacher")(images_rgb32).attentions[-1][:, :, 0, 1:].mean(1)
    torch.testing.assert_close(out.loss_terms["mimic_teacher"], expected, rtol=1e-5, atol=1e-6)
    assert not torch.allclose(last_only, expected)
    visible = torch.ones(8, 16, dtype=torch.bool).scatter(1, importance.topk(4, dim=1).indices, False)
    assert torch.equal(unmasked.mask, visible)
    for layers in ([], [0], [3]):
        with pytest.raises(ValueError, match="mimic_fusion_layers"):
            tiny_config("mrmae", mimic_fusion_layers=layers)


@pytest.mark.parametrize("selection", ["teacher_attention_topk", "teacher_attention_sample"])
def test_focused_mimicking_uses_the_first_teachers_cls_attention(selection, images_rgb32):
    model = build(visible_selection=selection).eval()
    teacher = model.get_teacher("teacher")
    assert teacher.need_attentions and not model.get_teacher("second_teacher").need_attentions
    with torch.no_grad():
        attention = teacher(images_rgb32).attentions[-1]
    importance = attention[:, :, 0, 1:].mean(1)
    model.mask_rng = torch.Generator().manual_seed(5)
    with torch.no_grad():
        out = model(images_rgb32)
    if selection == "teacher_attention_topk":
        expected_visible = importance.topk(4, dim=1).indices
    else:
        expected_visible = torch.multinomial(importance, 16, replacement=False, generator=torch.Generator().manual_seed(5))[:, :4]
    expected = torch.ones(8, 16, dtype=torch.bool).scatter(1, expected_visible, False)
    assert torch.equal(out.mask, expected)


def test_teacher_given_as_a_module_and_clear_errors(images_rgb32):
    reference = build().eval()
    given = hf_mim.MRMAEForPreTraining(
        tiny_config("mrmae"), teacher=reference.get_teacher("teacher").model, second_teacher=reference.get_teacher("second_teacher")
    ).eval()
    given.load_state_dict(reference.state_dict())
    noise = torch.rand(8, 16)
    with torch.no_grad():
        assert torch.equal(given(images_rgb32, noise=noise).loss, reference(images_rgb32, noise=noise).loss)
    with pytest.raises(ValueError, match="visible_selection"):
        tiny_config("mrmae", visible_selection="best")
    with pytest.raises(ValueError, match="mimic_target_norm"):
        tiny_config("mrmae", mimic_target_norm="pca")
    with pytest.raises(ValueError, match="needs a teacher"):
        tiny_config("mrmae", teacher_name_or_path=None)
    wrong_grid = build(teacher_name_or_path=dict(tiny_config("mrmae").teacher_name_or_path, patch_size=16))
    with pytest.raises(ValueError, match="patch grid"):
        wrong_grid(images_rgb32, noise=noise)
    # no second teacher: a single mimic term
    single = build(second_teacher_name_or_path=None)
    assert list(single.mimic_heads) == ["teacher"]
    assert set(single(images_rgb32, noise=noise).loss_terms) == {"pixel", "mimic_teacher"}
