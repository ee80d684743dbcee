"""The server's side of the wire protocol: request limits and validation, error replies.

The wire format itself (msgpack + numpy codec, message types, error codes) is
`selfflow_robot.policies.wire`, shared with the robot-side client. Every malformed request is
answered with a ``bad_request`` error naming the field, and the connection stays usable.
Oversized frames (> `RequestLimits.max_message_bytes`) are refused by the transport itself with
close code 1009.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from selfflow_robot.errors import ConfigError
from selfflow_robot.policies.wire import BAD_REQUEST, MSG_ERROR, MSG_INFER, MSG_RESET, WireError, packb, unpackb

__all__ = ["RequestLimits", "ProtocolError", "ResetRequest", "InferRequest", "parse_request", "error_reply"]

_REQUEST_FIELDS = {
    MSG_RESET: {"type": True, "instruction": True, "id": False},
    MSG_INFER: {"type": True, "image": True, "instruction": False, "state": False, "id": False},
}


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
    """

    max_image_bytes: int = 4 * 2**20
    min_image_side: int = 8
    max_image_side: int = 2048
    max_frames: int = 8
    max_instruction_chars: int = 512
    max_message_bytes: int = 8 * 2**20

    def __post_init__(self) -> None:
        if not 0 < self.min_image_side <= self.max_image_side:
            raise ConfigError(f"serve limits: need 0 < min_image_side <= max_image_side, "
                              f"got {self.min_image_side}, {self.max_image_side}")
        if self.max_message_bytes < self.max_image_bytes:
            raise ConfigError("serve limits: max_message_bytes must be >= max_image_bytes")
        if self.max_frames < 1 or self.max_instruction_chars < 1 or self.max_image_bytes < 1:
            raise ConfigError("serve limits: max_frames, max_instruction_chars and max_image_bytes must be >= 1")

    def to_dict(self) -> dict[str, int]:
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


MAX_STATE_DIM = 64


def _state(value: Any) -> np.ndarray:
    try:
        arr = np.asarray(value, np.float32).reshape(-1)
    except (TypeError, ValueError) as e:
        raise ProtocolError(f"'state' must be an array or list of floats ({e})") from e
    if not 1 <= arr.size <= MAX_STATE_DIM or not np.all(np.isfinite(arr)):
        raise ProtocolError(f"'state' must hold 1..{MAX_STATE_DIM} finite floats, got {arr.size} value(s)")
    return arr


def parse_request(data: Any, limits: RequestLimits) -> ResetRequest | InferRequest:
    """Decode and validate one client frame; raises `ProtocolError` with a message for the client."""
    if isinstance(data, str):
        raise ProtocolError("text frames are not accepted: send binary msgpack frames")
    if len(data) > limits.max_message_bytes:
        raise ProtocolError(f"message is {len(data)} bytes, the limit is {limits.max_message_bytes}")
    try:
        msg = unpackb(data)
    except WireError as e:
        raise ProtocolError(str(e)) from e
    if not isinstance(msg, dict):
        raise ProtocolError(f"a request must be a msgpack map, got {type(msg).__name__}")
    kind = msg.get("type")
    if kind not in _REQUEST_FIELDS:
        raise ProtocolError(f"'type' must be one of {sorted(_REQUEST_FIELDS)}, got {kind!r:.60}")
    _check_fields(msg, kind)
    rid = _request_id(msg.get("id"))
    if kind == MSG_RESET:
        return ResetRequest(instruction=_instruction(msg["instruction"], limits), id=rid)
    instruction = msg.get("instruction")
    state = msg.get("state")
    return InferRequest(image=_image(msg["image"], limits),
                        instruction=None if instruction is None else _instruction(instruction, limits), id=rid,
                        state=None if state is None else _state(state))


def error_reply(message: str, code: str = BAD_REQUEST, request_id: int | None = None,
                details: str | None = None) -> bytes:
    """Encode an error reply."""
    msg: dict[str, Any] = {"type": MSG_ERROR, "code": code, "message": message}
    if request_id is not None:
        msg["id"] = request_id
    if details is not None:
        msg["details"] = details
    return packb(msg)
