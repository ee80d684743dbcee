#!/usr/bin/env python
"""Benchmark the ManiSkill3 drawer port: env steps/s at 640x512 with the green-screen overlay.

Measures one worker, then all workers (one process and one env each), and prints the projected
wall time of a full drawer visual-matching sweep (216 episodes x 113 steps) on this machine.

    python scripts/bench_sim.py                 # defaults: open_top_drawer, 40 steps, workers = CPU count
    python scripts/bench_sim.py --steps 100 --workers 2 --no-overlay
Needs SELFFLOW_ROBOT_ASSETS (or `selfflow-robot assets fetch`) and ManiSkill3 (.ci/install_sim_deps.sh).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np
import torch

from selfflow_robot.envs.tasks import make_env, overhead_rgb

SWEEP_EPISODES, SWEEP_STEPS, SWEEP_URDFS = 216, 113, 4


def run_worker(args: tuple[str, int, bool, int]) -> dict:
    """Build an env, time creation, a grid reset, a reset that changes the robot URDF, and `steps` steps."""
    task, steps, overlay, seed = args
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    env = make_env(task, overlay=overlay)
    t_make = time.perf_counter() - t0
    t0 = time.perf_counter()
    obs, _ = env.reset(options={"episode": 1})             # same URDF as creation: no reload
    t_reset = time.perf_counter() - t0
    t0 = time.perf_counter()
    env.reset(options={"episode": 10})                       # next URDF colouring: scene reload
    t_reconf = time.perf_counter() - t0
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    for _ in range(steps):
        a = np.concatenate([rng.normal(0, 0.01, 3), rng.normal(0, 0.02, 3), [0.0]]).astype(np.float32)
        obs, *_ = env.step(a)
        assert overhead_rgb(obs).shape == (512, 640, 3)
    t_steps = time.perf_counter() - t0
    env.close()
    return dict(make=t_make, reset=t_reset, reconfigure=t_reconf, steps=steps, step_time=t_steps)


def projected_sweep_s(steps_per_s: float, workers: int, reset_s: float, reconf_s: float) -> float:
    """Sweep wall time: all steps at the aggregate rate, resets spread over workers, 4 URDF reloads each."""
    return (SWEEP_EPISODES * SWEEP_STEPS / steps_per_s + SWEEP_EPISODES * reset_s / workers
            + SWEEP_URDFS * reconf_s)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="open_top_drawer")
    p.add_argument("--steps", type=int, default=40, help="timed steps per worker")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--no-overlay", action="store_true")
    a = p.parse_args()
    overlay = not a.no_overlay
    print(f"task={a.task} image=640x512 overlay={overlay} steps/worker={a.steps} cpus={os.cpu_count()} "
          f"load={os.getloadavg()[0]:.1f}")
    one = run_worker((a.task, a.steps, overlay, 0))
    sps1 = one["steps"] / one["step_time"]
    print(f"1 worker : make {one['make']:.1f}s  reset {one['reset']:.2f}s  URDF reload {one['reconfigure']:.1f}s  "
          f"{sps1:.2f} steps/s ({1000 / sps1:.0f} ms/step)")
    ctx = mp.get_context("spawn")
    t0 = time.perf_counter()
    with ctx.Pool(a.workers) as pool:
        res = pool.map(run_worker, [(a.task, a.steps, overlay, i) for i in range(a.workers)])
    wall = time.perf_counter() - t0
    spsn = sum(r["steps"] / r["step_time"] for r in res)
    reset_n = sum(r["reset"] for r in res) / len(res)
    reconf_n = sum(r["reconfigure"] for r in res) / len(res)
    print(f"{a.workers} workers: {spsn:.2f} steps/s aggregate ({spsn / a.workers:.2f} per worker), "
          f"reset {reset_n:.2f}s, URDF reload {reconf_n:.1f}s, pool wall {wall:.0f}s")
    for label, sps, w, rs, rc in (("1 worker", sps1, 1, one["reset"], one["reconfigure"]),
                                  (f"{a.workers} workers", spsn, a.workers, reset_n, reconf_n)):
        t = projected_sweep_s(sps, w, rs, rc)
        print(f"projected drawer visual-matching sweep ({SWEEP_EPISODES} episodes x {SWEEP_STEPS} steps), "
              f"{label}: {t / 60:.1f} min (goal <= 60 min)")


if __name__ == "__main__":
    main()
