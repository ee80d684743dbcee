"""The wire format of `selfflow-robot serve`, shared by the server and the robot-side client.

Standalone on purpose: numpy and msgpack only (no torch, nothing else from selfflow_robot), so a
robot can vendor it as a flat file next to `client.py` and `control_loop.py`.

Transport: one WebSocket per policy session; every frame is one binary msgpack message (numpy
arrays as a msgpack ext type, never pickle). Messages (all maps with a ``type``):

======================  ==================================================================
server -> client        ``metadata`` on connect: ``protocol_version``, ``chunk_length``,
                        ``action_dim``, ``action_q01``/``action_q99`` (the checkpoint's
                        bounds), ``image_shape``, ``context_frames``, ``limits``, ...
client -> server        ``{"type": "reset", "instruction": str}``
server -> client        ``{"type": "reset"}``
client -> server        ``{"type": "infer", "image": uint8 (H, W, 3) | (T, H, W, 3),
                        "instruction"?: str, "state"?: float (state_dim,), "id"?: int}``
                        (``state``: the robot's proprioception, required when the
                        metadata's ``state_dim`` > 0)
server -> client        ``{"type": "chunk", "id", "actions": float32 (chunk, 7), ...,
                        "timing": {"queue_ms", "infer_ms", "server_ms", "batch_size"}}``
server -> client        ``{"type": "error", "code": "bad_request" | "internal", "message": str}``
======================  ==================================================================

Every malformed request is answered with a ``bad_request`` error naming the field, and the
connection stays usable (the server's request validation: `selfflow_robot.policies.serving.protocol`).
"""
from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

__all__ = [
    "PROTOCOL_VERSION", "WireError", "packb", "unpackb",
    "MSG_METADATA", "MSG_RESET", "MSG_INFER", "MSG_CHUNK", "MSG_ERROR", "BAD_REQUEST", "INTERNAL",
]

PROTOCOL_VERSION = 1
NDARRAY_EXT = 1  # msgpack ext type code for a numpy array: packb([dtype.str, shape, raw bytes])
MAX_NDIM = 8
# Only plain numeric/bool dtypes travel; object, string and void dtypes are refused on both ends.
_ALLOWED_KINDS = "biufc"

# Message types (the ``type`` field) and error codes (the ``code`` field of an ``error`` reply).
MSG_METADATA = "metadata"
MSG_RESET = "reset"
MSG_INFER = "infer"
MSG_CHUNK = "chunk"
MSG_ERROR = "error"
BAD_REQUEST = "bad_request"
INTERNAL = "internal"


class WireError(ValueError):
    """Bytes that are not a valid protocol message (bad msgpack, bad array header, wrong size)."""


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind not in _ALLOWED_KINDS:
            raise TypeError(f"cannot send a numpy array of dtype {obj.dtype} (only bool/int/uint/float/complex)")
        arr = np.ascontiguousarray(obj)
        header = [arr.dtype.str, list(arr.shape), arr.tobytes()]
        return msgpack.ExtType(NDARRAY_EXT, msgpack.packb(header, use_bin_type=True))
    if isinstance(obj, np.generic):  # numpy scalar -> Python scalar
        return obj.item()
    raise TypeError(f"cannot encode object of type {type(obj).__name__}")


def _ext_hook(code: int, data: bytes) -> Any:
    if code != NDARRAY_EXT:
        raise WireError(f"unknown msgpack ext type {code}")
    try:
        header = msgpack.unpackb(data, raw=False, use_list=True)
    except Exception as e:  # noqa: BLE001 - any decoder failure is a wire error
        raise WireError(f"bad ndarray header: {e}") from e
    if not (isinstance(header, list) and len(header) == 3):
        raise WireError("bad ndarray header: expected [dtype, shape, bytes]")
    dtype_str, shape, raw = header
    if not isinstance(dtype_str, str) or not isinstance(shape, list) or not isinstance(raw, bytes):
        raise WireError("bad ndarray header: expected [str, list, bytes]")
    try:
        dtype = np.dtype(dtype_str)
    except TypeError as e:
        raise WireError(f"bad ndarray dtype {dtype_str!r}") from e
    if dtype.kind not in _ALLOWED_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise WireError(f"ndarray dtype {dtype_str!r} is not allowed (only bool/int/uint/float/complex)")
    if len(shape) > MAX_NDIM or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise WireError(f"bad ndarray shape {shape!r}")
    count = 1
    for n in shape:
        count *= n
    if count * dtype.itemsize != len(raw):
        raise WireError(f"ndarray payload is {len(raw)} bytes, shape {shape} of {dtype_str} "
                        f"needs {count * dtype.itemsize}")
    # Copy so the caller gets an ordinary writable array (frombuffer views are read-only).
    return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()


def packb(obj: Any) -> bytes:
    """Encode a message (dicts, lists, str, numbers, bytes, numpy arrays and scalars) to msgpack."""
    return msgpack.packb(obj, default=_default, use_bin_type=True)


def unpackb(data: bytes) -> Any:
    """Decode msgpack bytes made by `packb`; raises `WireError` on anything malformed."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireError(f"expected a binary frame, got {type(data).__name__}")
    try:
        return msgpack.unpackb(bytes(data), ext_hook=_ext_hook, raw=False, strict_map_key=True)
    except WireError:
        raise
    except Exception as e:  # noqa: BLE001 - msgpack raises several unrelated exception types
        raise WireError(f"not a valid msgpack message: {type(e).__name__}: {e}") from e
