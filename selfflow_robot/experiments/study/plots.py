"""The study's two plots: validation curves per objective (seeds and their mean) and suite success per task."""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from selfflow_robot.experiments.study.arms import ArmResult
from selfflow_robot.experiments.study.results import METRICS


def save_figure(fig: Figure, path: Path) -> None:
    """Write `fig` to `path` atomically (a temp file renamed over it): a reader never sees half a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp)
    os.replace(tmp, path)


COLOURS = {"selfflow": "C3", "vanilla": "C0"}


def plot_study_curves(arms: Mapping[str, Sequence[ArmResult]], result: Mapping[str, Any], path: Path) -> Path:
    """Validation action MSE and PSNR vs step: thin line per seed, thick seed mean, vanilla's final as a target."""
    fig = Figure(figsize=(11, 7), dpi=100)
    axes = fig.subplots(2, 2)
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
    save_figure(fig, path)
    return path


def plot_study_success(result: Mapping[str, Any], path: Path) -> Path:
    """Per-task success bars (seeds pooled) with Wilson 95% error bars, both objectives side by side."""
    objs = [o for o in result["objectives"] if result["objectives"][o]["success"]]
    tasks = sorted({t for o in objs for t in result["objectives"][o]["success"]["tasks"]})
    groups = tasks + ["mean over tasks"]
    width = 0.8 / max(len(objs), 1)
    fig = Figure(figsize=(max(6.0, 1.5 * len(groups) + 2.5), 3.8), dpi=100)
    ax = fig.subplots()
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
    save_figure(fig, path)
    return path


__all__ = ["COLOURS", "plot_study_curves", "plot_study_success", "save_figure"]
