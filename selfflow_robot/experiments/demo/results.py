"""What a `selfflow-robot demo` run has on disk, read back from its phases' own outputs.

`demos/collect.json`, the newest checkpoint's train config, `run/metrics.jsonl` (last validation row),
`eval/results.json`, `eval/episodes.jsonl` (one video per task and outcome), `imagine/*_metrics.json`.
Anything a phase has not written yet reads as None (or empty), so a report can be built at any time.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from selfflow_robot.checkpoint import load_run_config, load_statistics
from selfflow_robot.constants import CONFIG_FILE
from selfflow_robot.experiments.demo.config import COLLECT_SUMMARY, phase_dir
from selfflow_robot.train.logger import read_metrics


def read_json(path: Path) -> Any | None:
    """The JSON document at `path`, or None when there is no such file."""
    return json.loads(path.read_text()) if path.is_file() else None


@dataclass
class DemoResults:
    """The outputs of one demo run (None / empty where a phase has not run).

    Args:
        out: the demo's output dir.
        collect: `demos/collect.json` (dataset, tasks, episodes, expert successes, action noise).
        run_config: the train config stored with the newest checkpoint.
        trained_to: the newest checkpoint's step (0 without one).
        statistics: the newest checkpoint's `dataset_statistics.json` (steps and episodes of the data).
        validation: the last `metrics.jsonl` row with held-out validation metrics.
        eval_results: `eval/results.json` (per checkpoint, per task success with Wilson intervals).
        imagine: the first `imagine/*_metrics.json` (label, instruction, steps, video paths, per-frame metrics).
        imagine_summary: `imagine/summary_metrics.json`, the per-frame metrics averaged over the held-out demos.
        videos: (task, success) -> the first episode video of that outcome that exists.
    """

    out: Path
    collect: dict[str, Any] | None = None
    run_config: dict[str, Any] | None = None
    trained_to: int = 0
    statistics: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    eval_results: dict[str, Any] | None = None
    imagine: dict[str, Any] | None = None
    imagine_summary: dict[str, Any] | None = None
    videos: dict[tuple[str, bool], Path] = field(default_factory=dict)

    @property
    def run_dir(self) -> Path:
        return phase_dir(self.out, "train")

    def training_seen(self) -> dict[str, float] | None:
        """What training saw up to `trained_to`: windows, training signals (windows x noise draws) and passes
        over the training windows (one window starts at each step of an episode but its last)."""
        if not self.run_config or not self.statistics:
            return None
        t, data = self.run_config.get("train", {}), self.run_config.get("data", {})
        windows = self.trained_to * int(t.get("batch_size", 0)) * int(t.get("grad_accum", 1))
        stride = int(data.get("window", {}).get("anchor_stride", 1) or 1)
        per_pass = (int(self.statistics["num_transitions"]) - int(self.statistics["num_trajectories"])) / stride
        per_pass *= 1.0 - float(data.get("val_fraction", 0.0))
        return {"windows": windows, "signals": windows * int(t.get("draws_per_window", 1)),
                "passes": windows / per_pass if per_pass > 0 else float("nan")}

    @property
    def eval_dir(self) -> Path:
        return phase_dir(self.out, "eval")


def episode_videos(eval_dir: Path) -> dict[tuple[str, bool], Path]:
    """(task, success) -> the first video in `episodes.jsonl` of that task and outcome whose file exists."""
    log = eval_dir / "episodes.jsonl"
    if not log.is_file():
        return {}
    picked: dict[tuple[str, bool], Path] = {}
    for line in log.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        key = (rec["task"], bool(rec["success"]))
        if key not in picked and rec.get("video") and Path(rec["video"]).is_file():
            picked[key] = Path(rec["video"])
    return picked


def read_demo_results(out: Path) -> DemoResults:
    """Read every phase's outputs under the demo's output dir `out`."""
    r = DemoResults(Path(out), collect=read_json(phase_dir(out, "collect") / COLLECT_SUMMARY))
    ckpts = sorted((r.run_dir / "checkpoints").glob(f"step-*/{CONFIG_FILE}"))
    if ckpts:
        r.run_config = OmegaConf.to_container(load_run_config(ckpts[-1].parent))
        r.trained_to = int(ckpts[-1].parent.name.split("-")[1])
        r.statistics = load_statistics(ckpts[-1].parent)
    val_rows = [row for row in read_metrics(r.run_dir) if "val/action_mse_norm" in row] if r.run_dir.is_dir() else []
    r.validation = val_rows[-1] if val_rows else None
    r.eval_results = read_json(r.eval_dir / "results.json")
    imagine = sorted(p for p in phase_dir(out, "imagine").glob("*_metrics.json") if p.name != "summary_metrics.json")
    r.imagine = json.loads(imagine[0].read_text()) if imagine else None
    summary = phase_dir(out, "imagine") / "summary_metrics.json"
    r.imagine_summary = json.loads(summary.read_text()) if summary.is_file() else None
    r.videos = episode_videos(r.eval_dir)
    return r


__all__ = ["DemoResults", "episode_videos", "read_demo_results", "read_json"]
