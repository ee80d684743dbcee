"""Run logging on rank 0: TensorBoard, optional Weights & Biases, `metrics.jsonl`, a tqdm bar with ETA,
and a loss-curve plot at the end."""
from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure
from tqdm.auto import tqdm

from selfflow_robot.errors import require
from selfflow_robot.train.config import WandbConfig

METRICS_FILE = "metrics.jsonl"
TB_DIR = "tb"


class RunLogger:
    """Scalars to TensorBoard (`RUN/tb/`), `RUN/metrics.jsonl` and optionally wandb; a progress bar.

    Every method is a no-op on ranks other than 0, so callers never branch on the rank.
    """

    def __init__(self, run_dir: str | Path, *, enabled: bool, total_steps: int, start_step: int,
                 wandb_cfg: WandbConfig | None = None, config: Mapping[str, Any] | None = None,
                 progress: bool = True) -> None:
        self.enabled = enabled
        self.run_dir = Path(run_dir)
        self._tb = None
        self._wandb = None
        self._bar = None
        self._jsonl = None
        if not enabled:
            return
        # tensorboard imports TensorFlow when it is installed (the `tf` extra); keep its C++ logs quiet
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir.mkdir(parents=True, exist_ok=True)
        if start_step:  # a resumed run: drop rows logged after the checkpoint it resumed from
            rows = [r for r in read_metrics(self.run_dir) if r.get("step", 0) <= start_step]
            (self.run_dir / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
        self._tb = SummaryWriter(str(self.run_dir / TB_DIR), purge_step=start_step + 1 if start_step else None)
        self._jsonl = open(self.run_dir / METRICS_FILE, "a", buffering=1)
        if wandb_cfg is not None and wandb_cfg.enabled:
            wandb = require("wandb", "wandb")
            self._wandb = wandb.init(project=wandb_cfg.project, entity=wandb_cfg.entity, name=wandb_cfg.name,
                                     mode=wandb_cfg.mode, dir=str(self.run_dir), config=dict(config or {}),
                                     resume="allow")
        if progress:
            self._bar = tqdm(total=total_steps, initial=start_step, desc="train", unit="step",
                             dynamic_ncols=True, file=sys.stderr, mininterval=1.0)

    def log(self, step: int, scalars: Mapping[str, float]) -> None:
        """Record `scalars` (e.g. `loss/flow`, `lr`) at `step`."""
        if not self.enabled:
            return
        clean = {k: float(v) for k, v in scalars.items()}
        for k, v in clean.items():
            self._tb.add_scalar(k, v, step)
        self._jsonl.write(json.dumps({"step": step, **{k: (v if math.isfinite(v) else str(v))
                                                       for k, v in clean.items()}}) + "\n")
        if self._wandb is not None:
            self._wandb.log(clean, step=step)

    def advance(self, n: int = 1, **postfix: float) -> None:
        """Move the progress bar by `n` steps, showing `postfix` values (e.g. loss)."""
        if self._bar is not None:
            self._bar.update(n)
            if postfix:
                self._bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items()}, refresh=False)

    def message(self, text: str) -> None:
        """Print a line without breaking the progress bar."""
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
        if self._tb is not None:
            self._tb.close()
        if self._jsonl is not None:
            self._jsonl.close()
        if self._wandb is not None:
            self._wandb.finish()
        self.enabled = False


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """The rows of `RUN/metrics.jsonl` (one dict per `log` call)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_curves(run_dir: str | Path, out: str | Path | None = None) -> Path | None:
    """Plot training loss terms and validation metrics from `metrics.jsonl` into `RUN/curves.png`."""
    rows = read_metrics(run_dir)
    if not rows:
        return None
    panels = {
        "training loss": [k for k in ("loss/total", "loss/flow", "loss/rep") if any(k in r for r in rows)],
        "validation: action MSE (normalised)": ["val/action_mse_norm", "val/action_mse_norm_mean_baseline"],
        "validation: PSNR (dB)": ["val/psnr", "val/psnr_copy_last"],
    }
    panels = {t: ks for t, ks in panels.items() if any(k in r for r in rows for k in ks)}
    fig = Figure(figsize=(5 * len(panels), 3.5))  # the object API: no pyplot state, no GUI backend
    axes = fig.subplots(1, len(panels), squeeze=False)
    for ax, (title, keys) in zip(axes[0], panels.items()):
        for k in keys:
            pts = [(r["step"], r[k]) for r in rows if isinstance(r.get(k), (int, float))]
            if pts:
                ax.plot(*zip(*pts), label=k.split("/", 1)[-1], marker="o" if len(pts) < 20 else None)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.legend(fontsize=8)
        if title == "training loss":
            ax.set_yscale("log")
    fig.tight_layout()
    path = Path(out) if out else Path(run_dir) / "curves.png"
    fig.savefig(path, dpi=100)
    return path
