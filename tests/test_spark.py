"""SparK mechanism: sparse conv / BN / LN emulation, masks per stage, densify, decoder layout, masked loss."""

import pytest
import torch
from torch import nn

import hf_mim
from hf_mim.layers.sparse_conv import SparseBatchNorm2d, SparseLayerNorm, active_at, active_from_mask
from hf_mim.models.spark import SparKConfig, SparKForPreTraining, SparKModel
from hf_mim.models.spark.modeling_spark import SparKDecoder, spark_mask_from_noise
from tests.conftest import tiny_config


def random_active(batch, grid, generator, keep=0.4):
    noise = torch.rand(batch, grid * grid, generator=generator)
    return active_from_mask(spark_mask_from_noise(noise, 1 - keep), (grid, grid))


def test_mask_from_noise_keeps_round_of_visible_cells_with_lowest_noise():
    noise = torch.rand(3, 49, generator=torch.Generator().manual_seed(0))
    mask = spark_mask_from_noise(noise, 0.6)
    assert mask.shape == (3, 49) and mask.dtype == torch.bool
    assert ((~mask).sum(1) == 20).all()  # official: round(49 * 0.4) = 20, not int() = 19
    for row in range(3):
        assert set(noise[row].argsort()[:20].tolist()) == set((~mask[row]).nonzero().flatten().tolist())
    assert ((~spark_mask_from_noise(torch.rand(2, 16), 0.6)).sum(1) == 6).all()  # round(6.4)


def test_active_map_upsampling_matches_each_stage_resolution():
    active = torch.tensor([[[[True, False], [False, True]]]])
    up = active_at(active, (4, 4))[0, 0]
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], dtype=torch.bool)
    assert torch.equal(up, expected)
    with pytest.raises(ValueError, match="whole multiple"):
        active_at(active, (5, 5))


def test_sparse_batchnorm_statistics_come_from_visible_positions_only():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 4, 4, generator=gen) * 2 + 1
    active = torch.tensor([[[[True, False], [False, False]]], [[[False, True], [True, False]]]])
    bn = SparseBatchNorm2d(3, eps=1e-5, momentum=0.1).train()
    out = bn(x, active)

    where = active_at(active, (4, 4))[:, 0]  # [B, H, W]
    visible = x.permute(0, 2, 3, 1)[where]  # [N, C]
    assert visible.shape == (12, 3)
    mean, var = visible.mean(0), visible.var(0, unbiased=False)
    expected = ((x - mean[None, :, None, None]) / (var[None, :, None, None] + 1e-5).sqrt()) * where[:, None]
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    assert (out.permute(0, 2, 3, 1)[~where] == 0).all()
    # running statistics: momentum update with the *visible* mean and unbiased variance
    torch.testing.assert_close(bn.running_mean, 0.1 * mean)
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * visible.var(0, unbiased=True))
    assert bn.num_batches_tracked.item() == 1
    # a dense BN on the zero-filled map would normalise with different statistics
    dense = nn.BatchNorm2d(3).train()(x * where[:, None])
    assert not torch.allclose(dense * where[:, None], expected, atol=1e-3)
    # eval: running statistics, masked sites still zero
    bn.eval()
    out_eval = bn(x, active)
    assert (out_eval.permute(0, 2, 3, 1)[~where] == 0).all()


def test_sparse_layernorm_normalises_visible_positions_and_zeroes_the_rest():
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 5, 4, 4, generator=gen)
    active = random_active(2, 2, gen, keep=0.5)
    norm = SparseLayerNorm(5, eps=1e-6, data_format="channels_first")
    out = norm(x, active)
    where = active_at(active, (4, 4))[:, 0]
    reference = nn.functional.layer_norm(x.permute(0, 2, 3, 1), (5,), eps=1e-6)
    torch.testing.assert_close(out.permute(0, 2, 3, 1)[where], reference[where])
    assert (out.permute(0, 2, 3, 1)[~where] == 0).all()


@pytest.mark.parametrize(
    "overrides",
    [
        {},  # tiny: basic blocks, 3x3/2 stem without pool, total stride 8
        dict(image_size=64, layer_type="bottleneck", embedding_size=8, hidden_sizes=[16, 32, 64], depths=[2, 1, 1],
             stem_kernel_size=7, stem_pool=True),  # official ResNet layout (7x7/2 stem + max pool), stride 16
    ],
)
@pytest.mark.parametrize("training", [True, False])
def test_masked_positions_stay_exactly_zero_through_the_encoder(overrides, training):
    config = tiny_config("spark", **overrides)
    torch.manual_seed(0)
    model = SparKModel(config).train(training)
    gen = torch.Generator().manual_seed(2)
    size = config.image_size
    x = torch.randn(2, 3, size, size, generator=gen) + 0.5
    noise = torch.rand(2, config.num_patches, generator=gen)
    out = model(x, noise=noise, output_hidden_states=True)
    active = active_from_mask(out.mask, config.grid_size)
    maps = out.hidden_states  # stem output, then every stage
    assert len(maps) == len(config.depths) + 1 and out.feature_maps == maps[1:]
    for fmap in maps:
        where = active_at(active, fmap.shape[-2:])[:, 0]
        assert (fmap.permute(0, 2, 3, 1)[~where] == 0).all()
        assert (fmap.permute(0, 2, 3, 1)[where] != 0).any()
    # masked pixels do not influence anything: change them and every feature map is identical
    pixel_mask = ~active_at(active, (size, size))
    x2 = torch.where(pixel_mask, torch.randn(x.shape, generator=gen) * 5, x)
    if training:  # same BN batch statistics either way, but running stats moved: compare in a fresh copy
        model.eval()
    ref = model(x, noise=noise, output_hidden_states=True).hidden_states
    other = model(x2, noise=noise, output_hidden_states=True).hidden_states
    assert all(torch.equal(a, b) for a, b in zip(ref, other))


def test_feature_map_and_mask_shapes_at_each_stage():
    config = tiny_config("spark")
    assert config.patch_size == 8 and config.grid_size == (4, 4) and config.feature_strides == [2, 4, 8]
    model = SparKForPreTraining(config).eval()
    x = torch.randn(3, 3, 32, 32)
    out = model.encoder(x, noise=torch.rand(3, 16))
    assert out.mask.shape == (3, 16) and ((~out.mask).sum(1) == 6).all()
    for fmap, stride, width in zip(out.feature_maps, config.feature_strides, config.hidden_sizes):
        assert fmap.shape == (3, width, 32 // stride, 32 // stride)
    assert out.last_hidden_state.shape == (3, 64, 4, 4) and out.pooler_output.shape == (3, 64)
    # densified maps: coarsest first, decoder widths halve, spatial sizes double
    to_dec = model.densify(out.feature_maps, active_from_mask(out.mask, (4, 4)))
    assert [tuple(t.shape) for t in to_dec] == [(3, 64, 4, 4), (3, 32, 8, 8), (3, 16, 16, 16)]
    pred = model(x, noise=torch.rand(3, 16))
    assert pred.logits.shape == (3, 16, 8 * 8 * 3)


def test_densify_puts_mask_tokens_exactly_at_inactive_sites():
    config = tiny_config("spark")
    torch.manual_seed(0)
    model = SparKForPreTraining(config).eval()
    seen = []
    hooks = [proj.register_forward_pre_hook(lambda m, args: seen.append(args[0])) for proj in model.densify_projs]
    x = torch.randn(2, 3, 32, 32)
    out = model(x, noise=torch.rand(2, 16))
    for hook in hooks:
        hook.remove()
    active = active_from_mask(out.mask, (4, 4))
    fmaps = list(reversed(model.encoder(x, bool_masked_pos=out.mask).feature_maps))
    for i, (dense, fmap) in enumerate(zip(seen, fmaps)):
        where = active_at(active, dense.shape[-2:])[:, 0]
        token = model.mask_tokens[i].flatten()
        assert torch.equal(dense.permute(0, 2, 3, 1)[~where], token.expand(int((~where).sum()), -1))
        normed = model.densify_norms[i](fmap, active)
        assert torch.equal(dense.permute(0, 2, 3, 1)[where], normed.permute(0, 2, 3, 1)[where])


def test_loss_is_normalised_pixel_mse_on_masked_patches_only():
    config = tiny_config("spark")
    torch.manual_seed(0)
    model = SparKForPreTraining(config).train()
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 32, 32, generator=gen)
    out = model(x, noise=torch.rand(2, 16, generator=gen))
    out.logits.retain_grad()
    # hand computation, official patchify: (B, C, h, p, w, p) -> (B, h, w, p, p, C)
    p = 8
    patches = torch.einsum("bchpwq->bhwpqc", x.reshape(2, 3, 4, p, 4, p)).reshape(2, 16, p * p * 3)
    target = (patches - patches.mean(-1, keepdim=True)) / (patches.var(-1, keepdim=True) + 1e-6) ** 0.5
    per_patch = ((out.logits.detach() - target) ** 2).mean(-1)
    masked = out.mask.float()
    expected = (per_patch * masked).sum() / (masked.sum() + 1e-8)
    torch.testing.assert_close(out.loss, expected)
    out.loss.backward()
    grad = out.logits.grad.abs().sum(-1)
    assert (grad[~out.mask] == 0).all() and (grad[out.mask] > 0).all()


def test_all_visible_mask_equals_dense_encoding():
    config = tiny_config("spark")
    torch.manual_seed(0)
    model = SparKModel(config).train()
    x = torch.randn(4, 3, 32, 32)
    dense = model(x).feature_maps
    sparse = model(x, bool_masked_pos=torch.zeros(4, 16, dtype=torch.bool)).feature_maps
    for a, b in zip(dense, sparse):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_resnet50_default_matches_timm_layout_and_official_decoder():
    config = SparKConfig()
    assert (config.patch_size, config.grid_size, config.mask_ratio) == (32, (7, 7), 0.6)
    encoder = SparKModel(config)
    # timm resnet50 has 25,557,032 parameters, 2,049,000 of them in its fc head
    assert sum(p.numel() for p in encoder.parameters()) == 25_557_032 - 2_049_000
    keys = set(encoder.state_dict())
    assert {"conv1.weight", "bn1.running_var", "layer1.0.downsample.0.weight", "layer4.2.bn3.weight"} <= keys
    decoder = SparKDecoder(config)
    assert [block.up_sample.in_channels for block in decoder.dec] == [768, 384, 192, 96, 48]
    assert decoder.proj.in_channels == 24 and decoder.proj.out_channels == 3


def test_densify_projection_kernels_and_zero_init_last():
    config = tiny_config("spark", hidden_sizes=[16, 32, 48])
    model = SparKForPreTraining(config)
    assert [proj.kernel_size for proj in model.densify_projs] == [(1, 1), (3, 3), (3, 3)]
    assert [proj.out_channels for proj in model.densify_projs] == [64, 32, 16]
    assert torch.equal(model.encoder.layer1[0].bn2.weight, torch.zeros(16))
    assert torch.equal(model.encoder.layer1[0].bn1.weight, torch.ones(16))
    same = SparKForPreTraining(tiny_config("spark", decoder_width=48, hidden_sizes=[16, 32, 48]))
    assert isinstance(same.densify_projs[0], nn.Identity)  # official: coarsest width == decoder width
    token = model.mask_tokens[0]
    assert token.shape == (1, 48, 1, 1) and token.abs().max() <= 0.02 and token.std() > 0


def test_clear_errors_for_bad_input():
    config = tiny_config("spark")
    model = SparKForPreTraining(config)
    with pytest.raises(ValueError, match="shape \\[2, 16\\]"):
        model(torch.randn(2, 3, 32, 32), bool_masked_pos=torch.zeros(2, 64, dtype=torch.bool))
    with pytest.raises(ValueError, match="divisible"):
        model(torch.randn(2, 3, 36, 36))
    with pytest.raises(ValueError, match="either noise or bool_masked_pos"):
        model(torch.randn(2, 3, 32, 32), noise=torch.rand(2, 16), bool_masked_pos=torch.zeros(2, 16, dtype=torch.bool))
    with pytest.raises(ValueError, match="stride >= 2"):
        tiny_config("spark", stem_stride=1, stem_pool=False)
    with pytest.raises(ValueError, match="same length"):
        tiny_config("spark", depths=[1, 1])
    with pytest.raises(ValueError, match="divisible by the encoder's total stride"):
        tiny_config("spark", image_size=36)


def test_registered_as_spark():
    spec = hf_mim.get_method("spark")
    assert spec.model_type == "spark" and spec.pretraining_class is SparKForPreTraining


def _sync_batch_norm_rank(rank: int, port: int, folder: str) -> None:
    """One of two gloo processes: train-mode forward / backward of its half of the batch (DDP averages the
    gradients; done by hand here), then rank 0 saves loss, logits, averaged gradients and BN buffers."""
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        model, pixels, mask = _sync_batch_norm_setup()
        half = slice(2 * rank, 2 * rank + 2)
        out = model(pixels[half], bool_masked_pos=mask[half])
        out.loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        for grad in grads.values():
            dist.all_reduce(grad)
            grad /= 2
        logits = [torch.empty_like(out.logits) for _ in range(2)]
        dist.all_gather(logits, out.logits.detach().contiguous())
        losses = [torch.empty_like(out.loss) for _ in range(2)]
        dist.all_gather(losses, out.loss.detach())
        if rank == 0:
            buffers = {n: b.clone() for n, b in model.named_buffers()}
            torch.save(
                {"loss": torch.stack(losses).mean(), "logits": torch.cat(logits), "grads": grads, "buffers": buffers},
                f"{folder}/rank0.pt",
            )
    finally:
        dist.destroy_process_group()


def _sync_batch_norm_setup():
    torch.manual_seed(0)
    model = SparKForPreTraining(tiny_config("spark")).train()
    pixels = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    # the same number of masked cells per image, so the mean of the two half-batch losses is the full-batch loss
    mask = spark_mask_from_noise(torch.rand(4, 16, generator=torch.Generator().manual_seed(2)), 0.6)
    return model, pixels, mask


def test_batch_norm_statistics_are_synchronised_across_processes(tmp_path):
    """Two CPU processes (gloo) with half of the batch each give the loss, predictions, averaged gradients and
    running statistics of ONE process on the whole batch: every BatchNorm (sparse encoder BNs, densify norms,
    decoder BNs) takes its statistics from all processes, as the official SyncBatchNorm (``--sbn``) does."""
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_sync_batch_norm_rank, args=(port, str(tmp_path)), nprocs=2, join=True)
    synced = torch.load(tmp_path / "rank0.pt", weights_only=True)

    model, pixels, mask = _sync_batch_norm_setup()
    out = model(pixels, bool_masked_pos=mask)
    out.loss.backward()
    torch.testing.assert_close(synced["loss"], out.loss.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(synced["logits"], out.logits.detach(), rtol=1e-4, atol=1e-5)
    assert any(".decoder." in f".{n}" and "running_var" in n for n in synced["buffers"])
    for name, buffer in model.named_buffers():
        torch.testing.assert_close(synced["buffers"][name], buffer, rtol=1e-4, atol=1e-6, msg=name)
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert set(synced["grads"]) == set(grads)
    for name, grad in grads.items():
        torch.testing.assert_close(synced["grads"][name], grad, rtol=1e-4, atol=1e-5, msg=name)
