"""JEPA: multi-block masks as I-JEPA samples them, the latent-prediction loss, the EMA target encoder, and the
deep-linear claim of Littwin et al. (JEPA prefers predictive features, MAE high-variance ones)."""

import pytest
import torch
from torch.nn import functional as F

import hf_mim
from hf_mim.masking.core import gather_tokens
from hf_mim.masking.multiblock import sample_block, sample_multiblock_masks
from hf_mim.models.jepa import JEPAConfig, JEPAForPreTraining
from hf_mim.models.jepa.deep_linear import fixed_point, matrix_loss, scalar_gradients, simulate

SMALL = dict(
    image_size=32, patch_size=4, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
    predictor_hidden_size=16, predictor_num_hidden_layers=1, predictor_num_attention_heads=2, min_keep=4,
)


def small_model(**overrides):
    torch.manual_seed(0)
    return JEPAForPreTraining(JEPAConfig(**{**SMALL, **overrides}))


def test_multiblock_masks_follow_the_official_sampler():
    grid = (14, 14)
    context, targets = sample_multiblock_masks(6, grid, torch.Generator().manual_seed(0), min_keep=10)
    assert targets.shape[:2] == (6, 4) and context.shape[0] == 6
    for b in range(6):
        target_set = set(targets[b].flatten().tolist())
        # context and targets are disjoint (allow_overlap=False), indices sorted in raster order
        assert not target_set & set(context[b].tolist())
        assert torch.equal(context[b], context[b].sort().values)
        for block in targets[b]:
            rows, cols = (block // 14).tolist(), (block % 14).tolist()
            # a rectangle that never touches the last row / column (exclusive upper bound of the corner draw)
            assert max(rows) <= 12 and max(cols) <= 12
    # one target size per batch: blocks are truncated to the batch minimum, which is 15-20% of 196 at most
    assert 10 < targets.shape[2] <= int(196 * 0.2)
    # the square context block (85-100% before cutting, side capped at 13) minus the targets
    assert context.shape[1] < 13 * 13


def test_masks_are_seeded_and_errors_are_clear():
    a = sample_multiblock_masks(4, (8, 8), torch.Generator().manual_seed(3), min_keep=4)
    b = sample_multiblock_masks(4, (8, 8), torch.Generator().manual_seed(3), min_keep=4)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError, match="min_keep"):
        sample_block(torch.Generator().manual_seed(0), (4, 4), (1, 1), min_keep=3)
    with pytest.raises(ValueError, match="use_cls_token"):
        JEPAConfig(use_cls_token=True)
    with pytest.raises(ValueError, match="target_scale"):
        JEPAConfig(target_scale=[0.3, 0.1])


def test_loss_is_smooth_l1_to_layer_normed_target_features():
    model = small_model().eval()
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    context_ids = torch.tensor([[0, 1, 2, 3, 8, 9, 10, 11], [20, 21, 22, 23, 28, 29, 30, 31]])
    target_ids = torch.tensor([[[40, 41, 48, 49]], [[50, 51, 58, 59]]])
    out = model(pixel_values=images, context_ids=context_ids, target_ids=target_ids)
    with torch.no_grad():
        features = model.encoder(pixel_values=images).last_hidden_state
        targets = F.layer_norm(features, (32,))
        # the context encoder sees only the context patches, with their own position embeddings
        tokens, _, _ = model.context_encoder.embed(images)
        context, _, _ = model.context_encoder.run_blocks(gather_tokens(tokens, context_ids))
        predictor = model.predictor
        pos = predictor.pos_embed.expand(2, -1, -1)
        x = torch.cat([predictor.embed(context) + gather_tokens(pos, context_ids),
                       predictor.mask_token + gather_tokens(pos, target_ids[:, 0])], dim=1)
        for block in predictor.blocks:
            x = block(x)[0]
        predictions = predictor.proj(predictor.norm(x[:, 8:]))
        expected = F.smooth_l1_loss(predictions, gather_tokens(targets, target_ids[:, 0]))
    torch.testing.assert_close(out.loss, expected, rtol=1e-5, atol=1e-6)
    assert out.mask.sum(1).tolist() == [64 - 8, 64 - 8]


def test_init_is_the_official_training_init_without_depth_rescaling():
    # ijepa src/helper.py init_model re-draws every Linear (trunc normal std 0.02) after the constructors'
    # fix_init_weight, so the output projections of every block, deep ones included, keep std 0.02
    torch.manual_seed(0)
    model = JEPAForPreTraining(JEPAConfig(**{
        **SMALL, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 3,
        "predictor_hidden_size": 64, "predictor_num_hidden_layers": 3, "predictor_num_attention_heads": 4,
    }))
    # the patch projection too (official Conv2d trunc normal 0.02, not PyTorch's default)
    assert abs(float(model.context_encoder.patch_embed.proj.weight.std()) - 0.02) < 0.002
    for blocks in (model.context_encoder.blocks, model.encoder.blocks, model.predictor.blocks):
        for block in blocks:
            for weight in (block.attn.qkv.weight, block.attn.proj.weight, block.mlp.fc1.weight, block.mlp.fc2.weight):
                assert abs(float(weight.std()) - 0.02) < 0.002


def test_target_encoder_gets_no_gradient_and_follows_the_ema():
    model = small_model().train()
    assert not model.encoder.training  # the target encoder stays in eval mode
    for a, b in zip(model.encoder.parameters(), model.context_encoder.parameters()):
        assert torch.equal(a, b)  # starts as a copy
    images = torch.randn(4, 3, 32, 32)
    inputs = hf_mim.get_method("jepa").make_inputs(model, images, torch.Generator().manual_seed(0))
    model(**inputs).loss.backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    assert model.context_encoder.patch_embed.proj.weight.grad is not None
    before = {n: p.clone() for n, p in model.encoder.named_parameters()}
    with torch.no_grad():
        for p in model.context_encoder.parameters():
            p.add_(1.0)
    model.end_training_step(step=1, total_steps=100)  # momentum 0.996 at the first step
    for name, p in model.encoder.named_parameters():
        source = dict(model.context_encoder.named_parameters())[name]
        torch.testing.assert_close(p, 0.996 * before[name] + 0.004 * source)
    assert model.momentum(101, 100) == 1.0 and model.momentum(51, 100) == pytest.approx(0.998)


def test_auto_model_loads_the_target_encoder(tmp_path):
    model = small_model()
    with torch.no_grad():
        model.encoder.norm.weight.fill_(2.0)  # make the two encoders differ
    model.save_pretrained(tmp_path)
    from transformers import AutoModel

    encoder = AutoModel.from_pretrained(tmp_path)
    assert torch.equal(encoder.norm.weight, model.encoder.norm.weight)
    reloaded = JEPAForPreTraining.from_pretrained(tmp_path).train()  # Trainer calls train() before stepping
    assert not any(p.requires_grad for p in reloaded.encoder.parameters())
    assert all(p.requires_grad for p in reloaded.context_encoder.parameters())


def test_deep_linear_scalar_gradients_equal_the_matrix_loss():
    lambdas, rhos = torch.tensor([4.0, 1.0], dtype=torch.float64), torch.tensor([0.4, 0.9], dtype=torch.float64)
    layers = torch.tensor([[0.3, 0.5], [0.7, 0.2]], dtype=torch.float64)
    predictor = torch.tensor([0.6, 0.1], dtype=torch.float64)
    for objective in ("mae", "jepa"):
        mats = [torch.diag(row).requires_grad_() for row in layers]
        v = torch.diag(predictor).requires_grad_()
        grads = torch.autograd.grad(matrix_loss(objective, mats, v, lambdas, rhos), mats + [v])
        grad_layers, grad_v = scalar_gradients(objective, layers, predictor, lambdas, rhos)
        for l in range(2):
            torch.testing.assert_close(torch.diagonal(grads[l]), grad_layers[l])
            assert torch.count_nonzero(grads[l] - torch.diag(torch.diagonal(grads[l]))) == 0  # stays diagonal
        torch.testing.assert_close(torch.diagonal(grads[2]), grad_v)


def test_pretraining_forward_exports_with_the_index_check_as_a_runtime_assertion():
    model = small_model().eval()
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    context_ids, target_ids = model.sample_masks(2, (8, 8), torch.Generator().manual_seed(0))
    inputs = {"pixel_values": x, "context_ids": context_ids, "target_ids": target_ids}
    exported = torch.export.export(model, (), inputs, strict=False).module()
    other = dict(inputs, context_ids=context_ids.flip(0), target_ids=target_ids.flip(0))
    with torch.no_grad():
        assert torch.equal(exported(**other).loss, model(**other).loss)
    bad_targets = target_ids.clone()
    bad_targets[0, 0, 0] = 64
    with pytest.raises(ValueError, match="mask indices must be < 64"):
        model(**dict(inputs, target_ids=bad_targets))
    with pytest.raises(RuntimeError, match="Runtime assertion failed"):
        exported(**dict(inputs, target_ids=bad_targets))


def test_deep_linear_each_objective_reaches_its_own_fixed_point():
    # balanced init stays balanced: MAE fits v w = rho (w* = rho^(L/(L+1))), JEPA stops at v = rho (w* = rho^L), so
    # JEPA's noisy feature never reaches half of MAE's target yet is fully learned against its own
    rhos = torch.tensor([0.3, 0.9], dtype=torch.float64)
    for objective, expected in (("mae", rhos ** (2 / 3)), ("jepa", rhos**2)):
        run = simulate(objective, 2, [4.0, 1.0], rhos, init_scale=0.5, lr=0.05, total_time=150.0)
        torch.testing.assert_close(run.encoder[-1], expected, rtol=1e-2, atol=0)
        torch.testing.assert_close(fixed_point(objective, 2, rhos), expected)
        assert all(t is not None for t in run.time_to_learn(rhos))


def learning_time_ratio(objective: str, depth: int, total_time: float) -> float:
    """t(noisy f0) / t(predictive f1), each against its own fixed point; end-to-end map starts at 1e-3."""
    run = simulate(objective, depth, [4.0, 1.0], [0.3, 0.9], init_scale=1e-3 ** (1 / (depth + 1)), lr=0.05,
                   total_time=total_time, record_every=5)
    t0, t1 = run.time_to_learn([0.3, 0.9])
    assert t0 is not None and t1 is not None
    return t0 / t1


def test_deep_linear_jepa_turns_to_the_predictive_feature_with_depth():
    # f0: high variance, noisy (lambda 4, rho 0.3); f1: low variance, predictive (lambda 1, rho 0.9)
    mae = [learning_time_ratio("mae", depth, 30.0) for depth in (1, 2)]
    jepa = [learning_time_ratio("jepa", depth, total) for depth, total in ((1, 60.0), (2, 600.0))]
    assert max(mae) < 0.8  # MAE: the high-variance feature clearly first at both depths
    assert jepa[0] > mae[0] and jepa[1] > mae[1]  # JEPA always leans more towards the predictive feature
    assert jepa[1] - jepa[0] > 0.2 > abs(mae[1] - mae[0]) + 0.05  # and depth strengthens that, far more than MAE

