"""Malformed request generator for the server fuzz test: every frame it yields must get an error reply."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgpack
import numpy as np

from selfflow_robot.policies.serving.protocol import RequestLimits
from selfflow_robot.policies.wire import packb


def _ext(header: Any) -> msgpack.ExtType:
    return msgpack.ExtType(1, msgpack.packb(header, use_bin_type=True))


def malformed_frames(n: int, limits: RequestLimits, instruction: str, seed: int = 0) -> Iterator[tuple[str, Any]]:
    """(category, frame) pairs: bytes (binary frames) or str (text frames), cycling through categories."""
    rng = np.random.default_rng(seed)
    ok_img = lambda h=32, w=40: rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # noqa: E731
    big_side = limits.max_image_side + 1 + int(rng.integers(0, 8))
    over_bytes_h = limits.max_image_bytes // (limits.max_image_side * 3) + 1
    cases = [
        ("random_bytes", lambda: rng.bytes(int(rng.integers(1, 300)))),
        ("truncated", lambda: (lambda b: b[:int(rng.integers(1, len(b) - 1))])(
            packb({"type": "infer", "image": ok_img()}))),
        ("not_a_map", lambda: packb([1, "infer", None][int(rng.integers(0, 3))])),
        ("bad_type", lambda: packb({"type": ["fly", 3, None, b"infer", "INFER"][int(rng.integers(0, 5))]})),
        ("no_type", lambda: packb({"image": ok_img()})),
        ("dtype", lambda: packb({"type": "infer", "image": ok_img().astype(
            ["float32", "float64", "int16", "bool", "int8", "uint16", "complex64"][int(rng.integers(0, 7))])})),
        ("shape", lambda: packb({"type": "infer", "image": [
            np.zeros((32, 40), np.uint8), np.zeros((32, 40, 4), np.uint8), np.zeros((1, 2, 32, 40, 3), np.uint8),
            np.zeros((0, 32, 40, 3), np.uint8), np.zeros((limits.max_frames + 1, 16, 16, 3), np.uint8),
            np.zeros((32, 40, 1), np.uint8), np.zeros((3,), np.uint8)][int(rng.integers(0, 7))]})),
        ("side", lambda: packb({"type": "infer", "image": [
            np.zeros((limits.min_image_side - 1, 40, 3), np.uint8),
            np.zeros((16, big_side, 3), np.uint8)][int(rng.integers(0, 2))]})),
        ("too_many_bytes", lambda: packb({"type": "infer",
                                          "image": np.zeros((over_bytes_h, limits.max_image_side, 3), np.uint8)})),
        ("unknown_field", lambda: packb({"type": "infer", "image": ok_img(), ["proprio", "foo", "Image"][
            int(rng.integers(0, 3))]: 1})),
        ("state_value", lambda: packb({"type": "infer", "image": ok_img(), "state": [
            "abc", [float("nan")] * 8, [], [[1.0], [2.0, 3.0]]][int(rng.integers(0, 4))]})),
        ("state_strict", lambda: packb({"type": "infer", "image": ok_img(), "state": [
            np.full(8, 1e39), np.full(8, 1 + 2j, np.complex64), np.ones(8, bool), np.zeros((2, 4), np.float32),
            [True] * 8, [1.0] * 7 + [-1e30], np.float32(1.0)][int(rng.integers(0, 7))]})),
        ("type_unhashable", lambda: packb({"type": [[], {}, [1, 2], {"a": 1}][int(rng.integers(0, 4))]})),
        ("many_entries", lambda: packb({"type": "infer", **{f"k{i}": 0 for i in range(int(rng.integers(300, 5000)))}})),
        ("wide_nesting", lambda: packb({"type": "infer", "image": [[[[0] * 16] * 16] * 16]})),
        ("instruction_type", lambda: packb({"type": "infer", "image": ok_img(),
                                            "instruction": [5, 2.5, ["a"], b"open"][int(rng.integers(0, 4))]})),
        ("instruction_long", lambda: packb({"type": "reset", "instruction": "a" * (limits.max_instruction_chars + 1)})),
        ("instruction_empty", lambda: packb({"type": "reset", "instruction": " " * int(rng.integers(0, 5))})),
        ("instruction_unknown", lambda: packb({"type": "reset",
                                               "instruction": f"juggle {int(rng.integers(1e6))} eggs"})),
        ("id", lambda: packb({"type": "infer", "image": ok_img(), "id": ["1", 1.5, True, 2**64 - 1][
            int(rng.integers(0, 4))]})),
        ("forged_ndarray", lambda: msgpack.packb({"type": "infer", "image": [
            _ext(["|O", [1], b"\x00" * 8]), _ext(["<U4", [2], b"\x00" * 32]), _ext(["|V8", [1], b"\x00" * 8]),
            _ext(["|u1", [32, 40, 3], b"\x00" * 10]), _ext(["|u1", [-1, 40, 3], b""]),
            _ext(["|u1", [1] * 12, b"\x00"]), _ext("nonsense"), msgpack.ExtType(7, b"\x00")][
            int(rng.integers(0, 8))]}, use_bin_type=True)),
        ("image_not_array", lambda: packb({"type": "infer", "image": [b"\x00" * 30, [[1, 2, 3]], "img", 3][
            int(rng.integers(0, 4))]})),
        ("reset_fields", lambda: packb([{"type": "reset"}, {"type": "reset", "instruction": instruction,
                                                           "image": ok_img()}][int(rng.integers(0, 2))])),
        ("deep_nesting", lambda: b"\x91" * 200_000 + b"\x01"),
        ("huge_length", lambda: [b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff",
                                 b"\xdb\x7f\xff\xff\xff"][int(rng.integers(0, 4))]),
        ("text_frame", lambda: ['{"type": "infer"}', "", "\x00", instruction][int(rng.integers(0, 4))]),
        ("empty", lambda: b""),
    ]
    for i in range(n):
        name, make = cases[i % len(cases)]
        yield name, make()
