"""FrozenTeacher: feature conventions for every supported backbone, freezing, eval mode, partial-token runs (DMAE),
truncation, hooks, re-normalisation, the shared teacher-guided masking helpers, and how students hold teachers."""

import pytest
import torch
from torch import nn
from transformers import (
    CLIPVisionConfig,
    CLIPVisionModel,
    Dinov2Config,
    Dinov2Model,
    ViTConfig,
    ViTMAEConfig,
    ViTMAEModel,
    ViTModel,
)

import hf_mim
from hf_mim.masking.core import mask_from_noise
from hf_mim.teacher import (
    FrozenTeacher,
    block_list,
    feature_loss,
    guided_permutation,
    normalize_features,
    permutation_to_noise,
)
from tests.conftest import tiny_config

VIT = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
CLIP = dict(image_size=32, patch_size=8, hidden_size=24, intermediate_size=48, num_hidden_layers=2, num_attention_heads=2)
DINO = dict(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, mlp_ratio=2)
VITMAE = dict(
    image_size=32, patch_size=8, hidden_size=48, num_hidden_layers=4, num_attention_heads=2, intermediate_size=96,
    decoder_hidden_size=16, decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=32,
    mask_ratio=0.75,
)
BACKBONES = {
    "vit": (ViTConfig, ViTModel, VIT),
    "clip": (CLIPVisionConfig, CLIPVisionModel, CLIP),
    "dinov2": (Dinov2Config, Dinov2Model, DINO),
    "vitmae": (ViTMAEConfig, ViTMAEModel, VITMAE),
}


def backbone(name, **overrides):
    config_class, model_class, values = BACKBONES[name]
    torch.manual_seed(0)
    return model_class(config_class(**{**values, **overrides})).eval()


@pytest.mark.parametrize("name", sorted(BACKBONES))
def test_hidden_state_and_attention_conventions(name, images_rgb32):
    model = backbone(name)
    teacher = FrozenTeacher(model, need_attentions=True)
    out = teacher(images_rgb32)
    depth = model.config.num_hidden_layers
    assert len(out.hidden_states) == depth + 1 and teacher.num_layers == depth
    assert out.hidden_states[-1].shape == (8, 17, model.config.hidden_size) and out.num_prefix_tokens == 1
    assert len(out.attentions) == depth and out.attentions[-1].shape == (8, 2, 17, 17)
    assert torch.allclose(out.attentions[-1].sum(-1), torch.ones(8, 2, 17), atol=1e-5)
    # hidden_states[-1] is the last block BEFORE the final norm; CLIP's last_hidden_state has no final norm
    if name == "clip":
        assert torch.equal(out.last_hidden_state, out.hidden_states[-1])
    else:
        assert not torch.allclose(out.last_hidden_state, out.hidden_states[-1])
    with pytest.raises(ValueError, match="need_attentions"):
        FrozenTeacher(backbone(name))(images_rgb32, output_attentions=True)


def test_hf_mim_mae_encoder_and_pretraining_model_as_teacher(images_rgb32):
    torch.manual_seed(0)
    mae = hf_mim.MAEForPreTraining(tiny_config("mae")).eval()
    teacher = FrozenTeacher(mae)  # reduced to its encoder
    assert teacher.model is mae.encoder and teacher.is_hf_mim
    out = teacher(images_rgb32)
    reference = mae.encoder(images_rgb32, output_hidden_states=True)
    assert all(torch.equal(a, b) for a, b in zip(out.hidden_states, reference.hidden_states))
    # a visible subset: equals the encoder's own token dropping with the same ids
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(1))
    ids_keep = mask_from_noise(noise, 0.75).ids_keep
    partial = teacher(images_rgb32, ids_keep=ids_keep)
    dropped = mae.encoder(images_rgb32, noise=noise, mask_ratio=0.75, output_hidden_states=True)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(partial.hidden_states, dropped.hidden_states))


def test_vitmae_teacher_on_visible_patches_equals_transformers_masking(images_rgb32):
    model = backbone("vitmae")
    teacher = FrozenTeacher(model)
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    ids_keep = mask_from_noise(noise, 0.75).ids_keep
    ours = teacher(images_rgb32, ids_keep=ids_keep)
    with torch.no_grad():
        theirs = model(images_rgb32, noise=noise, output_hidden_states=True)
    assert ours.hidden_states[2].shape == (8, 1 + 4, 48)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours.hidden_states, theirs.hidden_states))
    assert model.config.mask_ratio == 0.75  # restored
    # without ids_keep the whole image is encoded in raster order (ViTMAEModel alone always shuffles)
    full = teacher(images_rgb32)
    assert full.hidden_states[0].shape == (8, 17, 48)
    patches = model.embeddings.patch_embeddings(images_rgb32) + model.embeddings.position_embeddings[:, 1:]
    assert torch.allclose(full.hidden_states[0][:, 1:], patches, atol=1e-6)
    with pytest.raises(ValueError, match="cannot run on a subset"):
        FrozenTeacher(backbone("vit"))(images_rgb32, ids_keep=ids_keep)


def test_frozen_always_eval_no_grad_and_unchanged(images_rgb32):
    model = backbone("vit", hidden_dropout_prob=0.5, attention_probs_dropout_prob=0.5)
    teacher = FrozenTeacher(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert all(not p.requires_grad for p in teacher.parameters())
    wrapper = nn.ModuleDict({"teacher": teacher, "student": nn.Linear(2, 2)})
    wrapper.train()  # what Trainer does
    assert wrapper["student"].training and not teacher.training and not model.training
    first, second = teacher(images_rgb32), teacher(images_rgb32)  # dropout 0.5 stays off
    assert torch.equal(first.hidden_states[-1], second.hidden_states[-1])
    assert not first.hidden_states[-1].requires_grad
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_loads_from_path_config_dict_and_module_alike(tmp_path, images_rgb32):
    model = backbone("clip")
    model.save_pretrained(tmp_path)
    from_path = FrozenTeacher(str(tmp_path), need_attentions=True)
    assert from_path.model.config._attn_implementation == "eager"
    from_module = FrozenTeacher(model)
    # same weights (eager vs sdpa attention: equal up to float rounding)
    assert all(torch.equal(a, b) for a, b in zip(from_path.model.state_dict().values(), model.state_dict().values()))
    assert torch.allclose(from_path(images_rgb32).hidden_states[-1], from_module(images_rgb32).hidden_states[-1], atol=1e-5)
    # a config dict builds a random teacher, identically every time (seeded)
    spec = dict(model_type="clip_vision_model", **CLIP)
    a, b, c = FrozenTeacher(spec), FrozenTeacher(spec), FrozenTeacher(spec, seed=1)
    assert isinstance(a.model, CLIPVisionModel)
    assert all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), b.model.state_dict().values()))
    assert not all(torch.equal(x, y) for x, y in zip(a.model.state_dict().values(), c.model.state_dict().values()))
    with pytest.raises(ValueError, match="model_type"):
        FrozenTeacher(dict(CLIP))
    with pytest.raises(TypeError, match="teacher must be"):
        FrozenTeacher(3)


def test_truncation_and_forward_hooks(images_rgb32):
    full = FrozenTeacher(backbone("vitmae"))
    short = FrozenTeacher(backbone("vitmae"), num_layers=2, hook_modules=["layers.1"])
    assert short.num_layers == 2 and len(block_list(short.model)) == 2
    a, b = full(images_rgb32), short(images_rgb32)
    assert len(b.hidden_states) == 3
    assert all(torch.equal(a.hidden_states[k], b.hidden_states[k]) for k in range(3))
    assert torch.equal(b.features["layers.1"], b.hidden_states[2])
    with pytest.raises(ValueError, match="no submodule"):
        FrozenTeacher(backbone("vit"), hook_modules=["nope"])
    with pytest.raises(ValueError, match="num_layers"):
        FrozenTeacher(backbone("vit"), num_layers=3)


def test_renormalisation_and_grayscale_input():
    teacher = FrozenTeacher(backbone("vit"), teacher_mean=(0.5, 0.4, 0.3), teacher_std=(0.2, 0.25, 0.5))
    x = torch.randn(2, 3, 32, 32)
    imagenet_mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    imagenet_std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    expected = (x * imagenet_std + imagenet_mean - torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1)) / torch.tensor(
        [0.2, 0.25, 0.5]
    ).view(1, 3, 1, 1)
    assert torch.allclose(teacher.prepare_pixels(x), expected, atol=1e-6)
    plain = FrozenTeacher(backbone("vit"))
    gray = torch.randn(2, 1, 32, 32)
    assert torch.equal(plain.prepare_pixels(gray), gray.expand(-1, 3, -1, -1))
    assert torch.equal(plain.prepare_pixels(x), x)
    with pytest.raises(ValueError, match="channels"):
        plain.prepare_pixels(torch.randn(2, 2, 32, 32))


def test_feature_normalisation_and_losses_by_hand():
    x = torch.randn(2, 5, 8)
    mean, var = x.mean(-1, keepdim=True), x.var(-1, unbiased=False, keepdim=True)
    assert torch.allclose(normalize_features(x, "whiten"), (x - mean) / torch.sqrt(var + 1e-5), atol=1e-6)
    assert torch.allclose(normalize_features(x, "l2"), x / x.norm(dim=-1, keepdim=True), atol=1e-6)
    assert torch.allclose(normalize_features(x, "batch"), (x - x.mean()) / (x.var() + 1e-6) ** 0.5, atol=1e-6)
    y = torch.randn(2, 5, 8)
    diff = x - y
    assert torch.allclose(feature_loss(x, y, "l2"), diff.pow(2).mean())
    assert torch.allclose(feature_loss(x, y, "l1"), diff.abs().mean())
    smooth = torch.where(diff.abs() < 1, 0.5 * diff**2, diff.abs() - 0.5).mean()
    assert torch.allclose(feature_loss(x, y, "smoothl1"), 2 * smooth)
    with pytest.raises(ValueError):
        normalize_features(x, "bad")


def test_guided_permutation_and_noise():
    importance = torch.tensor([[0.0, 0.0, 1.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4, 0.0]])
    perm = guided_permutation(importance, "sample", torch.Generator().manual_seed(0))
    again = guided_permutation(importance, "sample", torch.Generator().manual_seed(0))
    assert torch.equal(perm, again) and perm[0, 0] == 2 and perm[1, -1] == 4  # zero weight is drawn last
    assert torch.equal(perm.sort(dim=1).values, torch.arange(5).expand(2, -1))
    assert torch.equal(guided_permutation(importance, "topk")[1], torch.tensor([3, 2, 1, 0, 4]))
    noise = permutation_to_noise(perm)
    assert torch.equal(torch.argsort(noise, dim=1), perm)
    assert torch.equal(mask_from_noise(noise, 0.6).ids_keep, perm[:, :2])


@pytest.mark.parametrize("method", ["mrmae", "dmae", "maskalign"])
def test_students_keep_the_teacher_out_of_their_state(method, tmp_path):
    spec = hf_mim.get_method(method)
    model = spec.pretraining_class(tiny_config(method))
    teacher = model.teacher
    assert isinstance(teacher, FrozenTeacher)
    assert not any(k.startswith(("frozen_", "teacher", "_teacher")) for k in model.state_dict())
    teacher_params = {id(p) for p in teacher.parameters()}
    assert not teacher_params & {id(p) for p in model.parameters()}
    model.train()
    assert model.encoder.training and not teacher.training
    # save_teacher=True: registered, saved and reloaded with the checkpoint
    saving = spec.pretraining_class(tiny_config(method, save_teacher=True))
    assert any(k.startswith("frozen_teacher.") for k in saving.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(saving.teacher.state_dict().values(), teacher.state_dict().values()))
    saving.save_pretrained(tmp_path)
    loaded = spec.pretraining_class.from_pretrained(tmp_path)
    assert all(torch.equal(loaded.state_dict()[k], v) for k, v in saving.state_dict().items())


def test_whole_vitmae_for_pretraining_with_decoder_hooks(images_rgb32):
    """G2SD-style use: keep the MAE decoder and read its blocks through forward hooks."""
    from transformers import ViTMAEForPreTraining

    torch.manual_seed(0)
    model = ViTMAEForPreTraining(ViTMAEConfig(**VITMAE)).eval()
    whole = FrozenTeacher(model, reduce_to_base=False, hook_modules=["decoder.decoder_layers.0"])
    encoder_only = FrozenTeacher(model)
    assert whole.model is model and encoder_only.model is model.vit and whole.num_layers == 4
    ids_keep = mask_from_noise(torch.rand(8, 16, generator=torch.Generator().manual_seed(0)), 0.75).ids_keep
    a, b = whole(images_rgb32, ids_keep=ids_keep), encoder_only(images_rgb32, ids_keep=ids_keep)
    assert all(torch.equal(x, y) for x, y in zip(a.hidden_states, b.hidden_states))
    assert a.features["decoder.decoder_layers.0"].shape == (8, 17, 16)  # cls + every patch, decoder width


def test_whole_hf_mim_mae_with_decoder_hooks(images_rgb32):
    torch.manual_seed(0)
    mae = hf_mim.MAEForPreTraining(tiny_config("mae")).eval()
    whole = FrozenTeacher(mae, reduce_to_base=False, hook_modules=["decoder.blocks.0"])
    assert whole.is_hf_mim_pretraining and whole.num_layers == 2 and whole.num_prefix_tokens == 1
    noise = torch.rand(8, 16, generator=torch.Generator().manual_seed(0))
    ids_keep = mask_from_noise(noise, 0.75).ids_keep
    out = whole(images_rgb32, ids_keep=ids_keep)
    reference = mae.encoder(images_rgb32, noise=noise, mask_ratio=0.75, output_hidden_states=True)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(out.hidden_states, reference.hidden_states))
    assert out.features["decoder.blocks.0"].shape == (8, 17, 32)
