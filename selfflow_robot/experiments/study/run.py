"""Running (or resuming) a study's arms, each a `selfflow-robot demo` run, in this process or as processes.

An arm is claimed before it runs: an exclusive lock on `<arm>/.study.lock`, and no other process with an
`output_dir=` inside the arm (a `selfflow-robot demo` started by hand); a busy arm is left alone. A claimed
arm's evaluation of an unfinished run is set aside first, so the final checkpoint is scored anew.
"""
from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from selfflow_robot.experiments.demo.config import CONFIG_RECORD, DemoConfig, phase_dir
from selfflow_robot.experiments.demo.run import codec_phase
from selfflow_robot.experiments.demo.run import main as demo_main
from selfflow_robot.experiments.study.arms import eval_is_stale, load_arm
from selfflow_robot.experiments.study.config import arm_name, arm_overrides, demo_config, settings_of
from selfflow_robot.experiments.study.demos import link_demos


def arm_is_done(arm_dir: Path, wanted: DemoConfig) -> bool:
    """True when the arm's report exists and its recorded settings are the wanted ones (nothing to rerun)."""
    cfg_file = arm_dir / CONFIG_RECORD
    if not ((phase_dir(arm_dir, "report") / "report.md").is_file() and cfg_file.is_file()):
        return False
    try:
        recorded = json.loads(cfg_file.read_text())
    except json.JSONDecodeError:
        return False
    if settings_of(recorded) != settings_of(wanted):
        return False
    a = load_arm(arm_dir, arm_dir.name, str(recorded.get("objective")), int(recorded.get("seed", 0)))
    return a.train_status == "complete" and a.eval_status == "complete"


def set_aside_stale_eval(arm_dir: Path) -> Path | None:
    """Rename a stale `<arm>/eval` to `<arm>/eval.stale-<time>` (kept, never deleted); returns the new path."""
    if not eval_is_stale(arm_dir):
        return None
    dest = arm_dir / f"eval.stale-{time.strftime('%Y%m%d-%H%M%S')}"
    os.replace(phase_dir(arm_dir, "eval"), dest)
    print(f"{phase_dir(arm_dir, 'eval')} scored an unfinished run: moved to {dest}; the final checkpoint is scored "
          "anew", flush=True)
    return dest


LOCK_FILE = ".study.lock"


def process_running(arm_dir: Path) -> tuple[int, str] | None:
    """(pid, command) of another process whose command line has an `output_dir=` in this arm, else None.

    Catches an arm started by hand (`selfflow-robot demo output_dir=...`, relative to that process's working
    dir): a second trainer on the same run dir would corrupt it. Reads Linux /proc; None where there is none.
    """
    arm = arm_dir.resolve()
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    for p in proc.iterdir():
        if not p.name.isdigit() or int(p.name) == os.getpid():
            continue
        try:
            args = [a.decode(errors="replace") for a in (p / "cmdline").read_bytes().split(b"\0") if a]
            cwd = Path(os.readlink(p / "cwd"))
        except OSError:  # gone, or not ours to read
            continue
        for a in args:
            if a.startswith("output_dir="):
                d = (cwd / a.split("=", 1)[1]).resolve()
                if d == arm or arm in d.parents:
                    return int(p.name), " ".join(args)
    return None


class ArmLock:
    """An exclusive, non-blocking lock on `<arm>/.study.lock` (flock: released by the OS if we die)."""

    def __init__(self, arm_dir: Path) -> None:
        self.path = arm_dir / LOCK_FILE
        self._f: TextIO | None = None

    def acquire(self) -> bool:
        """Take the lock; False (and not held) when another process holds it."""
        self._f = open(self.path, "a")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(self._f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._f.close()
            self._f = None
            return False
        return True

    def release(self) -> None:
        """Drop the lock (a no-op when it is not held)."""
        if self._f is not None:
            self._f.close()  # closing drops the flock
            self._f = None


def claim_arm(name: str, arm_dir: Path) -> tuple[ArmLock | None, str]:
    """Lock an arm to run it, or say why not ("busy (...)")."""
    lock = ArmLock(arm_dir)
    if not lock.acquire():
        return None, f"busy (another study run holds {lock.path})"
    other = process_running(arm_dir)
    if other is not None:
        lock.release()
        return None, f"busy (process {other[0]} runs it: {other[1][:160]})"
    set_aside_stale_eval(arm_dir)  # only now: nothing else is writing it
    return lock, ""


def run_arms(out: Path, shared: Sequence[str], seeds: Sequence[int], objectives: Sequence[str], demos: Path,
             parallel: int = 1) -> dict[str, str]:
    """Run (or resume) every arm; returns arm -> "done" | "reused" | "busy (...)" | "failed (...)".

    `parallel` > 1 runs that many arms at once as `selfflow-robot demo` processes (log: `<out>/<arm>.log`);
    otherwise the arms run one after another in this process. An arm that another process is running
    (another study run, or a `selfflow-robot demo` started by hand) is left alone and reported busy.
    """
    jobs = []
    for seed in seeds:
        for objective in objectives:
            arm_dir = out / arm_name(objective, seed)
            overrides = arm_overrides(shared, output_dir=arm_dir, objective=objective, seed=seed)
            cfg, dc = demo_config(overrides)
            link_demos(arm_dir, demos)
            jobs.append((arm_name(objective, seed), arm_dir, overrides, cfg, dc))
    status: dict[str, str] = {}
    todo = []
    for name, arm_dir, overrides, cfg, dc in jobs:
        if arm_is_done(arm_dir, dc):
            print(f"reusing arm {name} (finished: {phase_dir(arm_dir, 'report') / 'report.md'})", flush=True)
            status[name] = "reused"
        else:
            todo.append((name, arm_dir, overrides, cfg, dc))
    if parallel <= 1:
        for i, (name, arm_dir, _, cfg, dc) in enumerate(todo, 1):
            lock, why = claim_arm(name, arm_dir)
            if lock is None:
                status[name] = why
                print(f"skipping arm {name}: {why}", flush=True)
                continue
            try:
                print(f"\n##### arm {i}/{len(todo)}: {name} -> {arm_dir}", flush=True)
                codec_phase(dc, arm_dir)  # fit once into the shared demos (through the arm's link), then reused
                demo_main(cfg)
                status[name] = "done"
            finally:
                lock.release()
        return status
    running: list[tuple[str, subprocess.Popen, TextIO, ArmLock]] = []
    queue = list(todo)
    env = dict(os.environ)
    # Share the cores: N arms each using every core oversubscribe them, and OpenMP spin-waiting then makes
    # small matmuls many times slower (measured here: 6 CI-size steps took 7 min instead of ~20 s).
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // parallel)))
    try:
        while queue or running:
            while queue and len(running) < parallel:
                name, arm_dir, overrides, _, dc = queue.pop(0)
                lock, why = claim_arm(name, arm_dir)
                if lock is None:
                    status[name] = why
                    print(f"skipping arm {name}: {why}", flush=True)
                    continue
                try:  # here, before any arm starts: arms side by side must not fit the shared autoencoder twice
                    codec_phase(dc, arm_dir)
                except BaseException:
                    lock.release()
                    raise
                log = open(out / f"{name}.log", "a")  # noqa: SIM115 - open while the arm runs, closed below
                cmd = [sys.executable, "-m", "selfflow_robot.cli", "demo", *overrides]
                proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
                print(f"started arm {name} (pid {proc.pid}), log {out / f'{name}.log'}", flush=True)
                running.append((name, proc, log, lock))
            time.sleep(2.0)
            for item in list(running):
                name, proc, log, lock = item
                rc = proc.poll()
                if rc is None:
                    continue
                log.close()
                lock.release()
                running.remove(item)
                status[name] = "done" if rc == 0 else f"failed (exit {rc}, see {out / f'{name}.log'})"
                print(f"arm {name}: {status[name]}", flush=True)
    finally:
        for _name, proc, log, lock in running:  # interrupted: stop our own children, keep their resumable state
            proc.terminate()
            proc.wait()
            log.close()
            lock.release()
    return status


__all__ = ["ArmLock", "LOCK_FILE", "arm_is_done", "claim_arm", "process_running", "run_arms", "set_aside_stale_eval"]
