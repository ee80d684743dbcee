"""A folder of episodes: `<input>/<episode>/` with frames + one NPZ or JSON of actions.

Each episode folder (sorted naturally) holds:
- frames: one video file (`.mp4 .avi .mov .webm .mkv .gif`), or image files (`.png .jpg .jpeg`,
  sorted naturally) directly in it or in a `frames/` subfolder;
- exactly one `.npz` or `.json` file with `actions` (T, D), optionally `instruction` (a string: str,
  UTF-8 bytes or a 1-element array of them; see `source.instruction_text`) and, with `state_keys`
  (e.g. `[state]`), those arrays ((T,) or (T, d) each, concatenated in order) as the robot state.
Frames and actions must have the same count T (with `drop_last_frame=true`, T+1 frames are
accepted and the final observation is dropped; so is the final state when there are T+1).
An episode folder that breaks any of this is yielded as a `DataError` naming it (see `source`).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from selfflow_robot.data.convert.source import (
    SourceEpisode,
    SourceItem,
    concat_state,
    guarded,
    instruction_text,
    natural_key,
    read_video,
)
from selfflow_robot.errors import DataError

VIDEO_EXT = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".gif")
IMAGE_EXT = (".png", ".jpg", ".jpeg")


def _image(path: Path) -> np.ndarray:
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
        raise DataError(f"{path}: the frame cannot be decoded ({type(e).__name__}: {e}); replace or re-export "
                        "the image") from e


def _frames(ep: Path) -> list[np.ndarray]:
    videos = sorted(p for p in ep.iterdir() if p.suffix.lower() in VIDEO_EXT)
    if len(videos) > 1:
        raise DataError(f"{ep}: {len(videos)} video files; keep one per episode folder")
    if videos:
        return read_video(str(videos[0]))
    img_dir = ep / "frames" if (ep / "frames").is_dir() else ep
    images = sorted((p for p in img_dir.iterdir() if p.suffix.lower() in IMAGE_EXT), key=lambda p: natural_key(p.name))
    if not images:
        raise DataError(f"{ep}: no video and no .png/.jpg frames (directly or in frames/)")
    return [_image(p) for p in images]


def _meta(ep: Path, state_keys: list[str]) -> tuple[np.ndarray, str | None, np.ndarray | None]:
    files = sorted(p for p in ep.iterdir() if p.suffix.lower() in (".npz", ".json"))
    if len(files) != 1:
        raise DataError(f"{ep}: needs exactly one .npz or .json with 'actions' (found {[p.name for p in files]})")
    p = files[0]
    if p.suffix.lower() == ".npz":
        try:
            with np.load(p, allow_pickle=False) as z:
                if "actions" not in z.files:
                    raise DataError(f"{p}: no 'actions' array (has {z.files})")
                actions = np.asarray(z["actions"])
                instr = instruction_text(z["instruction"], str(p)) if "instruction" in z.files else None
                d = {k: z[k] for k in state_keys if k in z.files}
                names = z.files
        except (OSError, ValueError) as e:  # not a zip, a damaged member, an object array (pickle)
            raise DataError(f"{p}: cannot read the .npz ({type(e).__name__}: {e})") from e
    else:
        try:
            d = json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError) as e:
            raise DataError(f"{p}: not valid JSON ({e})") from e
        if not isinstance(d, dict) or "actions" not in d:
            raise DataError(f"{p}: no 'actions' key (has {sorted(d) if isinstance(d, dict) else type(d).__name__})")
        try:
            actions = np.asarray(d["actions"], np.float64)
        except (TypeError, ValueError) as e:
            raise DataError(f"{p}: 'actions' is not a numeric (T, D) array ({e})") from e
        instr = instruction_text(d.get("instruction"), str(p))
        names = sorted(d)
    if not state_keys:
        return actions, instr, None
    missing = [k for k in state_keys if k not in d]
    if missing:
        raise DataError(f"{p}: no {missing} for state_key (has {names})")
    return actions, instr, concat_state([d[k] for k in state_keys], state_keys, str(p))


def iter_folder(path: str, *, instruction: str = "", drop_last_frame: bool = False,
                state_keys: list[str] | None = None) -> Iterator[SourceItem]:
    """Yield one source episode (or the `DataError` of a bad one) per subfolder of `path`."""
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"{root} is not a folder; set input= to a folder of episode folders")
    eps = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))
    if not eps:
        raise DataError(f"{root}: no episode subfolders")
    for ep in eps:
        yield guarded(lambda ep=ep: _episode(ep, instruction, drop_last_frame, list(state_keys or [])))


def _episode(ep: Path, instruction: str, drop_last_frame: bool, state_keys: list[str]) -> SourceEpisode:
    actions, instr, state = _meta(ep, state_keys)
    frames = _frames(ep)
    if drop_last_frame and len(frames) == len(actions) + 1:
        frames = frames[:-1]
    if drop_last_frame and state is not None and len(state) == len(actions) + 1:
        state = state[:-1]
    if len(frames) != len(actions):
        raise DataError(f"{ep}: {len(frames)} frames but {len(actions)} actions; they must match "
                        "(use drop_last_frame=true when there is one final observation more)")
    return SourceEpisode(str(ep), frames, actions, instr or instruction or None, state)
