"""The demo's learning curve (phase `curve`): suite success and held-out metrics of its checkpoints against
the training signals (windows x noise draws) each had seen.

    selfflow-robot demo 'phases=[curve]'                        # every checkpoint the run kept
    selfflow-robot demo 'phases=[curve]' 'curve_steps=[500,2000,8000]'

Each checkpoint is scored on the same grid episodes as the `eval` phase (`<out>/curve/`, finished episodes are
kept, so a rerun after more training scores only the new checkpoints); the held-out metrics are the run's
validation at that step. Writes `curve.json`, `curve.md` and `curve.png`.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from selfflow_robot.checkpoint import list_checkpoints
from selfflow_robot.errors import ConfigError
from selfflow_robot.evaluation.config import EvalConfig
from selfflow_robot.evaluation.evaluate import (
    EPISODES_FILE,
    append_record,
    read_records,
    record_key,
    run_sweep,
    summarize_success,
)
from selfflow_robot.evaluation.report import atomic_write_text
from selfflow_robot.evaluation.suites import checkpoint_name
from selfflow_robot.experiments.demo.config import DemoConfig, phase_dir
from selfflow_robot.experiments.demo.results import read_demo_results
from selfflow_robot.train.logger import read_metrics

CURVE_DIR = "curve"
# held-out metric key -> (label, baseline key)
METRICS = {"val/action_mse_norm": ("action MSE, sampled", "val/action_mse_norm_mean_baseline"),
           "val/action_mse_norm_1step": ("action MSE, 1-step", "val/action_mse_norm_mean_baseline"),
           "val/psnr": ("world-model PSNR (dB), sampled", "val/psnr_copy_last"),
           "val/psnr_1step": ("world-model PSNR (dB), 1-step", "val/psnr_copy_last")}


def family(task: str) -> str:
    """The task family a success count is pooled over: `close_top_drawer` -> `close`."""
    return task.split("_")[0]


def validation_at(rows: Sequence[Mapping[str, Any]], step: int) -> dict[str, float]:
    """The run's last validation at or before `step` ({} if none)."""
    best: dict[str, float] = {}
    for r in rows:
        if int(r["step"]) <= step and any(k.startswith("val/") for k in r):
            best = {k: float(v) for k, v in r.items() if k.startswith("val/") or k == "step"}
    return best


def adopt_eval_episodes(eval_dir: Path, dest: Path, ckpts: Sequence[Path]) -> int:
    """Copy the `eval` phase's finished episodes of `ckpts` into the curve's episode log (same suite, grid and
    policy options), so the checkpoint the demo already scored is not scored again; returns how many."""
    names = {checkpoint_name(str(c)) for c in ckpts}
    log = dest / EPISODES_FILE
    have = {record_key(r) for r in read_records(log)}
    new = [r for r in read_records(eval_dir / EPISODES_FILE) if r["checkpoint"] in names and record_key(r) not in have]
    if new:
        dest.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            for r in new:
                append_record(f, r)
        print(f"curve: reusing {len(new)} episodes the eval phase scored")
    return len(new)


def curve_points(cfg: DemoConfig, out: Path) -> list[dict[str, Any]]:
    """Score the chosen checkpoints in the suite; one point per checkpoint (step, signals, success, metrics)."""
    run = phase_dir(out, "train")
    kept = dict(list_checkpoints(run))
    steps = sorted(kept) if cfg.curve_steps is None else sorted(cfg.curve_steps)
    missing = [s for s in steps if s not in kept]
    if missing or not steps:
        raise ConfigError(f"{run}: no checkpoint for step(s) {missing or '(any)'}; it keeps {sorted(kept)} "
                          "(train with a larger train.keep_last to keep more)")
    dest = out / CURVE_DIR
    adopt_eval_episodes(phase_dir(out, "eval"), dest, [kept[s] for s in steps])
    e = EvalConfig(ckpt=[str(kept[s]) for s in steps], suite=cfg.suite, tasks=cfg.tasks,
                   max_episodes=cfg.eval_episodes_per_task, output_dir=str(dest), workers=cfg.workers,
                   asset_root=cfg.assets, policy_options=dict(cfg.policy_options))
    records = run_sweep(e)["records"]
    by_step: dict[int, list[dict]] = {}
    for r in records:
        m = re.search(r"step-(\d+)", str(r["checkpoint"]))
        if m:
            by_step.setdefault(int(m[1]), []).append(r)
    results = read_demo_results(out)
    rows = read_metrics(run)
    points = []
    for s in steps:
        results.trained_to = s
        seen = results.training_seen() or {}
        counts: dict[str, list[int]] = {}
        for task, (ok, n) in summarize_success(by_step.get(s, [])).items():
            c = counts.setdefault(family(task), [0, 0])
            c[0], c[1] = c[0] + ok, c[1] + n
        points.append({"step": s, **seen, "success": counts, "validation": validation_at(rows, s)})
    return points


def curve_markdown(points: Sequence[Mapping[str, Any]]) -> str:
    """The points as a markdown table."""
    families = sorted({f for p in points for f in p["success"]})
    head = ["step", "windows", "training signals", *families, *(label for label, _ in METRICS.values())]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for p in points:
        v = p["validation"]
        cells = [f"{p['step']:,}", f"{int(p.get('windows', 0)):,}", f"{int(p.get('signals', 0)):,}",
                 *(f"{p['success'].get(f, [0, 0])[0]}/{p['success'].get(f, [0, 0])[1]}" for f in families),
                 *(f"{v[k]:.3f}" if k in v else "-" for k in METRICS)]
        lines.append("| " + " | ".join(cells) + " |")
    base = points[-1]["validation"] if points else {}
    notes = [f"{METRICS[k][0].split(',')[0]} baseline ({b.split('/')[-1]}): {base[b]:.3f}"
             for k, (_, b) in list(METRICS.items())[::2] if b in base]
    return "\n".join(lines) + ("\n\n" + "; ".join(notes) + "\n" if notes else "\n")


def plot_curve(points: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Success per task family, held-out action MSE and PSNR against training signals (log x)."""
    fig = Figure(figsize=(14, 4), dpi=100)
    ax_s, ax_a, ax_p = fig.subplots(1, 3)
    x = [max(1, int(p.get("signals", 0))) for p in points]
    for f in sorted({f for p in points for f in p["success"]}):
        rate = [p["success"][f][0] / max(1, p["success"][f][1]) if f in p["success"] else float("nan")
                for p in points]
        ax_s.plot(x, rate, marker="o", label=f)
    ax_s.set(ylim=(-0.02, 1.02), ylabel="suite success", title="success in the suite")
    for ax, keys in ((ax_a, ("val/action_mse_norm", "val/action_mse_norm_1step")),
                     (ax_p, ("val/psnr", "val/psnr_1step"))):
        for k in keys:
            ax.plot(x, [p["validation"].get(k, float("nan")) for p in points], marker="o", label=METRICS[k][0])
        base = METRICS[keys[0]][1]
        if points and base in points[-1]["validation"]:
            ax.axhline(points[-1]["validation"][base], color="grey", ls="--", label=base.split("/")[-1])
        ax.set(title="held-out demos", ylabel=METRICS[keys[0]][0].split(",")[0])
    for ax in (ax_s, ax_a, ax_p):
        ax.set_xscale("log")
        ax.set_xlabel("training signals seen (windows x noise draws)")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    return path


def curve_phase(cfg: DemoConfig, out: Path) -> dict[str, Any]:
    """Score the checkpoints, write `curve.json`, `curve.md`, `curve.png`; returns the points."""
    points = curve_points(cfg, out)
    dest = out / CURVE_DIR
    atomic_write_text(dest / "curve.json", json.dumps(points, indent=2))
    atomic_write_text(dest / "curve.md", curve_markdown(points))
    plot_curve(points, dest / "curve.png")
    print(curve_markdown(points))
    print(f"learning curve: {dest / 'curve.md'}, {dest / 'curve.png'}")
    return {"points": points}


__all__ = ["CURVE_DIR", "adopt_eval_episodes", "curve_markdown", "curve_phase", "curve_points", "family",
           "plot_curve", "validation_at"]
