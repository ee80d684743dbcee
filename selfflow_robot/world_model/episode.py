"""What one `imagine` rollout starts from when it is not a dataset episode alone: the `Episode` it runs, and the
action files and context images a user can give instead (`selfflow-robot imagine actions=... context=...`)."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from selfflow_robot.constants import RAW_ACTION_DIM
from selfflow_robot.data.transforms import resize_like_training
from selfflow_robot.errors import DataError


@dataclass
class Episode:
    """What one rollout needs: context frames, actions, optional ground truth, the task."""

    context: np.ndarray                 # uint8 (k', H, W, 3), oldest first
    actions: np.ndarray                 # float32 (T, 7)
    terminate: np.ndarray               # float32 (T,)
    truth: np.ndarray | None         # uint8 (T, H, W, 3) or None
    instruction: str
    text: np.ndarray | None          # (512,) the episode's own embedding, if known
    label: str
    states: np.ndarray | None = None    # float32 (T + 1, 8): the robot state with the last context frame and each
    #                                     recorded frame after it, when the episode records it


def load_actions_file(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read `(actions (T, 7), terminate (T,))` from `.npy` or `.json`; raises `DataError` naming the problem."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"action file {p} not found")
    try:
        if p.suffix == ".npy":
            raw: Any = np.load(p, allow_pickle=False)
        elif p.suffix == ".json":
            raw = json.loads(p.read_text())
        else:
            raise DataError(f"action file {p} must end in .npy or .json")
    except (ValueError, OSError) as e:
        raise DataError(f"action file {p} could not be read: {e}") from e
    term = None
    if isinstance(raw, dict):
        if "actions" not in raw:
            raise DataError(f"action file {p}: a JSON object needs an 'actions' list (and optional 'terminate')")
        term = raw.get("terminate")
        raw = raw["actions"]
    a = np.asarray(raw, np.float32)
    if a.ndim != 2 or a.shape[1] not in (RAW_ACTION_DIM, RAW_ACTION_DIM + 1) or len(a) == 0:
        raise DataError(f"action file {p}: expected a (T, 7) or (T, 8) array, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise DataError(f"action file {p}: contains NaN or inf")
    if a.shape[1] == RAW_ACTION_DIM + 1:
        term = a[:, RAW_ACTION_DIM]
        a = a[:, :RAW_ACTION_DIM]
    t = np.zeros(len(a), np.float32) if term is None else (np.asarray(term, np.float32).reshape(-1) > 0.5)
    if len(t) != len(a):
        raise DataError(f"action file {p}: {len(a)} actions but {len(t)} terminate flags")
    return a, t.astype(np.float32)


def read_images(spec: str, size: tuple[int, int]) -> np.ndarray:
    """Comma-separated image files (oldest first) at the model's `size`, uint8 `(k', H, W, 3)`."""
    frames = []
    for item in [s.strip() for s in spec.split(",") if s.strip()]:
        if not Path(item).is_file():
            raise DataError(f"context image {item} not found")
        frames.append(np.asarray(Image.open(item).convert("RGB")))
    return np.concatenate([resize_like_training(f[None], size) for f in frames])
