"""FSDP through ``hf-mim``'s own training path on GPUs: MIMTrainer with ``fsdp=True`` (FSDP2, transformer-based
auto-wrap of the classes in the model's ``_no_split_modules``), a few steps, then a full-state-dict save that must
load back with ``from_pretrained`` to the weights the sharded run ended with.

The CPU suite cannot do this (tests/test_distributed.py, FSDP_CPU_REASON: accelerate enables FSDP only on
accelerator devices), so this is the GPU check. Run on 1-8 GPUs:

    torchrun --nproc_per_node 2 benchmarks/fsdp_check.py --steps 5 --output fsdp_check.json
"""

import argparse
import json
import math
import sys


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="mae")
    parser.add_argument("--size", default="tiny", help="config preset (tiny/demo/base)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--output_dir", default="outputs/fsdp_check")
    parser.add_argument("--output", default=None, help="JSON report (rank 0)")
    options = parser.parse_args(argv)

    from torch.distributed.fsdp import FSDPModule
    from transformers import AutoModelForPreTraining

    import hf_mim  # noqa: F401  (registers the Auto classes)
    from hf_mim.data import MIMCollator, load_image_dataset, prepare_dataset
    from hf_mim.training import MIMTrainer, MIMTrainingArguments

    spec = hf_mim.get_method(options.method)
    config = spec.make_config(options.size, num_channels=1)
    model = spec.pretraining_class(config)
    processor = spec.make_processor(config, image_mean=[0.286], image_std=[0.353])
    data = prepare_dataset(load_image_dataset(None, "train").select(range(256)), processor, train=True)
    args = MIMTrainingArguments(
        output_dir=options.output_dir, max_steps=options.steps, per_device_train_batch_size=options.batch_size,
        fsdp=True, save_strategy="no", report_to="none", disable_tqdm=True, logging_steps=1,
    )
    trainer = MIMTrainer(model=model, args=args, train_dataset=data, data_collator=MIMCollator(), processing_class=processor)
    trainer.train()
    wrapped = trainer.model_wrapped
    blocks = sum(isinstance(m, FSDPModule) and type(m).__name__.removeprefix("FSDP") in model._no_split_modules
                 for m in wrapped.modules())
    trained = {k: (v.full_tensor() if hasattr(v, "full_tensor") else v).float().cpu() for k, v in wrapped.state_dict().items()}
    trainer.save_model()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    report = {
        "world_size": args.world_size,
        "fsdp_version": trainer.accelerator.state.fsdp_plugin.fsdp_version if trainer.is_fsdp_enabled else None,
        "wrapped_blocks": blocks,
        "losses": losses,
        "loss_finite": bool(losses) and all(math.isfinite(x) for x in losses),
    }
    if args.process_index == 0:
        reloaded = AutoModelForPreTraining.from_pretrained(options.output_dir).state_dict()
        report["reload_max_diff"] = max(float((reloaded[k].float() - trained[k]).abs().max()) for k in reloaded)
        print(json.dumps(report, indent=1))
        if options.output:
            with open(options.output, "w") as handle:
                json.dump(report, handle, indent=1)
    ok = report["fsdp_version"] == 2 and blocks > 0 and report["loss_finite"] and report.get("reload_max_diff", 0) == 0
    if not ok:
        print("FSDP check FAILED", file=sys.stderr)
    return report if ok else {**report, "failed": True}


if __name__ == "__main__":
    report = main()
    sys.exit(1 if report.get("failed") else 0)
