"""I2P-MAE mechanism tests: 2-D-guided masking, mask propagation, which tokens each loss reads, the frozen unsaved
teacher, explicit masks and bad input, save/load, the remote-code bundle, the card and the CLI under Trainer."""

import json

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForSequenceClassification,
)

import hf_mim
from hf_mim.models.i2pmae.modeling_i2pmae import PointScale, guided_mask, propagate_mask
from tests.conftest import demo_point_batch

SPEC = hf_mim.get_method("i2pmae")


def tiny(**overrides):
    torch.manual_seed(0)
    return SPEC.pretraining_class(SPEC.make_config("tiny", drop_path_rate=0.0, **overrides))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def clouds():
    return demo_point_batch(4, 256)


def test_guided_masking_keeps_salient_tokens_visible():
    saliency = torch.linspace(-3, 3, 16).expand(400, -1)
    mask = guided_mask(saliency, 0.75, torch.Generator().manual_seed(0))
    assert mask.shape == (400, 16) and (mask.sum(1) == 12).all()
    visible_rate = (~mask).float().mean(0)
    assert visible_rate[-4:].mean() > 0.7 > 0.02 > visible_rate[:4].mean()  # salient end kept, dull end masked
    # a flat saliency is uniform random masking
    flat = (~guided_mask(torch.zeros(2000, 8), 0.5, torch.Generator().manual_seed(1))).float().mean(0)
    assert torch.allclose(flat, torch.full((8,), 0.5), atol=0.05)


def test_a_fine_token_is_visible_iff_it_is_in_a_visible_coarse_group():
    fine = PointScale(torch.zeros(1, 6, 3), torch.zeros(1, 6, 1, dtype=torch.long), torch.zeros(1, 6, 1, 3))
    coarse = PointScale(torch.zeros(1, 3, 3), torch.tensor([[[0, 1], [1, 2], [4, 5]]]), torch.zeros(1, 3, 2, 3))
    masks = propagate_mask(torch.tensor([[False, True, True]]), [fine, coarse])
    assert masks[1].tolist() == [[False, True, True]]
    assert masks[0].tolist() == [[False, False, True, True, True, True]]  # 1 is shared with the masked group
    # every cloud alike (the official code also un-masks token 0 of the batch's first cloud)
    batch = propagate_mask(torch.tensor([[False, True, True], [True, True, False]]),
                           [PointScale(*(t.expand(2, *t.shape[1:]) for t in (fine.centres, fine.indices, fine.members))),
                            PointScale(*(t.expand(2, *t.shape[1:]) for t in (coarse.centres, coarse.indices, coarse.members)))])
    assert batch[0].tolist() == [[False, False, True, True, True, True], [True, True, True, True, False, False]]


def test_chamfer_reads_masked_groups_only_and_feature_regression_visible_tokens_only(clouds):
    model = tiny().train()
    captured = {}

    def keep(module, args, out):
        out.retain_grad()
        captured["x"] = out

    model.decoder_norm.register_forward_hook(keep)
    inputs = SPEC.make_inputs(model, clouds)
    out = model(**inputs)
    masks = propagate_mask(out.bool_masked_pos, model.encoder.group(clouds))
    mask = masks[model.config.reconstruction_scale]
    assert out.logits.shape == (int(mask.sum()), model.config.group_sizes[1], 3)
    out.coordinate_loss.backward(retain_graph=True)
    grad = captured["x"].grad.abs().sum(-1)
    assert (grad[~mask] == 0).all() and (grad[mask] > 0).all()
    captured["x"].grad = None
    out.feature_loss.backward()
    grad = captured["x"].grad.abs().sum(-1)
    assert (grad[mask] == 0).all() and (grad[~mask] > 0).all()
    assert torch.allclose(out.loss, out.coordinate_loss + out.feature_loss)  # 1:1 as official


def test_the_teacher_is_frozen_and_not_saved(clouds, tmp_path):
    model = tiny()
    inputs = SPEC.make_inputs(model, clouds)
    model(**inputs).loss.backward()
    teacher = model.teacher
    assert all(not p.requires_grad and p.grad is None for p in teacher.parameters())
    assert not teacher.training and all(not k.startswith(("teacher", "frozen")) for k in model.state_dict())
    assert {id(p) for p in teacher.parameters()}.isdisjoint(id(p) for p in model.parameters())
    model.save_pretrained(tmp_path)
    loaded = AutoModelForPreTraining.from_pretrained(tmp_path).eval()
    model.eval()
    assert set(loaded.state_dict()) == set(model.state_dict())
    with torch.no_grad():
        assert torch.equal(model(**inputs).loss, loaded(**inputs).loss)  # the rebuilt random teacher is the same


def test_explicit_masks_and_bad_input_are_checked(clouds):
    model = tiny().eval()
    inputs = SPEC.make_inputs(model, clouds)
    with torch.no_grad():
        assert torch.equal(model(**inputs).loss, model(**inputs).loss)
        for bad, message in (
            (torch.zeros(4, 8, dtype=torch.bool), "hides no patch"),
            (torch.ones(4, 8, dtype=torch.bool), "hides every patch"),
            (torch.tensor([[True] * 4 + [False] * 4] * 3 + [[True] * 5 + [False] * 3]), "same number"),
            (torch.zeros(4, 7, dtype=torch.bool), "shape"),
        ):
            with pytest.raises(ValueError, match=message):
                model(points=clouds, bool_masked_pos=bad)
        with pytest.raises(ValueError, match="NaN"):
            model(points=clouds.clone().index_fill_(1, torch.tensor([3]), float("nan")), bool_masked_pos=inputs["bool_masked_pos"])
        with pytest.raises(ValueError, match="fewer than the 32 groups"):
            model.encoder(points=clouds[:, :20])
        # the mask drawn inside forward follows mask_rng
        model.mask_rng = torch.Generator().manual_seed(3)
        first = model(points=clouds).bool_masked_pos
        model.mask_rng = torch.Generator().manual_seed(3)
        assert torch.equal(first, model(points=clouds).bool_masked_pos) and (first.sum(1) == 4).all()
    with torch.device("meta"):
        meta = SPEC.pretraining_class(SPEC.make_config("tiny"))
    assert all(p.is_meta for p in meta.parameters())
    with pytest.raises(ValueError, match="groups of 300 from 256 points"):
        SPEC.make_config("tiny", group_sizes=[300, 4, 4])


def test_save_load_auto_classes_head_and_card(clouds, tmp_path):
    from hf_mim.hub.cards import build_model_card

    model = tiny().eval()
    processor = SPEC.make_processor(model.config)
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint)
    processor.save_pretrained(checkpoint)
    assert type(AutoConfig.from_pretrained(checkpoint)) is hf_mim.I2PMAEConfig
    assert type(AutoFeatureExtractor.from_pretrained(checkpoint)).__name__ == "PointCloudFeatureExtractor"
    encoder = AutoModel.from_pretrained(checkpoint).eval()
    assert type(encoder) is hf_mim.I2PMAEModel
    with torch.no_grad():
        features = encoder(clouds)
        assert features.pooler_output.shape == (4, 32) and features.last_hidden_state.shape == (4, 8, 32)
        assert torch.equal(encoder.pooled_features(clouds), features.pooler_output)
    classifier, info = AutoModelForSequenceClassification.from_pretrained(checkpoint, num_labels=8, output_loading_info=True)
    assert type(classifier) is hf_mim.I2PMAEForPointCloudClassification
    assert info["unexpected_keys"] == set() and {k.split(".")[0] for k in info["missing_keys"]} == {"classifier"}
    out = classifier(points=clouds, labels=torch.arange(4))
    out.loss.backward()
    assert out.logits.shape == (4, 8) and classifier.encoder.token_embeds[0].first_conv[0].weight.grad is not None

    card = str(build_model_card(AutoConfig.from_pretrained(checkpoint), "me/i2pmae-tiny", results={"linear_probe_top1": 0.5}))
    meta = card.split("---")[1]
    assert "masked-point-modeling" in meta and "point-cloud" in meta
    assert "AutoFeatureExtractor" in card and "{{" not in card and "50% of" in card


def test_cli_pretrain_on_generated_shapes_loss_falls(tmp_path):
    """`hf-mim pretrain --method i2pmae` on the generated shapes: the loss falls under Trainer; the saved feature
    extractor samples the model's point count."""
    from hf_mim.cli import main

    out = tmp_path / "run"
    main([
        "pretrain", "--method", "i2pmae", "--size", "tiny", "--max_steps", "25", "--per_device_train_batch_size", "8",
        "--learning_rate", "3e-3", "--logging_steps", "1", "--save_strategy", "no", "--output_dir", str(out),
        "--seed", "0", "--disable_tqdm", "true", "--max_train_samples", "64",
    ])
    losses = [e["loss"] for e in json.loads((out / "trainer_state.json").read_text())["log_history"] if "loss" in e]
    assert len(losses) == 25 and sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5, losses
    assert AutoFeatureExtractor.from_pretrained(out).num_points == 256 == AutoConfig.from_pretrained(out).num_points
