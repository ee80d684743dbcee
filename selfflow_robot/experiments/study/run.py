"""Self-Flow vs vanilla flow matching, side by side (`scripts/study_selfflow_vs_vanilla.py`).

One study directory `<out>/` holds:

- `demos/`: the expert demos, collected once (or `--demos DIR`, an existing demos dir with `collect.json`);
- one `selfflow-robot demo` output dir per arm, `<out>/<objective>-seed<s>/`, whose `demos` is a symlink
  to the shared demos; each arm runs the demo phases train, eval, imagine, report with
  `objective=<objective> seed=<s>` and every other setting identical;
- the comparison, written from whatever the arms have on disk: `study.json`, `study.md`,
  `study_curves.png` (validation curves) and `study_success.png` (suite success per task).

The comparison reads each arm's `run/metrics.jsonl` (`val/...` rows), `eval/results.json` (or, while an
evaluation is still running, `eval/episodes.jsonl`) and `demo_config.json`. Arms that are not finished
are included and marked partial; arms that are not started are listed as missing.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from selfflow_robot.config import check_choice, load_config, structured
from selfflow_robot.errors import DataError, UserError

OBJECTIVES = ("selfflow", "vanilla")
DEMOS_DIR = "demos"
COLLECT_SUMMARY = "collect.json"
STUDY_JSON = "study.json"
STUDY_MD = "study.md"
CURVES_PNG = "study_curves.png"
SUCCESS_PNG = "study_success.png"
ARM_PHASES = ["train", "eval", "imagine", "report"]
# DemoConfig fields that may differ between arms without changing what is compared.
NOT_SETTINGS = ("output_dir", "objective", "seed", "phases", "assets", "workers")
GOAL_RATIO = 0.5  # the goal: Self-Flow reaches vanilla's final action MSE in <= half the steps


@dataclass(frozen=True)
class Metric:
    """One validation metric of the comparison: its `metrics.jsonl` key and which direction is better."""

    name: str
    key: str
    label: str
    higher_is_better: bool


METRICS: tuple[Metric, ...] = (
    Metric("action_mse_norm", "val/action_mse_norm", "held-out action MSE (normalised, sampled)", False),
    Metric("action_mse_norm_1step", "val/action_mse_norm_1step", "held-out action MSE (normalised, 1-step)", False),
    Metric("psnr", "val/psnr", "world-model PSNR (dB, sampled)", True),
    Metric("psnr_1step", "val/psnr_1step", "world-model PSNR (dB, 1-step)", True),
)
BASELINES = {"psnr_copy_last": "val/psnr_copy_last", "action_mse_norm_mean_baseline": "val/action_mse_norm_mean_baseline"}
HEADLINE_MSE, HEADLINE_PSNR = "action_mse_norm", "psnr"


def arm_name(objective: str, seed: int) -> str:
    """The arm's directory name, e.g. `selfflow-seed0`."""
    return f"{objective}-seed{seed}"


# ---------------------------------------------------------------------------------------------------------------
# Configs: every arm is `selfflow-robot demo` with the same overrides plus its objective and seed
# ---------------------------------------------------------------------------------------------------------------

def arm_overrides(shared: Sequence[str], *, output_dir: Path, objective: str, seed: int,
                  phases: Sequence[str] = ARM_PHASES) -> list[str]:
    """The `selfflow-robot demo` overrides of one arm: the shared ones, then its dir, objective, seed and phases
    (last, so a shared override can never change what makes the arm this arm)."""
    return [*shared, f"output_dir={output_dir}", f"objective={objective}", f"seed={seed}",
            "phases=[" + ",".join(phases) + "]"]


def demo_config(overrides: Sequence[str]) -> tuple[Any, Any]:
    """Compose `configs/demo.yaml` with `overrides` and validate it: (DictConfig, DemoConfig)."""
    from selfflow_robot.experiments.demo.run import DemoConfig

    cfg = load_config("demo", list(overrides))
    return cfg, structured(DemoConfig, cfg)


def settings_of(cfg: Any) -> dict[str, Any]:
    """The fields of a DemoConfig (or its `demo_config.json` dict) that must match across arms."""
    d = asdict(cfg) if not isinstance(cfg, Mapping) else dict(cfg)
    return {k: v for k, v in d.items() if k not in NOT_SETTINGS}


def _hydra_value(v: Any) -> str:
    """A Python value as a Hydra override value (strings quoted when they hold grammar characters)."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_hydra_value(x) for x in v) + "]"
    s = str(v)
    if s and all(c.isalnum() or c in "_-./" for c in s):
        return s
    return json.dumps(s)


# Written out in a study's command even when equal to the defaults, so it survives a change of configs/demo.yaml.
PINNED = ("suite", "demos_per_task", "demo_noise_m", "demo_noise_rad", "steps", "batch_size", "lr", "train_overrides",
          "eval_episodes_per_task")


def overrides_from_config(cfg: Any, defaults: Any) -> list[str]:
    """The `key=value` overrides that turn the default DemoConfig into `cfg` (study settings only).

    The PINNED keys are always written; `policy_options` differences per key (`policy_options.steps=2`).
    """
    want, base = settings_of(cfg), settings_of(defaults)
    out = []
    for k, v in want.items():
        if k == "policy_options":
            b = base.get(k) or {}
            out += [f"policy_options.{pk}={_hydra_value(pv)}" for pk, pv in (v or {}).items() if b.get(pk) != pv]
        elif k in PINNED or base.get(k) != v:
            out.append(f"{k}={_hydra_value(v)}")
    return out


def _shell_quote(s: str) -> str:
    import shlex

    return shlex.quote(s)


FLAG_OF = {"steps": "--steps", "batch_size": "--batch-size", "demos_per_task": "--demos-per-task",
           "eval_episodes_per_task": "--eval-episodes-per-task"}


def study_command(out: Path, seeds: Sequence[int], objectives: Sequence[str], overrides: Sequence[str],
                  demos: Path | None, workers: int | None = None) -> str:
    """The script command line that runs (or resumes) this study, from the repository root."""
    parts = ["python", "scripts/study_selfflow_vs_vanilla.py", "--out", str(out),
             "--seeds", *map(str, seeds), "--objectives", *objectives]
    for o in overrides:
        key, val = o.split("=", 1)
        if key in FLAG_OF and val != "null":
            parts += [FLAG_OF[key], val]
        else:
            parts += ["--set", o]
    if workers is not None:
        parts += ["--workers", str(workers)]
    if demos is not None:
        parts += ["--demos", str(demos)]
    return " ".join(_shell_quote(p) for p in parts)


# ---------------------------------------------------------------------------------------------------------------
# Running the arms
# ---------------------------------------------------------------------------------------------------------------

def prepare_demos(shared: Sequence[str], out: Path, demos: Path | None) -> Path:
    """The shared demos dir: `demos` if given (must hold collect.json), else `<out>/demos` (collected once)."""
    from selfflow_robot.experiments.demo.run import collect_phase

    if demos is not None:
        demos = Path(demos).resolve()
        if not (demos / COLLECT_SUMMARY).is_file():
            raise DataError(f"--demos {demos}: no {COLLECT_SUMMARY} there, so it is not a finished demos dir; "
                            f"point --demos at the `demos/` folder of a `selfflow-robot demo` run, or leave "
                            f"--demos out to collect the demos into {out / DEMOS_DIR}")
        check_demos(demos, demo_config([*shared, f"output_dir={out}"])[1])
        return demos
    _, cfg = demo_config([*shared, f"output_dir={out}"])
    print(f"=== demos -> {out / DEMOS_DIR}", flush=True)
    collect_phase(cfg, out)
    return (out / DEMOS_DIR).resolve()


def check_demos(demos: Path, cfg: Any) -> None:
    """Refuse a demos dir whose tasks or episode count differ from the study's (its records would be wrong)."""
    from selfflow_robot.envs.collect import CollectConfig

    summary = json.loads((demos / COLLECT_SUMMARY).read_text())
    tasks = CollectConfig(task=list(cfg.tasks or [cfg.suite]), episodes=cfg.demos_per_task).task_list()
    want = len(tasks) * cfg.demos_per_task
    if list(summary.get("tasks", [])) != tasks or int(summary.get("episodes", -1)) != want:
        raise DataError(f"--demos {demos}: it holds {summary.get('episodes')} demos of {summary.get('tasks')}, but "
                        f"the study asks for {cfg.demos_per_task} per task of {tasks} ({want}); pass the "
                        f"--demos-per-task and --set tasks=[...]/suite= it was collected with, or another --demos")
    noise = [float(summary.get("action_noise_m", 0.0)), float(summary.get("action_noise_rad", 0.0))]
    if noise != [float(cfg.demo_noise_m), float(cfg.demo_noise_rad)]:
        raise DataError(f"--demos {demos}: collected with action noise {noise[0]:g} m / {noise[1]:g} rad, but the "
                        f"study asks for {cfg.demo_noise_m:g} m / {cfg.demo_noise_rad:g} rad; pass "
                        f"--set demo_noise_m={noise[0]:g} --set demo_noise_rad={noise[1]:g}, or another --demos")


def link_demos(arm_dir: Path, demos: Path) -> None:
    """Make `<arm>/demos` a symlink to the shared demos (an existing link must already point there)."""
    arm_dir.mkdir(parents=True, exist_ok=True)
    link = arm_dir / DEMOS_DIR
    if link.is_symlink():
        if link.resolve() != demos.resolve():
            raise UserError(f"{link} links to {link.resolve()}, not to this study's demos {demos}: the arms would "
                            f"train on different data; use the study's --out/--demos of that run, or remove the link")
        return
    if link.exists():
        raise UserError(f"{link} is a real folder, not a link to the shared demos {demos}: the arms would not share "
                        f"their data; move it away or choose another --out")
    link.symlink_to(demos, target_is_directory=True)


def arm_is_done(arm_dir: Path, wanted: Any) -> bool:
    """True when the arm's report exists and its recorded settings are the wanted ones (nothing to rerun)."""
    cfg_file = arm_dir / "demo_config.json"
    if not ((arm_dir / "report" / "report.md").is_file() and cfg_file.is_file()):
        return False
    try:
        recorded = json.loads(cfg_file.read_text())
    except json.JSONDecodeError:
        return False
    if settings_of(recorded) != settings_of(wanted):
        return False
    a = load_arm(arm_dir, arm_dir.name, str(recorded.get("objective")), int(recorded.get("seed", 0)))
    return a.train_status == "complete" and a.eval_status == "complete"


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
        self._f: Any = None

    def acquire(self) -> bool:
        import fcntl

        self._f = open(self.path, "a")  # noqa: SIM115 - held until release()
        try:
            fcntl.flock(self._f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._f.close()
            self._f = None
            return False
        return True

    def release(self) -> None:
        if self._f is not None:
            self._f.close()  # closing drops the flock
            self._f = None


def _claim(name: str, arm_dir: Path) -> tuple[ArmLock | None, str]:
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
    from selfflow_robot.experiments.demo.run import main as demo_main

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
            print(f"reusing arm {name} (finished: {arm_dir / 'report' / 'report.md'})", flush=True)
            status[name] = "reused"
        else:
            todo.append((name, arm_dir, overrides, cfg))
    if parallel <= 1:
        for i, (name, arm_dir, _, cfg) in enumerate(todo, 1):
            lock, why = _claim(name, arm_dir)
            if lock is None:
                status[name] = why
                print(f"skipping arm {name}: {why}", flush=True)
                continue
            try:
                print(f"\n##### arm {i}/{len(todo)}: {name} -> {arm_dir}", flush=True)
                demo_main(cfg)
                status[name] = "done"
            finally:
                lock.release()
        return status
    running: list[tuple[str, subprocess.Popen, Any, ArmLock]] = []
    queue = list(todo)
    env = dict(os.environ)
    # Share the cores: N arms each using every core oversubscribe them, and OpenMP spin-waiting then makes
    # small matmuls many times slower (measured here: 6 CI-size steps took 7 min instead of ~20 s).
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // parallel)))
    try:
        while queue or running:
            while queue and len(running) < parallel:
                name, arm_dir, overrides, _ = queue.pop(0)
                lock, why = _claim(name, arm_dir)
                if lock is None:
                    status[name] = why
                    print(f"skipping arm {name}: {why}", flush=True)
                    continue
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
        for name, proc, log, lock in running:  # interrupted: stop our own children, keep their resumable state
            proc.terminate()
            proc.wait()
            log.close()
            lock.release()
    return status


# ---------------------------------------------------------------------------------------------------------------
# Reading one arm
# ---------------------------------------------------------------------------------------------------------------

def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file that may be being written: a torn last line is skipped."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def _float(v: Any) -> float:
    try:
        return float(v)  # the logger writes non-finite values as strings ("nan", "inf")
    except (TypeError, ValueError):
        return float("nan")


def validation_rows(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, float]]:
    """The validation rows of a run's metrics (those with `val/` keys), one per step (the last wins), by step."""
    by_step: dict[int, dict[str, float]] = {}
    for r in rows:
        if any(k.startswith("val/") for k in r):
            by_step[int(r["step"])] = {k: _float(v) for k, v in r.items()}
    return [by_step[s] for s in sorted(by_step)]


@dataclass
class ArmResult:
    """What one arm has on disk."""

    name: str
    objective: str
    seed: int
    path: str
    exists: bool = False
    config: dict[str, Any] | None = None
    total_steps: int | None = None
    trained_steps: int = 0
    train_status: str = "missing"     # complete | partial | missing
    validation: list[dict[str, float]] = field(default_factory=list)
    eval_status: str = "missing"      # complete | partial | stale | missing
    task_counts: dict[str, list[int]] = field(default_factory=dict)  # task -> [successes, trials]

    @property
    def status(self) -> str:
        if not self.exists:
            return "missing"
        return "complete" if self.train_status == self.eval_status == "complete" else "partial"

    def curve(self, key: str) -> list[tuple[int, float]]:
        """(step, value) of one validation key, finite values only."""
        return [(int(r["step"]), r[key]) for r in self.validation if key in r and math.isfinite(r[key])]


def _counts(records: Iterable[Mapping[str, Any]]) -> dict[str, list[int]]:
    counts: dict[str, list[int]] = {}
    for r in records:
        c = counts.setdefault(str(r["task"]), [0, 0])
        c[0] += int(bool(r["success"]))
        c[1] += 1
    return dict(sorted(counts.items()))


def load_arm(arm_dir: Path, name: str, objective: str, seed: int) -> ArmResult:
    """Read an arm's config, training progress, validation rows and evaluation counts."""
    a = ArmResult(name, objective, seed, str(arm_dir), exists=arm_dir.is_dir())
    if not a.exists:
        return a
    cfg_file = arm_dir / "demo_config.json"
    if cfg_file.is_file():
        a.config = json.loads(cfg_file.read_text())
        a.total_steps = int(a.config["steps"])
    rows = read_jsonl(arm_dir / "run" / "metrics.jsonl")
    a.trained_steps = max((int(r.get("step", 0)) for r in rows), default=0)
    a.validation = validation_rows(rows)
    ckpts = [int(p.name.split("-")[1]) for p in (arm_dir / "run" / "checkpoints").glob("step-*")
             if p.name.split("-")[1].isdigit()]
    if a.total_steps is not None and ckpts and max(ckpts) >= a.total_steps:
        a.train_status = "complete"
        a.trained_steps = max(a.trained_steps, max(ckpts))
    elif rows:
        a.train_status = "partial"
    # Evaluation: results.json once the sweep finished; episodes.jsonl while it runs (then partial).
    records = read_jsonl(arm_dir / "eval" / "episodes.jsonl")
    results_file = arm_dir / "eval" / "results.json"
    if results_file.is_file():
        res = json.loads(results_file.read_text())
        cks = list(res.get("checkpoints", {}).values())
        if cks:
            a.task_counts = {t: [int(r["successes"]), int(r["trials"])] for t, r in cks[-1]["tasks"].items()}
            a.eval_status = "complete"
    if records:
        last_ck = records[-1].get("checkpoint")
        counts = _counts(r for r in records if r.get("checkpoint") == last_ck)
        if sum(n for _, n in counts.values()) > sum(n for _, n in a.task_counts.values()):
            a.task_counts, a.eval_status = counts, "partial"  # a sweep still running past its last results.json
    if a.eval_status != "missing" and eval_is_stale(arm_dir):
        a.eval_status = "stale"  # scored an earlier checkpoint than the run's final one
    return a


def _final_checkpoint_time(arm_dir: Path) -> float | None:
    """When the newest complete checkpoint's weights were written (None without one)."""
    steps = sorted((arm_dir / "run" / "checkpoints").glob("step-*/model.safetensors"))
    return steps[-1].stat().st_mtime if steps else None


def eval_is_stale(arm_dir: Path) -> bool:
    """True when `<arm>/eval` scored an unfinished run: its episodes were written before the newest checkpoint,
    or training is not finished yet. The eval resumes by checkpoint *name* (the run dir), so the demo's eval
    phase would keep such episodes for the final weights; `set_aside_stale_eval` moves them out of its way."""
    log = arm_dir / "eval" / "episodes.jsonl"
    if not log.is_file():
        log = arm_dir / "eval" / "results.json"
        if not log.is_file():
            return False
    cfg_file = arm_dir / "demo_config.json"
    total = json.loads(cfg_file.read_text()).get("steps") if cfg_file.is_file() else None
    ckpts = [int(p.name.split("-")[1]) for p in (arm_dir / "run" / "checkpoints").glob("step-*")
             if p.name.split("-")[1].isdigit()]
    if total is None or not ckpts or max(ckpts) < int(total):
        return True
    final = _final_checkpoint_time(arm_dir)
    return final is not None and log.stat().st_mtime < final


def set_aside_stale_eval(arm_dir: Path) -> Path | None:
    """Rename a stale `<arm>/eval` to `<arm>/eval.stale-<time>` (kept, never deleted); returns the new path."""
    if not eval_is_stale(arm_dir):
        return None
    dest = arm_dir / f"eval.stale-{time.strftime('%Y%m%d-%H%M%S')}"
    os.replace(arm_dir / "eval", dest)
    print(f"{arm_dir / 'eval'} scored an unfinished run: moved to {dest}; the final checkpoint is scored anew",
          flush=True)
    return dest


# ---------------------------------------------------------------------------------------------------------------
# The maths
# ---------------------------------------------------------------------------------------------------------------

def mean_std(xs: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for one value, NaN mean for none)."""
    xs = [float(x) for x in xs]
    if not xs:
        return float("nan"), float("nan")
    m = sum(xs) / len(xs)
    if len(xs) == 1:
        return m, 0.0
    return m, math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def seed_mean_curve(curves: Sequence[Sequence[tuple[int, float]]]) -> list[dict[str, float]]:
    """Mean +- std over seeds at each step that every seed's curve has (a shorter seed cuts the curve)."""
    curves = [dict(c) for c in curves if c]
    if not curves:
        return []
    steps = sorted(set.intersection(*(set(c) for c in curves)))
    out = []
    for s in steps:
        m, sd = mean_std([c[s] for c in curves])
        out.append({"step": s, "mean": m, "std": sd, "seeds": len(curves)})
    return out


def steps_to_reach(curve: Sequence[Mapping[str, float]], target: float, *, higher_is_better: bool,
                   total_steps: int | None) -> dict[str, Any]:
    """The first validation step at which `curve` (rows with `step`, `mean`) is at least as good as `target`.

    No interpolation between validations. `ratio` = step / total_steps (None without a total or when not reached).
    """
    for row in curve:
        v = row["mean"]
        if (v >= target) if higher_is_better else (v <= target):
            step = int(row["step"])
            return {"reached": True, "step": step, "ratio": (step / total_steps) if total_steps else None,
                    "value": v, "target": target}
    return {"reached": False, "step": None, "ratio": None, "value": None, "target": target}


def pooled_counts(arms: Sequence[ArmResult]) -> dict[str, list[int]]:
    """task -> [successes, trials] summed over the arms (seeds pooled)."""
    pooled: dict[str, list[int]] = {}
    for a in arms:
        for task, (k, n) in a.task_counts.items():
            c = pooled.setdefault(task, [0, 0])
            c[0] += k
            c[1] += n
    return dict(sorted(pooled.items()))


def success_summary(arms: Sequence[ArmResult]) -> dict[str, Any] | None:
    """Per-task pooled rates with Wilson 95% intervals, their plain mean over tasks (interval: Wilson on the
    pooled counts) and SIMPLER's two averages (None for tasks outside SIMPLER's cells); None without episodes."""
    from selfflow_robot.evaluation.metrics import Rate, score

    pooled = pooled_counts(arms)
    if not pooled:
        return None
    tasks = {t: Rate.of(k, n) for t, (k, n) in pooled.items()}
    try:
        s = score([(t, True) for t, (k, _) in pooled.items() for _ in range(k)]
                  + [(t, False) for t, (k, n) in pooled.items() for _ in range(n - k)])
        simpler = {"simpler_average_task_columns": s.column_average, "simpler_average_sub_cells": s.sub_cell_average}
    except ValueError:  # a task that belongs to no SIMPLER sub-cell
        simpler = {"simpler_average_task_columns": None, "simpler_average_sub_cells": None}
    return {"tasks": {t: r.as_dict() for t, r in tasks.items()},
            "mean_over_tasks": Rate.mean_of(list(tasks.values())).as_dict(),
            "seeds": [a.seed for a in arms if a.task_counts], **simpler}


def final_validation(arms: Sequence[ArmResult], used: Sequence[ArmResult]) -> dict[str, Any]:
    """Per seed (every arm with validation rows): the last validation row; mean +- std over the `used` arms."""
    per_seed = {}
    for a in arms:
        if a.validation:
            last = a.validation[-1]
            per_seed[str(a.seed)] = {"step": int(last["step"]), "train": a.train_status,
                                     **{m.name: last.get(m.key) for m in METRICS},
                                     **{b: last.get(k) for b, k in BASELINES.items()}}
    summary = {}
    rows = [per_seed[str(a.seed)] for a in used if str(a.seed) in per_seed]
    for name in [m.name for m in METRICS] + list(BASELINES):
        vals = [r[name] for r in rows if r.get(name) is not None and math.isfinite(r[name])]
        if vals:
            m, sd = mean_std(vals)
            summary[name] = {"mean": m, "std": sd, "n": len(vals)}
    return {"per_seed": per_seed, "mean": summary, "seeds": [a.seed for a in used]}


def _used(arms: Sequence[ArmResult], done: str, has: str) -> tuple[list[ArmResult], bool]:
    """The arms a summary uses: those whose phase is complete, else (provisionally) those with any data."""
    complete = [a for a in arms if getattr(a, done) == "complete"]
    return (complete, True) if complete else ([a for a in arms if getattr(a, has)], False)


def compare(arms: Mapping[str, Sequence[ArmResult]], *, reference: str = "vanilla",
            candidate: str = "selfflow") -> dict[str, Any]:
    """The whole comparison (the `study.json` payload, less the run metadata) from the arms per objective.

    Per objective, curves and final numbers use the arms whose training is complete (success: whose
    evaluation is complete); only when there is none yet do they use the unfinished arms, flagged
    `curves_final: false` / `success_final: false`.
    """
    result: dict[str, Any] = {"objectives": {}, "steps_to_reach": {}, "goals": {}}
    for obj, obj_arms in arms.items():
        trained, curves_final = _used(obj_arms, "train_status", "validation")
        scored, success_final = _used(obj_arms, "eval_status", "task_counts")
        result["objectives"][obj] = {
            "arms": {a.name: {"status": a.status, "train": a.train_status, "eval": a.eval_status,
                              "trained_steps": a.trained_steps, "total_steps": a.total_steps,
                              "episodes": sum(n for _, n in a.task_counts.values())} for a in obj_arms},
            "final_validation": final_validation(obj_arms, trained),
            "curves_final": curves_final,
            "curves": {m.name: seed_mean_curve([a.curve(m.key) for a in trained]) for m in METRICS},
            "success_final": success_final,
            "success": success_summary(scored),
        }
    if reference in arms and candidate in arms:
        ref, cand = result["objectives"][reference], result["objectives"][candidate]
        totals = [a.total_steps for a in arms[candidate] if a.total_steps]
        total = max(totals) if totals else None
        for m in METRICS:
            ref_curve, cand_curve = ref["curves"][m.name], cand["curves"][m.name]
            if not ref_curve or not cand_curve:
                result["steps_to_reach"][m.name] = None
                continue
            target = ref_curve[-1]["mean"]
            r = steps_to_reach(cand_curve, target, higher_is_better=m.higher_is_better, total_steps=total)
            r.update({"reference_step": int(ref_curve[-1]["step"]), "reference_final": ref["curves_final"],
                      "total_steps": total, "candidate_last_step": int(cand_curve[-1]["step"]),
                      "candidate_final": cand["curves_final"]})
            result["steps_to_reach"][m.name] = r
        result["goals"] = goals(result, reference=reference, candidate=candidate)
    return result


def goals(result: Mapping[str, Any], *, reference: str = "vanilla", candidate: str = "selfflow") -> dict[str, Any]:
    """The issue's two goals, judged from the numbers: met / not met / undecided (with the reason).

    Goal 1 needs a finished reference (its final MSE is the target); an unfinished candidate can already
    have met it (reached within half the steps) or missed it (past half the steps without reaching it).
    Goal 2 needs a finished evaluation of both objectives.
    """
    out: dict[str, Any] = {}
    r = result["steps_to_reach"].get(HEADLINE_MSE)
    if r is None:
        out["half_steps"] = {"verdict": "undecided", "why": "no validation curve for one of the objectives yet"}
    elif not r["reference_final"]:
        out["half_steps"] = {"verdict": "undecided",
                             "why": f"no {reference} arm has finished training, so its final action MSE is not "
                                    f"known (at step {r['reference_step']} it is {r['target']:.4g})"}
    elif r["reached"]:
        met = r["ratio"] is not None and r["ratio"] <= GOAL_RATIO
        out["half_steps"] = {"verdict": "met" if met else "not met",
                             "why": f"{candidate} reached {reference}'s final action MSE {r['target']:.4g} at step "
                                    f"{r['step']} of {r['total_steps']} (ratio {_num(r['ratio'], '.2f')}; goal <= "
                                    f"{GOAL_RATIO:g})"}
    else:
        past_half = r["total_steps"] and r["candidate_last_step"] >= GOAL_RATIO * r["total_steps"]
        decided = r["candidate_final"] or past_half
        out["half_steps"] = {"verdict": "not met" if decided else "undecided",
                             "why": f"{candidate} has not reached {reference}'s final action MSE {r['target']:.4g} "
                                    f"by its last validation (step {r['candidate_last_step']}"
                                    + (f" of {r['total_steps']})" if r["total_steps"] else ")")
                                    + ("" if decided else "; its training goes on")}
    objs = result["objectives"]
    ref_s, cand_s = objs[reference]["success"], objs[candidate]["success"]
    if not ref_s or not cand_s:
        out["success_ahead"] = {"verdict": "undecided", "why": "one of the objectives has no evaluated episodes yet"}
    else:
        a, b = cand_s["mean_over_tasks"], ref_s["mean_over_tasks"]
        overlap = a["ci95"][0] <= b["ci95"][1] and b["ci95"][0] <= a["ci95"][1]
        final = objs[reference]["success_final"] and objs[candidate]["success_final"]
        verdict = ("met" if a["rate"] > b["rate"] else "not met") if final else "undecided"
        out["success_ahead"] = {
            "verdict": verdict, "significant": not overlap,
            "why": ("" if final else "evaluations are still running; so far ")
                   + f"mean success over tasks {candidate} {_pct(a['rate'])} ({a['successes']}/{a['trials']}) vs "
                   f"{reference} {_pct(b['rate'])} ({b['successes']}/{b['trials']}); Wilson 95% intervals "
                   + ("overlap, so the difference is within noise at this many episodes" if overlap
                      else "do not overlap")}
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{100 * x:.1f}%"


def _num(x: float | None, fmt: str = ".4g") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return format(x, fmt)


# ---------------------------------------------------------------------------------------------------------------
# Report: study.md, study.json, two plots
# ---------------------------------------------------------------------------------------------------------------

def verdict_paragraph(result: Mapping[str, Any], partial: bool, *, reference: str = "vanilla",
                      candidate: str = "selfflow") -> str:
    """One honest paragraph generated from the numbers."""
    g = result.get("goals") or {}
    if not g:
        return (f"No verdict: the study needs both `{candidate}` and `{reference}` arms; "
                f"found {sorted(result['objectives'])}.")
    hs, sa = g["half_steps"], g["success_ahead"]
    parts = []
    head = "Provisional verdict (some arms are unfinished or missing, see Arms): " if partial else "Verdict: "
    parts.append(f"goal 1 (Self-Flow reaches vanilla's final held-out action MSE in <= {GOAL_RATIO:g} of the "
                 f"steps) is **{hs['verdict']}**: {hs['why']}.")
    parts.append(f"Goal 2 (Self-Flow ends ahead on suite success) is **{sa['verdict']}**: {sa['why']}.")
    p = result["steps_to_reach"].get(HEADLINE_PSNR)
    if p:
        which = "final" if p["reference_final"] else f"latest (step {p['reference_step']}, still training)"
        parts.append(f"On world-model PSNR, {candidate} " + (
            f"reached {reference}'s {which} {p['target']:.2f} dB at step {p['step']} "
            f"(ratio {_num(p['ratio'], '.2f')})." if p["reached"] else
            f"has not reached {reference}'s {which} {p['target']:.2f} dB by step {p['candidate_last_step']}."))
    fv_c = result["objectives"][candidate]["final_validation"]["mean"].get(HEADLINE_MSE)
    fv_r = result["objectives"][reference]["final_validation"]["mean"].get(HEADLINE_MSE)
    if fv_c and fv_r:
        done = result["objectives"][candidate]["curves_final"] and result["objectives"][reference]["curves_final"]
        parts.append(f"{'Final' if done else 'Latest (training goes on)'} held-out action MSE: {candidate} {fv_c['mean']:.4g} +- {fv_c['std']:.2g} "
                     f"({fv_c['n']} seed(s)) vs {reference} {fv_r['mean']:.4g} +- {fv_r['std']:.2g} "
                     f"({fv_r['n']} seed(s)).")
    return head + " ".join(parts)


def _md_table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(r) + " |" for r in rows]


def markdown(study: Mapping[str, Any]) -> str:
    """`study.md` from the `study.json` payload."""
    res = study["result"]
    objs = list(res["objectives"])
    lines = ["# Self-Flow vs vanilla flow matching: side-by-side study", ""]
    if study["partial"]:
        lines += [("> **PARTIAL RESULTS**: not every arm has finished (or started); the numbers below use what is on "
                  "disk now and will change. Rerun the command below to finish the arms."), ""]
    lines += [verdict_paragraph(res, study["partial"]), "",
              (f"Written {study['written']} from `{study['out']}`. Reproduce (runs or resumes every arm, then writes "
              "this report; run from the repository root):"), "", "```", study["command"], "```", ""]
    if study.get("settings_differ"):
        lines += ["**Warning: the arms' settings differ** (the comparison is not like for like): "
                  + "; ".join(f"`{k}`: {v}" for k, v in study["settings_differ"].items()), ""]
    # Arms
    lines += ["## Arms", ""]
    rows = []
    for obj in objs:
        for name, a in res["objectives"][obj]["arms"].items():
            rows.append([f"`{name}`", a["status"], f"{a['train']} ({a['trained_steps']}/{a['total_steps'] or '?'})",
                         f"{a['eval']} ({a['episodes']} episode(s))"])
    lines += _md_table(["arm", "status", "training (steps)", "evaluation"], rows) + [""]
    if any(a["eval"] == "stale" for o in objs for a in res["objectives"][o]["arms"].values()):
        lines += [("Evaluation `stale`: it scored a checkpoint from before the end of training; those episodes count "
                  "only provisionally. Rerunning the study command moves such `eval/` dirs aside (to "
                  "`eval.stale-<time>`) and scores the final checkpoint."), ""]
    # Final validation
    lines += ["## Held-out validation at the final validation step", "",
              ("Normalised action MSE (lower is better) and next-frames PSNR (dB, higher is better) on held-out "
              "demo windows, sampled (the policy's/world model's real output) and 1-step estimate."), ""]
    head = ["objective", "seed", "step"] + [m.label for m in METRICS] + ["PSNR copy-last-frame"]
    rows = []
    for obj in objs:
        fv = res["objectives"][obj]["final_validation"]
        for seed, r in fv["per_seed"].items():
            step = str(r["step"]) + ("" if r["train"] == "complete" else " (training)")
            rows.append([obj, seed, step] + [_num(r.get(m.name)) for m in METRICS]
                        + [_num(r.get("psnr_copy_last"))])
        if fv["mean"]:
            which = ("finished" if res["objectives"][obj]["curves_final"] else "unfinished") + " seeds " + ",".join(
                map(str, fv["seeds"]))
            rows.append([f"**{obj}**", f"mean +- std ({which})", ""]
                        + [f"{_num(fv['mean'][n]['mean'])} +- {_num(fv['mean'][n]['std'], '.2g')}" if n in fv["mean"]
                           else "n/a" for n in [m.name for m in METRICS] + ["psnr_copy_last"]])
    lines += _md_table(head, rows) + [""]
    # Steps to reach
    if res["steps_to_reach"]:
        lines += ["## Steps for Self-Flow to reach vanilla's final quality", "",
                  ("Target: vanilla's seed-mean value at its last validation (over the seeds that finished "
                  "training). Reached: the first validation step at "
                  "which Self-Flow's seed-mean curve is at least as good (no interpolation between validations). "
                  f"Goal for the action MSE: ratio <= {GOAL_RATIO:g}."), ""]
        rows = []
        for m in METRICS:
            r = res["steps_to_reach"].get(m.name)
            if r is None:
                rows.append([m.label, "n/a", "n/a", "n/a", "no curve"])
                continue
            rows.append([m.label, f"{_num(r['target'])} (step {r['reference_step']}"
                         + (")" if r["reference_final"] else ", still training)"),
                         str(r["step"]) if r["reached"] else f"not reached (by step {r['candidate_last_step']})",
                         str(r["total_steps"]), _num(r["ratio"], ".2f") if r["reached"] else "not reached"])
        lines += _md_table(["metric", "vanilla final", "Self-Flow reaches it at", "total steps", "ratio"], rows)
        lines += ["", f"![validation curves]({CURVES_PNG})", ""]
    # Success
    lines += ["## Suite success (seeds pooled, Wilson 95% intervals)", ""]
    tasks = sorted({t for o in objs if res["objectives"][o]["success"] for t in res["objectives"][o]["success"]["tasks"]})
    if tasks:
        rows = []
        for t in tasks + ["mean over tasks"]:
            row = [t if t != "mean over tasks" else "**mean over tasks**"]
            for o in objs:
                s = res["objectives"][o]["success"]
                r = (s["mean_over_tasks"] if t == "mean over tasks" else s["tasks"].get(t)) if s else None
                row.append("n/a" if r is None else f"{_pct(r['rate'])} [{_pct(r['ci95'][0])}-{_pct(r['ci95'][1])}] "
                                                   f"({r['successes']}/{r['trials']})")
            rows.append(row)
        lines += _md_table(["task"] + objs, rows)
        lines += ["", "Mean over tasks: plain mean of the task rates; its interval is Wilson on the pooled counts.",
                  "", f"![success per task]({SUCCESS_PNG})", ""]
    else:
        lines += ["no evaluated episodes yet", ""]
    lines += ["## Per-arm reports", ""]
    for obj in objs:
        for name in res["objectives"][obj]["arms"]:
            lines.append(f"- `{name}`: `{Path(study['out']) / name / 'report' / 'report.md'}`")
    return "\n".join(lines) + "\n"


def _save_fig(fig: Any, path: Path) -> None:
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


COLOURS = {"selfflow": "C3", "vanilla": "C0"}


def plot_curves(arms: Mapping[str, Sequence[ArmResult]], result: Mapping[str, Any], path: Path) -> Path:
    """Validation action MSE and PSNR vs step: thin line per seed, thick seed mean, vanilla's final as a target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(11, 7), dpi=100)
    for ax, m in zip(axes.flat, METRICS):
        for i, (obj, obj_arms) in enumerate(arms.items()):
            colour = COLOURS.get(obj, f"C{i + 4}")
            for a in obj_arms:
                c = a.curve(m.key)
                if c:
                    ax.plot([s for s, _ in c], [v for _, v in c], color=colour, lw=0.8, alpha=0.45)
            mc = result["objectives"][obj]["curves"][m.name]
            if mc:
                ax.plot([r["step"] for r in mc], [r["mean"] for r in mc], color=colour, lw=2.6,
                        marker="o", ms=3, label=f"{obj} (mean of {mc[0]['seeds']} seed(s))")
        r = result["steps_to_reach"].get(m.name)
        if r:
            ax.axhline(r["target"], color="grey", ls="--", lw=1,
                       label="vanilla final" if r["reference_final"] else "vanilla latest (still training)")
            if r["reached"]:
                ax.axvline(r["step"], color=COLOURS["selfflow"], ls=":", lw=1.2,
                           label=f"Self-Flow reaches it: step {r['step']}")
        if m.name.startswith("psnr"):
            copy = [(int(x["step"]), x["val/psnr_copy_last"]) for a in next(iter(arms.values()), [])[:1]
                    for x in a.validation if "val/psnr_copy_last" in x]
            if copy:
                ax.plot([s for s, _ in copy], [v for _, v in copy], color="k", ls=":", lw=1, label="copy last frame")
        ax.set_title(m.label, fontsize=9, loc="left")
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle("Held-out validation: Self-Flow vs vanilla flow matching (thin: seeds, thick: mean)", fontsize=10)
    fig.tight_layout()
    _save_fig(fig, path)
    return path


def plot_success(result: Mapping[str, Any], path: Path) -> Path:
    """Per-task success bars (seeds pooled) with Wilson 95% error bars, both objectives side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    objs = [o for o in result["objectives"] if result["objectives"][o]["success"]]
    tasks = sorted({t for o in objs for t in result["objectives"][o]["success"]["tasks"]})
    groups = tasks + ["mean over tasks"]
    width = 0.8 / max(len(objs), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.5 * len(groups) + 2.5), 3.8), dpi=100)
    for i, o in enumerate(objs):
        s = result["objectives"][o]["success"]
        rs = [s["tasks"].get(t) for t in tasks] + [s["mean_over_tasks"]]
        ys = [100 * r["rate"] if r else 0.0 for r in rs]
        lo = [100 * (r["rate"] - r["ci95"][0]) if r else 0.0 for r in rs]
        hi = [100 * (r["ci95"][1] - r["rate"]) if r else 0.0 for r in rs]
        xs = [x - 0.4 + width * (i + 0.5) for x in range(len(groups))]
        bars = ax.bar(xs, ys, width, yerr=[lo, hi], capsize=3, color=COLOURS.get(o, f"C{i + 4}"),
                      label=f"{o} ({len(s['seeds'])} seed(s) pooled)")
        # counts on the bars: a 0% bar is otherwise invisible
        ax.bar_label(bars, [f"{r['successes']}/{r['trials']}" if r else "" for r in rs], fontsize=7, padding=2)
    ax.set_xticks(range(len(groups)), [g.replace("_", " ") for g in groups], fontsize=8, rotation=15)
    ax.set_ylim(0, 110)
    ax.set_ylabel("success %")
    ax.set_title("Suite success per task, seeds pooled (error bars: Wilson 95%)", fontsize=9, loc="left")
    if objs:
        ax.legend(fontsize=8)
    fig.tight_layout()
    _save_fig(fig, path)
    return path


def load_study(out: Path, seeds: Sequence[int], objectives: Sequence[str]) -> dict[str, list[ArmResult]]:
    """The arms of a study dir, per objective (arms not started come back with status `missing`)."""
    return {o: [load_arm(out / arm_name(o, s), arm_name(o, s), o, s) for s in seeds] for o in objectives}


def write_comparison(out: Path, seeds: Sequence[int], objectives: Sequence[str], *, report_dir: Path | None = None,
                     command: str | None = None) -> dict[str, Path]:
    """Read the arms under `out` and write study.json, study.md and the two plots into `report_dir` (default `out`).

    Only reads `out`: pointing `report_dir` elsewhere compares a study that is still running without touching it.
    """
    from selfflow_robot.experiments.demo.run import DemoConfig
    from selfflow_robot.evaluation.report import atomic_write_text

    for o in objectives:
        check_choice("objective", o, list(OBJECTIVES))
    out = Path(out).resolve()
    report_dir = Path(report_dir).resolve() if report_dir else out
    arms = load_study(out, seeds, objectives)
    present = [a for obj_arms in arms.values() for a in obj_arms if a.exists]
    if not present:
        raise UserError(f"no arms under {out} (looked for {[arm_name(o, s) for o in objectives for s in seeds]}); "
                        "run the study first, or check --out, --seeds and --objectives")
    # Settings: every arm must have been run with the same settings, else say how they differ.
    configs = {a.name: settings_of(a.config) for a in present if a.config}
    differ: dict[str, str] = {}
    if configs:
        keys = sorted({k for c in configs.values() for k in c})
        for k in keys:
            vals = {n: c.get(k) for n, c in configs.items()}
            if len({json.dumps(v, sort_keys=True) for v in vals.values()}) > 1:
                differ[k] = ", ".join(f"{n}={v}" for n, v in vals.items())
    if command is None:  # rebuild the command from the first arm's recorded settings
        first = next(a for a in present if a.config) if configs else None
        overrides = []
        if first is not None:
            defaults = structured(DemoConfig, load_config("demo"))
            overrides = overrides_from_config(first.config, defaults)
        demos_link = Path(present[0].path) / DEMOS_DIR
        demos = demos_link.resolve() if demos_link.is_symlink() else None
        if demos is not None and demos == (out / DEMOS_DIR).resolve():
            demos = None
        command = study_command(out, seeds, objectives, overrides, demos,
                                workers=(first.config.get("workers") if first is not None else None))
    result = compare(arms)
    partial = any(a.status != "complete" for obj_arms in arms.values() for a in obj_arms)
    study = {"out": str(out), "written": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
             "command": command, "seeds": list(seeds), "objectives": list(objectives), "partial": partial,
             "settings_differ": differ, "result": result}
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": report_dir / STUDY_JSON, "md": report_dir / STUDY_MD,
             "curves": plot_curves(arms, result, report_dir / CURVES_PNG),
             "success": plot_success(result, report_dir / SUCCESS_PNG)}
    atomic_write_text(paths["json"], json.dumps(_finite(study), indent=2, default=_json_default, allow_nan=False) + "\n")
    atomic_write_text(paths["md"], markdown(study))
    for f in (paths["json"], paths["md"]):
        f.chmod(0o644)  # the temp-file rename leaves 0600; these are reports to share
    return paths


def _finite(o: Any) -> Any:
    """NaN/inf -> None, recursively, so study.json is strict JSON."""
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, Mapping):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite(v) for v in o]
    return o


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


__all__ = [
    "ArmLock", "ArmResult", "METRICS", "OBJECTIVES", "arm_name", "arm_overrides", "check_demos", "compare",
    "demo_config", "final_validation", "goals", "link_demos", "load_arm", "load_study", "markdown", "mean_std",
    "overrides_from_config", "pooled_counts", "prepare_demos", "process_running", "run_arms", "eval_is_stale", "set_aside_stale_eval", "seed_mean_curve",
    "steps_to_reach", "study_command", "success_summary", "validation_rows", "write_comparison"
]
