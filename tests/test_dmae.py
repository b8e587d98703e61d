"""DMAE: the teacher runs on the student's visible patches only (truncated after the aligned block); the
distillation term (L1 of L2-normalised features over cls + visible tokens) and the raw-pixel loss by hand; frozen,
unsaved teacher; projection variants; clear errors."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import ViTMAEConfig, ViTMAEModel

import hf_mim
from hf_mim.layers.patch_embed import patchify
from hf_mim.masking.core import mask_from_noise
from hf_mim.models.dmae import TINY_TEACHER
from tests.conftest import tiny_config


def build(**overrides):
    torch.manual_seed(0)
    return hf_mim.DMAEForPreTraining(tiny_config("dmae", **overrides))


def reference_teacher():
    """The same random teacher as the config dict builds (seed 0), untruncated, masking by itself."""
    values = {k: v for k, v in TINY_TEACHER.items() if k != "model_type"}
    torch.manual_seed(0)
    return ViTMAEModel(ViTMAEConfig(**values)).eval()


def test_loss_terms_equal_hand_computation_with_transformers_masking(images_rgb32):
    model = build().eval()
    assert model.teacher.num_layers == 2  # student block 1 <-> teacher block 2: blocks 3-4 never run
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model(images_rgb32, noise=noise)
        teacher = reference_teacher()
        full, truncated = teacher.state_dict(), model.teacher.model.state_dict()
        assert set(truncated) < set(full) and all(torch.equal(v, full[k]) for k, v in truncated.items())
        # transformers' own ViTMAE masking with the same noise: the teacher sees exactly the student's visible patches
        target = teacher(images_rgb32, noise=noise, output_hidden_states=True).hidden_states[2]
        student = model.encoder(images_rgb32, noise=noise, output_hidden_states=True).hidden_states[1]
        assert target.shape == (8, 5, 48) and student.shape == (8, 5, 32)  # cls + 4 visible tokens
        projected = student @ model.projections[0].weight.T + model.projections[0].bias
        distill = (projected / projected.norm(dim=-1, keepdim=True) - target / target.norm(dim=-1, keepdim=True)).abs().mean()
        mask = mask_from_noise(noise, 0.75).mask
        pixel = (out.logits - patchify(images_rgb32, 8)).pow(2).mean(-1)[mask].mean()  # raw pixels (norm_pix_loss off)
    assert torch.allclose(out.loss_terms["distill_1_2"], distill, atol=1e-6)
    assert torch.allclose(out.loss_terms["pixel"], pixel, atol=1e-6)
    assert torch.allclose(out.loss, pixel + distill, atol=1e-6)
    weighted = build(distill_loss_weight=3.0, distill_loss="l2").eval()
    with torch.no_grad():
        w = weighted(images_rgb32, noise=noise)
    assert torch.allclose(w.loss, w.loss_terms["pixel"] + 3.0 * w.loss_terms["distill_1_2"])


def test_teacher_frozen_eval_unsaved_and_student_learns(images_rgb32, tmp_path):
    model = build()
    teacher = model.teacher
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    model.train()
    losses = []
    for _ in range(8):
        out = model(images_rgb32, noise=noise)
        optimizer.zero_grad()
        out.loss.backward()
        assert all(p.grad is None for p in teacher.parameters())
        assert model.projections[0].weight.grad.abs().sum() > 0
        optimizer.step()
        losses.append(out.loss.item())
    assert losses[-1] < 0.9 * losses[0]
    assert not teacher.training and all(torch.equal(v, before[k]) for k, v in teacher.state_dict().items())
    model.save_pretrained(tmp_path)
    keys = load_file(tmp_path / "model.safetensors").keys()
    assert len(keys) == len(model.state_dict()) and "projections.0.weight" in keys
    assert not any(k.startswith("frozen_") for k in keys)


def test_explicit_bool_mask_and_hf_mim_mae_teacher(images_rgb32):
    torch.manual_seed(1)
    mae_teacher = hf_mim.MAEForPreTraining(tiny_config("mae", hidden_size=48, num_hidden_layers=3)).eval()
    model = build(teacher_hidden_size=48, teacher_align_layers=[3])
    model.set_teacher(mae_teacher)
    assert model.teacher.model is mae_teacher.encoder and model.teacher.num_layers == 3
    mask = torch.zeros(8, 16, dtype=torch.bool)
    mask[:, 4:] = True
    with torch.no_grad():
        out = model(images_rgb32, bool_masked_pos=mask)
        target = mae_teacher.encoder(images_rgb32, bool_masked_pos=mask, output_hidden_states=True).hidden_states[3]
        student = model.projections[0](model.encoder(images_rgb32, bool_masked_pos=mask, output_hidden_states=True).hidden_states[1])
    expected = (torch.nn.functional.normalize(student, dim=-1) - torch.nn.functional.normalize(target, dim=-1)).abs().mean()
    assert torch.equal(out.mask, mask)
    assert torch.allclose(out.loss_terms["distill_1_3"], expected, atol=1e-6)


@pytest.mark.parametrize("kind", ["mlp-1layer", "mlp-2layer"])
def test_projection_variants(kind, images_rgb32):
    model = build(projection_type=kind)
    head = model.projections[0]
    assert head(torch.zeros(2, 5, 32)).shape == (2, 5, 48)
    out = model(images_rgb32, noise=torch.rand(8, 16))
    assert torch.isfinite(out.loss)


def test_clear_errors():
    with pytest.raises(ValueError, match="same length"):
        tiny_config("dmae", student_align_layers=[1, 2], teacher_align_layers=[2])
    with pytest.raises(ValueError, match="block numbers"):
        tiny_config("dmae", student_align_layers=[5])
    with pytest.raises(ValueError, match="projection_type"):
        tiny_config("dmae", projection_type="conv")
    with pytest.raises(ValueError, match="num_layers"):
        build(teacher_align_layers=[9]).teacher
    with pytest.raises(ValueError, match="subset"):
        clip = dict(model_type="clip_vision_model", image_size=32, patch_size=8, hidden_size=48, intermediate_size=64,
                    num_hidden_layers=2, num_attention_heads=2)
        build(teacher_name_or_path=clip)(torch.randn(2, 3, 32, 32))


def test_default_teacher_is_the_official_raw_pixel_mae_large_and_the_card_says_so(tmp_path):
    # DMAE pretrain.sh loads mae_visualize_vit_large.pth (MAE ViT-L on raw pixels); facebook/vit-mae-large is
    # transformers' conversion of that checkpoint
    from transformers import AutoConfig

    from hf_mim.hub.cards import build_model_card

    assert hf_mim.DMAEConfig().teacher_name_or_path == "facebook/vit-mae-large"
    build().save_pretrained(tmp_path)
    card = str(build_model_card(AutoConfig.from_pretrained(tmp_path), "me/dmae-tiny"))
    assert "mae_visualize_vit_large.pth" in card and "raw pixels" in card
