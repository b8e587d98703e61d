"""The command line, end to end on tiny settings (each command runs in-process through hf_mim.cli.main)."""

import json
from pathlib import Path

import pytest
from transformers import AutoModel

import hf_mim
from hf_mim.cli import main
from hf_mim.data import load_image_dataset


def test_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for command in ("pretrain", "demo", "visualize", "knn", "probe", "finetune"):
        assert command in out
    assert main(["nope"]) == 2


def _console_script(*args: str, cwd=None):
    """Run hf_mim's CLI in a fresh interpreter the way the ``hf-mim`` console script does (argv[0] is "hf-mim")
    and report whether it loaded transformers' Trainer and which heavy libraries it imported."""
    import subprocess
    import sys

    code = (
        "import sys; sys.argv = ['hf-mim', *sys.argv[1:]]\n"
        "from hf_mim.cli import main\n"
        "try:\n    rc = main()\nexcept SystemExit as exit:\n    rc = exit.code\n"
        "print('TRAINER', 'transformers.trainer' in sys.modules)\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'torch', 'transformers', 'datasets'})\n"
        "print('HEAVY', ','.join(heavy)); sys.exit(rc)\n"
    )
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.mark.parametrize("args", [["--help"], ["knn", "--help"], ["nope"], ["visualize"]])
def test_console_script_help_and_argument_errors_import_nothing_heavy(args):
    result = _console_script(*args)
    assert result.stdout.strip().endswith("HEAVY"), (result.stdout[-300:], result.stderr[-300:])
    assert result.returncode == (0 if "--help" in args else 2)


def test_console_script_registers_methods_once_a_command_runs(tmp_path):
    from hf_mim.models.mae import MAEConfig, MAEForPreTraining

    config = MAEConfig(image_size=16, patch_size=4, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                       intermediate_size=64, decoder_hidden_size=16, decoder_num_hidden_layers=1,
                       decoder_num_attention_heads=2, decoder_intermediate_size=32)
    MAEForPreTraining(config).save_pretrained(tmp_path / "mae")
    result = _console_script("convert", str(tmp_path / "mae"), str(tmp_path / "vitmae"), "--to", "transformers")
    assert result.returncode == 0, result.stderr[-500:]
    assert "ViTMAEForPreTraining" in result.stdout and (tmp_path / "vitmae" / "model.safetensors").exists()
    # registering every method (their packages are imported) must not load the Trainer stack a convert never uses
    assert "TRAINER False" in result.stdout, result.stdout[-500:]


def test_pretrain_streaming_then_resume_then_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    common = [
        "--method", "mae", "--size", "tiny", "--output_dir", str(out), "--per_device_train_batch_size", "16",
        "--logging_steps", "2", "--save_steps", "4", "--disable_tqdm", "true",
    ]
    main(["pretrain", *common, "--max_steps", "4", "--streaming", "true"])
    assert (out / "checkpoint-4" / "model.safetensors").exists()
    assert json.loads((out / "config.json").read_text())["num_channels"] == 1  # detected from grayscale data
    processor = json.loads((out / "preprocessor_config.json").read_text())
    assert processor["num_channels"] == 1 and len(processor["image_mean"]) == 1 and processor["image_mean"][0] != 0.5
    main(["pretrain", *common, "--max_steps", "6", "--resume_from_checkpoint", "last"])
    state = json.loads((out / "trainer_state.json").read_text())
    # resumed from checkpoint-4: the restored history continues, each step logged once
    assert state["global_step"] == 6 and [e["step"] for e in state["log_history"] if "loss" in e] == [2, 4, 6]
    assert "training loss: first logged" in capsys.readouterr().out
    assert isinstance(AutoModel.from_pretrained(out), hf_mim.MAEModel)

    main(["knn", str(out), "--max_train_samples", "200", "--max_test_samples", "100", "--k", "5", "20",
          "--output", str(tmp_path / "knn.json")])
    knn = json.loads((tmp_path / "knn.json").read_text())
    assert knn.pop("eval_dataset") == "demo"  # for the model card
    assert set(knn) == {"knn_top1_k5", "knn_top1_k20"} and all(0 <= v <= 1 for v in knn.values())
    main(["probe", str(out), "--max_train_samples", "200", "--max_test_samples", "100", "--epochs", "3"])
    assert "linear_probe_top1" in capsys.readouterr().out

    main(["visualize", str(out), "demo", "--output", str(tmp_path / "grid.png"), "--max_images", "3"])
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size[1] > 3 * 96


def one_line_error(capsys, argv, code=1) -> str:
    """Run the CLI; a user error must give exit status ``code`` and exactly one line on stderr, no traceback."""
    assert main(argv) == code
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hf-mim ") or "Traceback" in line]
    assert len(lines) == 1 and "Traceback" not in lines[0], lines
    return lines[0]


def test_pretrain_rejects_bad_input_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    tiny = ["--size", "tiny", "--max_train_samples", "8", "--output_dir", str(tmp_path / "o")]
    assert "unknown method 'nope'" in one_line_error(capsys, ["pretrain", "--method", "nope"])
    (tmp_path / "empty").mkdir()
    assert "no images" in one_line_error(capsys, ["pretrain", "--data", str(tmp_path / "empty"), *tiny])
    # was stored and silently ignored
    assert "mim_jepa has no config field(s) ['mask_ratio']" in one_line_error(
        capsys, ["pretrain", "--method", "jepa", "--config_overrides", '{"mask_ratio": 0.9}', *tiny])
    # a missing local path is not a Hub connection problem
    assert "no such file or directory: ./nope (pass a local folder" in one_line_error(capsys, ["pretrain", "--data", "./nope", *tiny])
    (tmp_path / "outputs").mkdir()
    assert "no such file or directory: outputs/mae (pass a saved checkpoint" in one_line_error(capsys, ["knn", "outputs/mae"])
    for field in ("patch_size", "num_channels"):  # used to be a ZeroDivisionError / an empty conv deep inside
        assert f"{field} must be a positive integer, got 0" in one_line_error(
            capsys, ["pretrain", "--config_overrides", json.dumps({field: 0}), *tiny])


def test_push_error_and_ctrl_c_print_one_line_and_ctrl_c_leaves_a_resumable_checkpoint(tmp_path, capsys, monkeypatch):
    assert "config.json is missing" in one_line_error(capsys, ["push", str(tmp_path), "me/nothing"])
    from hf_mim.training.trainer import ModelStepHooks

    def interrupt_after_two_steps(self, args, state, control, **kwargs):
        if state.global_step == 2:
            raise KeyboardInterrupt

    common = ["pretrain", "--size", "tiny", "--output_dir", str(tmp_path / "run"), "--per_device_train_batch_size", "8",
              "--max_train_samples", "64", "--save_strategy", "no", "--disable_tqdm", "true"]
    with monkeypatch.context() as patch:
        patch.setattr(ModelStepHooks, "on_step_end", interrupt_after_two_steps)
        line = one_line_error(capsys, [*common, "--max_steps", "4"], code=130)
    assert "interrupted: saved step 2 to" in line and "--resume_from_checkpoint last" in line
    assert main([*common, "--max_steps", "3", "--resume_from_checkpoint", "last"]) == 0
    assert (tmp_path / "run" / "checkpoint-2" / "trainer_state.json").exists()
    assert json.loads((tmp_path / "run" / "trainer_state.json").read_text())["global_step"] == 3


def test_demo_end_to_end(tmp_path, capsys):
    main(["demo", "--output_dir", str(tmp_path / "demo"), "--epochs", "0.15", "--batch_size", "64",
          "--knn_train_samples", "300"])
    out = capsys.readouterr().out
    assert (tmp_path / "demo" / "reconstructions.png").exists()
    assert (tmp_path / "demo" / "model.safetensors").exists() and (tmp_path / "demo" / "modeling_mae.py").exists()
    assert "kNN top-1 (k=20, mean-pooled)" in out and "reconstructions" in out


@pytest.mark.slow
def test_demo_recipe_beats_random_init_by_five_knn_points_the_same_on_every_run(tmp_path, capsys):
    """The default ``hf-mim demo`` (a few minutes on 2 cores): pre-training is worth at least 5 kNN points over the
    same encoder at random init, and a second run with the same seed prints the same losses and accuracies."""
    import re

    def demo(folder):
        main(["demo", "--output_dir", str(tmp_path / folder)])
        lines = capsys.readouterr().out.splitlines()
        # the summary lines (the Trainer's own log also prints wall-clock runtimes, which differ)
        return [line for line in lines if line.strip().startswith(("training loss", "test reconstruction", "kNN top-1"))]

    numbers = demo("first")
    knn_line = next(line for line in numbers if "kNN top-1" in line)
    trained, random_init = (float(value) for value in re.findall(r"([\d.]+)%", knn_line))
    assert trained - random_init >= 5.0, knn_line
    assert demo("second") == numbers


@pytest.mark.parametrize("method", ["croco", "cropmae"])
def test_visualize_gives_two_view_methods_their_second_view(method, tmp_path):
    """CroCo needs a reference view and CropMAE a global crop: visualize builds them with the method's own
    evaluation transform instead of failing on a single image."""
    spec = hf_mim.get_method(method)
    model = spec.pretraining_class(spec.make_config("tiny", num_channels=1))
    model.save_pretrained(tmp_path / "model")
    spec.make_processor(model.config).save_pretrained(tmp_path / "model")
    main(["visualize", str(tmp_path / "model"), "demo", "--output", str(tmp_path / "grid.png"), "--max_images", "2"])
    from PIL import Image

    assert Image.open(tmp_path / "grid.png").size[1] > 2 * 96


def test_pretrain_writes_reconstructions_to_the_trainers_tensorboard_run(tmp_path):
    """The README's headline recipe: --reconstruction_steps with --report_to tensorboard puts the grids into the
    same TensorBoard run (under output_dir/runs) as the Trainer's scalars."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    main(["pretrain", "--method", "mae", "--size", "tiny", "--output_dir", str(out), "--max_steps", "2",
          "--per_device_train_batch_size", "8", "--logging_steps", "1", "--reconstruction_steps", "1",
          "--report_to", "tensorboard", "--disable_tqdm", "true"])
    runs = [path.parent for path in (out / "runs").rglob("events.out.tfevents.*")]
    assert len(runs) == 1, runs  # one run: grids and scalars share the Trainer's writer
    events = EventAccumulator(str(runs[0]), size_guidance={"images": 0}).Reload()
    assert [event.step for event in events.Images("reconstructions")] == [1, 2]
    assert "train/loss" in events.Tags()["scalars"]
    assert sorted(p.name for p in (out / "reconstructions").iterdir()) == ["step_0000001.png", "step_0000002.png"]


def test_full_and_lora_fine_tuning_default_to_separate_folders(tmp_path, monkeypatch, capsys):
    checkpoint = tmp_path / "ckpt"
    config = hf_mim.get_method("mae").make_config("tiny", num_channels=1)
    hf_mim.MAEForPreTraining(config).save_pretrained(checkpoint)
    hf_mim.processor_for_config(config, image_mean=[0.286], image_std=[0.353]).save_pretrained(checkpoint)
    monkeypatch.chdir(tmp_path)
    common = [str(checkpoint), "--max_train_samples", "16", "--max_eval_samples", "16", "--max_steps", "1",
              "--per_device_train_batch_size", "16", "--save_strategy", "no", "--disable_tqdm", "true"]
    main(["finetune", *common, "--output", "finetune.json"])
    main(["finetune", *common, "--lora", "--lora_r", "4"])
    results = json.loads((tmp_path / "finetune.json").read_text())  # for hf-mim push --results
    assert 0 <= results["eval_accuracy"] <= 1 and results["eval_dataset"] == "demo"
    full, lora = tmp_path / "outputs" / "finetune", tmp_path / "outputs" / "finetune-lora"
    assert (full / "model.safetensors").exists() and not (full / "adapter_config.json").exists()
    assert (lora / "adapter_config.json").exists() and (lora / "merged" / "model.safetensors").exists()
    out = capsys.readouterr().out
    assert "fine-tuned model saved to outputs/finetune\n" in out
    assert f"LoRA adapters saved to outputs/finetune-lora, the merged model to {Path('outputs/finetune-lora/merged')}" in out


def test_knn_and_finetune_on_a_labelled_folder_without_test_split(tmp_path, caplog):
    """A folder with class sub-folders only: a seeded fifth of it is held out for testing, and the log says so."""
    demo = load_image_dataset(None, "test").select(range(30))
    names = demo.features["label"].names
    for index, row in enumerate(demo):
        folder = tmp_path / "labelled" / names[row["label"]].replace("/", "-")
        folder.mkdir(parents=True, exist_ok=True)
        row["image"].save(folder / f"{index}.png")
    checkpoint = tmp_path / "ckpt"
    config = hf_mim.get_method("mae").make_config("tiny", num_channels=1)
    hf_mim.MAEForPreTraining(config).save_pretrained(checkpoint)
    processor = hf_mim.processor_for_config(config)
    processor.save_pretrained(checkpoint)
    data = ["--data", str(tmp_path / "labelled")]
    with caplog.at_level("WARNING"):
        main(["knn", str(checkpoint), *data, "--k", "5", "--output", str(tmp_path / "knn.json")])
        main(["finetune", str(checkpoint), *data, "--output_dir", str(tmp_path / "ft"), "--max_steps", "1",
              "--per_device_train_batch_size", "8", "--save_strategy", "no", "--disable_tqdm", "true"])
    assert 0 <= json.loads((tmp_path / "knn.json").read_text())["knn_top1_k5"] <= 1
    assert (tmp_path / "ft" / "model.safetensors").exists()
    assert caplog.text.count("no test or validation split: evaluating on a held-out 20%") == 2
    # the online probe of `hf-mim pretrain --probe_data` takes its test set the same way
    from hf_mim.training.pretrain import PretrainArguments, probe_datasets

    probe_train, probe_test = probe_datasets(PretrainArguments(probe_data=str(tmp_path / "labelled")), processor)
    assert (len(probe_train), len(probe_test)) == (24, 6) and probe_test[0]["pixel_values"].shape == (1, 32, 32)


def test_short_runs_leave_checkpoints_to_resume_from_by_default(tmp_path):
    """No --save_steps: a checkpoint every 10% of the run (transformers' 500 steps left a 10-step run none)."""
    out = tmp_path / "run"
    main(["pretrain", "--method", "mae", "--size", "tiny", "--output_dir", str(out), "--max_steps", "10",
          "--per_device_train_batch_size", "4", "--max_train_samples", "40", "--disable_tqdm", "true"])
    assert sorted(int(p.name.split("-")[1]) for p in out.glob("checkpoint-*")) == [8, 9, 10]  # save_total_limit 3


def test_convert_help_names_every_format(capsys):
    from hf_mim.hub.convert import FORMATS

    with pytest.raises(SystemExit):
        main(["convert", "--help"])
    help_text = "".join(capsys.readouterr().out.split())  # argparse may wrap inside a hyphenated name
    assert all(name in help_text for name in FORMATS)
    with pytest.raises(SystemExit) as exit_info:
        main(["convert", "a", "b", "--from", "nope"])
    assert exit_info.value.code == 2 and "--from 'nope'" in capsys.readouterr().err
