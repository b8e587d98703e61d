
import json
import math

import pytest
import torch
from transformers import AutoModelForImageClassification

import hf_mim
from hf_mim.data import MIMCollator, load_image_dataset, prepare_dataset
from hf_mim.evaluation.features import pool_features
from hf_mim.evaluation.finetune import (
    FinetuneArguments,
    finetune,
    finetune_training_arguments,
    layer_decay_parameter_groups,
)
from hf_mim.evaluation.knn import knn_accuracies, knn_predict
from hf_mim.evaluation.metrics import Accuracy
from hf_mim.evaluation.probe import LinearProbe, linear_probe_accuracy
from hf_mim.evaluation.visualize import reconstruct, reconstruction_grid
from hf_mim.training import MIMTrainer
from hf_mim.training.callbacks import OnlineProbeCallback, ReconstructionImageCallback
from tests.conftest import pixels_for, tiny_config


def clusters(n_per_class=40, classes=4, dim=16, spread=0.05, seed=0):
    generator = torch.Generator().manual_seed(seed)
    centers = torch.randn(classes, dim, generator=generator)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    return centers[labels] + spread * torch.randn(len(labels), dim, generator=generator), labels


def test_accuracy_metric_through_evaluate():
    metric = Accuracy()
    metric.add_batch(predictions=[0, 1, 2], references=[0, 1, 1])
    metric.add_batch(predictions=[3], references=[3])
    assert metric.compute() == {"accuracy": 0.75}


def test_knn_on_separable_and_on_random_labels():
    train_x, train_y = clusters(seed=0)
    test_x, test_y = clusters(n_per_class=10, seed=0)
    test_x = test_x + 0.01 * torch.randn_like(test_x)
    assert knn_accuracies(train_x, train_y, test_x, test_y, ks=(5, 20))["knn_top1_k5"] == 1.0
    shuffled = train_y[torch.randperm(len(train_y), generator=torch.Generator().manual_seed(1))]
    chance = knn_accuracies(train_x, shuffled, test_x, test_y, ks=(20,))["knn_top1_k20"]
    assert chance < 0.6
    # weighting: one very close neighbour of class 1 beats two far ones of class 0 at low temperature
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.1, 1.0]])
    query = torch.tensor([[1.0, 0.05]])
    assert knn_predict(bank, torch.tensor([1, 0, 0]), query, k=3, temperature=0.07).item() == 1


def test_linear_probe_on_separable_and_random_labels():
    train_x, train_y = clusters(n_per_class=60, spread=0.5)
    test_x, test_y = clusters(n_per_class=20, spread=0.5, seed=0)
    assert linear_probe_accuracy(train_x, train_y, test_x, test_y, epochs=30, progress=False) > 0.97
    random_labels = torch.randint(0, 4, (len(train_y),), generator=torch.Generator().manual_seed(0))
    new_x, new_y = clusters(n_per_class=20, spread=0.5, seed=5)
    assert linear_probe_accuracy(train_x, random_labels, new_x, new_y, epochs=30, progress=False) < 0.6


def test_pooling_cls_mean_and_feature_maps(images_rgb32):
    encoder = hf_mim.MAEModel(tiny_config("mae")).eval()
    with torch.no_grad():
        tokens = encoder(images_rgb32).last_hidden_state
        assert torch.equal(pool_features(encoder, images_rgb32, "cls"), tokens[:, 0])
        assert torch.allclose(pool_features(encoder, images_rgb32, "mean"), tokens[:, 1:].mean(1))

    class ConvEncoder(torch.nn.Module):
        def forward(self, pixel_values):
            return (pixel_values * 2,)

    assert pool_features(ConvEncoder(), images_rgb32).shape == (8, 3)


def test_layer_decay_groups():
    model = hf_mim.MAEForImageClassification(tiny_config("mae", num_labels=3))
    groups = layer_decay_parameter_groups(model, weight_decay=0.05, layer_decay=0.5)
    scale_of = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    decay_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    params = dict(model.named_parameters())
    assert scale_of[id(params["classifier.weight"])] == 1.0
    assert scale_of[id(params["encoder.blocks.1.attn.qkv.weight"])] == 0.5
    assert scale_of[id(params["encoder.blocks.0.attn.qkv.weight"])] == 0.25
    assert scale_of[id(params["encoder.patch_embed.proj.weight"])] == 0.125
    assert decay_of[id(params["encoder.cls_token"])] == 0.0 and decay_of[id(params["classifier.weight"])] == 0.05
    assert id(params["encoder.norm.weight"]) not in scale_of  # frozen with mean pooling, as MAE deletes it


def test_norm_pix_reconstruction_is_unnormalised_with_patch_statistics(images_rgb32):
    model = hf_mim.MAEForPreTraining(tiny_config("mae", norm_pix_loss=True)).eval()
    perfect = model.target(images_rgb32)  # normalised patches
    assert torch.allclose(model.logits_to_pixels(perfect, images_rgb32), images_rgb32, atol=1e-4)
    recon = reconstruct(model, images_rgb32, noise=torch.rand(8, 16))
    assert torch.equal(recon.pasted * (1 - recon.pixel_mask), images_rgb32 * (1 - recon.pixel_mask))
    processor = hf_mim.processor_for_config(model.config)
    grid = reconstruction_grid(recon, processor)
    assert grid.size[0] > 4 * 96 and grid.size[1] > 8 * 96


def labelled_demo(config, count, split):
    processor = hf_mim.processor_for_config(config, image_mean=[0.286], image_std=[0.353])
    data = load_image_dataset(None, split).select(range(count))
    return prepare_dataset(data, processor, train=False, with_labels=True), processor


def test_online_probe_and_reconstruction_callbacks(tmp_path):
    config = tiny_config("mae", num_channels=1)
    probe_train, processor = labelled_demo(config, 200, "train")
    probe_test, _ = labelled_demo(config, 100, "test")
    images = torch.stack([probe_test[i]["pixel_values"] for i in range(4)])
    probe = OnlineProbeCallback(probe_train, probe_test, every_n_steps=2, probe_epochs=5)
    pictures = ReconstructionImageCallback(images, processor, every_n_steps=2)
    args = finetune_training_arguments(
        output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=16, eval_strategy="no", save_strategy="no",
        logging_steps=1, disable_tqdm=True, label_names=[], prediction_loss_only=True,
    )
    unlabelled, _ = labelled_demo(config, 64, "train")
    trainer = MIMTrainer(
        model=hf_mim.MAEForPreTraining(config), args=args, train_dataset=unlabelled, data_collator=MIMCollator(),
        callbacks=[probe, pictures],
    )
    trainer.train()
    logged = [entry for entry in trainer.state.log_history if "online_knn_top1" in entry]
    assert [entry["step"] for entry in logged] == [2, 4]
    assert all(0.0 <= entry["online_probe_top1"] <= 1.0 for entry in logged)
    assert [p.name for p in pictures.written] == ["step_0000002.png", "step_0000004.png"]


@pytest.fixture(scope="module")
def demo_checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("mae_ckpt")
    config = tiny_config("mae", num_channels=1)
    hf_mim.MAEForPreTraining(config).save_pretrained(path)
    hf_mim.processor_for_config(config, image_mean=[0.286], image_std=[0.353]).save_pretrained(path)
    return path


def test_finetune_reports_accuracy(demo_checkpoint, tmp_path):
    args = FinetuneArguments(checkpoint=str(demo_checkpoint), max_train_samples=128, max_eval_samples=64)
    training_args = finetune_training_arguments(
        output_dir=str(tmp_path), num_train_epochs=1, per_device_train_batch_size=32, disable_tqdm=True,
        save_strategy="no",
    )
    trainer, metrics = finetune(args, training_args)
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0 and "eval_loss" in metrics
    model = AutoModelForImageClassification.from_pretrained(tmp_path)
    assert model.config.id2label[0] == "T-shirt/top" and model.config.drop_path_rate == 0.1
    assert json.loads((tmp_path / "training_args.json").read_text())["num_train_epochs"] == 1  # for the card


def test_seed_fixes_the_new_head(demo_checkpoint, tmp_path):
    def head(seed):
        args = FinetuneArguments(checkpoint=str(demo_checkpoint), max_train_samples=16, max_eval_samples=8)
        training_args = finetune_training_arguments(
            output_dir=str(tmp_path / str(seed)), max_steps=1, per_device_train_batch_size=8, disable_tqdm=True,
            save_strategy="no", eval_strategy="no", seed=seed, learning_rate=1e-12,
        )
        return finetune(args, training_args)[0].model.classifier.weight.detach().clone()

    assert torch.equal(head(0), head(0)) and not torch.equal(head(0), head(1))


def test_lora_trains_only_adapters_and_merges(demo_checkpoint, tmp_path):
    args = FinetuneArguments(checkpoint=str(demo_checkpoint), max_train_samples=64, max_eval_samples=32, lora=True)
    training_args = finetune_training_arguments(
        output_dir=str(tmp_path), max_steps=3, per_device_train_batch_size=16, disable_tqdm=True, save_strategy="no",
        eval_strategy="no", base_learning_rate=0.05,
    )
    before = AutoModelForImageClassification.from_pretrained(demo_checkpoint, num_labels=10).state_dict()
    trainer, _ = finetune(args, training_args)
    peft_model = trainer.model
    trainable = {name for name, p in peft_model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n or "modules_to_save" in n for n in trainable)
    assert any("encoder.blocks.0.attn.qkv.lora_A" in n for n in trainable)
    # frozen base weights did not move
    base_qkv = dict(peft_model.named_parameters())["base_model.model.encoder.blocks.0.attn.qkv.base_layer.weight"]
    assert torch.equal(base_qkv, before["encoder.blocks.0.attn.qkv.weight"])
    images = torch.randn(4, 1, 32, 32)
    peft_model.eval()
    with torch.no_grad():
        adapted = peft_model(pixel_values=images).logits
    merged = AutoModelForImageClassification.from_pretrained(tmp_path / "merged").eval()
    with torch.no_grad():
        assert torch.allclose(merged(pixel_values=images).logits, adapted, atol=1e-5)
    assert not torch.equal(merged.state_dict()["encoder.blocks.0.attn.qkv.weight"], before["encoder.blocks.0.attn.qkv.weight"])


# image and video fine-tuning heads; GraphMAE's node head is its official probe's plain nn.Linear (test_graphmae)
CLASSIFIER_METHODS = [
    name for name, spec in sorted(hf_mim.registry.discover().items())
    if spec.classification_class and spec.modality in ("image", "video")
]


@pytest.mark.parametrize("method", CLASSIFIER_METHODS)
def test_classification_heads_start_as_in_mae_fine_tuning(method, images_gray32):
    """Official MAE fine-tuning: head weight trunc-normal(std 2e-5), zero bias, so the first loss is ln(classes)
    (with xavier it was ~3.0 > ln 10 and short LoRA runs ended below chance)."""
    spec = hf_mim.get_method(method)
    config = spec.make_config("tiny", num_channels=1, num_labels=10)
    model = spec.classification_class(config).eval()
    heads = [m for m in model.modules() if isinstance(m, hf_mim.modeling_utils.ClassificationHead)]
    assert heads
    for head in heads:
        assert 1.5e-5 < head.weight.std().item() < 2.5e-5 and not head.bias.any()
    with torch.no_grad():
        loss = model(pixel_values=pixels_for(spec, config, images_gray32), labels=torch.arange(8)).loss
    assert abs(loss.item() - math.log(10)) < 1e-3


def test_fine_tuning_head_from_a_pretraining_checkpoint_and_probe_head(demo_checkpoint):
    model = AutoModelForImageClassification.from_pretrained(demo_checkpoint, num_labels=10)
    assert 1.5e-5 < model.classifier.weight.std().item() < 2.5e-5 and not model.classifier.bias.any()
    torch.manual_seed(0)
    probe = LinearProbe(192, 10)  # main_linprobe.py: trunc_normal_(head.weight, std=0.01)
    assert 0.009 < probe.head.weight.std().item() < 0.011 and not probe.head.bias.any()


def test_visualize_samples_images_across_the_data_with_a_seed(tmp_path):
    """A folder's first 8 sorted files are one class; visualize draws a seeded sample across all of them."""
    from PIL import Image

    from hf_mim.evaluation.visualize import collect_images

    for label, value in (("a_black", 0), ("b_white", 255)):
        (tmp_path / label).mkdir()
        for index in range(10):
            Image.new("L", (8, 8), value).save(tmp_path / label / f"{index:02d}.png")
    images = collect_images([str(tmp_path)], 8, seed=0)
    assert len(images) == 8 and {image.getpixel((0, 0)) for image in images} == {0, 255}
    names = [[image.filename for image in collect_images([str(tmp_path)], 8, seed)] for seed in (0, 0, 1)]
    assert names[0] == [image.filename for image in images] == names[1] != names[2]
    assert len(collect_images([str(tmp_path / "a_black" / "00.png"), "demo"], 3)) == 3


def test_finetune_uses_the_optimizer_its_card_names(demo_checkpoint, tmp_path):
    """--optim is honoured with layer-wise lr decay (it was always AdamW, while the card named args.optim)."""
    from hf_mim.hub.cards import training_summary

    args = FinetuneArguments(checkpoint=str(demo_checkpoint), max_train_samples=32, max_eval_samples=16)
    training_args = finetune_training_arguments(
        output_dir=str(tmp_path), max_steps=1, per_device_train_batch_size=16, disable_tqdm=True, save_strategy="no",
        eval_strategy="no", optim="sgd",
    )
    trainer, _ = finetune(args, training_args)
    optimizer = getattr(trainer.optimizer, "optimizer", trainer.optimizer)
    assert isinstance(optimizer, torch.optim.SGD)
    assert len({group["lr"] for group in optimizer.param_groups}) > 2  # layer-wise scales kept
    assert training_summary(tmp_path)["optimizer"] == "sgd"
