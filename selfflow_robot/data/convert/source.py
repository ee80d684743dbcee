"""What every source reader yields: one episode of the user's data, before mapping to RT-1, or why one
could not be read.

Readers yield a `DataError` (naming the file and episode) in place of an episode they cannot read, and
go on with the next one: `convert` then stops on it, or skips it with `skip_bad_episodes=true`. Errors
about the whole input (no such folder, no metadata) are raised.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import imageio.v3 as iio
import numpy as np

from selfflow_robot.errors import DataError


@dataclass
class SourceEpisode:
    """One source episode: T frames (uint8 (H, W, C) each), (T, D) actions, its instruction or None,
    and (T, S) robot state when the converter's `state_key` names one (else None)."""

    name: str                      # where it came from (file / folder / episode index), for messages
    frames: Sequence[np.ndarray] | np.ndarray
    actions: np.ndarray
    instruction: str | None = None
    state: np.ndarray | None = None


SourceItem = SourceEpisode | DataError  # what a reader yields per episode: the episode, or why it is unreadable


def guarded(read: Callable[[], SourceEpisode]) -> SourceItem:
    """`read()`, or the `DataError` it raised (for a reader to yield, so one bad episode does not end the rest)."""
    try:
        return read()
    except DataError as e:
        return e


def instruction_text(value: Any, where: str) -> str | None:
    """An instruction as stored in a source file -> one `str` (None when absent).

    Unambiguous forms are decoded: `str`, UTF-8 `bytes`, and a 0-d or 1-element array (or list) of
    either, as `np.savez(instruction=...)` and HDF5 attributes store them. Anything else (several
    strings, numbers, bytes that are not UTF-8) raises `DataError` naming `where`, never a repr such as
    "['pick the cube']" or "b'pick the cube'" written as the instruction.
    """
    fix = "store one string (str, UTF-8 bytes, or a 1-element array of them)"
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError as e:
            raise DataError(f"{where}: the instruction is not UTF-8 text ({e}; it starts {bytes(value)[:40]!r}); "
                            "re-encode it as UTF-8") from e
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (list, tuple)):
        if len(value) == 1:
            return instruction_text(value[0], where)
        raise DataError(f"{where}: the instruction is a list of {len(value)} items; {fix}")
    if isinstance(value, np.ndarray):
        if value.size == 1 and (value.dtype.kind in "US" or value.dtype == object):
            return instruction_text(value.reshape(-1)[0], where)
        raise DataError(f"{where}: the instruction is a {value.shape} {value.dtype} array; {fix}")
    raise DataError(f"{where}: the instruction is {type(value).__name__} {str(value)[:60]!r}; {fix}")


def concat_state(parts: Sequence[np.ndarray], keys: Sequence[str], where: str) -> np.ndarray:
    """The `state_key` arrays ((T,) or (T, d) each) side by side as one (T, S) float64 array."""
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
    try:
        frames = [np.asarray(f)[..., :3] for f in iio.imiter(path)]
    except Exception as e:  # imageio raises several types depending on the plugin
        first = next((line.strip() for line in str(e).splitlines() if line.strip()), "")[:200]  # ffmpeg's log follows
        raise DataError(f"{path}: cannot decode the video ({type(e).__name__}: {first}); re-encode it as H.264 mp4"
                        ) from e
    if not frames:
        raise DataError(f"{path}: the video holds no frames; re-encode it as H.264 mp4")
    return frames
