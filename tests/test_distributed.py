"""2-process CPU runs (gloo) of the multi-process paths: DDP through MIMTrainer, FSDP2 sharding of the transformer
blocks with accelerate's own wrapping code, and streaming pre-training split across processes.

Every script writes one JSON per rank; :func:`launch` is the one launcher they share."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(tmp_path, script: str, *args: str, nproc: int = 2, timeout: int = 300) -> list[dict]:
    """Run ``script`` on ``nproc`` CPU processes with torchrun; return what each rank wrote to ``rank{N}.json``."""
    path = tmp_path / "script.py"
    path.write_text(textwrap.dedent(script))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc), "--master_addr", "127.0.0.1",
         "--master_port", str(free_port()), str(path), str(tmp_path), *args],
        env=env, capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(nproc)]


DDP_SCRIPT = """
    import json, os, sys, torch
    import hf_mim
    from hf_mim.data import MIMCollator, load_image_dataset, prepare_dataset
    from hf_mim.training import MIMTrainer, MIMTrainingArguments

    out = sys.argv[1]
    rank = int(os.environ["RANK"])
    torch.manual_seed(0)
    config = hf_mim.get_method("mae").make_config("tiny", num_channels=1)
    model = hf_mim.MAEForPreTraining(config)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    masks = []
    model.register_forward_hook(lambda m, a, o: masks.append(o.mask.int().tolist()))
    processor = hf_mim.processor_for_config(config, image_mean=[0.286], image_std=[0.353])
    data = prepare_dataset(load_image_dataset(None, "train").select(range(64)), processor, train=False)
    args = MIMTrainingArguments(
        output_dir=os.path.join(out, "run"), max_steps=3, per_device_train_batch_size=4, ddp_backend="gloo",
        save_strategy="no", report_to="none", disable_tqdm=True, dataloader_num_workers=0, use_cpu=True,
    )
    trainer = MIMTrainer(model=model, args=args, train_dataset=data, data_collator=MIMCollator())
    trainer.train()
    state = model.state_dict()
    json.dump({
        "world_size": args.world_size,
        "global_batch": args.global_batch_size,
        "find_unused": type(trainer.model_wrapped).__name__ == "DistributedDataParallel"
                       and trainer.model_wrapped.find_unused_parameters,
        "wrapped": type(trainer.model_wrapped).__name__,
        "checksum": sum(float(v.double().sum()) for v in state.values()),
        "changed": any(not torch.equal(initial[k], v) for k, v in state.items()),
        "masks": masks,
    }, open(os.path.join(out, f"rank{rank}.json"), "w"))
"""


def test_two_process_ddp_training_step(tmp_path):
    ranks = launch(tmp_path, DDP_SCRIPT)
    for info in ranks:
        assert info["world_size"] == 2 and info["global_batch"] == 8
        assert info["wrapped"] == "DistributedDataParallel" and info["find_unused"] is False
        assert info["changed"]
    assert abs(ranks[0]["checksum"] - ranks[1]["checksum"]) < 1e-6  # replicas stay identical
    assert ranks[0]["masks"] != ranks[1]["masks"]  # each rank draws its own masks


# accelerate.utils.fsdp_utils.fsdp2_prepare_model is what Accelerator.prepare (and so Trainer) calls for FSDP2; the
# plugin is built from hf-mim's own flags (``--fsdp true``: FSDP2, transformer-based auto-wrap, which wraps the
# classes in the model's ``_no_split_modules``). Only the Accelerator itself is replaced, see FSDP_CPU_REASON.
FSDP_SCRIPT = """
    import json, os, sys, types, torch, torch.distributed as dist
    from accelerate.utils import FullyShardedDataParallelPlugin
    from accelerate.utils.fsdp_utils import fsdp2_prepare_model
    from torch.distributed.fsdp import FSDPModule
    import hf_mim
    from hf_mim.training import MIMTrainingArguments
    from hf_mim.training.trainer import no_weight_decay_names

    out = sys.argv[1]
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    args = MIMTrainingArguments(output_dir=os.path.join(out, "run"), fsdp=True, use_cpu=True, report_to="none")
    plugin = FullyShardedDataParallelPlugin(**args.fsdp_plugin_args)
    accelerator = types.SimpleNamespace(
        state=types.SimpleNamespace(fsdp_plugin=plugin), torch_device_mesh=None, parallelism_config=None,
        mixed_precision="no", is_main_process=rank == 0, device=torch.device("cpu"),
    )

    def build(method):
        torch.manual_seed(0)
        spec = hf_mim.get_method(method)
        return spec.pretraining_class(spec.make_config("tiny", num_channels=1))

    def optimizer(model):  # MIMTrainer's parameter groups (no decay on biases, norms, tokens)
        no_decay = no_weight_decay_names(model)
        groups = [[p for n, p in model.named_parameters() if (n in no_decay) != decay and p.requires_grad]
                  for decay in (True, False)]
        return torch.optim.AdamW([{"params": groups[0], "weight_decay": 0.05}, {"params": groups[1], "weight_decay": 0.0}],
                                 lr=1e-3, betas=(0.9, 0.95))

    def run(method):
        reference = build(method)
        sharded = fsdp2_prepare_model(accelerator, build(method))
        generator = torch.Generator().manual_seed(1)
        size, patches = reference.config.image_size, reference.config.num_patches
        # noise for MAE, the masks it makes for SimMIM: the same number of masked patches in every image, so the
        # mean of the two ranks' losses is the global batch's loss
        batches = [(torch.randn(8, 1, size, size, generator=generator), torch.rand(8, patches, generator=generator))
                   for _ in range(3)]
        mask_key = "noise" if method == "mae" else "bool_masked_pos"
        ref_opt, opt = optimizer(reference), optimizer(sharded)
        ref_losses, losses, grad_diffs = [], [], []
        for pixels, noise in batches:
            masking = {mask_key: noise if method == "mae" else noise.argsort(1).argsort(1) < int(0.6 * patches)}
            loss = reference(pixel_values=pixels, **masking).loss
            loss.backward()
            ref_losses.append(float(loss))
            part = slice(rank * 4, rank * 4 + 4)  # each rank its half of the global batch
            loss = sharded(pixel_values=pixels[part], **{k: v[part] for k, v in masking.items()}).loss
            loss.backward()
            grads = dict(reference.named_parameters())
            grad_diffs.append(max(float((p.grad.full_tensor() - grads[n].grad).abs().max())
                                  for n, p in sharded.named_parameters() if p.grad is not None))
            ref_opt.step(); ref_opt.zero_grad(); opt.step(); opt.zero_grad()
            rank_loss = loss.detach().clone()
            dist.all_reduce(rank_loss)
            losses.append(float(rank_loss) / world)
        full = {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in sharded.state_dict().items()}
        expected = reference.state_dict()
        return {
            "units": sorted(type(m).__name__.removeprefix("FSDP") for m in sharded.modules() if isinstance(m, FSDPModule)),
            "no_split": sorted(reference._no_split_modules),
            "blocks": sum(type(m).__name__ in reference._no_split_modules for m in reference.modules()),
            "local_numel": sum(p.to_local().numel() for p in sharded.parameters()),
            "full_numel": sum(p.numel() for p in reference.parameters()),
            "losses": losses, "ref_losses": ref_losses, "max_grad_diff": max(grad_diffs),
            "max_param_diff": max(float((full[k] - expected[k]).abs().max()) for k in expected),
            "keys_equal": sorted(full) == sorted(expected),
        }

    json.dump({method: run(method) for method in ("mae", "simmim")}, open(os.path.join(out, f"rank{rank}.json"), "w"))
"""

FSDP_CPU_REASON = (
    "FSDP through Trainer/Accelerate needs an accelerator: accelerate 1.15's AcceleratorState switches to "
    "DistributedType.FSDP only for MULTI_GPU/XPU/NPU/MLU/MUSA/HPU/... processes, so on MULTI_CPU (gloo) the FSDP "
    "plugin is silently dropped and Trainer wraps the model in DDP; FSDP1 additionally fails in "
    "FullyShardedDataParallelPlugin.__post_init__ with 'There are currently no available devices found, must be one "
    "of XPU, CUDA, MLU, NPU, MUSA, or HPU' (sync_module_states). The CPU test runs accelerate's FSDP2 wrapping "
    "(fsdp2_prepare_model) directly; benchmarks/fsdp_check.py runs the Trainer path on GPUs."
)


def test_two_process_fsdp2_shards_blocks_and_matches_single_process(tmp_path):
    ranks = launch(tmp_path, FSDP_SCRIPT)
    for info in (rank[method] for rank in ranks for method in ("mae", "simmim")):
        assert info["no_split"] == ["TransformerBlock"]  # only classes the model has: accelerate raises otherwise
        # every transformer block (encoder and decoder) is its own FSDP unit, and so is the root model
        assert info["units"].count("TransformerBlock") == info["blocks"] > 0
        assert any(unit.endswith("ForPreTraining") for unit in info["units"])
        assert info["local_numel"] < 0.6 * info["full_numel"]  # each rank holds about half of the parameters
        assert info["keys_equal"]
        # FSDP2 over 2 processes x 4 images = one process on the global batch of 8
        assert info["losses"] == pytest.approx(info["ref_losses"], abs=1e-5)
        assert info["max_grad_diff"] < 1e-5
        # AdamW divides by sqrt(v): where a gradient is ~1e-8 float reordering moves a step by up to lr (1e-3)
        assert info["max_param_diff"] < 5e-4


@pytest.mark.skipif(not torch.cuda.is_available(), reason=FSDP_CPU_REASON)
def test_fsdp_through_trainer_on_gpu(tmp_path):
    script = Path(__file__).parents[1] / "benchmarks" / "fsdp_check.py"
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(min(2, torch.cuda.device_count())),
         "--master_port", str(free_port()), str(script), "--steps", "3", "--output_dir", str(tmp_path / "run"),
         "--output", str(tmp_path / "report.json")],
        capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["fsdp_version"] == 2 and report["wrapped_blocks"] > 0 and report["reload_max_diff"] == 0


# 4 parquet shards of 12 uniform grey images each: image i has grey level 5 i, which survives cropping, flipping and
# resizing, so every training row can be traced back to its image. Three runs per rank: uninterrupted (4 steps),
# stopped after 2 steps (checkpoint), resumed from that checkpoint to step 4.
STREAM_SCRIPT = """
    import json, os, sys
    from transformers import TrainerCallback
    from hf_mim.training import MIMTrainingArguments
    from hf_mim.training.pretrain import PretrainArguments, pretrain

    out, shards = sys.argv[1], sys.argv[2]
    rank = int(os.environ["RANK"])

    class Record(TrainerCallback):
        def __init__(self, stop_at=None):
            self.seen, self.stop_at = {}, stop_at
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            def hook(module, inputs, kwargs):
                ids = (kwargs["pixel_values"].mean((1, 2, 3)) * 255 / 5).round().int().tolist()
                self.seen[state.global_step + 1] = ids
            model.register_forward_pre_hook(hook, with_kwargs=True)
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == self.stop_at:
                control.should_training_stop = True

    def run(name, stop_at=None, resume=None):
        record = Record(stop_at)
        args = PretrainArguments(method="mae", data=shards, streaming=True, size="tiny", image_mean=[0.0],
                                 image_std=[1.0], shuffle_buffer_size=8, config_overrides='{"num_channels": 1}')
        training_args = MIMTrainingArguments(
            output_dir=os.path.join(out, name), max_steps=4, per_device_train_batch_size=2, save_steps=2,
            ddp_backend="gloo", use_cpu=True, report_to="none", disable_tqdm=True, dataloader_num_workers=0,
            seed=3, resume_from_checkpoint=resume,
        )
        pretrain(args, training_args, callbacks=[record])
        return record.seen

    json.dump({
        "full": run("full"),
        "first": run("split", stop_at=2),
        "resumed": run("split", resume="last"),
    }, open(os.path.join(out, f"rank{rank}.json"), "w"))
"""


def write_grey_shards(folder, shards: int = 4, per_shard: int = 12) -> None:
    import io

    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    folder.mkdir()
    for shard in range(shards):
        images = []
        for i in range(shard * per_shard, (shard + 1) * per_shard):
            buffer = io.BytesIO()
            Image.fromarray(np.full((20, 20), 5 * i, dtype=np.uint8)).save(buffer, format="PNG")
            images.append({"bytes": buffer.getvalue(), "path": None})
        pq.write_table(pa.table({"image": images}), folder / f"part-{shard}.parquet")


def test_two_process_streaming_splits_shards_and_resumes_exactly(tmp_path):
    write_grey_shards(tmp_path / "shards")
    ranks = launch(tmp_path, STREAM_SCRIPT, str(tmp_path / "shards"))
    for info in ranks:
        assert sorted(info["full"]) == ["1", "2", "3", "4"]
        assert {step: info["full"][step] for step in ("1", "2")} == info["first"]
        assert {step: info["full"][step] for step in ("3", "4")} == info["resumed"]  # same samples after resuming
    seen = [sum(info["full"].values(), []) for info in ranks]
    assert not set(seen[0]) & set(seen[1])  # the processes read different images...
    shard_of = [{i // 12 for i in ids} for ids in seen]
    assert not shard_of[0] & shard_of[1]  # ...from different shards
    assert seen[0] != sorted(seen[0])  # shuffled, not in file order
