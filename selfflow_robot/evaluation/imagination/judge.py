"""The success judge of imagined frames: a small CNN reads the task drawer's opening off one frame, and the
simulator's own success rule turns that opening into success.

The drawer tasks' rule is a threshold on the drawer joint (ManiSkill2_real2sim, `envs/open_drawer.py`,
`envs/close_drawer.py`): open succeeds at >= 0.15 m, close at <= 0.05 m, read at the episode's last step. The
judge regresses the opening of each of the three drawers (one output each; a frame's label is its task
drawer's), so one network serves all six tasks and its errors are in metres, not only right/wrong.

Trained on sweeps that record the robot's state per frame (`tool_state`), the same network also reads the 8-D
proprioception off a frame (tool pose in the base frame, gripper), the input a state-conditioned policy needs
and an imagined episode has only as pixels (`state_dim = 8`; `imagine-eval` hands it to such policies).

    judge = SuccessJudge.load("runs/judge")
    opening = judge.opening(frames, ["open_top_drawer", ...])       # (B,) metres
    success = judge.success(frames, ["open_top_drawer", ...])       # (B,) bool
    state = judge.state(frames)                                     # (B, 8), judges with state_dim = 8
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import nn

from selfflow_robot.envs.drawer_success import CLOSE_SUCCESS_QPOS, OPEN_SUCCESS_QPOS
from selfflow_robot.errors import UserError
from selfflow_robot.files import atomic_write_bytes

DRAWERS = ("top", "middle", "bottom")
WEIGHTS, META = "judge.safetensors", "judge.json"
_TASK = re.compile(r"(open|close)_(top|middle|bottom)_drawer")


def drawer_task(task: str) -> tuple[str, int]:
    """`open_top_drawer` -> ("open", 0): the rule and the drawer index of a drawer task."""
    m = _TASK.fullmatch(task)
    if m is None:
        raise UserError(f"the success judge covers the drawer tasks ({{open,close}}_{{top,middle,bottom}}_drawer), "
                        f"not {task!r}")
    return m.group(1), DRAWERS.index(m.group(2))


def success_rule(task: str, opening: np.ndarray | float) -> np.ndarray:
    """The simulator's success rule of `task` applied to drawer openings (metres)."""
    kind, _ = drawer_task(task)
    q = np.asarray(opening, np.float64)
    return q >= OPEN_SUCCESS_QPOS if kind == "open" else q <= CLOSE_SUCCESS_QPOS


def successes(tasks: list[str], openings: np.ndarray) -> np.ndarray:
    """Each task's success rule on its drawer's opening: `(B,)` bool."""
    return np.array([bool(success_rule(t, q)) for t, q in zip(tasks, openings)], dtype=bool)


@dataclass
class JudgeConfig:
    """The judge's geometry: `image_size` (H, W) it reads (the world model's), conv `width`, and `state_dim` robot
    state outputs (0 = openings only)."""

    image_size: tuple[int, int] = (64, 80)
    width: int = 32
    state_dim: int = 0


class SuccessJudge(nn.Module):
    """Four stride-2 conv blocks and an MLP on the flattened feature map (where a drawer edge is matters, so no
    global pooling): the three drawers' openings (m), and the robot state where `state_dim` > 0 (normalised by
    the training frames' `state_mean` / `state_std`, saved with the weights)."""

    def __init__(self, cfg: JudgeConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        chans = [3, w, 2 * w, 4 * w, 4 * w]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(chans, chans[1:]))
        self.norms = nn.ModuleList(nn.GroupNorm(8, c) for c in chans[1:])
        h, wd = cfg.image_size
        for _ in self.convs:
            h, wd = (h + 1) // 2, (wd + 1) // 2
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(chans[-1] * h * wd, 128), nn.SiLU(),
                                  nn.Linear(128, len(DRAWERS) + cfg.state_dim))
        if cfg.state_dim:
            self.register_buffer("state_mean", torch.zeros(cfg.state_dim))
            self.register_buffer("state_std", torch.ones(cfg.state_dim))

    def read(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """float `(B, H, W, 3)` in [0, 1] -> `(B, 3)` openings (m) of the top, middle and bottom drawers, and the
        normalised robot state `(B, state_dim)` (empty when `state_dim` = 0)."""
        x = frames.permute(0, 3, 1, 2) * 2 - 1
        for conv, norm in zip(self.convs, self.norms):
            x = F.silu(norm(conv(x)))
        out = self.head(x)
        return out[:, :len(DRAWERS)] * 0.1, out[:, len(DRAWERS):]   # openings are 0-0.3 m: unit-scale outputs

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """float `(B, H, W, 3)` in [0, 1] -> `(B, 3)` openings (m) of the top, middle and bottom drawers."""
        return self.read(frames)[0]

    def _batches(self, frames: np.ndarray, batch: int) -> Iterator[tuple[int, torch.Tensor]]:
        """`frames` uint8 or float `(B, H, W, 3)` at `image_size` -> (start row, float tensor in [0, 1]) batches."""
        frames = np.asarray(frames)
        if tuple(frames.shape[1:3]) != tuple(self.cfg.image_size):
            raise UserError(f"the judge reads {tuple(self.cfg.image_size)} frames, got {tuple(frames.shape[1:3])}; "
                            "train it at the world model's image size (judge train image_size=[H,W])")
        self.eval()
        for i in range(0, len(frames), batch):
            x = torch.as_tensor(frames[i:i + batch]).float()
            yield i, x / 255.0 if frames.dtype == np.uint8 else x

    @torch.inference_mode()
    def opening(self, frames: np.ndarray, tasks: list[str], batch: int = 256) -> np.ndarray:
        """The task drawer's opening (m) in each frame: `frames` uint8 or float `(B, H, W, 3)` at `image_size`."""
        idx = torch.as_tensor([drawer_task(t)[1] for t in tasks])
        out = [self(x).gather(1, idx[i:i + len(x), None])[:, 0] for i, x in self._batches(frames, batch)]
        return torch.cat(out).numpy() if out else np.zeros(0, np.float32)

    @torch.inference_mode()
    def state(self, frames: np.ndarray, batch: int = 256) -> np.ndarray:
        """The robot's 8-D proprioception read off each frame, float32 `(B, state_dim)` in the recorded units."""
        if not self.cfg.state_dim:
            raise UserError("this judge was trained without robot states, so it cannot give a state-conditioned "
                            "policy its state: train it again (`selfflow-robot judge train`) on sweeps whose "
                            "episodes record `tool_state` (every `selfflow-robot eval` since 2026-12-05)")
        out = [self.read(x)[1] * self.state_std + self.state_mean for _, x in self._batches(frames, batch)]
        return torch.cat(out).numpy() if out else np.zeros((0, self.cfg.state_dim), np.float32)

    def success(self, frames: np.ndarray, tasks: list[str]) -> np.ndarray:
        """The simulator's success rule on the judged openings: `(B,)` bool."""
        return successes(tasks, self.opening(frames, tasks))

    def save(self, out_dir: str | Path, metrics: dict[str, Any]) -> Path:
        """Write `judge.safetensors` and `judge.json` (config + metrics) atomically into `out_dir`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / f".{WEIGHTS}.tmp"
        save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()}, str(tmp))
        tmp.replace(out / WEIGHTS)
        meta = {"config": asdict(self.cfg), "metrics": metrics}
        atomic_write_bytes(out / META, json.dumps(meta, indent=2).encode())
        return out

    @classmethod
    def load(cls, path: str | Path) -> SuccessJudge:
        """Load a judge folder written by `save` (`selfflow-robot judge train`)."""
        p = Path(path)
        if not (p / WEIGHTS).is_file() or not (p / META).is_file():
            raise UserError(f"no success judge in {p} (want {WEIGHTS} and {META}); train one with "
                            f"`selfflow-robot judge train sweeps=[EVAL_DIR,...] output_dir={p}`")
        meta = json.loads((p / META).read_text())
        cfg = meta["config"]
        judge = cls(JudgeConfig(image_size=tuple(cfg["image_size"]), width=int(cfg["width"]),
                                state_dim=int(cfg.get("state_dim", 0))))   # judges before the state: 0
        judge.load_state_dict(load_file(str(p / WEIGHTS)))
        judge.metrics = meta.get("metrics", {})
        return judge.eval()
