"""Mapping users' actions, robot state, frames and instructions onto RT-1's conventions, explicitly.

RT-1 action (per step): `world_vector` (3, metres, base frame: x forward, y left, z up),
`rotation_delta` (3, roll/pitch/yaw in radians), `gripper_closedness_action` (1, relative:
+1 close, -1 open, 0 no change), `terminate_episode` ([1, 0, 0] on the last step, else
[0, 1, 0]). RT-1 proprioception (per step, optional): `base_pose_tool_reached` (7: tool position
in metres + quaternion x, y, z, w, robot base frame), `gripper_closed` (1: 0 open .. 1 closed).
Everything that differs in a user's data is a named option of `ActionMapping` / `StateMapping`;
nothing is guessed from the values. Out-of-range results raise `DataError` naming the option
to change.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

from selfflow_robot.config import check_choice
from selfflow_robot.data import schema
from selfflow_robot.data.language import load_language_table
from selfflow_robot.data.synth import instruction_embedding
from selfflow_robot.errors import ConfigError, DataError

ROTATIONS = ("rpy", "axis_angle", "quat_xyzw", "quat_wxyz", "none")  # plus "euler_<seq>", e.g. euler_zyx
GRIPPERS = ("relative", "absolute_close1", "absolute_open1", "absolute_pm1", "none")
STATE_GRIPPERS = ("absolute_close1", "absolute_open1", "absolute_pm1", "none")
FITS = ("pad", "stretch", "crop")


def check_rotation(prefix: str, fmt: str, indices: list[int]) -> None:
    """Raise `ConfigError` unless `<prefix>.rotation_format` is known and `<prefix>.rotation` has its index count."""
    if not re.fullmatch(r"euler_[xyzXYZ]{3}", fmt):
        check_choice(f"{prefix}.rotation_format", fmt, ROTATIONS + ("euler_<seq>",))
    want = 0 if fmt == "none" else 4 if fmt.startswith("quat") else 3
    if len(indices) != want:
        raise ConfigError(f"{prefix}.rotation needs {want} indices for rotation_format={fmt}, got {indices}")


def check_layout(prefix: str, xyz_name: str, xyz: list[int], rotation_format: str, rotation: list[int],
                 gripper_format: str, gripper: int, grippers: tuple[str, ...]) -> None:
    """Raise `ConfigError` unless a mapping's `<prefix>.*` indices and formats fit together: 3 `xyz_name`
    indices, the rotation's index count, a known gripper format, and a gripper index unless it is none."""
    if len(xyz) != 3:
        raise ConfigError(f"{prefix}.{xyz_name} needs 3 indices, got {xyz}")
    check_rotation(prefix, rotation_format, rotation)
    check_choice(f"{prefix}.gripper_format", gripper_format, grippers)
    if gripper_format != "none" and gripper < 0:
        raise ConfigError(f"{prefix}.gripper is -1 (no gripper) but gripper_format is "
                          f"{gripper_format!r}; set {prefix}.gripper_format=none")


def to_rotation(r: np.ndarray, fmt: str):
    """(T, 3|4) values in rotation format `fmt` (not "none") -> a scipy `Rotation` of T rotations."""
    if fmt == "rpy":
        return Rotation.from_euler("xyz", r)
    if fmt == "axis_angle":
        return Rotation.from_rotvec(r)
    if fmt == "quat_xyzw":
        return Rotation.from_quat(r)
    if fmt == "quat_wxyz":
        return Rotation.from_quat(r[:, [1, 2, 3, 0]])
    return Rotation.from_euler(fmt.split("_", 1)[1], r)


def closedness(g: np.ndarray, fmt: str, where: str, option: str) -> np.ndarray:
    """Absolute gripper values in `fmt` -> closedness (0 open .. 1 closed); `DataError` naming `option` if outside."""
    closed = {"absolute_close1": g, "absolute_open1": 1.0 - g, "absolute_pm1": (g + 1.0) / 2.0}[fmt]
    if closed.min(initial=0) < -1e-6 or closed.max(initial=0) > 1 + 1e-6:
        raise DataError(f"{where}: gripper values span [{g.min():.3g}, {g.max():.3g}], outside the range of "
                        f"{option}={fmt}; pick the format that matches your data")
    return closed


def _check_array(a: np.ndarray, used: list[int], where: str, what: str, options: str) -> None:
    """(T, D) with every used index present and finite, else `DataError` naming `options`."""
    if a.ndim != 2:
        raise DataError(f"{where}: {what} must be (T, D), got shape {a.shape}")
    if used and max(used) >= a.shape[1]:
        raise DataError(f"{where}: {what} have {a.shape[1]} dims but the mapping uses index {max(used)}; "
                        f"set {options}")
    if not np.isfinite(a[:, used]).all():
        raise DataError(f"{where}: {what} contain NaN/inf; fix the source data")


@dataclass
class ActionMapping:
    """How a user's action vector maps to RT-1's 7-D action.

    Args:
        translation: indices of the x, y, z translation in the user's action vector.
        rotation: indices of the rotation (3, or 4 for quaternions; [] for none).
        gripper: index of the gripper value (-1 = no gripper in the data: written as 0 = no change).
        translation_scale: multiply translations by this to get metres (e.g. 0.01 for cm,
            or a controller's max step for actions normalised to [-1, 1]).
        rotation_format: "rpy" (RT-1: roll, pitch, yaw = scipy 'xyz' Euler), "axis_angle" (rotation vector),
            "quat_xyzw", "quat_wxyz", "euler_<seq>" (any scipy Euler sequence, e.g. euler_zyx, euler_XYZ)
            or "none" (zeros).
        rotation_scale: multiply rotations (after conversion to rpy) by this (e.g. 0.01745 for degrees).
        gripper_format: "relative" (RT-1: +1 close, -1 open, 0 no change), "absolute_close1" (state/command,
            1 = closed, 0 = open), "absolute_open1" (1 = open, 0 = closed), "absolute_pm1" (+1 closed,
            -1 open, as robosuite/robomimic) or "none".
        gripper_threshold: absolute formats become relative commands where the closedness changes by more
            than this between steps (+1 when it closes, -1 when it opens, else 0; the first step compares
            with itself, i.e. no command).
    """

    translation: list[int] = field(default_factory=lambda: [0, 1, 2])
    rotation: list[int] = field(default_factory=lambda: [3, 4, 5])
    gripper: int = 6
    translation_scale: float = 1.0
    rotation_format: str = "rpy"
    rotation_scale: float = 1.0
    gripper_format: str = "relative"
    gripper_threshold: float = 0.1

    def __post_init__(self) -> None:
        check_layout("actions", "translation", self.translation, self.rotation_format, self.rotation,
                     self.gripper_format, self.gripper, GRIPPERS)

    def apply(self, actions: np.ndarray, where: str = "") -> dict[str, np.ndarray]:
        """(T, D) user actions -> {world_vector (T,3), rotation_delta (T,3), gripper_closedness_action (T,1)}."""
        a = np.asarray(actions, np.float64)
        used = [*self.translation, *self.rotation] + ([self.gripper] if self.gripper_format != "none" else [])
        _check_array(a, used, where, "actions", "actions.translation / actions.rotation / actions.gripper")
        T = len(a)
        wv = a[:, self.translation] * self.translation_scale
        rot = self._rotation(a) * self.rotation_scale
        for name, value, option in ((schema.WORLD_VECTOR, wv, "actions.translation_scale"),
                                    (schema.ROTATION_DELTA, rot, "actions.rotation_scale / actions.rotation_format")):
            big = np.abs(value) > schema.ACTION_LIMIT
            if big.any():
                t, c = (int(i) for i in np.argwhere(big)[0])
                raise DataError(f"{where}: {name} is {value[t, c]:.6g} at step {t} after the mapping, beyond RT-1's "
                                f"+-{schema.ACTION_LIMIT:g} (metres / radians per step); check {option} (a unit "
                                "error?) or fix the source data")
        grip = self._gripper(a, where)
        return {schema.WORLD_VECTOR: wv.astype(np.float32), schema.ROTATION_DELTA: rot.astype(np.float32),
                schema.GRIPPER: grip.reshape(T, 1).astype(np.float32)}

    def _rotation(self, a: np.ndarray) -> np.ndarray:
        fmt = self.rotation_format
        if fmt == "none":
            return np.zeros((len(a), 3))
        r = a[:, self.rotation]
        return r if fmt == "rpy" else to_rotation(r, fmt).as_euler("xyz")

    def _gripper(self, a: np.ndarray, where: str) -> np.ndarray:
        fmt = self.gripper_format
        if fmt == "none":
            return np.zeros(len(a))
        g = a[:, self.gripper]
        if fmt == "relative":
            if np.abs(g).max(initial=0) > 1 + 1e-6:
                raise DataError(f"{where}: gripper values reach {np.abs(g).max():.3g}, outside RT-1's relative "
                                "[-1, 1]; if they are absolute positions set actions.gripper_format="
                                "absolute_close1|absolute_open1|absolute_pm1")
            return g
        closed = closedness(g, fmt, where, "actions.gripper_format")
        diff = np.diff(closed, prepend=closed[:1])
        return np.where(diff > self.gripper_threshold, 1.0, np.where(diff < -self.gripper_threshold, -1.0, 0.0))


@dataclass
class StateMapping:
    """How a user's robot-state vector maps to RT-1's proprioception (`schema.STATE_KEYS`).

    Used only when the converter's `state_key` names a state source (empty = no state: the two
    fields are written as zeros, as before). The defaults read RT-1's own 8-D layout
    `[x, y, z, qx, qy, qz, qw, gripper_closed]`.

    Args:
        position: indices of the tool (end-effector) x, y, z in the robot base frame.
        position_scale: multiply positions by this to get metres (e.g. 0.001 for mm).
        rotation: indices of the tool orientation (3, or 4 for quaternions; [] for none).
        rotation_format: as `actions.rotation_format` (an absolute orientation here): "rpy", "axis_angle",
            "quat_xyzw", "quat_wxyz", "euler_<seq>" or "none" (quaternion written as zeros).
            Written as a quaternion (x, y, z, w).
        gripper: index of the gripper value (-1 = none in the data).
        gripper_scale: multiply the gripper value by this before reading it with `gripper_format`
            (e.g. 25 for a Panda finger joint that is 0.04 m when open).
        gripper_format: "absolute_close1" (1 = closed, 0 = open), "absolute_open1" (1 = open),
            "absolute_pm1" (+1 closed, -1 open) or "none" (written as 0 = open).
    """

    position: list[int] = field(default_factory=lambda: [0, 1, 2])
    position_scale: float = 1.0
    rotation: list[int] = field(default_factory=lambda: [3, 4, 5, 6])
    rotation_format: str = "quat_xyzw"
    gripper: int = 7
    gripper_scale: float = 1.0
    gripper_format: str = "absolute_close1"

    def __post_init__(self) -> None:
        check_layout("state", "position", self.position, self.rotation_format, self.rotation,
                     self.gripper_format, self.gripper, STATE_GRIPPERS)

    def apply(self, state: np.ndarray, where: str = "") -> dict[str, np.ndarray]:
        """(T, D) user state -> {base_pose_tool_reached (T,7), gripper_closed (T,1)}, float32."""
        s = np.asarray(state, np.float64)
        used = [*self.position, *self.rotation] + ([self.gripper] if self.gripper_format != "none" else [])
        _check_array(s, used, where, "state values (state_key)", "state.position / state.rotation / state.gripper")
        T = len(s)
        quat = np.zeros((T, 4))
        if self.rotation_format != "none":
            try:
                quat = to_rotation(s[:, self.rotation], self.rotation_format).as_quat()
            except ValueError as e:  # e.g. a zero-norm quaternion
                raise DataError(f"{where}: state.rotation values are not rotations in "
                                f"rotation_format={self.rotation_format} ({e})") from e
        grip = np.zeros(T)
        if self.gripper_format != "none":
            grip = closedness(s[:, self.gripper] * self.gripper_scale, self.gripper_format, where,
                              "state.gripper_format")
        pose = np.concatenate([s[:, self.position] * self.position_scale, quat], 1)
        return {schema.TOOL_POSE: pose.astype(np.float32), schema.GRIPPER_CLOSED: grip.reshape(T, 1).astype(np.float32)}


def fit_frame(frame: np.ndarray, mode: str = "pad", size: tuple[int, int] = schema.IMAGE_SHAPE[:2]) -> np.ndarray:
    """Fit an (H, W, 3|4|1) uint8 frame into RT-1's 256 x 320: pad (keep aspect, black bars), stretch or crop."""
    f = np.asarray(frame)
    if f.ndim == 2:
        f = f[..., None]
    if f.dtype != np.uint8:
        if np.issubdtype(f.dtype, np.floating) and f.max(initial=0) <= 1.0:
            f = f * 255.0
        f = np.clip(f, 0, 255).astype(np.uint8)
    if f.shape[-1] == 1:
        f = np.repeat(f, 3, -1)
    f = f[..., :3]
    H, W = size
    h, w = f.shape[:2]
    if (h, w) == (H, W):
        return np.ascontiguousarray(f)
    im = Image.fromarray(np.ascontiguousarray(f))
    if mode == "stretch":
        return np.asarray(im.resize((W, H), Image.BILINEAR))
    if mode == "crop":
        s = max(H / h, W / w)
        nh, nw = max(H, round(h * s)), max(W, round(w * s))
        im = im.resize((nw, nh), Image.BILINEAR)
        top, left = (nh - H) // 2, (nw - W) // 2
        return np.asarray(im.crop((left, top, left + W, top + H)))
    s = min(H / h, W / w)
    nh, nw = max(1, round(h * s)), max(1, round(w * s))
    out = np.zeros((H, W, 3), np.uint8)
    top, left = (H - nh) // 2, (W - nw) // 2
    out[top:top + nh, left:left + nw] = np.asarray(im.resize((nw, nh), Image.BILINEAR))
    return out


class Embedder:
    """Instruction -> 512-d embedding: from a table file, or a fixed hash-seeded unit vector.

    RT-1's embeddings come from the Universal Sentence Encoder (large, v5), which cannot run
    offline here. `hash` gives each distinct instruction a fixed, distinct vector: fine for
    training our model on the converted data alone (the policy looks embeddings up in the
    checkpoint's language table), not comparable with RT-1's own embeddings. To mix with RT-1
    data, compute USE embeddings yourself and pass them as `embedding_table` (a safetensors
    written by `save_language_table`, an .npz or a .json mapping instruction -> 512 floats).
    """

    def __init__(self, mode: str = "hash", table: str = ""):
        check_choice("embedding", mode, ("hash", "table"))
        self.mode = mode
        self.table: dict[str, np.ndarray] = {}
        if mode == "table":
            if not table:
                raise ConfigError("embedding=table needs embedding_table=PATH (.safetensors, .npz or .json)")
            self.table = load_embedding_table(table)

    def __call__(self, instruction: str) -> np.ndarray:
        if self.mode == "hash":
            return instruction_embedding(instruction)
        if instruction not in self.table:
            raise DataError(f"instruction {instruction!r} is not in the embedding table ({len(self.table)} entries); "
                            "add it, or use embedding=hash")
        return self.table[instruction]


def load_embedding_table(path: str) -> dict[str, np.ndarray]:
    """Read instruction -> 512-d vectors from .safetensors (ours), .npz or .json."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"embedding_table {p} does not exist")
    if p.suffix == ".safetensors":
        table = load_language_table(p)
    elif p.suffix == ".npz":
        with np.load(p) as z:
            table = {k: np.asarray(z[k], np.float32) for k in z.files}
    elif p.suffix == ".json":
        table = {k: np.asarray(v, np.float32) for k, v in json.loads(p.read_text()).items()}
    else:
        raise ConfigError(f"embedding_table {p}: unsupported file type (use .safetensors, .npz or .json)")
    for k, v in table.items():
        if v.shape != (512,):
            raise DataError(f"embedding_table {p}: entry {k!r} has shape {v.shape}, expected (512,)")
    return table
