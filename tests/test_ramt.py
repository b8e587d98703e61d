"""R-AMT mask tuning on a tiny random CLIP: the official rules (masks start all-ones, straight-through scores,
gradient dropout), saving only the masks, merging, and training with MaskTuningTrainer."""

import json
import os

import pytest
import torch
import torch.nn.functional as F
from transformers import CLIPConfig, CLIPModel, TrainingArguments

from hf_mim.tuners.ramt import (
    MLP_TARGETS,
    CLIPZeroShotClassifier,
    MaskedLinear,
    MaskTunedModel,
    MaskTuningConfig,
    MaskTuningTrainer,
    apply_mask_tuning,
    gradient_dropout,
    mask_tuning_gradients,
    masked_layers,
    pack_mask,
    unpack_mask,
)
from hf_mim.tuners.ramt.mask_tuning import CONFIG_NAME, MASKS_NAME

CLASSES = ["red square", "green square", "blue square"]


def tiny_clip(width=32, seed=0):
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                         vocab_size=300, max_position_embeddings=16, eos_token_id=2),
        vision_config=dict(hidden_size=width, intermediate_size=2 * width, num_hidden_layers=2, num_attention_heads=2,
                           image_size=16, patch_size=8, hidden_act="quick_gelu"),
        projection_dim=16)
    return CLIPModel(config).eval()


@pytest.fixture(scope="module")
def tokenizer():
    from hf_mim.data.text import train_tokenizer

    return train_tokenizer([f"a photo of a {name}." for name in CLASSES] * 4, vocab_size=300)


def coloured_squares(shots=4, seed=0):
    """``shots`` noisy 16-px images per class, each a square of the class's colour."""
    generator = torch.Generator().manual_seed(seed)
    images, labels = [], []
    for label in range(len(CLASSES)):
        for _ in range(shots):
            image = 0.3 * torch.randn(3, 16, 16, generator=generator)
            image[label, 4:12, 4:12] += 2.0
            images.append(image)
            labels.append(label)
    return torch.stack(images), torch.tensor(labels)


def randomise_scores(tuned, seed=0):
    """Scores around the threshold, so that about a fifth of the weights are dropped."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in tuned.masked_layers().values():
            layer.mask_scores.copy_(5e-3 + 1e-2 * (torch.rand(layer.mask_scores.shape, generator=generator) - 0.2))


def test_masks_start_all_ones_and_only_scores_train(tokenizer):
    clip = tiny_clip()
    images, labels = coloured_squares(2)
    reference = clip.vision_model(pixel_values=images).pooler_output
    tuned = apply_mask_tuning(clip, MaskTuningConfig(target_modules=MaskTuningConfig().target_modules + MLP_TARGETS))
    layers = tuned.masked_layers()
    # the official layers: patch embedding, q/k/v/out of every block (+ MLP when asked), vision tower only
    assert len(layers) == 1 + 2 * 6 and all(name.startswith("vision_model.") for name in layers)
    assert all(m.all() for m in tuned.masks().values()) and tuned.dropped_fraction() == 0.0
    assert torch.equal(clip.vision_model(pixel_values=images).pooler_output, reference)
    trainable = {name for name, p in tuned.named_parameters() if p.requires_grad}
    assert trainable == {f"base_model.{name}.mask_scores" for name in layers}
    assert all(layer.mask_scores.dtype == torch.float32 for layer in layers.values())

    head = CLIPZeroShotClassifier(tuned, tokenizer, CLASSES)
    head(images, labels).loss.backward()
    with_grad = {name for name, p in tuned.named_parameters() if p.grad is not None}
    assert with_grad == trainable


def test_binary_mask_with_straight_through_gradient():
    layer = MaskedLinear(torch.nn.Linear(5, 4), score_init=1e-2, threshold=5e-3)
    with torch.no_grad():
        layer.mask_scores[0, :3] = torch.tensor([5e-3, 4e-3, 6e-3])  # at the threshold is dropped (``le`` -> 0)
    x = torch.randn(3, 5)
    out = layer(x)
    expected_mask = torch.ones(4, 5)
    expected_mask[0, :2] = 0
    effective = (layer.base_layer.weight * expected_mask).detach().requires_grad_(True)
    reference = F.linear(x, effective, layer.base_layer.bias)
    assert torch.equal(out, reference)
    out.square().sum().backward()
    reference.square().sum().backward()
    # straight-through: dL/dscore = dL/dmask = dL/d(mask * W) * W, also where the mask is 0
    assert torch.allclose(layer.mask_scores.grad, effective.grad * layer.base_layer.weight)
    assert layer.mask_scores.grad[0, 0] != 0 and layer.base_layer.weight.grad is None


def test_gradient_dropout_rule_hand_computed():
    task = torch.tensor([0.2, -0.2, 0.2, 0.2, -0.3, 0.0])
    teacher = torch.tensor([0.6, -0.1, -0.6, -0.2, 0.1, 0.5])
    # P = (sign(g)(g + t)/(|g| + |t|) + 1) / 2: agree -> 1; 0.2 vs -0.6 -> 0.25; equal and opposite -> 0.5;
    # -0.3 vs 0.1 -> 0.75; g = 0 -> 0.5
    uniform = torch.tensor([0.99, 0.99, 0.30, 0.49, 0.70, 0.1])
    kept = gradient_dropout(task, teacher, 1.0, uniform=uniform)
    assert torch.equal(kept, torch.tensor([0.2, -0.2, 0.0, 0.2, -0.3, 0.0]))
    assert torch.equal(gradient_dropout(task, teacher, 1.0, uniform=torch.full((6,), 0.26))[2:4], torch.tensor([0.0, 0.2]))
    # lambda < 1 shrinks the dropped entries to (1 - lambda) of their value instead of 0
    assert torch.allclose(gradient_dropout(task, teacher, 0.75, uniform=uniform), torch.tensor([0.2, -0.2, 0.05, 0.2, -0.3, 0.0]))


def test_gradient_dropout_zeroes_disagreeing_score_gradients(tokenizer):
    tuned = apply_mask_tuning(tiny_clip())
    randomise_scores(tuned)
    head = CLIPZeroShotClassifier(tuned, tokenizer, CLASSES)
    images, labels = coloured_squares(2)
    batch = dict(pixel_values=images, labels=labels)
    plain = MaskTuningConfig(gradient_dropout=False, score_l2_weight=0.0)
    _, task = mask_tuning_gradients(head, batch, plain)
    torch.manual_seed(0)
    loss, dropped = mask_tuning_gradients(head, batch, MaskTuningConfig(score_l2_weight=0.0))
    assert loss.item() == pytest.approx(F.cross_entropy(head(images).logits, labels).item())
    zeroed = sum(int(((d == 0) & (t != 0)).sum()) for d, t in zip(dropped, task))
    assert zeroed > 0
    # every entry is either kept exactly or dropped to 0
    assert all(torch.equal(d[d != 0], t[d != 0]) for d, t in zip(dropped, task))
    # with lambda = 0 nothing is dropped
    _, untouched = mask_tuning_gradients(head, batch, MaskTuningConfig(score_l2_weight=0.0, gradient_dropout_lambda=0.0))
    assert all(torch.equal(u, t) for u, t in zip(untouched, task))


def test_merged_model_equals_masked_model():
    clip = tiny_clip()
    tuned = apply_mask_tuning(clip, MaskTuningConfig(target_modules=MaskTuningConfig().target_modules + MLP_TARGETS))
    randomise_scores(tuned)
    assert 0.1 < tuned.dropped_fraction() < 0.3
    images, _ = coloured_squares(2)
    masked = tuned.vision_model(pixel_values=images).pooler_output
    merged = tuned.merge_and_unload()
    assert type(merged) is CLIPModel and not masked_layers(merged)
    assert torch.equal(merged.vision_model(pixel_values=images).pooler_output, masked)
    assert not torch.equal(tiny_clip().vision_model(pixel_values=images).pooler_output, masked)


@pytest.mark.parametrize("packed", [True, False])
def test_save_load_only_masks_bit_exact(tmp_path, packed):
    tuned = apply_mask_tuning(tiny_clip())
    randomise_scores(tuned)
    tuned.save_pretrained(tmp_path, packed=packed)
    assert sorted(os.listdir(tmp_path)) == [CONFIG_NAME, MASKS_NAME]
    saved = json.loads((tmp_path / CONFIG_NAME).read_text())
    assert saved["tuner"] == "ramt" and saved["base_model_name_or_path"] is None
    assert set(saved["layer_shapes"]) == set(tuned.masked_layers())
    weights = sum(layer.mask_scores.numel() for layer in tuned.masked_layers().values())
    if packed:  # one bit per masked weight
        assert os.path.getsize(tmp_path / MASKS_NAME) < weights / 8 + 4096

    loaded = MaskTunedModel.from_pretrained(tiny_clip(), tmp_path)
    for name, mask in tuned.masks().items():
        assert torch.equal(loaded.masks()[name], mask)
        if not packed:
            assert torch.equal(loaded.masked_layers()[name].mask_scores, tuned.masked_layers()[name].mask_scores)
    images, _ = coloured_squares(1)
    assert torch.equal(loaded.vision_model(pixel_values=images).pooler_output,
                       tuned.vision_model(pixel_values=images).pooler_output)


def test_pack_mask_round_trip_uses_msb_first():
    mask = torch.tensor([[True, False, True], [False, False, False], [True, True, True]])
    packed = pack_mask(mask)
    assert packed.tolist() == [0b10100011, 0b10000000]
    assert torch.equal(unpack_mask(packed, mask.shape), mask)


def test_load_onto_other_shapes_refused(tmp_path):
    tuned = apply_mask_tuning(tiny_clip(width=32))
    tuned.ramt_config.base_model_name_or_path = "tiny-clip-32"
    tuned.save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"trained for 'tiny-clip-32' and do not fit this model \(.*shape"):
        MaskTunedModel.from_pretrained(tiny_clip(width=48), tmp_path)
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        MaskTunedModel.from_pretrained(tiny_clip(), tmp_path / "missing")


def test_bad_configs_and_models_refused():
    with pytest.raises(ValueError, match="must exceed threshold"):
        MaskTuningConfig(score_init=1e-3)
    with pytest.raises(ValueError, match="no layer of CLIPModel under 'vision_model'"):
        apply_mask_tuning(tiny_clip(), MaskTuningConfig(target_modules=("query",)))
    with pytest.raises(ValueError, match="nn.Linear and nn.Conv2d"):
        apply_mask_tuning(tiny_clip(), MaskTuningConfig(target_modules=("layer_norm1",)))
    with pytest.raises(ValueError, match="already mask-tuned"):
        apply_mask_tuning(apply_mask_tuning(tiny_clip()))


def test_builds_on_meta_device():
    with torch.device("meta"):
        tuned = apply_mask_tuning(tiny_clip())
    assert all(layer.mask_scores.is_meta for layer in tuned.masked_layers().values())


def test_trainer_loss_falls_and_saves_only_masks(tmp_path, tokenizer):
    tuned = apply_mask_tuning(tiny_clip())
    head = CLIPZeroShotClassifier(tuned, tokenizer, CLASSES)
    frozen = {name: p.clone() for name, p in head.named_parameters() if not p.requires_grad}
    images, labels = coloured_squares(4)
    train = [{"pixel_values": image, "labels": label} for image, label in zip(images, labels)]
    args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=12, max_steps=25,
                             learning_rate=2e-3, weight_decay=0.0, lr_scheduler_type="constant", logging_steps=5,
                             save_strategy="no", report_to=[], use_cpu=True, seed=0, disable_tqdm=True)
    trainer = MaskTuningTrainer(model=head, args=args, train_dataset=train)
    with torch.no_grad():
        before = F.cross_entropy(head(images).logits, labels).item()
    trainer.train()
    with torch.no_grad():
        after = F.cross_entropy(head(images).logits, labels).item()
    assert after < before - 0.05
    assert 0 < tuned.dropped_fraction() < 0.5
    assert all(torch.equal(p, frozen[name]) for name, p in head.named_parameters() if not p.requires_grad)
    trainer.save_model()
    assert {CONFIG_NAME, MASKS_NAME} <= set(os.listdir(tmp_path))
    reloaded = MaskTunedModel.from_pretrained(tiny_clip(), tmp_path)
    assert all(torch.equal(reloaded.masked_layers()[n].mask_scores, layer.mask_scores)
               for n, layer in tuned.masked_layers().items())


def test_masktune_command_on_an_image_folder(tmp_path, tokenizer, capsys):
    from PIL import Image
    from transformers import CLIPImageProcessor

    from hf_mim.cli import main

    model_dir = tmp_path / "tiny-clip"
    tiny_clip().save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    CLIPImageProcessor(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16}).save_pretrained(model_dir)
    for split, seed in (("train", 0), ("test", 1)):
        images, labels = coloured_squares(3, seed=seed)
        for index, (image, label) in enumerate(zip(images, labels)):
            folder = tmp_path / "data" / split / CLASSES[label].replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
            pixels = (image.clamp(-1, 1) * 127 + 128).to(torch.uint8).permute(1, 2, 0).numpy()
            Image.fromarray(pixels).save(folder / f"{index}.png")
    out = tmp_path / "masks"
    assert main(["masktune", "--model", str(model_dir), "--data", str(tmp_path / "data"), "--shots", "2",
                 "--output_dir", str(out), "--max_steps", "3", "--learning_rate", "3e-3", "--use_cpu", "true"]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["shots"] == 2 and results["classes"] == 3 and "mask_tuned_accuracy" in results
    assert "zero_shot_accuracy 0." in capsys.readouterr().out
    card = (out / "README.md").read_text()
    assert f"base_model: {model_dir}" in card and "MaskTunedModel.from_pretrained" in card
    tuned = MaskTunedModel.from_pretrained(tiny_clip(), out)  # the class names came from the folder names
    assert tuned.ramt_config.base_model_name_or_path == str(model_dir)
    assert main(["masktune", "--model", str(model_dir), "--data", str(tmp_path / "data"), "--shots", "5",
                 "--output_dir", str(out), "--use_cpu", "true"]) == 1
    assert "fewer than --shots 5" in capsys.readouterr().err


def test_trainer_resume_is_bit_exact(tmp_path, tokenizer):
    images, labels = coloured_squares(2)
    train = [{"pixel_values": image, "labels": label} for image, label in zip(images, labels)]

    def run(max_steps, resume=None):
        tuned = apply_mask_tuning(tiny_clip())
        head = CLIPZeroShotClassifier(tuned, tokenizer, CLASSES)
        args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=3, max_steps=max_steps,
                                 learning_rate=3e-3, weight_decay=0.0, save_steps=2, report_to=[], use_cpu=True,
                                 seed=0, disable_tqdm=True)
        MaskTuningTrainer(model=head, args=args, train_dataset=train).train(resume_from_checkpoint=resume)
        return tuned

    straight = run(4)
    resumed = run(4, resume=str(tmp_path / "checkpoint-2"))
    assert all(torch.equal(resumed.masked_layers()[name].mask_scores, layer.mask_scores)
               for name, layer in straight.masked_layers().items())
