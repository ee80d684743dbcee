"""The demo's training loop, old recipe against new, side by side on the same demos: training signals per second.

Runs two real `selfflow-robot train` processes at once (one thread each, the same demos, batch and schedule) for
`--seconds`, then stops them and reads their logs:

- new: the demo's default recipe (`selfflow_robot.experiments.demo.run.train_overrides`): prefix attention, the
  demos' frame autoencoder, latents read from the latent cache, `train.draws_per_window=4`, bf16 autocast
  (`train.precision=bf16`: needs a CPU with AVX512-BF16 or AMX to be faster than fp32);
- old: the recipe before issue 21: full attention, pixel patches decoded from JPEG every step, one draw, fp32.

Everything a step costs is counted (reading windows, decoding or the cache, codec, forward, teacher, backward,
AdamW, EMA); validation and checkpoints are off in both. Prints one JSON line: steps, windows/s and signals/s
(windows x draws) per recipe, as the median of the logged step throughput and as steps reached / seconds
(start-up included), and the ratios new / old.

    python scripts/bench_demo_training.py --demo runs/demo --seconds 300
    python scripts/bench_demo_training.py --demo runs/demo --seconds 300 --new-extra train.draws_per_window=8

Needs the demo's `demos/` and (for the new recipe) `demos/codec/` (`selfflow-robot demo 'phases=[collect,codec]'`).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from selfflow_robot.config import load_config, structured
from selfflow_robot.experiments.demo.config import DemoConfig
from selfflow_robot.experiments.demo.run import train_overrides
from selfflow_robot.model.config import SIZES
from selfflow_robot.train.logger import read_metrics


def recipes(demo: Path, work: Path, new_extra: list[str] | None = None) -> dict[str, list[str]]:
    """The two recipes' `train` overrides, each writing to its own folder under `work`.

    `new_extra` is appended to the new recipe only (a variant of the default, e.g. `train.draws_per_window=8`);
    the old recipe is the default's without it. The race's own settings come after it and win: validation and
    checkpoints stay off in both.
    """
    cfg = structured(DemoConfig, load_config("demo", [f"output_dir={demo}"], schema=DemoConfig))
    new = train_overrides(cfg, demo)
    tiny = SIZES["tiny"]
    old = [*new, "model.codec=pixel", f"model.patch_size={tiny.patch_size}", "model.attention=full",
           "train.draws_per_window=1", "data.latents=off", "train.precision=fp32"]
    common = ["train.val_every=0", "train.save_every=0", "train.log_every=5", "resume=false"]
    new = [*new, *(new_extra or [])]
    return {name: [*o, *common, f"output_dir={work / name}"] for name, o in (("old", old), ("new", new))}


def measure(rows: list[dict], seconds: float) -> dict[str, float]:
    """Steps reached, and windows/s and signals/s: the median logged step, and steps x batch x draws / seconds."""
    steps = [r for r in rows if "throughput/signals_per_s" in r]
    if not steps:
        return {"steps": 0}
    last = steps[-1]
    draws = round(last["throughput/signals_per_s"] / last["throughput/examples_per_s"])
    batch = round(last["throughput/examples_per_s"] * last["throughput/step_time_s"])
    return {"steps": int(last["step"]), "draws": draws, "batch": batch,
            "windows_per_s_median": statistics.median(r["throughput/examples_per_s"] for r in steps),
            "signals_per_s_median": statistics.median(r["throughput/signals_per_s"] for r in steps),
            "signals_per_s_wall": int(last["step"]) * batch * draws / seconds}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--demo", default="runs/demo", help="a demo output dir holding demos/ and demos/codec/")
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process")
    ap.add_argument("--new-extra", nargs="*", default=[], metavar="OVERRIDE",
                    help="extra `train` overrides for the new recipe only, e.g. train.draws_per_window=8")
    args = ap.parse_args()
    demo = Path(args.demo)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory(prefix="bench_demo_training-") as tmp:
        work = Path(tmp)
        procs = {name: subprocess.Popen([sys.executable, "-m", "selfflow_robot.cli", "train", *o], env=env,
                                        stdout=subprocess.DEVNULL, stderr=open(work / f"{name}.log", "w"))  # noqa: SIM115
                 for name, o in recipes(demo, work, args.new_extra).items()}
        t0 = time.time()
        while time.time() - t0 < args.seconds and all(p.poll() is None for p in procs.values()):
            time.sleep(2)
        seconds = time.time() - t0
        for p in procs.values():
            p.kill()
            p.wait()
        failed = [n for n, p in procs.items() if p.returncode not in (-9, 0)]
        if failed:
            print((work / f"{failed[0]}.log").read_text()[-3000:], file=sys.stderr)
            return 1
        out = {name: measure(read_metrics(work / name), seconds) for name in procs}
    res = {"seconds": round(seconds, 1), "threads_each": args.threads, "new_extra": args.new_extra,
           **{f"{k}_{n}": v for n, m in out.items() for k, v in m.items()}}
    for k in ("windows_per_s_median", "signals_per_s_median", "signals_per_s_wall"):
        if out["old"].get(k):
            res[f"ratio_{k}"] = out["new"][k] / out["old"][k]
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
