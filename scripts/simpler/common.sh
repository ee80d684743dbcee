# Shared helpers of the scripts/simpler/*.sh sweeps (sourced, not run).
#
# Each sweep mirrors one of SimplerEnv's scripts/rt1_*.sh grids, but the policy is a selfflow-robot
# checkpoint served by `selfflow-robot serve` (our environment) and driven from SimplerEnv's
# environment by selfflow_robot/evaluation/simpler/runner.py. Per checkpoint: start a server, run the grid, stop it.
#
# Environment variables:
#   SIMPLER_ENV_DIR    SimplerEnv checkout (with its ManiSkill2_real2sim submodule)   [required]
#   SIMPLER_PYTHON     python of SimplerEnv's environment                              [python]
#   SELFFLOW_ROBOT     our CLI, from our environment                                   [selfflow-robot]
#   SIMPLER_RAYTRACING 1 = ray tracing as SimplerEnv's scripts (GPU); 0 = rasterizer (CPU)   [1]
#   SERVE_PORT         port of the policy server (127.0.0.1)                           [8765]
#   SERVE_STEPS        denoising steps per chunk of the served policy: 1 = the conditional-mean chunk, what the
#                      README's results use after short CPU runs; 10 = sampled chunks (serve's own default)  [1]
#   SERVE_ARGS         extra `selfflow-robot serve` overrides, e.g. "device=cuda"
#   RUNNER_ARGS        extra runner options, e.g. "--execute-horizon 2" or "--ignore-terminate" (episodes run to
#                      their step limit whatever the policy's terminate flag; see docs/simpler.md)
#   ENVS               run only these SimplerEnv env names of the sweep (space-separated), e.g.
#                      "CloseTopDrawerCustomInScene-v0 CloseMiddleDrawerCustomInScene-v0"   [all]
#
# A run that fails (e.g. a task whose instruction the checkpoint does not know) is recorded in
# $LOGGING_DIR/failed.jsonl and the sweep goes on; the script exits 1 at the end if any run failed.
#   LOGGING_DIR        results folder (SimplerEnv layout; summary.jsonl beside it)     [$PWD/results_simpler]
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
RUNNER="$REPO/selfflow_robot/evaluation/simpler/runner.py"
: "${SIMPLER_ENV_DIR:?set SIMPLER_ENV_DIR to your SimplerEnv checkout (see docs/simpler.md)}"
SIMPLER_ENV_DIR="$(cd "$SIMPLER_ENV_DIR" && pwd)"
SIMPLER_PYTHON="${SIMPLER_PYTHON:-python}"
SELFFLOW_ROBOT="${SELFFLOW_ROBOT:-selfflow-robot}"
SIMPLER_RAYTRACING="${SIMPLER_RAYTRACING:-1}"
SERVE_PORT="${SERVE_PORT:-8765}"
SERVE_STEPS="${SERVE_STEPS:-1}"
SERVE_ARGS="${SERVE_ARGS:-}"
ENVS="${ENVS:-}"
FAILED_RUNS=0
RUNNER_ARGS="${RUNNER_ARGS:-}"
LOGGING_DIR="${LOGGING_DIR:-$PWD/results_simpler}"
mkdir -p "$LOGGING_DIR"
LOGGING_DIR="$(cd "$LOGGING_DIR" && pwd)"
OVERLAYS="$SIMPLER_ENV_DIR/ManiSkill2_real2sim/data/real_inpainting"
SERVER_PID=""

if [ "$#" -lt 1 ]; then
  echo "usage: $(basename "$0") CKPT_DIR [CKPT_DIR ...]   (env: SIMPLER_ENV_DIR, SIMPLER_PYTHON, SIMPLER_RAYTRACING, ...)" >&2
  exit 2
fi

# --enable-raytracing, or nothing for the rasterizer
rt_flag() { if [ "$SIMPLER_RAYTRACING" = 1 ]; then echo "--enable-raytracing"; fi; }
# "shader_dir=rt" inside --additional-env-build-kwargs, or nothing
rt_kw() { if [ "$SIMPLER_RAYTRACING" = 1 ]; then echo "shader_dir=rt"; fi; }
# --additional-env-build-kwargs k=v ... (nothing at all when no k=v is given: argparse needs >= 1)
env_kwargs() { if [ "$#" -gt 0 ]; then echo "--additional-env-build-kwargs $*"; fi; }

# results-folder name of a checkpoint: RUN for a run dir, RUN_step-N for RUN/checkpoints/step-N
ckpt_name() {
  local d="${1%/}" base
  base="$(basename "$d")"
  case "$base" in
    step-*) echo "$(basename "$(dirname "$(dirname "$d")")")_$base" ;;
    *) echo "$base" ;;
  esac
}

serve_stop() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
  fi
}
trap serve_stop EXIT INT TERM

serve_start() {  # serve_start CKPT_DIR: start the server and wait until /healthz answers
  local ckpt="$1" i
  # shellcheck disable=SC2086
  "$SELFFLOW_ROBOT" serve ckpt="$ckpt" host=127.0.0.1 port="$SERVE_PORT" steps="$SERVE_STEPS" $SERVE_ARGS \
    > "$LOGGING_DIR/serve_$(ckpt_name "$ckpt").log" 2>&1 &
  SERVER_PID=$!
  for i in $(seq 1 600); do
    if "$SIMPLER_PYTHON" -c "import urllib.request as u; u.build_opener(u.ProxyHandler({})).open('http://127.0.0.1:$SERVE_PORT/healthz', timeout=2)" 2>/dev/null; then
      return 0
    fi
    if ! kill -0 "$SERVER_PID" 2>/dev/null; then
      echo "policy server for $ckpt exited; see $LOGGING_DIR/serve_$(ckpt_name "$ckpt").log" >&2
      exit 1
    fi
    sleep 1
  done
  echo "policy server for $ckpt did not become healthy in 600 s" >&2
  exit 1
}

env_name_of() {  # env_name_of ARGS...: the value after --env-name
  while [ "$#" -gt 1 ]; do
    if [ "$1" = "--env-name" ]; then echo "$2"; return; fi
    shift
  done
}

run() {  # run SIMPLER_MAIN_INFERENCE_ARGS...: one runner call, as SimplerEnv's main_inference.py would be called
  local env
  env="$(env_name_of "$@")"
  if [ -n "$ENVS" ] && [[ " $ENVS " != *" $env "* ]]; then
    return 0  # not one of the chosen envs
  fi
  # shellcheck disable=SC2086
  if ! (cd "$SIMPLER_ENV_DIR" && "$SIMPLER_PYTHON" "$RUNNER" --server "ws://127.0.0.1:$SERVE_PORT" $RUNNER_ARGS \
     --summary-jsonl "$LOGGING_DIR/summary.jsonl" --logging-dir "$LOGGING_DIR" \
     --ckpt-path "$CKPT_NAME" --robot google_robot_static --control-freq 3 --sim-freq 513 "$@"); then
    FAILED_RUNS=$((FAILED_RUNS + 1))
    printf '{"ckpt": "%s", "env_name": "%s", "args": "%s"}\n' "$CKPT_NAME" "$env" "$*" >> "$LOGGING_DIR/failed.jsonl"
    echo "run of $env failed (see above); recorded in $LOGGING_DIR/failed.jsonl, the sweep goes on" >&2
  fi
}

for_each_ckpt() {  # for_each_ckpt FUNCTION CKPT_DIR...: serve each checkpoint and call FUNCTION
  local fn="$1" ckpt
  shift
  for ckpt in "$@"; do
    CKPT_NAME="$(ckpt_name "$ckpt")"
    echo "== $CKPT_NAME ($ckpt)"
    serve_start "$ckpt"
    "$fn"
    serve_stop
  done
  echo "results: $LOGGING_DIR  (score: python scripts/eval_simpler.py simpler_results=$LOGGING_DIR)"
  if [ "$FAILED_RUNS" -gt 0 ]; then
    echo "$FAILED_RUNS run(s) failed: $LOGGING_DIR/failed.jsonl" >&2
    exit 1
  fi
}
