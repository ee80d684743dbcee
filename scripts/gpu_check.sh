#!/usr/bin/env bash
# One prepared GPU check (about 8 minutes on one H100/H200-class GPU), writing its figures to ${OUT:-runs/gpu_check}:
#   1. xl bf16 training step: the old recipe (full attention, 1 draw) against the new one (prefix attention,
#      4 draws per window sharing one context pass): step time, windows/s, signals/s, MFU (scripts/bench_train.py);
#   2. xl policy latency per chunk, 10 denoising steps, with and without the context cache (scripts/bench_policy.py);
#   3. a short `small` training (prefix attention, 4 draws) on the demo data if runs/demo/demos exists, else on a
#      synthetic RT-1 dataset, with its validation metrics.
# Needs: pip install torch (a CUDA build) and pip install -e ".[dev,vae]" on the GPU machine. The xl benches run on
# random latents, so no SD-VAE download is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu_check}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"

echo "== 1. xl training step, old vs new recipe (bf16)"
python scripts/bench_train.py --compare recipes --draws 4 --model xl --device cuda --dtype bf16 \
    --batch-size 8 --steps 12 --rounds 3 --warmup 3 --peak-seconds 3 | tee "$OUT/bench_train_xl.json"

echo "== 2. xl policy latency, eager vs cached context"
python scripts/bench_policy.py --size xl --device cuda --dtype bfloat16 --steps 10 --modes eager,cached \
    --iters 30 --warmup 5 --json "$OUT/bench_policy_xl.json"

echo "== 3. a short small training"
DATA=runs/demo/demos
if [ ! -d "$DATA" ]; then
    DATA="$OUT/synth"
    selfflow-robot data synth output_dir="$DATA" episodes=64
fi
timeout 240 selfflow-robot train model=small train=cpu data.path="$DATA" output_dir="$OUT/small" \
    device=cuda train.precision=bf16 train.steps=300 train.batch_size=32 train.draws_per_window=4 \
    train.val_every=100 train.save_every=300 | tee "$OUT/small_train.log" || echo "small training stopped (timeout)"
python - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
rows = [json.loads(l) for l in (out / "small" / "metrics.jsonl").read_text().splitlines() if l.strip()] \
    if (out / "small" / "metrics.jsonl").is_file() else []
val = [r for r in rows if "val/action_mse_norm" in r]
steps = [r for r in rows if "throughput/step_time_s" in r]
summary = {"last_validation": val[-1] if val else None,
           "median_step_time_s": sorted(r["throughput/step_time_s"] for r in steps)[len(steps) // 2] if steps else None}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
PY
