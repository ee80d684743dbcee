"""The server's side of the wire protocol: request limits and validation, error replies.

The wire format itself (msgpack + numpy codec, message types, error codes) is
`selfflow_robot.policies.wire`, shared with the robot-side client. Every malformed request is
answered with a ``bad_request`` error naming the field, and the connection stays usable.
Oversized frames (> `RequestLimits.max_message_bytes`) are refused by the transport itself with
close code 1009. Before a frame is decoded, `budget.check_budget` bounds its cost (objects, nesting,
string lengths) from its msgpack headers alone, so no frame costs more to refuse than its headers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from selfflow_robot.errors import ConfigError
from selfflow_robot.policies.serving.budget import BudgetError, check_budget
from selfflow_robot.policies.wire import BAD_REQUEST, MSG_ERROR, MSG_INFER, MSG_RESET, WireError, packb, unpackb

__all__ = ["RequestLimits", "ProtocolError", "ResetRequest", "InferRequest", "parse_request", "error_reply",
           "MAX_DEPTH", "MAX_STATE_DIM"]

_REQUEST_FIELDS = {
    MSG_RESET: {"type": True, "instruction": True, "id": False},
    MSG_INFER: {"type": True, "image": True, "instruction": False, "state": False, "id": False},
}
# The deepest a valid request nests: request map > image ext > [dtype, shape, bytes] > shape list.
MAX_DEPTH = 4
MAX_STATE_DIM = 64


@dataclass
class RequestLimits:
    """Caps every request must respect (also sent to the client in the metadata; `ServeConfig.limits`).

    Args:
        max_image_bytes: largest image array accepted (all frames together).
        min_image_side: smallest accepted image height/width in pixels.
        max_image_side: largest accepted image height/width in pixels.
        max_frames: most frames one request may carry (``(T, H, W, 3)`` images).
        max_instruction_chars: longest instruction accepted.
        max_message_bytes: transport limit for one frame; larger frames close the socket (1009).
        max_entries: most msgpack objects (keys, values, list elements, array header fields) one
            request may hold, counted from its headers before it is decoded; a valid request has
            about 20 plus the state's values, so 256 leaves room and refuses a 700,000-key map at once.
        max_state_abs: largest accepted |value| of the robot state. Poses in metres and angles in
            radians are within a few units; 1e4 refuses garbage such as 1e39 (inf in float32) long
            before the checkpoint's normaliser could overflow.
    """

    max_image_bytes: int = 4 * 2**20
    min_image_side: int = 8
    max_image_side: int = 2048
    max_frames: int = 8
    max_instruction_chars: int = 512
    max_message_bytes: int = 8 * 2**20
    max_entries: int = 256
    max_state_abs: float = 1e4

    def __post_init__(self) -> None:
        if not 0 < self.min_image_side <= self.max_image_side:
            raise ConfigError(f"serve limits: need 0 < min_image_side <= max_image_side, "
                              f"got {self.min_image_side}, {self.max_image_side}")
        if self.max_message_bytes < self.max_image_bytes:
            raise ConfigError("serve limits: max_message_bytes must be >= max_image_bytes")
        if self.max_frames < 1 or self.max_instruction_chars < 1 or self.max_image_bytes < 1:
            raise ConfigError("serve limits: max_frames, max_instruction_chars and max_image_bytes must be >= 1")
        if self.max_entries < 2 * MAX_STATE_DIM:
            raise ConfigError(f"serve limits: max_entries must be >= {2 * MAX_STATE_DIM} (a request with a "
                              f"{MAX_STATE_DIM}-value state), got {self.max_entries}")
        if not 0 < self.max_state_abs < float("inf"):
            raise ConfigError(f"serve limits: max_state_abs must be a positive finite number, got {self.max_state_abs}")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


class ProtocolError(ValueError):
    """A request that breaks the protocol; `code` and the message go back to the client."""

    def __init__(self, message: str, code: str = BAD_REQUEST) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class ResetRequest:
    """Start a new episode with `instruction`."""

    instruction: str
    id: int | None = None


@dataclass
class InferRequest:
    """One observation: `image` uint8 ``(T, H, W, 3)`` (a single frame arrives as T=1)."""

    image: np.ndarray
    instruction: str | None = None
    id: int | None = None
    state: np.ndarray | None = None


def _check_fields(msg: dict[str, Any], kind: str) -> None:
    spec = _REQUEST_FIELDS[kind]
    unknown = sorted(str(k) for k in msg if k not in spec)
    if unknown:
        raise ProtocolError(f"unknown field(s) {unknown} in '{kind}' request; allowed: {sorted(spec)}")
    missing = [k for k, required in spec.items() if required and k not in msg]
    if missing:
        raise ProtocolError(f"missing field(s) {missing} in '{kind}' request")


def _instruction(value: Any, limits: RequestLimits) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"'instruction' must be a string, got {type(value).__name__}")
    if len(value) > limits.max_instruction_chars:
        raise ProtocolError(f"'instruction' is {len(value)} characters, the limit is {limits.max_instruction_chars}")
    if not value.strip():
        raise ProtocolError("'instruction' is empty")
    return value


def _request_id(value: Any) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not -2**63 <= value < 2**63:
        raise ProtocolError(f"'id' must be a 64-bit integer, got {type(value).__name__}")
    return value


def _image(value: Any, limits: RequestLimits) -> np.ndarray:
    if not isinstance(value, np.ndarray):
        raise ProtocolError(f"'image' must be a numpy array (msgpack ndarray ext), got {type(value).__name__}")
    if value.dtype != np.uint8:
        raise ProtocolError(f"'image' must be uint8, got {value.dtype}")
    if value.ndim == 3:
        value = value[None]
    if value.ndim != 4 or value.shape[-1] != 3:
        raise ProtocolError(f"'image' must have shape (H, W, 3) or (T, H, W, 3), got {tuple(value.shape)}")
    t, h, w, _ = value.shape
    if not 1 <= t <= limits.max_frames:
        raise ProtocolError(f"'image' has {t} frames, allowed 1..{limits.max_frames}")
    for name, side in (("height", h), ("width", w)):
        if not limits.min_image_side <= side <= limits.max_image_side:
            raise ProtocolError(f"'image' {name} {side} is outside {limits.min_image_side}..{limits.max_image_side}")
    if value.nbytes > limits.max_image_bytes:
        raise ProtocolError(f"'image' is {value.nbytes} bytes, the limit is {limits.max_image_bytes}")
    return value


def _state(value: Any, limits: RequestLimits) -> np.ndarray:
    """The robot state, as strictly as the image: real numbers, shape (n,), finite, |x| <= max_state_abs."""
    if isinstance(value, list):
        if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
            raise ProtocolError("'state' must be a flat list of real numbers (or a 1-D float/int array)")
        arr = np.asarray(value, dtype=np.float64)
    elif isinstance(value, np.ndarray):
        if value.dtype.kind not in "iuf":
            raise ProtocolError(f"'state' must be a real float or integer array, got {value.dtype}")
        arr = value.astype(np.float64)
    else:
        raise ProtocolError(f"'state' must be a 1-D numpy array or a list of numbers, got {type(value).__name__}")
    if arr.ndim != 1 or not 1 <= arr.size <= MAX_STATE_DIM:
        raise ProtocolError(f"'state' must have shape (state_dim,) with 1..{MAX_STATE_DIM} values, "
                            f"got shape {tuple(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise ProtocolError("'state' must be finite (no NaN or inf)")
    peak = float(np.abs(arr).max())
    if peak > limits.max_state_abs:
        raise ProtocolError(f"'state' holds |x| = {peak:.3g}; the limit is {limits.max_state_abs:g} "
                            "(limits.max_state_abs)")
    return arr.astype(np.float32)


def parse_request(data: Any, limits: RequestLimits) -> ResetRequest | InferRequest:
    """Decode and validate one client frame; raises `ProtocolError` with a message for the client."""
    if isinstance(data, str):
        raise ProtocolError("text frames are not accepted: send binary msgpack frames")
    if len(data) > limits.max_message_bytes:
        raise ProtocolError(f"message is {len(data)} bytes, the limit is {limits.max_message_bytes}")
    try:
        check_budget(data, limits.max_entries, MAX_DEPTH, 4 * limits.max_instruction_chars + 64)
        msg = unpackb(data)
    except (BudgetError, WireError) as e:
        raise ProtocolError(str(e)) from e
    if not isinstance(msg, dict):
        raise ProtocolError(f"a request must be a msgpack map, got {type(msg).__name__}")
    kind = msg.get("type")
    if not isinstance(kind, str) or kind not in _REQUEST_FIELDS:
        raise ProtocolError(f"'type' must be one of {sorted(_REQUEST_FIELDS)}, got {kind!r:.60}")
    _check_fields(msg, kind)
    rid = _request_id(msg.get("id"))
    if kind == MSG_RESET:
        return ResetRequest(instruction=_instruction(msg["instruction"], limits), id=rid)
    instruction = msg.get("instruction")
    state = msg.get("state")
    return InferRequest(image=_image(msg["image"], limits),
                        instruction=None if instruction is None else _instruction(instruction, limits), id=rid,
                        state=None if state is None else _state(state, limits))


def error_reply(message: str, code: str = BAD_REQUEST, request_id: int | None = None,
                details: str | None = None) -> bytes:
    """Encode an error reply."""
    msg: dict[str, Any] = {"type": MSG_ERROR, "code": code, "message": message}
    if request_id is not None:
        msg["id"] = request_id
    if details is not None:
        msg["details"] = details
    return packb(msg)
