"""G2SD: generic distillation (student decoder hidden -> MLP -> smooth-L1 to LN(teacher decoder block k), same
mask for both, all tokens or masked only; encoder / pixel terms and their weights) by hand against transformers'
ViTMAE and an hf_mim MAE teacher; specific distillation (distillation token, hard teacher labels) by hand; the
teacher is frozen, unchanged by Trainer steps and absent from checkpoints; the student trains; clear errors."""

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import (
    Trainer,
    TrainingArguments,
    ViTConfig,
    ViTForImageClassification,
    ViTMAEConfig,
    ViTMAEForPreTraining,
    ViTMAEModel,
)

import hf_mim
from hf_mim.layers.patch_embed import normalize_patches, patchify
from hf_mim.masking.core import mask_from_noise
from hf_mim.models.g2sd import TINY_TEACHER
from tests.conftest import tiny_config

TINY_CLASSIFIER = dict(model_type="vit", image_size=32, patch_size=8, hidden_size=48, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=96, num_labels=10)


def build(**overrides):
    torch.manual_seed(0)
    return hf_mim.G2SDForPreTraining(tiny_config("g2sd", **overrides))


def reference_teacher():
    """The same random whole ViTMAE (encoder + decoder) that the config dict builds (seed 0)."""
    values = {k: v for k, v in TINY_TEACHER.items() if k != "model_type"}
    torch.manual_seed(0)
    return ViTMAEForPreTraining(ViTMAEConfig(**values)).eval()


def smooth_l1_beta2(prediction, target):
    diff = (prediction - target).abs()
    return torch.where(diff < 2.0, 0.5 * diff**2 / 2.0, diff - 1.0).mean()


def mlp(head, x):
    return head.fc2(F.gelu(head.fc1(x)))


def unshuffle(x, mask_token, ids_restore):
    """MAE decoder prologue by hand: cls, then the visible tokens and mask tokens put back in raster order."""
    cls, visible = x[:, :1], x[:, 1:]
    filled = torch.cat([visible, mask_token.expand(x.shape[0], ids_restore.shape[1] - visible.shape[1], -1)], dim=1)
    filled = torch.gather(filled, 1, ids_restore.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return torch.cat([cls, filled], dim=1)


def student_decoder_hidden(model, images, **mask):
    encoded = model.encoder(images, **mask)
    d = model.decoder
    x = unshuffle(d.embed(encoded.last_hidden_state), d.mask_token, encoded.ids_restore) + d.pos_embed
    for block in d.blocks:
        x = block(x)[0]
    return encoded, x


def test_decoder_distillation_equals_hand_computation_with_transformers_vitmae(images_rgb32):
    model = build().eval()
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(images_rgb32, noise=noise)
        teacher = reference_teacher()
        assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in model.teacher.model.state_dict().items())
        # teacher by hand: transformers' own masking with the same noise, its decoder prologue, decoder block 1 of 2
        vit = teacher.vit(images_rgb32, noise=noise, output_hidden_states=True)
        dec = teacher.decoder
        t = unshuffle(dec.decoder_embed(vit.last_hidden_state), dec.mask_token, vit.ids_restore) + dec.decoder_pos_embed
        t = dec.decoder_layers[0](t)
        t = t[0] if isinstance(t, tuple) else t
        target = F.layer_norm(t, (16,), eps=1e-6)  # affine-free LN, before the decoder norm
        encoded, s = student_decoder_hidden(model, images_rgb32, noise=noise)
        assert target.shape == (8, 17, 16) and s.shape == (8, 17, 32)  # cls + all 16 patches (visible and masked)
        decoder_term = smooth_l1_beta2(mlp(model.decoder_feature_head, s), target)
        # encoder term: student encoder output (after its norm) vs LN(teacher encoder output before its norm)
        t_enc = F.layer_norm(vit.hidden_states[-1], (48,), eps=1e-6)
        encoder_term = smooth_l1_beta2(mlp(model.encoder_feature_head, encoded.last_hidden_state), t_enc)
        mask = mask_from_noise(noise, 0.75).mask
        assert torch.equal(out.mask, mask) and torch.equal(vit.mask.bool(), mask)
        logits = model.decoder.pred(model.decoder.norm(s))[:, 1:]
        pixel = (logits - normalize_patches(patchify(images_rgb32, 8))[0]).pow(2).mean(-1)[mask].mean()
    assert torch.allclose(out.loss_terms["decoder_feature"], decoder_term, atol=1e-6)
    assert torch.allclose(out.loss_terms["encoder_feature"], encoder_term, atol=1e-6)
    assert torch.allclose(out.loss_terms["pixel"], pixel, atol=1e-5)
    assert torch.allclose(out.loss, decoder_term, atol=1e-6)  # official weights: 1 * decoder + 0 * encoder, no pixels
    weighted = build(decoder_feature_loss_weight=2.0, encoder_feature_loss_weight=0.5, pixel_loss_weight=3.0).eval()
    with torch.no_grad():
        w = weighted(images_rgb32, noise=noise)
    terms = w.loss_terms
    assert torch.allclose(w.loss, 2 * terms["decoder_feature"] + 0.5 * terms["encoder_feature"] + 3 * terms["pixel"], atol=1e-6)


def test_supervise_masked_only_and_hf_mim_mae_teacher_with_explicit_mask(images_rgb32):
    """An hf_mim MAE teacher from a config dict (AutoModelForPreTraining keeps its decoder), target block 2 of 3."""
    values = dict(hf_mim.get_method("mae").tiny_config, hidden_size=48, decoder_hidden_size=24,
                  decoder_num_hidden_layers=3, decoder_num_attention_heads=2)
    model = build(supervise_all=False, teacher_name_or_path=dict(values, model_type="mim_mae"), teacher_decoder_layer=2)
    torch.manual_seed(0)
    mae = hf_mim.MAEForPreTraining(hf_mim.MAEConfig(**values)).eval()
    assert type(model.teacher.model) is hf_mim.MAEForPreTraining
    assert all(torch.equal(v, mae.state_dict()[k]) for k, v in model.teacher.model.state_dict().items())
    assert model.teacher.decoder_target_name == "decoder.blocks.1"
    assert model.config.teacher_hidden_size == 48 and model.config.teacher_decoder_hidden_size == 24
    mask = torch.zeros(8, 16, dtype=torch.bool)
    mask[:, ::3] = True
    mask = ~mask  # 6 visible, 10 masked per image
    with torch.no_grad():
        out = model(images_rgb32, bool_masked_pos=mask)
        encoded = mae.encoder(images_rgb32, bool_masked_pos=mask)
        d = mae.decoder
        t = unshuffle(d.embed(encoded.last_hidden_state), d.mask_token, encoded.ids_restore) + d.pos_embed
        for block in d.blocks[:2]:
            t = block(t)[0]
        _, s = student_decoder_hidden(model, images_rgb32, bool_masked_pos=mask)
        prediction = mlp(model.decoder_feature_head, s)[:, 1:][mask]
        target = F.layer_norm(t, (24,), eps=1e-6)[:, 1:][mask]
    assert prediction.shape == (8 * 10, 24)
    assert torch.equal(out.mask, mask)
    assert torch.allclose(out.loss_terms["decoder_feature"], smooth_l1_beta2(prediction, target), atol=1e-6)


def test_teacher_frozen_unchanged_by_trainer_and_optimizer_and_unsaved(images_rgb32, tmp_path):
    model = build()
    teacher = model.teacher
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student_before = {k: v.clone() for k, v in model.state_dict().items()}
    assert not {id(p) for p in teacher.parameters()} & {id(p) for p in model.parameters()}
    data = [{"pixel_values": image} for image in images_rgb32]
    args = TrainingArguments(output_dir=str(tmp_path / "run"), max_steps=2, per_device_train_batch_size=4,
                             learning_rate=1e-3, report_to=[], use_cpu=True, remove_unused_columns=False,
                             save_strategy="no", logging_strategy="no")
    Trainer(model=model, args=args, train_dataset=data).train()
    assert not teacher.training and all(not p.requires_grad for p in teacher.parameters())
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    assert not torch.equal(model.decoder_feature_head.fc2.weight, student_before["decoder_feature_head.fc2.weight"])
    # a plain optimizer loop: no gradient reaches the teacher, every head is in the graph, the student learns
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    model.train()
    losses = []
    for _ in range(10):
        out = model(images_rgb32, noise=noise)
        optimizer.zero_grad()
        out.loss.backward()
        assert all(p.grad is None for p in teacher.parameters())
        assert model.decoder_feature_head.fc1.weight.grad.abs().sum() > 0
        assert model.encoder.blocks[0].attn.qkv.weight.grad.abs().sum() > 0
        assert model.encoder_feature_head.fc1.weight.grad is not None  # weight 0: zero gradient, as officially
        optimizer.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.8 * losses[0]
    assert all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    model.save_pretrained(tmp_path / "ckpt")
    keys = load_file(tmp_path / "ckpt" / "model.safetensors").keys()
    assert len(keys) == len(model.state_dict()) and "decoder_feature_head.fc1.weight" in keys
    assert not any(k.startswith(("frozen_", "teacher")) for k in keys)
    # save_teacher=True: the whole MAE (with decoder) is registered, saved and reloaded
    saving = build(save_teacher=True)
    assert any(k.startswith("frozen_teacher.model.decoder.") for k in saving.state_dict())
    saving.save_pretrained(tmp_path / "with_teacher")
    loaded = hf_mim.G2SDForPreTraining.from_pretrained(tmp_path / "with_teacher")
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in saving.state_dict().items())


def test_specific_distillation_hard_teacher_labels_by_hand(images_rgb32, tmp_path):
    torch.manual_seed(0)
    config = tiny_config("g2sd", num_labels=10, classifier_teacher_name_or_path=TINY_CLASSIFIER)
    model = hf_mim.G2SDForImageClassification(config)
    labels = torch.arange(8) % 10
    out = model(images_rgb32, labels=labels)
    values = {k: v for k, v in TINY_CLASSIFIER.items() if k != "model_type"}
    torch.manual_seed(0)
    reference = ViTForImageClassification(ViTConfig(**values)).eval()
    with torch.no_grad():
        teacher_logits = reference(images_rgb32).logits
        # student by hand: cls + patches (with positions) + distillation token (no position), blocks, final norm
        enc = model.encoder
        tokens = enc.patch_embed(images_rgb32) + enc.pos_embed[:, 1:]
        cls = (enc.cls_token + enc.pos_embed[:, :1]).expand(8, -1, -1)
        x = torch.cat([cls, tokens, model.classifier.dist_token.expand(8, -1, -1)], dim=1)
        for block in enc.blocks:
            x = block(x)[0]
        x = enc.norm(x)
        cls_logits, dist_logits = model.classifier.head(x[:, 0]), model.classifier.head_dist(x[:, -1])
    assert torch.allclose(out.teacher_logits, teacher_logits, atol=1e-6)
    assert torch.allclose(out.cls_logits, cls_logits, atol=1e-5) and torch.allclose(out.distillation_logits, dist_logits, atol=1e-5)
    assert torch.allclose(out.logits, (cls_logits + dist_logits) / 2, atol=1e-5)
    expected = (F.cross_entropy(cls_logits, labels) + F.cross_entropy(dist_logits, teacher_logits.argmax(-1))) / 2
    assert torch.allclose(out.loss, expected, atol=1e-5)
    # the teacher gets no gradient, does not change after an optimizer step and is not saved
    teacher = model.classifier_teacher
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    out = model(images_rgb32, labels=labels)
    out.loss.backward()
    assert all(p.grad is None for p in teacher.parameters()) and model.classifier.dist_token.grad.abs().sum() > 0
    optimizer.step()
    assert not teacher.training and all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    model.save_pretrained(tmp_path)
    keys = load_file(tmp_path / "model.safetensors").keys()
    assert "classifier.dist_token" in keys and not any("teacher" in k for k in keys)
    # without a teacher both heads learn the labels (CE only)
    model.set_classifier_teacher(None)
    model.config.classifier_teacher_name_or_path = None
    with torch.no_grad():
        plain = model(images_rgb32, labels=labels)
    expected = (F.cross_entropy(plain.cls_logits, labels) + F.cross_entropy(plain.distillation_logits, labels)) / 2
    assert plain.teacher_logits is None and torch.allclose(plain.loss, expected, atol=1e-6)


def test_mean_pooling_leaves_out_the_distillation_token(images_rgb32):
    torch.manual_seed(0)
    model = hf_mim.G2SDForImageClassification(tiny_config("g2sd", num_labels=10, pooling="mean")).eval()
    with torch.no_grad():
        out = model(images_rgb32, output_hidden_states=True)
        last = out.hidden_states[-1]
        assert last.shape == (8, 18, 32)  # cls + 16 patches + distillation token
        expected = model.classifier.head(model.fc_norm(last[:, 1:-1].mean(1)))
    assert torch.allclose(out.cls_logits, expected, atol=1e-6)
    assert torch.allclose(out.distillation_logits, model.classifier.head_dist(last[:, -1]), atol=1e-6)


def test_clear_errors(images_rgb32):
    values = {k: v for k, v in TINY_TEACHER.items() if k != "model_type"}
    with pytest.raises(ValueError, match="MAE decoder"):  # an encoder-only teacher
        hf_mim.G2SDForPreTraining(tiny_config("g2sd"), teacher=ViTMAEModel(ViTMAEConfig(**values))).teacher
    with pytest.raises(ValueError, match="teacher_decoder_layer"):
        build(teacher_decoder_layer=3).teacher
    with pytest.raises(ValueError, match="teacher_decoder_hidden_size=8"):
        model = build()
        model.set_teacher(dict(TINY_TEACHER, decoder_hidden_size=8, decoder_num_attention_heads=2))
        model(images_rgb32[:2])
    with pytest.raises(ValueError, match="teacher_name_or_path"):
        tiny_config("g2sd", teacher_name_or_path=None)
