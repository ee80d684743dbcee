"""What every source reader yields: one episode of the user's data, before mapping to RT-1."""
from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class SourceEpisode:
    """One source episode: T frames (uint8 (H, W, C) each), (T, D) actions, its instruction or None,
    and (T, S) robot state when the converter's `state_key` names one (else None)."""

    name: str                      # where it came from (file / folder / episode index), for messages
    frames: Sequence[np.ndarray] | np.ndarray
    actions: np.ndarray
    instruction: str | None = None
    state: np.ndarray | None = None


def concat_state(parts: Sequence[np.ndarray], keys: Sequence[str], where: str) -> np.ndarray:
    """The `state_key` arrays ((T,) or (T, d) each) side by side as one (T, S) float64 array."""
    from selfflow_robot.errors import DataError

    cols = []
    for k, v in zip(keys, parts):
        try:
            a = np.asarray(v, np.float64)
        except (TypeError, ValueError) as e:
            raise DataError(f"{where}: state_key '{k}' is not a numeric (T,) or (T, d) array ({e})") from e
        if a.ndim not in (1, 2):
            raise DataError(f"{where}: state_key '{k}' has shape {a.shape}; each state entry must be (T,) or (T, d)")
        cols.append(a.reshape(len(a), -1))
    if len({len(c) for c in cols}) > 1:
        raise DataError(f"{where}: state_key entries have different lengths "
                        f"{dict(zip(keys, (len(c) for c in cols)))}")
    return np.concatenate(cols, axis=1)


def natural_key(s: str) -> list:
    """Sort key that orders demo_2 before demo_10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(s))]


def read_video(path: str) -> list[np.ndarray]:
    """All frames of a video file (mp4/avi/mov/webm/mkv/gif) as uint8 (H, W, 3), via imageio (ffmpeg)."""
    import imageio.v3 as iio

    from selfflow_robot.errors import DataError

    try:
        return [np.asarray(f)[..., :3] for f in iio.imiter(path)]
    except Exception as e:  # imageio raises several types depending on the plugin
        raise DataError(f"{path}: cannot decode the video ({e}); re-encode it as H.264 mp4") from e
