import pytest
import torch

import hf_mim
from hf_mim.models.mto.modeling_mto import recalibration_bias
from tests.conftest import tiny_config


def pair(**overrides):
    """An MTO model and a SimMIM model carrying the same weights (eager attention, float64, eval)."""
    torch.manual_seed(0)
    mto = hf_mim.get_method("mto").pretraining_class(tiny_config("mto", attn_implementation="eager", **overrides))
    simmim = hf_mim.get_method("simmim").pretraining_class(tiny_config("simmim", attn_implementation="eager"))
    assert set(mto.state_dict()) == set(simmim.state_dict())  # MTO adds no parameter to its host
    with torch.no_grad():  # give the relative position bias some structure
        mto.encoder.rel_pos_bias.relative_position_bias_table.normal_(std=0.5)
    simmim.load_state_dict(mto.state_dict())
    return mto.eval().double(), simmim.eval().double()


def inputs(seed=0):
    images = torch.randn(2, 3, 32, 32, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[0, [0, 1, 4, 5, 10, 11, 14, 15]] = True  # two 16-px cells
    mask[1, [2, 3, 6, 7]] = True
    return images, mask


def test_recalibration_bias_pattern():
    mask = torch.tensor([[False, True, True, False]])
    bias = recalibration_bias(mask, num_prefix_tokens=1)
    assert bias.shape == (1, 1, 5, 5)
    # rows = queries (cls, p0..p3), columns = keys; visible queries (cls, p0, p3) lose the masked keys p1, p2
    inf = float("-inf")
    expected = torch.tensor(
        [
            [0, 0, inf, inf, 0],
            [0, 0, inf, inf, 0],
            [0, 0, 0, 0, 0],
            [0, 0, 0, 0, 0],
            [0, 0, inf, inf, 0],
        ]
    )
    assert torch.equal(bias[0, 0], expected)


def test_bias_is_added_to_the_hosts_relative_position_bias():
    mto, _ = pair()
    _, mask = inputs()
    encoder = mto.encoder
    encoder._recalibration_mask = mask
    try:
        combined = encoder.attention_bias(None, (4, 4))
    finally:
        encoder._recalibration_mask = None
    relative = encoder.rel_pos_bias()
    assert combined.shape == (2, 4, 17, 17)
    expected = relative + recalibration_bias(mask, 1, relative.dtype)
    assert torch.equal(combined, expected)
    assert torch.equal(encoder.attention_bias(None, (4, 4)), relative)  # nothing left behind after a call


def test_visible_queries_give_masked_keys_zero_weight_and_masked_queries_see_everything():
    mto, _ = pair()
    images, mask = inputs()
    out = mto(images, bool_masked_pos=mask, output_attentions=True)
    masked = torch.cat([torch.zeros(2, 1, dtype=torch.bool), mask], dim=1)  # cls is visible
    blocked = (~masked)[:, None, :, None] & masked[:, None, None, :]
    assert len(out.attentions) == 2
    for weights in out.attentions:
        assert weights.shape == (2, 4, 17, 17)
        assert (weights.masked_select(blocked.expand_as(weights)) == 0).all()
        assert (weights.masked_select(~blocked.expand_as(weights)) > 0).all()  # masked -> visible kept, etc.
        torch.testing.assert_close(weights.sum(-1), torch.ones(2, 4, 17, dtype=torch.float64))


def test_visible_tokens_do_not_depend_on_the_mask_token():
    images, mask = inputs(1)
    for recalibrate in (True, False):
        mto, _ = pair(weight_recalibration=recalibrate)
        base = mto.encoder(images, bool_masked_pos=mask, replace_masked=True).last_hidden_state
        with torch.no_grad():
            mto.encoder.mask_token.add_(torch.randn_like(mto.encoder.mask_token))
        moved = mto.encoder(images, bool_masked_pos=mask, replace_masked=True).last_hidden_state
        changed = (moved - base).abs().amax(-1) > 1e-9  # [B, 1 + L]
        visible = torch.cat([torch.ones(2, 1, dtype=torch.bool), ~mask], dim=1)
        assert changed[~visible].all()
        if recalibrate:  # visible queries never read a mask token, in any layer
            assert not changed[visible].any()
        else:  # plain SimMIM: visible tokens do attend to the mask tokens
            assert changed[visible].all()


def test_without_recalibration_it_is_simmim_exactly():
    mto, simmim = pair(weight_recalibration=False)
    images, mask = inputs(2)
    ours, theirs = mto(images, bool_masked_pos=mask), simmim(images, bool_masked_pos=mask)
    torch.testing.assert_close(ours.reconstruction, theirs.reconstruction, rtol=0, atol=0)
    torch.testing.assert_close(ours.loss, theirs.loss, rtol=0, atol=0)
    # with recalibration the outputs differ, but the loss keeps SimMIM's masked-L1 reduction
    mto.config.weight_recalibration = True
    recal = mto(images, bool_masked_pos=mask)
    assert not torch.allclose(recal.reconstruction, theirs.reconstruction)
    pixel_mask = mask.reshape(2, 4, 4).repeat_interleave(8, 1).repeat_interleave(8, 2)[:, None].to(torch.float64)
    hand = ((recal.reconstruction - images).abs() * pixel_mask).sum() / (pixel_mask.sum() + 1e-5) / 3
    torch.testing.assert_close(recal.loss, hand.float())


def test_unmasked_encoding_has_no_recalibration():
    """Feature extraction / fine-tuning: no mask, no bias; identical to the SimMIM encoder."""
    mto, simmim = pair()
    images, mask = inputs(3)
    torch.testing.assert_close(mto.encoder(images).last_hidden_state, simmim.encoder(images).last_hidden_state)
    # replace_masked=False drops the masked patches (MAE style): there is no mask token to exclude either
    dropped = mto.encoder(images, bool_masked_pos=mask[:1].expand(2, -1)).last_hidden_state
    torch.testing.assert_close(dropped, simmim.encoder(images, bool_masked_pos=mask[:1].expand(2, -1)).last_hidden_state)


def test_masks_and_errors_follow_simmim():
    mto, _ = pair()
    mto.mask_rng = torch.Generator().manual_seed(7)
    out = mto(torch.randn(2, 3, 32, 32, dtype=torch.float64))
    assert out.mask.sum(1).tolist() == [12, 12]  # ceil(0.6 * 4) cells of 2x2 patches
    with pytest.raises(ValueError, match="bool_masked_pos must have shape"):
        mto(torch.randn(2, 3, 32, 32, dtype=torch.float64), bool_masked_pos=torch.zeros(2, 15, dtype=torch.bool))
