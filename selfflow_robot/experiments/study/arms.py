"""What each arm of a study has on disk: its config, training progress, validation rows and evaluation counts.

An arm is a `selfflow-robot demo` output dir; it is read while it may still be running: `run/metrics.jsonl`
(`val/...` rows), `eval/results.json` (or, while the evaluation runs, `eval/episodes.jsonl`) and
`demo_config.json`. Arms that are not finished read as partial, arms that are not started as missing.
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfflow_robot.checkpoint import CHECKPOINTS_DIR
from selfflow_robot.constants import MODEL_FILE
from selfflow_robot.evaluation.evaluate import read_records
from selfflow_robot.experiments.demo.config import CONFIG_RECORD, phase_dir
from selfflow_robot.experiments.study.config import arm_name
from selfflow_robot.train.logger import METRICS_FILE


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
        """`complete` (trained and scored), `partial` or `missing`."""
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


def _checkpoint_steps(arm_dir: Path) -> list[int]:
    """The steps of the arm's `run/checkpoints/step-N` folders."""
    return [int(p.name.split("-")[1]) for p in (phase_dir(arm_dir, "train") / CHECKPOINTS_DIR).glob("step-*")
            if p.name.split("-")[1].isdigit()]


def load_arm(arm_dir: Path, name: str, objective: str, seed: int) -> ArmResult:
    """Read an arm's config, training progress, validation rows and evaluation counts."""
    a = ArmResult(name, objective, seed, str(arm_dir), exists=arm_dir.is_dir())
    if not a.exists:
        return a
    cfg_file = arm_dir / CONFIG_RECORD
    if cfg_file.is_file():
        a.config = json.loads(cfg_file.read_text())
        a.total_steps = int(a.config["steps"])
    rows = read_records(phase_dir(arm_dir, "train") / METRICS_FILE)
    a.trained_steps = max((int(r.get("step", 0)) for r in rows), default=0)
    a.validation = validation_rows(rows)
    ckpts = _checkpoint_steps(arm_dir)
    if a.total_steps is not None and ckpts and max(ckpts) >= a.total_steps:
        a.train_status = "complete"
        a.trained_steps = max(a.trained_steps, max(ckpts))
    elif rows:
        a.train_status = "partial"
    # Evaluation: results.json once the sweep finished; episodes.jsonl while it runs (then partial).
    eval_dir = phase_dir(arm_dir, "eval")
    records = read_records(eval_dir / "episodes.jsonl")
    results_file = eval_dir / "results.json"
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


def load_study(out: Path, seeds: Sequence[int], objectives: Sequence[str]) -> dict[str, list[ArmResult]]:
    """The arms of a study dir, per objective (arms not started come back with status `missing`)."""
    return {o: [load_arm(out / arm_name(o, s), arm_name(o, s), o, s) for s in seeds] for o in objectives}


def _final_checkpoint_time(arm_dir: Path) -> float | None:
    """When the newest complete checkpoint's weights were written (None without one)."""
    steps = sorted((phase_dir(arm_dir, "train") / CHECKPOINTS_DIR).glob(f"step-*/{MODEL_FILE}"))
    return steps[-1].stat().st_mtime if steps else None


def eval_is_stale(arm_dir: Path) -> bool:
    """True when `<arm>/eval` scored an unfinished run: its episodes were written before the newest checkpoint,
    or training is not finished yet. The eval resumes by checkpoint *name* (the run dir), so the demo's eval
    phase would keep such episodes for the final weights; `run.set_aside_stale_eval` moves them out of its way."""
    eval_dir = phase_dir(arm_dir, "eval")
    log = eval_dir / "episodes.jsonl"
    if not log.is_file():
        log = eval_dir / "results.json"
        if not log.is_file():
            return False
    cfg_file = arm_dir / CONFIG_RECORD
    total = json.loads(cfg_file.read_text()).get("steps") if cfg_file.is_file() else None
    ckpts = _checkpoint_steps(arm_dir)
    if total is None or not ckpts or max(ckpts) < int(total):
        return True
    final = _final_checkpoint_time(arm_dir)
    return final is not None and log.stat().st_mtime < final


__all__ = ["ArmResult", "eval_is_stale", "load_arm", "load_study", "validation_rows"]
