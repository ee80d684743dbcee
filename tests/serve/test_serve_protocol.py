"""Wire codec and request validation (no server, no model)."""
from __future__ import annotations

import msgpack
import numpy as np
import pytest

from selfflow_robot.policies.serving.protocol import (
    InferRequest,
    ProtocolError,
    RequestLimits,
    ResetRequest,
    parse_request,
)
from selfflow_robot.policies.wire import WireError, packb, unpackb

LIMITS = RequestLimits(max_image_bytes=64 * 64 * 3 * 2, min_image_side=8, max_image_side=64, max_frames=2,
                       max_instruction_chars=32, max_message_bytes=64 * 1024)


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int64", "float16", "float32", "float64", "bool", "complex64",
                                   ">f4"])
def test_ndarray_roundtrip_keeps_dtype_shape_values(dtype):
    rng = np.random.default_rng(0)
    a = (rng.standard_normal((2, 3, 4)) * 10).astype(dtype)
    msg = {"a": a, "nested": [a[0], {"s": np.float32(1.5)}], "t": "x", "i": 3}
    out = unpackb(packb(msg))
    assert out["a"].dtype == a.dtype and out["a"].shape == a.shape
    np.testing.assert_array_equal(out["a"], a)
    np.testing.assert_array_equal(out["nested"][0], a[0])
    assert out["nested"][1]["s"] == 1.5 and out["t"] == "x" and out["i"] == 3
    assert out["a"].flags.writeable


def test_noncontiguous_and_empty_arrays_roundtrip():
    a = np.arange(24, dtype=np.float32).reshape(4, 6)[:, ::2]
    np.testing.assert_array_equal(unpackb(packb(a)), a)
    e = np.zeros((0, 7), np.float32)
    assert unpackb(packb(e)).shape == (0, 7)


def test_object_arrays_are_refused_on_both_ends():
    with pytest.raises(TypeError):
        packb(np.array([object()], dtype=object))
    forged = msgpack.ExtType(1, msgpack.packb(["|O", [1], b"\x00" * 8], use_bin_type=True))
    with pytest.raises(WireError, match="not allowed"):
        unpackb(msgpack.packb(forged))


@pytest.mark.parametrize("header", [
    ["<f4", [2, 2], b"\x00" * 15],          # size mismatch
    ["<f4", [-1], b""],                     # negative dim
    ["<f4", [1] * 9, b"\x00" * 4],          # too many dims
    ["not-a-dtype", [1], b"\x00"],
    ["<f4", "2", b"\x00" * 8],
    ["<f4", [2]],
    "garbage",
])
def test_forged_array_headers_raise_wire_error(header):
    forged = msgpack.ExtType(1, msgpack.packb(header, use_bin_type=True))
    with pytest.raises(WireError):
        unpackb(msgpack.packb({"image": forged}))


def test_unknown_ext_and_bad_bytes_raise_wire_error():
    with pytest.raises(WireError):
        unpackb(msgpack.packb(msgpack.ExtType(42, b"x")))
    for junk in (b"", b"\xc1", b"\x92\x01", b"\xdb\xff\xff\xff\xff"):
        with pytest.raises(WireError):
            unpackb(junk)


def test_valid_requests_parse():
    img = np.zeros((16, 20, 3), np.uint8)
    r = parse_request(packb({"type": "reset", "instruction": "open top drawer", "id": 1}), LIMITS)
    assert isinstance(r, ResetRequest) and r.instruction == "open top drawer" and r.id == 1
    r = parse_request(packb({"type": "infer", "image": img}), LIMITS)
    assert isinstance(r, InferRequest) and r.image.shape == (1, 16, 20, 3) and r.instruction is None
    r = parse_request(packb({"type": "infer", "image": np.zeros((2, 16, 20, 3), np.uint8), "instruction": "x"}), LIMITS)
    assert r.image.shape == (2, 16, 20, 3)


@pytest.mark.parametrize("msg, match", [
    ({"type": "infer", "image": np.zeros((16, 20, 3), np.float32)}, "uint8"),
    ({"type": "infer", "image": np.zeros((16, 20), np.uint8)}, "shape"),
    ({"type": "infer", "image": np.zeros((16, 20, 4), np.uint8)}, "shape"),
    ({"type": "infer", "image": np.zeros((3, 16, 20, 3), np.uint8)}, "frames"),
    ({"type": "infer", "image": np.zeros((4, 20, 3), np.uint8)}, "height"),
    ({"type": "infer", "image": np.zeros((16, 65, 3), np.uint8)}, "width"),
    ({"type": "infer", "image": [[1, 2, 3]]}, "numpy array"),
    ({"type": "infer"}, "missing"),
    ({"type": "infer", "image": np.zeros((16, 20, 3), np.uint8), "extra": 1}, "unknown field"),
    ({"type": "infer", "image": np.zeros((16, 20, 3), np.uint8), "instruction": 5}, "string"),
    ({"type": "infer", "image": np.zeros((16, 20, 3), np.uint8), "id": "1"}, "integer"),
    ({"type": "reset", "instruction": "x" * 33}, "limit"),
    ({"type": "reset", "instruction": "   "}, "empty"),
    ({"type": "reset"}, "missing"),
    ({"type": "fly"}, "'type' must be one of"),
    ({"kind": "reset"}, "'type' must be one of"),
    ([1, 2, 3], "map"),
])
def test_malformed_requests_raise_protocol_error(msg, match):
    with pytest.raises(ProtocolError, match=match):
        parse_request(packb(msg), LIMITS)


def test_image_byte_cap_and_message_cap():
    limits = RequestLimits(max_image_bytes=1000, max_message_bytes=1000, max_image_side=64)
    with pytest.raises(ProtocolError, match="bytes"):
        parse_request(packb({"type": "infer", "image": np.zeros((20, 20, 3), np.uint8)}), limits)
    with pytest.raises(ProtocolError, match="text frames"):
        parse_request("{}", limits)


def test_limits_validate_themselves():
    with pytest.raises(ValueError):
        RequestLimits(min_image_side=10, max_image_side=5)
    with pytest.raises(ValueError):
        RequestLimits(max_image_bytes=10, max_message_bytes=5)


def test_state_field_parses_and_is_validated():
    img = np.zeros((16, 20, 3), np.uint8)
    r = parse_request(packb({"type": "infer", "image": img, "state": np.arange(8, dtype=np.float32)}), LIMITS)
    assert isinstance(r, InferRequest) and r.state.dtype == np.float32 and r.state.tolist() == list(range(8))
    assert parse_request(packb({"type": "infer", "image": img, "state": [0.5] * 8}), LIMITS).state.shape == (8,)
    assert parse_request(packb({"type": "infer", "image": img}), LIMITS).state is None
    for bad in ([float("nan")] * 8, [], "abc", [[1.0, 2.0], [3.0]]):
        with pytest.raises(ProtocolError, match="'state'"):
            parse_request(packb({"type": "infer", "image": img, "state": bad}), LIMITS)
