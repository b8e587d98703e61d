"""HPM mechanism: ranking loss, easy-to-hard schedule, hard-patch masks from the EMA teacher, stop-gradients."""

import math

import pytest
import torch

from hf_mim.models.hpm import HPMConfig, HPMForPreTraining
from hf_mim.models.hpm.modeling_hpm import (
    ema_decay_at,
    hard_patch_fraction,
    hard_patch_mask,
    num_hard_patches,
    relative_loss,
    standardized_loss,
)
from hf_mim.models.mae.modeling_mae import masked_mse
from tests.conftest import real_images, tiny_config


@pytest.fixture(scope="module")
def images():
    return real_images(4, 32, 3)


def model_and_mask(**overrides):
    torch.manual_seed(0)
    model = HPMForPreTraining(tiny_config("hpm", **overrides)).eval()
    mask = torch.zeros(4, 16, dtype=torch.bool)
    for row in range(4):
        mask[row, torch.randperm(16, generator=torch.Generator().manual_seed(row))[:12]] = True
    return model, mask


def test_relative_loss_matches_hand_computation():
    pred = torch.tensor([[0.3, -1.0, 2.0], [0.5, 0.1, -0.2]])
    target = torch.tensor([[1.0, 2.0, 2.0], [0.0, 3.0, 1.0]])  # one tied pair (1, 2) in the first sample
    total, pairs = 0.0, 0
    for b in range(2):
        for i in range(3):
            for j in range(3):
                if target[b, j] == target[b, i]:
                    continue
                s = 1 / (1 + math.exp(-(pred[b, j] - pred[b, i]).item()))
                y = target[b, j] > target[b, i]
                total += -math.log(s + 1e-6) if y else -math.log(1 - s + 1e-6)
                pairs += 1
    assert pairs == 10  # 12 ordered pairs, the tied one counted in both directions is left out
    assert relative_loss(pred, target).item() == pytest.approx(total / pairs, rel=1e-6)


def test_standardized_loss_matches_hand_computation():
    pred = torch.tensor([[0.0, 1.0, -1.0, 0.5]])
    target = torch.tensor([[1.0, 2.0, 3.0, 6.0]])
    mean, var = 3.0, ((1 - 3) ** 2 + (2 - 3) ** 2 + 0 + (6 - 3) ** 2) / 3  # unbiased, as torch.var
    z = [(t - mean) / math.sqrt(var + 1e-6) for t in target[0].tolist()]
    expected = sum((p - q) ** 2 for p, q in zip(pred[0].tolist(), z)) / 4
    assert standardized_loss(pred, target).item() == pytest.approx(expected, rel=1e-6)


def test_easy_to_hard_schedule_values():
    # official keep_ratio = 0.5 * (epoch + 1) / total_epoch (epoch 0-based)
    assert hard_patch_fraction(0, 100) == pytest.approx(0.005)
    assert hard_patch_fraction(49, 100) == pytest.approx(0.25)
    assert hard_patch_fraction(99, 100) == pytest.approx(0.5)
    assert hard_patch_fraction(500, 100) == pytest.approx(0.5)
    assert hard_patch_fraction(10, 0) == 0.0
    # ViT-B/16 at ratio 0.75: 147 masked, int(147 * alpha) of them by predicted loss
    assert num_hard_patches(196, 0.75, 0.5) == 73
    assert num_hard_patches(196, 0.75, 0.25) == 36
    assert num_hard_patches(196, 0.75, 0.005) == 0  # -> fully random, as the official first epochs
    model, _ = model_and_mask()
    model.begin_training_epoch(epoch=24, num_epochs=100)
    assert model.hard_patch_fraction == pytest.approx(0.125)
    # EMA decay: official 0.999 + epoch / 100 * (0.9999 - 0.999) for the first 100 epochs, whatever the run length
    assert ema_decay_at(0, 0.999, 0.9999) == pytest.approx(0.999)
    assert ema_decay_at(50, 0.999, 0.9999) == pytest.approx(0.999 + 0.5 * 0.0009)
    assert ema_decay_at(100, 0.999, 0.9999) == pytest.approx(0.9999)
    assert ema_decay_at(700, 0.999, 0.9999) == pytest.approx(0.9999)
    assert model.teacher_decay == pytest.approx(0.9 + 24 / 100 * (0.99 - 0.9))  # tiny preset ramps 0.9 -> 0.99


def test_trainer_holds_the_schedules_per_epoch_and_resumes_them(tmp_path):
    """Through MIMTrainer: 2 optimizer steps per epoch (4 batches, accumulation 2), 3 epochs. Every step of epoch e
    masks with hard share 0.5 * (e + 1) / 3 and updates the teacher with decay 0.9 + e / 100 * 0.09; a run resumed
    in the middle of epoch 1 picks the same values up again."""
    from transformers import TrainerCallback

    from hf_mim.data import MIMCollator
    from hf_mim.training import MIMTrainer, MIMTrainingArguments

    data = [{"pixel_values": image} for image in torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(0))]

    class Record(TrainerCallback):
        def __init__(self):
            self.seen = []

        def on_step_end(self, args, state, control, model=None, **kwargs):
            self.seen.append((state.global_step, model.hard_patch_fraction, model.teacher_decay))

    def run(output, resume=None, save_steps=None):
        torch.manual_seed(0)
        model = HPMForPreTraining(tiny_config("hpm"))
        args = MIMTrainingArguments(
            output_dir=str(output), per_device_train_batch_size=8, gradient_accumulation_steps=2, num_train_epochs=3,
            save_strategy="steps" if save_steps else "no", save_steps=save_steps or 500, logging_steps=50,
            disable_tqdm=True, seed=0, dataloader_num_workers=0, report_to=[],
        )
        record = Record()
        MIMTrainer(model=model, args=args, train_dataset=data, data_collator=MIMCollator(), callbacks=[record]).train(
            resume_from_checkpoint=resume
        )
        return record.seen

    seen = run(tmp_path / "full", save_steps=3)
    assert [step for step, _, _ in seen] == list(range(1, 7))
    for step, fraction, decay in seen:
        epoch = (step - 1) // 2
        assert fraction == pytest.approx(0.5 * (epoch + 1) / 3), step
        assert decay == pytest.approx(0.9 + epoch / 100 * (0.99 - 0.9)), step
    resumed = run(tmp_path / "resumed", resume=str(tmp_path / "full" / "checkpoint-3"))
    assert resumed == pytest.approx(seen[3:])


def test_hard_patch_mask_covers_highest_predicted_loss():
    torch.manual_seed(0)
    scores = torch.randn(8, 196)
    noise = torch.rand(8, 196)
    mask = hard_patch_mask(scores, 0.75, 0.5, noise)
    assert (mask.sum(1) == 147).all()
    top = scores.topk(73, dim=1).indices
    assert mask.gather(1, top).all()
    # the other 74 masked patches are the largest-noise ones among the rest (uniform random remainder)
    rest_noise = noise.scatter(1, top, -1.0)
    assert torch.equal(mask & ~torch.zeros_like(mask).scatter(1, top, True), torch.zeros_like(mask).scatter(1, rest_noise.topk(74, 1).indices, True))
    # fraction 0: plain MAE random mask from the noise
    random = hard_patch_mask(scores, 0.75, 0.0, noise)
    assert torch.equal(random, torch.zeros_like(mask).scatter(1, noise.topk(147, 1).indices, True))


def test_masks_at_high_progress_come_from_the_teacher(images):
    model, _ = model_and_mask()
    model.begin_training_epoch(epoch=99, num_epochs=100)
    model.mask_rng = torch.Generator().manual_seed(0)
    out = model(images)
    assert (out.mask.sum(1) == 12).all()
    top = out.teacher_loss_prediction.topk(6, dim=1).indices  # int(12 * 0.5)
    assert out.mask.gather(1, top).all()
    # the teacher starts as the student: its scores are the student's loss predictor on the unmasked image
    encoded = model.encoder(images)
    _, student_scores = model.decoder(encoded.last_hidden_state, torch.zeros(4, 16, dtype=torch.bool))
    assert torch.allclose(out.teacher_loss_prediction, student_scores, atol=1e-6)
    # early in training no patch is picked by loss: random mask, no teacher pass
    model.begin_training_epoch(epoch=0, num_epochs=100)
    assert model(images).teacher_loss_prediction is None


def test_loss_predictor_target_is_detached(images):
    grads = {}
    for weight in (0.0, 1.0):
        model, mask = model_and_mask(loss_predictor_weight=weight)
        out = model(images, bool_masked_pos=mask)
        out.loss.backward()
        grads[weight] = {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}
        assert all(p.grad is None for p in model.teacher_encoder.parameters())
        assert all(p.grad is None for p in model.teacher_decoder.parameters())
    # the ranking loss adds nothing to the reconstructor's gradient: its target (the per-patch MSE) is detached
    for name in ("decoder.pred.weight", "decoder.norm.weight", "decoder.blocks.0.mlp.fc2.weight"):
        assert torch.equal(grads[0.0][name], grads[1.0][name]), name
    # ...while it trains the loss predictor (and the shared decoder_embed / encoder)
    assert grads[0.0]["decoder.pred_losspred.weight"].abs().sum() == 0
    assert grads[1.0]["decoder.pred_losspred.weight"].abs().sum() > 0
    assert not torch.equal(grads[0.0]["decoder.embed.weight"], grads[1.0]["decoder.embed.weight"])


def test_losses_and_raster_order(images):
    model, mask = model_and_mask()
    out = model(images, bool_masked_pos=mask)
    assert out.logits.shape == (4, 16, 8 * 8 * 3) and out.loss_prediction.shape == (4, 16)
    # logits come back in raster order: the reconstruction term is MAE's masked MSE on them
    target = model.target(images)
    assert out.loss_terms["reconstruction"].item() == pytest.approx(masked_mse(out.logits, target, mask).item(), rel=1e-6)
    per_patch = (out.logits - target).pow(2).mean(-1)[mask].reshape(4, 12)
    expected = relative_loss(out.loss_prediction[mask].reshape(4, 12), per_patch)
    assert out.loss_terms["loss_prediction"].item() == pytest.approx(expected.item(), rel=1e-5)
    assert out.loss.item() == pytest.approx((out.loss_terms["reconstruction"] + out.loss_terms["loss_prediction"]).item(), rel=1e-6)


def test_ema_update_and_teacher_mode():
    model, _ = model_and_mask(ema_decay=[0.9, 0.99])
    with torch.no_grad():
        model.encoder.norm.weight.fill_(2.0)
    before = model.teacher_encoder.norm.weight.clone()
    model.end_training_step(step=1, total_steps=10)
    assert torch.allclose(model.teacher_encoder.norm.weight, 0.9 * before + 0.1 * 2.0)
    # the teacher keeps only the loss-predictor half of the decoder, and follows the student's
    assert len(model.teacher_decoder.blocks) == 0
    assert torch.allclose(model.teacher_decoder.pred_losspred.weight, model.decoder.pred_losspred.weight, atol=1e-6)
    model.train()
    assert model.encoder.training and not model.teacher_encoder.training and not model.teacher_decoder.training


def test_bad_inputs_raise(images):
    model, mask = model_and_mask()
    with pytest.raises(ValueError, match="either noise or bool_masked_pos"):
        model(images, noise=torch.rand(4, 16), bool_masked_pos=mask)
    with pytest.raises(ValueError, match="hard_patch_fraction"):
        model(images, hard_patch_fraction=1.5)
    with pytest.raises(ValueError, match="same number"):
        bad = mask.clone()
        bad[0, mask[0].nonzero()[0]] = False
        model(images, bool_masked_pos=bad)
    with pytest.raises(ValueError, match="hard_patch_max_fraction"):
        HPMConfig(hard_patch_max_fraction=2.0)
    with pytest.raises(ValueError, match="ema_decay"):
        HPMConfig(ema_decay=[0.9])
