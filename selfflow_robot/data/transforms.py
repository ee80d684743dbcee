"""Policy input/output transforms: small callables from a dict to a dict, chained openpi-style.

Inputs run in order (resize/pad the frames as in training -> embed the instruction); outputs run
in the mirrored order (unnormalise the action chunk with the checkpoint's statistics -> split into
SimplerEnv's action dict). Each transform touches only its own keys and leaves the rest as is.

Keys of the policy's observation / result dicts (module constants, used by the server too):

    IMAGE        uint8 (T, H, W, 3): the frame history, oldest first (T >= 1)
    INSTRUCTION  str: the task description
    STATE        float32 (8,): the robot's proprioception (state-conditioned checkpoints)
    TEXT         float32 (512,): the instruction embedding
    ACTION_TOKENS  float32 (H, 8): normalised chunk, as the model produces it ("raw")
    ACTIONS      float32 (H, 7): unnormalised RT-1 actions (world_vector, rotation_delta, gripper)
    TERMINATE    float32 (H,): 1.0 where the model asks to end the episode
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from selfflow_robot.constants import GRIPPER, ROTATION_DELTA, WORLD_VECTOR
from selfflow_robot.data.frames import decode_frame
from selfflow_robot.data.writer import encode_jpeg

IMAGE = "image"
INSTRUCTION = "instruction"
STATE = "state"
TEXT = "text"
ACTION_TOKENS = "action_tokens"
ACTIONS = "actions"
TERMINATE_KEY = "terminate"

Data = dict[str, Any]


class DataTransformFn(Protocol):
    """One step of a chain: returns a new dict (never mutates its input)."""

    def __call__(self, data: Data) -> Data: ...


@dataclasses.dataclass(frozen=True)
class Group:
    """Input and output transforms that belong together; `push` keeps the two chains mirrored."""

    inputs: Sequence[DataTransformFn] = ()
    outputs: Sequence[DataTransformFn] = ()

    def push(self, *, inputs: Sequence[DataTransformFn] = (), outputs: Sequence[DataTransformFn] = ()) -> Group:
        """Append `inputs` at the end of the input chain and `outputs` at the front of the output chain."""
        return Group(inputs=(*self.inputs, *inputs), outputs=(*outputs, *self.outputs))


@dataclasses.dataclass(frozen=True)
class Compose:
    """Apply transforms in order."""

    transforms: Sequence[DataTransformFn]

    def __call__(self, data: Data) -> Data:
        for t in self.transforms:
            data = t(data)
        return data


# ----------------------------------------------------------------------------- inputs


@dataclasses.dataclass(frozen=True)
class ResizeImages:
    """Bring every frame of `IMAGE` to the training size `(height, width)` with `resize_fn`.

    `resize_fn(frames uint8 (T, H, W, 3), (height, width)) -> uint8 (T, height, width, 3)` must be
    the data pipeline's own function, so the policy sees frames exactly as training did.
    """

    height: int
    width: int
    resize_fn: Callable[[np.ndarray, tuple[int, int]], np.ndarray]

    def __call__(self, data: Data) -> Data:
        if IMAGE not in data:
            return data
        frames = np.asarray(data[IMAGE])
        if frames.ndim == 3:
            frames = frames[None]
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"'{IMAGE}' must be uint8 (H, W, 3) or (T, H, W, 3), got {frames.dtype} {frames.shape}")
        if frames.shape[1:3] != (self.height, self.width):
            frames = np.asarray(self.resize_fn(frames, (self.height, self.width)))
        return {**data, IMAGE: frames}


def pad_to_aspect(frame: np.ndarray, aspect: float) -> np.ndarray:
    """Zero-pad `(H, W, 3)` symmetrically to width / height = `aspect` (tf.image.resize_with_pad's padding)."""
    h, w = frame.shape[:2]
    if abs(w / h - aspect) < 1e-3:
        return frame
    if w / h < aspect:
        new_w = int(round(h * aspect))
        left = (new_w - w) // 2
        return np.pad(frame, ((0, 0), (left, new_w - w - left), (0, 0)))
    new_h = int(round(w / aspect))
    top = (new_h - h) // 2
    return np.pad(frame, ((top, new_h - h - top), (0, 0), (0, 0)))


def resize_like_training(frames: np.ndarray, size: tuple[int, int], jpeg_quality: int = 90) -> np.ndarray:
    """Frames uint8 `(T, H, W, 3)` -> `(T, *size, 3)` through the training pipeline's own steps.

    Training frames are JPEGs decoded and resized by `data.frames.decode_frame` (DCT draft + bilinear).
    A camera frame is padded to the training aspect, JPEG-encoded like the dataset writer does
    (`data.writer.encode_jpeg`), then decoded by that same function, so the policy sees the
    same resampling and compression artefacts as in training.
    """
    aspect = size[1] / size[0]
    return np.stack([decode_frame(encode_jpeg(pad_to_aspect(f, aspect), jpeg_quality), tuple(size))
                     for f in frames])


@dataclasses.dataclass(frozen=True)
class EmbedInstruction:
    """`INSTRUCTION` (str) -> `TEXT` (512,) with an `InstructionEmbedder` (table + optional encoder)."""

    embedder: Callable[[str], np.ndarray]

    def __call__(self, data: Data) -> Data:
        if TEXT in data or INSTRUCTION not in data:
            return data
        return {**data, TEXT: np.asarray(self.embedder(data[INSTRUCTION]), np.float32)}


# ----------------------------------------------------------------------------- outputs


@dataclasses.dataclass(frozen=True)
class UnnormalizeActions:
    """`ACTION_TOKENS` (H, 8) -> `ACTIONS` (H, 7) raw RT-1 actions and `TERMINATE` (H,) in {0, 1}.

    `unnormalize(tokens) -> (actions, terminate)` comes from the checkpoint's
    `dataset_statistics.json` (the data pipeline's `ActionNormalizer`), never from the config.
    """

    unnormalize: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

    def __call__(self, data: Data) -> Data:
        if ACTION_TOKENS not in data:
            return data
        actions, terminate = self.unnormalize(np.asarray(data[ACTION_TOKENS], np.float32))
        return {**data, ACTIONS: np.asarray(actions, np.float32), TERMINATE_KEY: np.asarray(terminate, np.float32)}


def rotation_to_axangle(rotation_delta: np.ndarray) -> np.ndarray:
    """RT-1's `rotation_delta` read as an axis-angle vector (as SimplerEnv's RT-1 wrapper does):
    the rotation vector is already axis * angle."""
    # axis = r / |r|, angle = |r|, so axis * angle is r itself; no Euler conversion (that is Octo's convention).
    return np.asarray(rotation_delta, np.float64).reshape(3).copy()


@dataclasses.dataclass(frozen=True)
class SimplerAction:
    """One unnormalised step -> SimplerEnv's `(raw_action, action)` pair (Google robot setup).

    `raw_action`: `world_vector` (3,), `rotation_delta` (3,), `gripper_closedness_action` (1,),
    `terminate_episode` (1,). `action`: `world_vector` and `rot_axangle` scaled by `action_scale`,
    `gripper` (1,) relative closedness (+1 close) with |g| < `gripper_deadzone` set to 0 (RT-1's small
    action filter), `terminate_episode` (1,).
    """

    action_scale: float = 1.0
    gripper_deadzone: float = 1e-2

    def __call__(self, action7: np.ndarray, terminate: float) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        a = np.asarray(action7, np.float64)
        gripper = a[GRIPPER]
        if abs(gripper) < self.gripper_deadzone:
            gripper = 0.0
        raw = {
            "world_vector": a[WORLD_VECTOR].copy(),
            "rotation_delta": a[ROTATION_DELTA].copy(),
            "gripper_closedness_action": np.array([gripper]),
            "terminate_episode": np.array([float(terminate)]),
        }
        action = {
            "world_vector": raw["world_vector"] * self.action_scale,
            "rot_axangle": rotation_to_axangle(raw["rotation_delta"]) * self.action_scale,
            "gripper": np.array([gripper]),
            "terminate_episode": np.array([float(terminate)]),
        }
        return raw, action


SIMPLER_ACTION_SPEC: dict[str, tuple[int, ...]] = {
    "world_vector": (3,), "rot_axangle": (3,), "gripper": (1,), "terminate_episode": (1,)}


def check_simpler_action(action: dict[str, np.ndarray]) -> None:
    """Raise `ValueError` unless `action` has exactly SimplerEnv's keys, shapes and finite float values."""
    if set(action) != set(SIMPLER_ACTION_SPEC):
        raise ValueError(f"action keys {sorted(action)} != SimplerEnv's {sorted(SIMPLER_ACTION_SPEC)}")
    for key, shape in SIMPLER_ACTION_SPEC.items():
        v = action[key]
        if not isinstance(v, np.ndarray) or v.shape != shape or not np.issubdtype(v.dtype, np.floating):
            raise ValueError(f"action[{key!r}] must be a float ndarray of shape {shape}, got {type(v).__name__} "
                             f"{getattr(v, 'dtype', '')} {getattr(v, 'shape', '')}")
        if not np.isfinite(v).all():
            raise ValueError(f"action[{key!r}] is not finite: {v}")
    if action["terminate_episode"][0] not in (0.0, 1.0):
        raise ValueError(f"terminate_episode must be 0 or 1, got {action['terminate_episode'][0]}")


__all__ = [
    "IMAGE", "INSTRUCTION", "TEXT", "ACTION_TOKENS", "ACTIONS", "TERMINATE_KEY",
    "DataTransformFn", "Group", "Compose", "ResizeImages", "pad_to_aspect", "resize_like_training",
    "EmbedInstruction", "UnnormalizeActions",
    "SimplerAction", "rotation_to_axangle", "check_simpler_action", "SIMPLER_ACTION_SPEC",
]
