"""robomimic-style HDF5: `data/demo_N/{actions, obs/<camera>}` -> source episodes.

Layout (robomimic, LIBERO, MimicGen): one or more `.hdf5` files, each with a `data` group
holding `demo_0, demo_1, ...`; each demo has `actions` (T, D) and `obs/<image_key>`
(T, H, W, 3) uint8 (grayscale (T, H, W) / (T, H, W, 1) and float images in [0, 1] or [0, 255]
are accepted too). The instruction is the demo attribute named by `instruction_attr`
(default `language_instruction`), else the file's LIBERO `problem_info` JSON
(`language_instruction`), else the `instruction` option; none of these -> an error.
With `state_keys` (e.g. robomimic `[robot0_eef_pos, robot0_eef_quat, robot0_gripper_qpos]`),
each key is `obs/<key>` (else a dataset of the demo itself, e.g. LIBERO's `robot_states`),
concatenated along the last axis into the episode's state.
A demo that breaks this (or a file h5py cannot open: empty, truncated, not HDF5) is yielded as a
`DataError` naming the file and demo (see `source`).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from selfflow_robot.data.convert.source import SourceEpisode, SourceItem, concat_state, instruction_text, natural_key
from selfflow_robot.errors import DataError, require


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted([*path.glob("*.hdf5"), *path.glob("*.h5")], key=lambda p: natural_key(p.name))
    if not files:
        raise DataError(f"{path}: no .hdf5/.h5 files here")
    return files


NOT_A_CAMERA = 4


def _camera_rank(ds) -> int:
    """How likely a dataset is the camera: 0 uint8 (T, H, W, 3|4|1); 1 uint8 (T, H, W) grayscale; 2 float colour
    (T, H, W, 3|4); 3 float single-channel (maybe depth: used only when named by image_key); 4 not an image."""
    shape, kind = getattr(ds, "shape", ()), getattr(getattr(ds, "dtype", None), "kind", "")
    channels = shape[-1] if len(shape) == 4 else 1 if len(shape) == 3 and min(shape[1:]) >= 8 else 0
    if kind == "u" and ds.dtype.itemsize == 1 and channels:
        return 0 if len(shape) == 4 else 1
    if kind == "f" and channels in (3, 4):
        return 2
    if kind == "f" and channels == 1:
        return 3
    return NOT_A_CAMERA


def _image_key(obs, requested: str, where: str) -> str:
    if requested:
        if requested not in obs:
            raise DataError(f"{where}: no obs/{requested}; available: {sorted(obs.keys())}; set image_key=")
        if _camera_rank(obs[requested]) == NOT_A_CAMERA:
            ds = obs[requested]
            raise DataError(f"{where}: obs/{requested} is not a camera ({getattr(ds, 'shape', 'a group')} "
                            f"{getattr(ds, 'dtype', '')}); images are (T, H, W, 3|4|1) or (T, H, W), uint8 or float; "
                            "set image_key=")
        return requested
    ranks = {k: _camera_rank(obs[k]) for k in obs.keys()}
    best = min([r for r in ranks.values() if r <= 2], default=NOT_A_CAMERA)
    cams = sorted(k for k, r in ranks.items() if r == best)
    if len(cams) != 1:
        single = sorted(k for k, r in ranks.items() if r == 3)
        hint = f"; single-channel float datasets {single} (depth?) are used only when named" if single else ""
        raise DataError(f"{where}: {'several' if cams else 'no'} camera datasets in obs ({cams or sorted(obs.keys())}; "
                        f"a camera is (T, H, W, 3|4|1) or (T, H, W), uint8 or float{hint}); name the one to use "
                        "with image_key=")
    return cams[0]


def _uint8_frames(frames: np.ndarray, where: str) -> np.ndarray:
    """uint8 frames from uint8 or float images ([0, 1] scaled to 0-255, [0, 255] rounded; one scale per demo)."""
    if frames.dtype == np.uint8:
        return frames
    if not np.isfinite(frames).all():
        raise DataError(f"{where}: the float images hold NaN/inf; fix the source data")
    lo, hi = (float(frames.min()), float(frames.max())) if frames.size else (0.0, 0.0)
    if lo < 0 or hi > 255:
        raise DataError(f"{where}: the float images span [{lo:.3g}, {hi:.3g}]; they must be in [0, 1] or [0, 255] "
                        "(store uint8 images, or rescale)")
    scale = 255.0 if hi <= 1.0 else 1.0
    return np.clip(np.rint(frames * scale), 0, 255).astype(np.uint8)


def _state(g, keys: list[str], where: str) -> np.ndarray | None:
    if not keys:
        return None
    parts = []
    for k in keys:
        if k in g["obs"]:
            parts.append(g["obs"][k][()])
        elif k in g and not hasattr(g[k], "keys"):
            parts.append(g[k][()])
        else:
            raise DataError(f"{where}: no obs/{k} (or {k}) for state_key; obs has {sorted(g['obs'].keys())}")
    return concat_state(parts, keys, where)


def iter_hdf5(path: str, *, image_key: str = "", action_key: str = "actions", instruction: str = "",
              instruction_attr: str = "language_instruction", flip_vertical: bool = False,
              state_keys: list[str] | None = None) -> Iterator[SourceItem]:
    """Yield the demos (or the `DataError` of a bad demo or file) of every HDF5 file under `path`, in natural
    order."""
    h5py = require("h5py", "data")
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root} does not exist; set input= to a robomimic-style .hdf5 file or a folder of them")
    for file in _files(root):
        try:
            f = h5py.File(file, "r")
        except OSError as e:  # empty, truncated or not HDF5 at all
            yield DataError(f"{file}: h5py cannot open it ({e}); the file is empty, truncated or not HDF5. "
                            "Re-copy or re-export it")
            continue
        with f:
            if "data" not in f:
                yield DataError(f"{file}: no 'data' group; this is not a robomimic-style HDF5 file")
                continue
            file_instr = None
            if "problem_info" in f["data"].attrs:
                try:
                    file_instr = json.loads(f["data"].attrs["problem_info"]).get("language_instruction")
                except (TypeError, ValueError, AttributeError):
                    file_instr = None
            for demo in sorted(f["data"].keys(), key=natural_key):
                where = f"{file}:data/{demo}"
                yield _demo(f["data"][demo], where, image_key, action_key, instruction_attr, flip_vertical,
                            list(state_keys or []), file_instr or instruction or None)


def _demo(g, where: str, image_key: str, action_key: str, instruction_attr: str, flip_vertical: bool,
          state_keys: list[str], fallback_instruction: str | None) -> SourceItem:
    """One demo group as a `SourceEpisode`, or the `DataError` naming what is wrong with it."""
    try:
        if not hasattr(g, "keys"):
            raise DataError(f"{where}: is a dataset, not a demo group")
        if action_key not in g:
            raise DataError(f"{where}: no '{action_key}' dataset; set action_key=")
        if "obs" not in g:
            raise DataError(f"{where}: no 'obs' group")
        key = _image_key(g["obs"], image_key, where)
        frames = _uint8_frames(np.asarray(g["obs"][key]), f"{where}/obs/{key}")
        if flip_vertical:
            frames = frames[:, ::-1]
        instr = g.attrs.get(instruction_attr) if instruction_attr else None
        instr = instruction_text(instr, f"{where}, attribute '{instruction_attr}'")
        return SourceEpisode(where, frames, np.asarray(g[action_key]), instr or fallback_instruction,
                             _state(g, state_keys, where))
    except DataError as e:
        return e
    except (OSError, KeyError, ValueError, TypeError) as e:  # h5py on a damaged file
        return DataError(f"{where}: cannot be read ({type(e).__name__}: {e}); the file is truncated or corrupt")
