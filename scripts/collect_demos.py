#!/usr/bin/env python
"""Scripted-expert success over the visual-matching grid, and optionally the demos as RT-1 RLDS.

    python scripts/collect_demos.py                                  # all 7 tasks, full grids, success table
    python scripts/collect_demos.py --tasks close_top_drawer --episodes 0-8 --workers 2
    python scripts/collect_demos.py --tasks open_top_drawer --output-dir demos   # also write demos/<task>/

Without --output-dir nothing is rendered (fast); with it every episode is recorded through
`selfflow-robot collect` semantics (one RLDS dataset per task). Episodes run in worker processes.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time


def _episodes(spec: str, n: int) -> list[int]:
    if spec == "all":
        return list(range(n))
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return [e for e in out if 0 <= e < n]


def _run(job: tuple[str, list[int], tuple[float, float]]) -> list[tuple[str, int, bool, float]]:
    task, episodes, (noise_m, noise_rad) = job
    import torch

    torch.set_num_threads(1)
    from selfflow_robot.envs.collect import ActionNoise, expert_success
    from selfflow_robot.envs.experts import make_expert
    from selfflow_robot.envs.tasks import make_env

    env, expert, out = make_env(task, obs_mode="none"), make_expert(task), []
    for ep in episodes:
        t0 = time.perf_counter()
        ok = expert_success(env, expert, ep, ActionNoise(noise_m, noise_rad), task)
        out.append((task, ep, ok, time.perf_counter() - t0))
        print(f"{task:34s} episode {ep:3d} {'success' if ok else 'FAIL'} ({out[-1][3]:.0f}s)", flush=True)
    env.close()
    return out


def main() -> None:
    from selfflow_robot.envs.tasks import TASKS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tasks", default="all", help="comma-separated task names, or all")
    p.add_argument("--episodes", default="all", help="grid indices: all, or e.g. 0-8,20")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--output-dir", default=None, help="also record demos into <dir>/<task>/ (renders)")
    p.add_argument("--action-noise", nargs=2, type=float, default=(0.0, 0.0), metavar=("METRES", "RAD"),
                   help="std of the Gaussian noise on each executed translation / rotation (collect's "
                        "action_noise_m / action_noise_rad)")
    a = p.parse_args()
    noise = tuple(a.action_noise)
    tasks = list(TASKS) if a.tasks == "all" else a.tasks.split(",")
    if a.output_dir:
        from selfflow_robot.envs.collect import CollectConfig, collect

        for t in tasks:
            eps = _episodes(a.episodes, TASKS[t].num_episodes)
            path, n, ok = collect(CollectConfig(task=t, episodes=len(eps), start_episode=eps[0],
                                                output_dir=os.path.join(a.output_dir, t),
                                                action_noise_m=noise[0], action_noise_rad=noise[1]))
            print(f"{t}: {ok}/{len(eps)} successful, {n} episodes in {path}")
        return
    jobs = []
    for t in tasks:
        eps = _episodes(a.episodes, TASKS[t].num_episodes)
        chunks = max(1, min(a.workers, len(eps)))
        jobs += [(t, eps[i::chunks], noise) for i in range(chunks)]
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(a.workers) as pool:
        results = [r for chunk in pool.imap_unordered(_run, jobs) for r in chunk]
    print(f"\nexpert success over the visual-matching grid ({time.perf_counter() - t0:.0f}s):")
    for t in tasks:
        rs = [r for r in results if r[0] == t]
        ok = sum(r[2] for r in rs)
        fails = sorted(r[1] for r in rs if not r[2])
        print(f"  {t:34s} {ok:3d}/{len(rs):3d} = {100 * ok / max(1, len(rs)):5.1f}%"
              + (f"  failed episodes {fails}" if fails else ""))


if __name__ == "__main__":
    main()
