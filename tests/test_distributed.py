"""A 2-process CPU DDP run (gloo) through MIMTrainer: proves the training step works distributed, that no
parameter is unused (DDP runs with find_unused_parameters=False), that replicas stay identical, and that each
rank draws its own masks."""

import json
import os
import socket
import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
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
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_ddp_training_step(tmp_path):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
         "--master_port", str(free_port()), str(script), str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for info in ranks:
        assert info["world_size"] == 2 and info["global_batch"] == 8
        assert info["wrapped"] == "DistributedDataParallel" and info["find_unused"] is False
        assert info["changed"]
    assert abs(ranks[0]["checksum"] - ranks[1]["checksum"]) < 1e-6  # replicas stay identical
    assert ranks[0]["masks"] != ranks[1]["masks"]  # each rank draws its own masks
