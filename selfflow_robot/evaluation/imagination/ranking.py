"""How well success in imagination ranks policies the way the port does: per policy both success rates with
Wilson intervals; across policies Pearson's r and SimplerEnv's mean maximum rank violation (MMRV) on the
drawer column (the mean of open and close, SIMPLER's convention); per episode how often the two agree.

The port's outcomes come from `selfflow-robot eval` folders (`episodes.jsonl`), matched to a policy by its
checkpoint path and to an imagined episode by (task, grid episode).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from selfflow_robot.checkpoint import CheckpointError, find_checkpoint
from selfflow_robot.evaluation.evaluate import EPISODES_FILE, read_records
from selfflow_robot.evaluation.metrics import DRAWER, Rate, SuiteScore, mmrv, pearson, score
from selfflow_robot.files import atomic_write_bytes

Key = tuple[str, int]  # (task, grid episode)


@dataclass
class PolicyResult:
    """One policy: its imagined outcomes, the port's on the same episodes (empty when none were given), the CPU
    seconds each cost, and for a replay the mean PSNR (dB) of the imagined frames and of copying the start frame
    against the port's video."""

    name: str
    path: str
    imagined: dict[Key, bool]
    port: dict[Key, bool] = field(default_factory=dict)
    imagined_cpu_s: float = 0.0
    port_cpu_s: float = 0.0
    replay_psnr: tuple[float, float] | None = None

    def scores(self) -> tuple[SuiteScore, SuiteScore | None]:
        """(imagined, port) suite scores over the episodes both have (all imagined ones when no port)."""
        keys = [k for k in self.imagined if k in self.port] if self.port else list(self.imagined)
        sim = score((k[0], self.imagined[k]) for k in keys)
        return sim, (score((k[0], self.port[k]) for k in keys) if self.port else None)

    def agreement(self) -> float:
        """Share of the shared episodes where the imagined outcome equals the port's."""
        keys = [k for k in self.imagined if k in self.port]
        return sum(self.imagined[k] == self.port[k] for k in keys) / len(keys) if keys else float("nan")


def port_records(sweeps: Sequence[str], checkpoint: str) -> list[dict[str, Any]]:
    """The `episodes.jsonl` records of `checkpoint` in the eval folders `sweeps`. A run folder also matches the
    records of its newest step folder, which is what it loads."""
    want = set(checkpoint_aliases(checkpoint))
    return [r for d in sweeps for r in read_records(Path(d) / EPISODES_FILE)
            if r.get("checkpoint_path") and str(Path(r["checkpoint_path"]).resolve()) in want]


def port_outcomes(records: Sequence[Mapping[str, Any]]) -> tuple[dict[Key, bool], float]:
    """Success per (task, episode) in port records, and their summed episode seconds (each episode runs
    single-threaded in its worker, so that is its CPU time). An episode found twice (a report adopting another
    folder's records) counts once."""
    out: dict[Key, bool] = {}
    seconds: dict[Key, float] = {}
    for r in records:
        key = (r["task"], int(r["episode"]))
        out[key] = bool(r["success"])
        seconds[key] = float(r.get("seconds", 0.0))
    return out, sum(seconds.values())


def checkpoint_aliases(checkpoint: str) -> list[str]:
    """The resolved path of a checkpoint and of the step folder it loads (a run folder's newest)."""
    paths = [str(Path(checkpoint).resolve())]
    try:
        paths.append(str(find_checkpoint(checkpoint).resolve()))
    except CheckpointError:
        pass
    return paths


def _drawer(s: SuiteScore) -> Rate:
    return s.columns[DRAWER]


def ranking_summary(results: Sequence[PolicyResult]) -> dict[str, Any]:
    """Per-policy rates and the across-policy agreement (JSON-ready)."""
    rows = []
    for r in results:
        sim, port = r.scores()
        rows.append({"name": r.name, "path": r.path, "imagined": sim.as_dict(),
                     "port": None if port is None else port.as_dict(),
                     "drawer_imagined": _drawer(sim).rate, "drawer_port": None if port is None else _drawer(port).rate,
                     "episode_agreement": r.agreement(), "imagined_cpu_s": round(r.imagined_cpu_s, 1),
                     "port_cpu_s": round(r.port_cpu_s, 1),
                     "replay_psnr_db": None if r.replay_psnr is None else [round(v, 3) for v in r.replay_psnr]})
    paired = [x for x in rows if x["drawer_port"] is not None]
    out: dict[str, Any] = {"policies": rows, "compared": len(paired)}
    if len(paired) >= 2:
        sim = [x["drawer_imagined"] for x in paired]
        real = [x["drawer_port"] for x in paired]
        out.update(pearson=pearson(sim, real), mmrv=mmrv(sim, real))
        out["imagined_cpu_s"] = round(sum(x["imagined_cpu_s"] for x in paired), 1)
        out["port_cpu_s"] = round(sum(x["port_cpu_s"] for x in paired), 1)
    return out


def _fmt(rate: Mapping[str, Any] | None, cell: str) -> str:
    if rate is None or cell not in rate["sub_cells"]:
        return "-"
    c = rate["sub_cells"][cell]
    return f"{c['successes']}/{c['trials']}"


def markdown(summary: Mapping[str, Any]) -> str:
    """The ranking table: success in imagination and in the port per policy, then Pearson and MMRV."""
    lines = ["| policy | open (imagined / port) | close (imagined / port) | drawer (imagined / port) "
             "| episodes agreeing | CPU s (imagined / port) |", "|---|---|---|---|---|---|"]
    for p in summary["policies"]:
        port = "-" if p["drawer_port"] is None else f"{100 * p['drawer_port']:.1f}%"
        agree = "-" if math.isnan(p["episode_agreement"]) else f"{100 * p['episode_agreement']:.0f}%"
        lines.append(f"| {p['name']} | {_fmt(p['imagined'], 'open_drawer')} / {_fmt(p['port'], 'open_drawer')} | "
                     f"{_fmt(p['imagined'], 'close_drawer')} / {_fmt(p['port'], 'close_drawer')} | "
                     f"{100 * p['drawer_imagined']:.1f}% / {port} | {agree} | "
                     f"{p['imagined_cpu_s']:.0f} / {p['port_cpu_s']:.0f} |")
    replays = [p for p in summary["policies"] if p.get("replay_psnr_db")]
    if replays:
        lines += ["", "Replay of the port's actions, imagined frames against the port's video (mean PSNR): "
                  + "; ".join(f"{p['name']} {p['replay_psnr_db'][0]:.2f} dB (copying the start frame "
                              f"{p['replay_psnr_db'][1]:.2f} dB)" for p in replays) + "."]
    if "pearson" in summary:
        lines += ["", f"Across {summary['compared']} policies (drawer column): Pearson r = {summary['pearson']:.3f} "
                  f"(goal >= 0.8), MMRV = {summary['mmrv']:.3f} (goal <= 0.1); CPU time {summary['imagined_cpu_s']:.0f}"
                  f" s in imagination against {summary['port_cpu_s']:.0f} s in the port."]
    else:
        lines += ["", f"{summary['compared']} policies have port results: Pearson and MMRV need two or more."]
    return "\n".join(lines) + "\n"


def scatter_plot(summary: Mapping[str, Any], path: str | Path) -> Path:
    """Port success (x) against imagined success (y) per policy, Wilson 95% bars, the diagonal."""
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    for p in summary["policies"]:
        if p["port"] is None:
            continue
        x, y = p["port"]["columns"][DRAWER], p["imagined"]["columns"][DRAWER]
        ax.errorbar(x["rate"], y["rate"], xerr=[[x["rate"] - x["ci95"][0]], [x["ci95"][1] - x["rate"]]],
                    yerr=[[y["rate"] - y["ci95"][0]], [y["ci95"][1] - y["rate"]]], fmt="o", capsize=3, alpha=0.8)
        ax.annotate(p["name"], (x["rate"], y["rate"]), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.plot([0, 1], [0, 1], "k--", lw=0.8)
    ax.set(xlim=(-0.02, 1.02), ylim=(-0.02, 1.02), xlabel="success in the port (drawer: mean of open, close)",
           ylabel="success in imagination")
    if "pearson" in summary:
        ax.set_title(f"r = {summary['pearson']:.2f}, MMRV = {summary['mmrv']:.3f}")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def mean_present(x: np.ndarray, axis: int) -> np.ndarray:
    """The mean along `axis` over the values that are not NaN; NaN where all are (without numpy's warning)."""
    counts = (~np.isnan(x)).sum(axis)
    return np.where(counts > 0, np.nan_to_num(x).sum(axis) / np.maximum(counts, 1), np.nan)


def replay_plot(curves: Mapping[str, np.ndarray], path: str | Path) -> Path:
    """PSNR against the port's video per frame after the start, averaged over episodes: each policy's imagined
    frames (solid) and its start frame held (dashed). `curves[name]`: `(episodes, 2, frames)`, NaN where none."""
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    for i, (name, c) in enumerate(curves.items()):
        mean = mean_present(c, axis=0)                                                 # (2, frames)
        t = np.arange(1, mean.shape[1] + 1)
        ax.plot(t, mean[0], color=f"C{i}", label=f"{name}: imagined")
        ax.plot(t, mean[1], color=f"C{i}", ls="--", lw=0.8, label=f"{name}: start frame held")
    ax.set(xlabel="frame after the start (one per action)", ylabel="PSNR against the port's video (dB)",
           title="replaying the port's actions in the world model")
    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def write_ranking_report(results: Sequence[PolicyResult], out_dir: str | Path) -> dict[str, Path]:
    """`ranking.json`, `ranking.md` and `ranking.png` in `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = ranking_summary(results)
    atomic_write_bytes(out / "ranking.json", json.dumps(summary, indent=2, default=str).encode())
    atomic_write_bytes(out / "ranking.md", markdown(summary).encode())
    plot = scatter_plot(summary, out / "ranking.png")
    return {"json": out / "ranking.json", "table": out / "ranking.md", "plot": plot}
