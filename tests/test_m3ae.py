"""M3AE: the three passes (MLM on masked text + full image, MIM from fusion layer `mim_layer` on 75%-masked
images, ITM on half-swapped pairs), whole-word masking, input checks and the equal-weight loss."""

import pytest
import torch
import torch.nn.functional as F

from hf_mim.models.m3ae import TINY, M3AEConfig, M3AEForPreTraining, whole_word_mask


def tiny(**overrides):
    torch.manual_seed(0)
    return M3AEForPreTraining(M3AEConfig(**{**TINY, **overrides})).eval()


def batch(size=4, length=10, seed=0):
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (size, length), generator=generator)
    ids[:, 0], ids[:, -1] = 0, 2  # <s> ... </s>
    special = (ids == 0) | (ids == 2)
    mlm_ids, labels = whole_word_mask(ids, torch.ones_like(ids), special, 0.3, 4, 100, generator)
    pixels = torch.randn(size, 3, 32, 32, generator=generator)
    noise = torch.rand(size, 16, generator=generator)
    return dict(input_ids=ids, pixel_values=pixels, mlm_input_ids=mlm_ids, mlm_labels=labels, noise=noise,
                itm_labels=torch.tensor([1, 0, 1, 0][:size]))


def test_image_masked_at_75_percent_before_the_clip_blocks():
    model, inputs = tiny(), batch()
    out = model(**inputs)
    assert out.mask.shape == (4, 16) and out.mask.sum(1).tolist() == [12] * 4  # int(16 * 0.25) = 4 visible
    encoded = model.m3ae(inputs["input_ids"], None, inputs["pixel_values"], noise=inputs["noise"])
    assert encoded.image_hidden_state.shape[1] == 1 + 4  # cls + visible patches only


def test_whole_word_masking_masks_words_together_and_labels_only_masked_tokens():
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 100, (200, 30), generator=generator)
    starts = torch.rand(ids.shape, generator=generator) < 0.4
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = True
    masked, labels = whole_word_mask(ids, starts, special, 0.15, 4, 100, generator)
    chosen = labels != -100
    assert torch.equal(labels[chosen], ids[chosen]) and not chosen[special].any()
    assert torch.equal(masked[~chosen], ids[~chosen])  # nothing outside the chosen words changes
    word = starts.long().cumsum(1)
    for row in range(20):  # every token of a word shares its word's choice
        for k in word[row].unique().tolist():
            if k > 0:
                assert chosen[row][word[row] == k].unique().numel() == 1
    assert 0.12 < chosen[:, 1:].float().mean() < 0.18
    assert 0.75 < (masked[chosen] == 4).float().mean() < 0.85  # 80% [MASK]


def test_mim_reads_the_stream_entering_fusion_layer_mim_layer():
    """mim_layer=1 of 2: the pixels depend on fusion layer 0, not on layer 1 (nor on the MLM / ITM heads)."""
    model, inputs = tiny(), batch()
    reference = model(**inputs)
    with torch.no_grad():
        for layer in (model.m3ae.vision_fusion_layers[1], model.m3ae.text_fusion_layers[1]):
            for parameter in layer.parameters():
                parameter.add_(torch.randn_like(parameter))
    later = model(**inputs)
    assert torch.equal(later.logits, reference.logits) and not torch.allclose(later.itm_logits, reference.itm_logits)
    with torch.no_grad():
        for parameter in model.m3ae.vision_fusion_layers[0].parameters():
            parameter.add_(torch.randn_like(parameter))
    assert not torch.allclose(model(**inputs).logits, reference.logits)
    last = tiny(mim_layer=-1)
    last.load_state_dict(model.state_dict())
    mim = last.m3ae(inputs["input_ids"], None, inputs["pixel_values"], noise=inputs["noise"])
    assert torch.equal(mim.mim_hidden_state, mim.image_hidden_state)


def test_mim_loss_is_normalised_pixel_mse_on_masked_patches():
    model, inputs = tiny(), batch()
    out = model(**inputs)
    patches = inputs["pixel_values"].reshape(4, 3, 4, 8, 4, 8).permute(0, 2, 4, 3, 5, 1).reshape(4, 16, 192)
    target = (patches - patches.mean(-1, keepdim=True)) / (patches.var(-1, keepdim=True) + 1e-6) ** 0.5
    expected = (out.logits - target).square().mean(-1)[out.mask].mean()
    torch.testing.assert_close(out.mim_loss, expected)


def test_itm_labels_follow_the_swapped_images():
    model, inputs = tiny(), batch()
    out = model(**inputs)
    assert out.itm_labels.tolist() == [1, 0, 1, 0]
    pixels = inputs["pixel_values"]
    swapped = torch.stack([pixels[0], pixels[0], pixels[2], pixels[2]])  # 0-labelled pairs get the previous image
    pooled = model.m3ae(inputs["input_ids"], None, swapped).pooler_output
    torch.testing.assert_close(out.itm_logits, model.itm_head(pooled))
    torch.testing.assert_close(out.itm_loss, F.cross_entropy(out.itm_logits, out.itm_labels))
    drawn = model(**{**inputs, "itm_labels": None}).itm_labels
    assert sorted(drawn.tolist()) == [0, 0, 1, 1]  # official: half matched, half swapped, random order


def test_mlm_loss_reads_only_labelled_tokens_of_the_masked_text_pass():
    model, inputs = tiny(), batch()
    out = model(**inputs)
    labels = inputs["mlm_labels"]
    assert (labels != -100).any()
    expected = F.cross_entropy(out.mlm_logits[labels != -100], labels[labels != -100])
    torch.testing.assert_close(out.mlm_loss, expected)
    text = model.m3ae(inputs["mlm_input_ids"], None, inputs["pixel_values"]).text_hidden_state
    torch.testing.assert_close(out.mlm_logits, model.mlm_head(text))  # the masked text, full image, last layer
    torch.testing.assert_close(out.loss, out.mlm_loss + out.mim_loss + out.itm_loss)  # equal weights


def test_bad_inputs_are_one_line_errors():
    model, inputs = tiny(), batch()
    with pytest.raises(ValueError, match="no pixel_values"):
        model(**{**inputs, "pixel_values": None})
    with pytest.raises(ValueError, match="no input_ids"):
        model(**{**inputs, "input_ids": None})
    long = torch.zeros(4, 40, dtype=torch.long)
    with pytest.raises(ValueError, match="longer than the text model allows .32."):
        model(**{**inputs, "input_ids": long, "mlm_input_ids": long, "mlm_labels": long})
    for hidden in (0, 16):
        bool_masked_pos = torch.zeros(4, 16, dtype=torch.bool)
        bool_masked_pos[:, :hidden] = True
        with pytest.raises(ValueError, match="hides"):
            model(**{**inputs, "noise": None, "bool_masked_pos": bool_masked_pos})
    with pytest.raises(ValueError, match="mlm_input_ids"):
        model(**{**inputs, "mlm_input_ids": None, "mlm_labels": None})


def test_builds_on_meta_and_trains():
    with torch.device("meta"):
        M3AEForPreTraining(M3AEConfig(**TINY))
    model, inputs = tiny(), batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)  # eval mode: no dropout, a steady descent
    losses = []
    for _ in range(20):
        loss = model(**inputs).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_collator_masks_bpe_words_together_and_refuses_long_captions_and_missing_modalities():
    from hf_mim.data.text import train_tokenizer
    from hf_mim.models.m3ae import M3AECollator

    tokenizer = train_tokenizer(["a photo of a cat", "an image showing a horse", "a blurry automobile"], vocab_size=300)
    collator = M3AECollator(tokenizer, max_length=8, mlm_probability=0.5, generator=torch.Generator().manual_seed(0))
    samples = [{"pixel_values": torch.zeros(3, 32, 32), "caption": "a blurry automobile"}] * 64
    batch = collator(samples)
    tokens = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    word = [i for i, token in enumerate(tokens) if token in ("Ġauto", "mobile")]
    assert len(word) == 2  # a word of two BPE tokens ...
    chosen = batch["mlm_labels"][:, word] != -100
    assert torch.equal(chosen[:, 0], chosen[:, 1]) and chosen.any() and not chosen.all()  # ... masked together
    assert batch["pixel_values"].shape == (64, 3, 32, 32)
    with pytest.raises(ValueError, match="longer than the text model allows"):
        collator([{"pixel_values": torch.zeros(3, 32, 32), "caption": "a photo of a cat " * 4}])
    assert M3AECollator(tokenizer, 8, truncation=True)([{"pixel_values": torch.zeros(3, 32, 32),
                                                           "caption": "a photo of a cat " * 4}])["input_ids"].shape[1] == 8
    with pytest.raises(ValueError, match="no 'caption'"):
        collator([{"pixel_values": torch.zeros(3, 32, 32)}])
