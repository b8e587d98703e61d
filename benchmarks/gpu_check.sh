#!/usr/bin/env bash
# The CUDA path of the benchmarks in one short run (< 8 minutes on one H100/H200): ViT-B/16 MAE, bf16.
#   1. training step alone, hf_mim vs transformers' ViTMAE on the same weights and masks: img/s, MFU against the
#      device's dense bf16 peak (hf_mim/bench.py PEAK_BF16_TFLOPS), saved-activation memory, loader rate;
#   2. the whole loop, `hf-mim pretrain` vs transformers' run_mae.py recipe (benchmarks/e2e.py): img/s, MFU, peak
#      GPU memory, loader-only rate, per-image CPU cost of decode / augment / collate;
#   3. FSDP through Trainer (benchmarks/fsdp_check.py) on every GPU (1 process per GPU).
# Writes JSON and the RESULTS.md tables to $OUT (default: benchmarks/results/gpu). Usage:
#   OUT=/some/dir DATA=/path/to/cifar10 bash benchmarks/gpu_check.sh
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-benchmarks/results/gpu}"
DATA="${DATA:-../shared/data/cifar10}"
PYTHON="${PYTHON:-python}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
CPUS="$(nproc)"
WORKERS=$(( CPUS > 12 ? 12 : CPUS - 1 ))
export OMP_NUM_THREADS="$CPUS"

echo "== 1/3 training step, hf_mim vs transformers (ViT-B/16 MAE bf16 sdpa, batch 256) =="
timeout 150 "$PYTHON" benchmarks/run.py --methods mae --sizes base --dtypes bf16 --modes sdpa --batch_size 256 \
    --warmup 3 --repeats 10 --loader_data "$DATA" --loader_workers "$WORKERS" --output "$OUT/bench_gpu_base.json" \
    || echo "step benchmark failed or timed out"

echo "== 2/3 end to end, hf-mim pretrain vs the run_mae.py recipe (ViT-B/16, 224 px, batch 256, bf16) =="
timeout 300 "$PYTHON" benchmarks/e2e.py --data "$DATA" --size base --image_size 224 --batch 256 --warmup 5 \
    --steps 20 --repeats 2 --loader_batches 10 --workers "$WORKERS" --threads "$CPUS" --bf16 --stage_samples 256 \
    --output "$OUT/e2e_gpu_base.json" || echo "end-to-end benchmark failed or timed out"

echo "== 3/3 FSDP through Trainer =="
timeout 120 "$PYTHON" -m torch.distributed.run --nproc_per_node "$(nvidia-smi -L | wc -l)" benchmarks/fsdp_check.py \
    --steps 5 --output_dir "$OUT/fsdp_run" --output "$OUT/fsdp_check.json" || echo "FSDP check failed or timed out"
rm -rf "$OUT/fsdp_run"

echo "== tables =="
"$PYTHON" benchmarks/report.py "$OUT"/bench_gpu_base.json "$OUT"/e2e_gpu_base.json 2>/dev/null | tee "$OUT/tables.md" || true
