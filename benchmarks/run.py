"""Benchmark entry point: hf_mim vs transformers (same config, batch, dtype, weights), training-step and
inference throughput, memory, FLOPs. Same as `hf-mim bench`; see `python benchmarks/run.py --help`."""

from hf_mim.bench import main

if __name__ == "__main__":
    main()
