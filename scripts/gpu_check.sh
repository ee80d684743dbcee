#!/usr/bin/env bash
# One prepared GPU check (about 5 minutes on one H100/H200-class GPU), writing its figures to ${OUT:-runs/gpu_check}:
#   1. xl bf16 training step: the old recipe (full attention, 1 draw) against the new one (prefix attention,
#      4 draws per window sharing one context pass): step time, windows/s, signals/s, MFU (scripts/bench_train.py);
#   2. xl policy latency per chunk, 10 denoising steps, with and without the context cache (scripts/bench_policy.py);
#   3. a short `small` training (prefix attention, 4 draws, bf16) on the demo data if runs/demo/demos exists, else on
#      a synthetic RT-1 dataset, with its validation metrics and step time (summary.json).
# Each part runs under its own time limit and a failed part does not stop the others; status.txt lists each part's
# exit code. Needs a CUDA build of torch and the package (pip install -e ".[dev]"). The xl benches run on random
# latents, so no SD-VAE download is needed. At most 8 files land in $OUT; the datasets and checkpoints go to $WORK.
#
# The training data: $DATA (default runs/demo/demos, the demo's demos), else synthetic episodes. A device machine that
# takes a limited upload can be given a subset, e.g. the demo's last shard (8 episodes, 15 MB) as a one-shard dataset.
# The training bench runs at batch $BIG_BATCH (default 4): at batch 8 it holds both recipes' `xl` models, which fit
# a 141 GB H200 but not an 80 GB H100.
#
# Dry run on a CPU (same commands, tiny sizes, a minute or two), before spending GPU time:
#   DEVICE=cpu BIG=tiny SMALL=tiny SMALL_STEPS=20 EPISODES=8 bash scripts/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-runs/gpu_check}"
WORK="${WORK:-$(mktemp -d)}"
DEVICE="${DEVICE:-cuda}"
BIG="${BIG:-xl}"                 # size of the two benches
BIG_BATCH="${BIG_BATCH:-4}"      # batch of the training bench
SMALL="${SMALL:-small}"          # size of the short training
SMALL_STEPS="${SMALL_STEPS:-200}"
SMALL_SECONDS="${SMALL_SECONDS:-210}"
EPISODES="${EPISODES:-64}"       # synthetic episodes when runs/demo/demos is absent
PY="${PYTHON:-$(command -v python || command -v python3)}"
CLI="${CLI:-$(command -v selfflow-robot || echo "$PY -m selfflow_robot.cli")}"
export PYTHONUNBUFFERED=1
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"  # less fragmentation near the limit
mkdir -p "$OUT" "$WORK"
: >"$OUT/status.txt"

part() {  # part NAME SECONDS CMD...: run CMD under a time limit, record its exit code, never abort the script
    local name=$1 seconds=$2
    shift 2
    echo "== $name"
    timeout "$seconds" "$@"
    echo "$name rc=$?" | tee -a "$OUT/status.txt"
}

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || echo "no nvidia-smi"
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
torch.cuda.get_device_name() if torch.cuda.is_available() else '')"; } | tee "$OUT/gpu.txt"

part "1_bench_train_$BIG" 150 "$PY" scripts/bench_train.py --compare recipes --draws 4 --model "$BIG" \
    --device "$DEVICE" --dtype bf16 --batch-size "$BIG_BATCH" --steps 12 --rounds 3 --warmup 3 --peak-seconds 3 \
    > "$OUT/bench_train.json"
cat "$OUT/bench_train.json"

part "2_bench_policy_$BIG" 120 "$PY" scripts/bench_policy.py --size "$BIG" --device "$DEVICE" --dtype bfloat16 \
    --steps 10 --modes eager,cached --iters 30 --warmup 5 --json "$OUT/bench_policy.json"

DATA="${DATA:-runs/demo/demos}"  # the demo's demos when present
if [ ! -d "$DATA" ]; then
    DATA="$WORK/synth"
    part "3a_synth_data" 60 $CLI data synth output_dir="$DATA" episodes="$EPISODES" shards=2
fi
part "3b_train_$SMALL" "$SMALL_SECONDS" $CLI train model="$SMALL" train=cpu data.path="$DATA" \
    output_dir="$WORK/train" device="$DEVICE" train.precision=bf16 train.steps="$SMALL_STEPS" train.batch_size=32 \
    train.draws_per_window=4 train.val_every=100 train.save_every="$SMALL_STEPS" train.log_every=25 \
    > "$OUT/train.log" 2>&1
tail -n 20 "$OUT/train.log"
cp "$WORK/train/metrics.jsonl" "$OUT/train_metrics.jsonl" 2>/dev/null

"$PY" - "$OUT" <<'PY'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
path = out / "train_metrics.jsonl"
rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []
val = [r for r in rows if "val/action_mse_norm" in r]
times = sorted(r["throughput/step_time_s"] for r in rows if "throughput/step_time_s" in r)
summary = {"steps_logged": max((r.get("step", 0) for r in rows), default=0),
           "median_step_time_s": times[len(times) // 2] if times else None,
           "validations": val}
(out / "summary.json").write_text(json.dumps(summary, indent=2))
print(json.dumps(summary, indent=2))
PY
cat "$OUT/status.txt"
