"""HiCMAE mechanisms on the tiny config: masks per modality, which encoder layer each decoder block and each InfoNCE
term reads, in-batch negatives, frame-difference targets, the fine-tuning head, the official-layout converter."""

import pytest
import torch

from hf_mim.models.hicmae import TINY, HiCMAEConfig, HiCMAEForAudioVisualClassification, HiCMAEForPreTraining
from hf_mim.models.hicmae.convert_hicmae import from_official, to_official

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: 2 threads on a loaded machine cost a minute


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return HiCMAEForPreTraining(HiCMAEConfig(**TINY, attn_implementation="eager")).eval()


def batch(size=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(size, 4, 3, 32, 32, generator=g), torch.randn(size, 32, 16, generator=g)


def test_config_ties_skip_layers_to_decoder_depth():
    with pytest.raises(ValueError, match=r"skip_connection_layers \[1, 2, 3\] must name decoder_num_hidden_layers - 1 = 2"):
        HiCMAEConfig(**{**TINY, "decoder_num_hidden_layers": 3})
    with pytest.raises(ValueError, match=r"block indices in \[0, 4\)"):
        HiCMAEConfig(**{**TINY, "skip_connection_layers": [1, 2, 4]})
    base = HiCMAEConfig()
    assert (base.hidden_size, base.num_hidden_layers, base.decoder_hidden_size, base.skip_connection_layers) == (512, 10, 384, [3, 6, 9])
    assert (base.mask_ratio, base.audio_mask_ratio, base.contrastive_weight, base.contrastive_temperature) == (0.9, 0.8, 0.0025, 0.07)


def test_masks_per_modality(model):
    pixels, audio = batch()
    out = model(pixel_values=pixels, input_values=audio)
    video_mask = out.mask.reshape(3, 2, 16)
    assert torch.equal(video_mask[:, 0], video_mask[:, 1])  # tubes: the same spatial mask in every time slice
    assert (video_mask[:, 0].sum(1) == int(0.9 * 16)).all()
    assert (out.audio_mask.sum(1) == 8 - int(8 * (1 - 0.8))).all()  # random patches, MAE rounding
    assert out.logits.shape == (3, 28, 2 * 8 * 8 * 3) and out.audio_logits.shape == (3, 7, 64)
    masks = model.mask_generator(3, torch.Generator().manual_seed(0))
    assert set(masks) == {"bool_masked_pos", "audio_bool_masked_pos"}


def test_bad_masks_and_missing_modality_are_clear_errors(model):
    pixels, audio = batch()
    masks = model.mask_generator(3, torch.Generator().manual_seed(0))
    for name, length in (("bool_masked_pos", 32), ("audio_bool_masked_pos", 8)):
        for fill, problem in ((False, "hides no patch"), (True, "hides every patch")):
            bad = {**masks, name: torch.full((3, length), fill)}
            with pytest.raises(ValueError, match=problem):
                model(pixel_values=pixels, input_values=audio, **bad)
    with pytest.raises(ValueError, match="the batch has no input_values \\(audio filter banks\\)"):
        model(pixel_values=pixels)
    with pytest.raises(ValueError, match="the batch has no pixel_values \\(video clips\\)"):
        model(input_values=audio)
    with pytest.raises(ValueError, match=r"filter banks \[batch, 32 frames, 16 mel bins\], got \(3, 40, 16\)"):
        model(pixel_values=pixels, input_values=torch.randn(3, 40, 16))


def test_decoder_block_i_cross_attends_to_encoder_layer_skip_minus_i(model):
    pixels, audio = batch()
    masks = model.mask_generator(3, torch.Generator().manual_seed(1))
    contexts = {}
    hooks = [
        block.register_forward_pre_hook(lambda module, args, i=(side, i): contexts.__setitem__(i, args[1]))
        for side, decoder in (("video", model.decoder), ("audio", model.audio_decoder))
        for i, block in enumerate(decoder.blocks) if i > 0
    ]
    with torch.no_grad():
        model(pixel_values=pixels, input_values=audio, **masks)
        encoded = model.encoder(pixels, audio, **masks, output_hidden_states=True)
    for hook in hooks:
        hook.remove()
    for side, decoder, layers, mask in (
        ("video", model.decoder, encoded.video_layers, masks["bool_masked_pos"]),
        ("audio", model.audio_decoder, encoded.audio_layers, masks["audio_bool_masked_pos"]),
    ):
        visible_pos = decoder.pos_embed.expand(3, -1, -1)[~mask].reshape(3, -1, decoder.pos_embed.shape[-1])
        for i, layer in ((1, 3), (2, 2), (3, 1)):  # skip (1, 2, 3): block 1 reads layer 3, block 3 reads layer 1
            expected = decoder.embed(layers[layer]) + visible_pos
            torch.testing.assert_close(contexts[(side, i)], expected, rtol=0, atol=1e-6)
    # and the layers are each block's output through the encoder's final norm, not the raw block output
    with torch.no_grad():  # hidden_states[k] is block k's input: block 1's output is hidden_states[2]
        torch.testing.assert_close(encoded.video_layers[1], model.encoder.video.norm(encoded.hidden_states[2]), rtol=0, atol=0)
    assert not torch.allclose(encoded.video_layers[1], encoded.hidden_states[2])


def test_infonce_uses_the_other_clips_of_the_batch_as_negatives(model):
    pixels, audio = batch(4)
    masks = model.mask_generator(4, torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = model(pixel_values=pixels, input_values=audio, **masks)
        encoded = model.encoder(pixels, audio, **masks)
    total = 0.0
    for k, layer in enumerate((1, 2, 3)):
        v = encoded.video_layers[layer].mean(1)
        a = encoded.audio_layers[layer].mean(1)
        logits = (v / v.norm(dim=1, keepdim=True)) @ (a / a.norm(dim=1, keepdim=True)).t() / 0.07
        torch.testing.assert_close(out.logits_per_video[k], logits, rtol=0, atol=1e-5)
        torch.testing.assert_close(out.logits_per_audio[k], logits.t(), rtol=0, atol=1e-5)
        for i in range(4):  # positive: the clip's own audio; negatives: the 3 other tracks (and, for audio, clips)
            total += 0.5 * (-(logits[i, i].exp() / logits[i].exp().sum()).log() - (logits[i, i].exp() / logits[:, i].exp().sum()).log()) / 4
    torch.testing.assert_close(out.loss_terms["contrastive"], total, rtol=1e-5, atol=0)
    expected = out.loss_terms["video"] + out.loss_terms["audio"] + 0.0025 * total
    torch.testing.assert_close(out.loss, expected, rtol=1e-6, atol=0)


def test_frame_difference_and_audio_targets_by_hand(model):
    pixels, audio = batch(2)
    target = model.video_target(pixels)  # [B, 32, 2*8*8*3]
    mean = torch.tensor([0.485, 0.456, 0.406]).reshape(1, 1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).reshape(1, 1, 3, 1, 1)
    frames = pixels * std + mean
    b, t, row, col = 1, 1, 2, 3  # tubelet (time slice 1, row 2, col 3) = frames 2, 3
    cube = frames[b, 2:4, :, row * 8:(row + 1) * 8, col * 8:(col + 1) * 8].permute(0, 2, 3, 1)  # [2, 8, 8, C]
    cube = cube.reshape(2 * 64, 3)
    cube = (cube - cube.mean(0)) / (cube.var(0, unbiased=True).sqrt() + 1e-6)
    cube = cube.reshape(2, 64, 3)
    expected = torch.cat([cube[0], cube[1] - cube[0]]).flatten()
    torch.testing.assert_close(target[b, t * 16 + row * 4 + col], expected, rtol=0, atol=1e-5)
    audio_patch = audio[0, 8:16, 8:16].flatten()
    expected_audio = (audio_patch - audio_patch.mean()) / (audio_patch.std() + 1e-6)
    torch.testing.assert_close(model.audio_target(audio)[0, 1 * 2 + 1], expected_audio, rtol=0, atol=1e-5)


def test_training_lowers_the_loss_and_every_parameter_learns():
    torch.manual_seed(0)
    model = HiCMAEForPreTraining(HiCMAEConfig(**TINY))
    pixels, audio = batch(4)
    masks = model.mask_generator(4, torch.Generator().manual_seed(0))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for step in range(10):
        loss = model(pixel_values=pixels, input_values=audio, **masks).loss
        optimizer.zero_grad()
        loss.backward()
        if step == 0:
            dead = [n for n, p in model.named_parameters() if p.grad is None or (not n.endswith("k.bias") and not p.grad.any())]
            assert not dead, dead
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.8 * losses[0], losses


def test_classifier_mixes_every_encoder_layer_and_the_fusion_tokens():
    torch.manual_seed(0)
    config = HiCMAEConfig(**TINY, num_labels=5)
    model = HiCMAEForAudioVisualClassification(config).eval()
    with torch.no_grad():
        model.video_layer_weights.copy_(torch.tensor([0.1, 2.0, -1.0, 0.5]))
        pixels, audio = batch(2)
        out = model(pixel_values=pixels, input_values=audio, labels=torch.tensor([0, 4]))
        encoded = model.encoder(pixels, audio)
        weights = torch.tensor([0.1, 2.0, -1.0, 0.5]).softmax(0)
        video = sum(w * layer.mean(1) for w, layer in zip(weights, encoded.video_layers))
        audio_feature = sum(layer.mean(1) for layer in encoded.audio_layers) / 4
        features = torch.cat([video, audio_feature, encoded.last_hidden_state.mean(1), encoded.audio_last_hidden_state.mean(1)], -1)
        torch.testing.assert_close(out.logits, model.classifier(model.fc_norm(features)), rtol=0, atol=1e-5)
    assert out.logits.shape == (2, 5) and encoded.last_hidden_state.shape == (2, 32, 32)  # unmasked: every token
    with torch.no_grad():  # the kNN / linear-probe features: mean fused video token + mean fused audio token
        pooled = model.encoder.pooled_features(pixels, audio)
    torch.testing.assert_close(pooled, features[:, 64:], rtol=0, atol=1e-6)
    assert out.loss is not None and torch.isfinite(out.loss)


def test_converter_maps_the_official_layout_both_ways():
    torch.manual_seed(0)
    model = HiCMAEForPreTraining(HiCMAEConfig(**TINY))
    state = {k: torch.randn_like(v) for k, v in model.state_dict().items()}
    for key in state:
        if key.endswith("cross_attn.k.bias"):
            state[key].zero_()
    official = to_official(state)
    assert {"encoder_to_decoder.weight", "encoder_to_decoder_audio.weight", "mask_token_audio", "decoder_audio.head.weight",
            "encoder_fusion.blocks_audio.0.cross_attn.kv.weight", "decoder.blocks.1.cross_attn.q_bias",
            "encoder_audio.blocks.3.attn.q_bias", "encoder.patch_embed.proj.weight"} <= set(official)
    assert not any(k.endswith(("k.bias", "pos_embed")) or ".video." in k or ".pred." in k for k in official)
    kv = official["decoder.blocks.2.cross_attn.kv.weight"]
    assert kv.shape == (64, 32) and torch.equal(kv[:32], state["decoder.blocks.2.cross_attn.k.weight"])
    back = from_official({"model": {**official, "encoder.pos_embed": torch.zeros(1)}})
    assert back.keys() == {k for k in state if not k.endswith("pos_embed")}
    assert all(torch.equal(back[k], state[k]) for k in back)
    model.load_state_dict(back, strict=False)  # position tables are rebuilt, not stored


def test_audio_visual_folder_pairs_clips_with_their_sound_and_skips_silent_clips(tmp_path, caplog):
    """A video with a same-stem .wav is a sample; a video without audio track or companion file is logged and
    dropped by the collator; audio at another rate is a one-line error naming both rates."""
    import numpy as np

    from hf_mim.data import MIMCollator
    from hf_mim.data.audio import SAMPLING_RATE, tone_pattern, write_wav
    from hf_mim.data.audio_visual import load_audio_visual_dataset, prepare_audio_visual_dataset
    from hf_mim.data.video import moving_object_clip, write_video
    from hf_mim.processing import MIMAudioVisualProcessor

    rng = np.random.default_rng(0)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        write_video(tmp_path / name / "clip.mp4", moving_object_clip(np.full((8, 8), 200, np.uint8), 8, 32, rng))
    write_wav(tmp_path / "a" / "clip.wav", tone_pattern("rising", 0.4, SAMPLING_RATE, rng))
    dataset = load_audio_visual_dataset(str(tmp_path))
    assert [path.endswith(".wav") for path in dataset["audio"]] == [True, False]  # b's audio: its own (absent) track
    processor = MIMAudioVisualProcessor.from_model_config(HiCMAEConfig(**TINY), frame_stride=1)
    prepared = prepare_audio_visual_dataset(dataset, processor, train=False, with_labels=True)
    batch = MIMCollator()([prepared[0], prepared[1]])
    assert batch["pixel_values"].shape == (1, 4, 3, 32, 32) and batch["input_values"].shape == (1, 32, 16)
    assert batch["labels"].tolist() == [0] and "unreadable audio skipped" in caplog.text
    with pytest.raises(ValueError, match="audio sampled at 8000 Hz but the model's filter banks expect 16000 Hz"):
        processor(videos=[np.zeros((4, 32, 32, 3), np.uint8)], audio=[np.zeros(4000, np.float32)], sampling_rate=8000)


def test_card_describes_the_hierarchy_and_runs_the_audio_visual_usage():
    import hf_mim
    from hf_mim.hub.cards import build_model_card

    spec = hf_mim.get_method("hicmae")
    card = str(build_model_card(spec.make_config("tiny"), "me/hicmae-tiny"))
    assert "encoder block `skip_connection_layers[-i]`\n([1, 2, 3])" in card and "temperature 0.07, weight\n0.0025" in card
    assert "AutoProcessor.from_pretrained" in card and "processor(**clips" in card
