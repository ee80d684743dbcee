"""robomimic-style HDF5: `data/demo_N/{actions, obs/<camera>}` -> source episodes.

Layout (robomimic, LIBERO, MimicGen): one or more `.hdf5` files, each with a `data` group
holding `demo_0, demo_1, ...`; each demo has `actions` (T, D) and `obs/<image_key>`
(T, H, W, 3) uint8. The instruction is the demo attribute named by `instruction_attr`
(default `language_instruction`), else the file's LIBERO `problem_info` JSON
(`language_instruction`), else the `instruction` option; none of these -> an error.
With `state_keys` (e.g. robomimic `[robot0_eef_pos, robot0_eef_quat, robot0_gripper_qpos]`),
each key is `obs/<key>` (else a dataset of the demo itself, e.g. LIBERO's `robot_states`),
concatenated along the last axis into the episode's state.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from selfflow_robot.data.convert.source import SourceEpisode, concat_state, natural_key
from selfflow_robot.errors import DataError, require


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    files = sorted([*path.glob("*.hdf5"), *path.glob("*.h5")], key=lambda p: natural_key(p.name))
    if not files:
        raise DataError(f"{path}: no .hdf5/.h5 files here")
    return files


def _image_key(obs, requested: str, where: str) -> str:
    if requested:
        if requested not in obs:
            raise DataError(f"{where}: no obs/{requested}; available: {sorted(obs.keys())}; set image_key=")
        return requested
    cams = [k for k in obs.keys() if obs[k].ndim == 4 and obs[k].shape[-1] in (1, 3, 4) and obs[k].dtype == np.uint8]
    if len(cams) != 1:
        raise DataError(f"{where}: {'several' if cams else 'no'} camera datasets in obs ({cams or sorted(obs.keys())}); "
                        "name the one to use with image_key=")
    return cams[0]


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
              state_keys: list[str] | None = None) -> Iterator[SourceEpisode]:
    """Yield the demos of every HDF5 file under `path` (a file or a folder), in natural order."""
    h5py = require("h5py", "data")
    root = Path(path)
    if not root.exists():
        raise DataError(f"{root} does not exist; set input= to a robomimic-style .hdf5 file or a folder of them")
    for file in _files(root):
        with h5py.File(file, "r") as f:
            if "data" not in f:
                raise DataError(f"{file}: no 'data' group; this is not a robomimic-style HDF5 file")
            file_instr = None
            if "problem_info" in f["data"].attrs:
                try:
                    file_instr = json.loads(f["data"].attrs["problem_info"]).get("language_instruction")
                except (TypeError, ValueError):
                    file_instr = None
            for demo in sorted(f["data"].keys(), key=natural_key):
                g = f["data"][demo]
                where = f"{file}:data/{demo}"
                if action_key not in g:
                    raise DataError(f"{where}: no '{action_key}' dataset; set action_key=")
                if "obs" not in g:
                    raise DataError(f"{where}: no 'obs' group")
                key = _image_key(g["obs"], image_key, where)
                frames = np.asarray(g["obs"][key])
                if flip_vertical:
                    frames = frames[:, ::-1]
                instr = g.attrs.get(instruction_attr) if instruction_attr else None
                if isinstance(instr, bytes):
                    instr = instr.decode("utf-8")
                yield SourceEpisode(where, frames, np.asarray(g[action_key]),
                                    str(instr) if instr else (file_instr or instruction or None),
                                    _state(g, list(state_keys or []), where))
