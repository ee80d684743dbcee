"""Bound what a request can cost BEFORE it is decoded: a walk over its msgpack headers only.

A msgpack map of 700,000 keys fits in 5 MiB and takes the decoder most of a second, so a size cap
alone does not bound the work. `check_budget` reads only the type bytes and lengths (string, binary
and array payloads are skipped by their length, never copied) and stops at the first object past
the budget: its cost is O(min(objects in the message, `max_objects`)), whatever the message's size.
The ndarray ext payload (`wire.NDARRAY_EXT`, itself msgpack) is walked with the same budget.
"""
from __future__ import annotations

from selfflow_robot.policies.wire import NDARRAY_EXT

__all__ = ["BudgetError", "check_budget"]

# type byte -> bytes of payload that follow it (nil, bool, float, int)
_FIXED = {0xC0: 0, 0xC2: 0, 0xC3: 0, 0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8,
          0xD0: 1, 0xD1: 2, 0xD2: 4, 0xD3: 8}
_BIN = {0xC4: 1, 0xC5: 2, 0xC6: 4}      # bin 8/16/32: bytes of the length field
_STR = {0xD9: 1, 0xDA: 2, 0xDB: 4}      # str 8/16/32
_EXT = {0xC7: 1, 0xC8: 2, 0xC9: 4}      # ext 8/16/32 (then one type byte)
_FIXEXT = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}
_ARRAY = {0xDC: 2, 0xDD: 4}
_MAP = {0xDE: 2, 0xDF: 4}


class BudgetError(ValueError):
    """A message with more objects, deeper nesting or longer strings than allowed, or cut short."""


class _Walk:
    def __init__(self, max_objects: int, max_depth: int, max_str_bytes: int) -> None:
        self.max_objects = max_objects
        self.max_depth = max_depth
        self.max_str_bytes = max_str_bytes
        self.objects = 0

    def _count(self, n: int) -> None:
        self.objects += n
        if self.objects > self.max_objects:
            raise BudgetError(f"message has more than {self.max_objects} msgpack objects (limits.max_entries)")

    @staticmethod
    def _end(buf: memoryview, pos: int, n: int) -> int:
        if pos + n > len(buf):
            raise BudgetError("message is cut short (truncated msgpack)")
        return pos + n

    def _length(self, buf: memoryview, pos: int, size: int) -> tuple[int, int]:
        end = self._end(buf, pos, size)
        return int.from_bytes(buf[pos:end], "big"), end

    def _container(self, buf: memoryview, pos: int, items: int, depth: int) -> int:
        if depth + 1 > self.max_depth:
            raise BudgetError(f"message nests containers deeper than {self.max_depth} levels")
        if self.objects + items > self.max_objects:  # refused from the header alone
            raise BudgetError(f"message has more than {self.max_objects} msgpack objects (limits.max_entries)")
        for _ in range(items):
            pos = self.object(buf, pos, depth + 1)
        return pos

    def _ext(self, buf: memoryview, pos: int, size: int, code: int, depth: int) -> int:
        end = self._end(buf, pos, size)
        if code == NDARRAY_EXT:  # [dtype, shape, bytes], itself msgpack: one more level
            if depth + 1 > self.max_depth:
                raise BudgetError(f"message nests containers deeper than {self.max_depth} levels")
            self.object(buf[pos:end], 0, depth + 1)
        return end

    def object(self, buf: memoryview, pos: int, depth: int) -> int:
        """Walk the object at `pos` (inside `depth` containers); returns the position after it."""
        self._count(1)
        b = buf[self._end(buf, pos, 1) - 1]
        pos += 1
        if b <= 0x7F or b >= 0xE0:                       # positive / negative fixint
            return pos
        if b <= 0x8F:                                    # fixmap
            return self._container(buf, pos, 2 * (b & 0x0F), depth)
        if b <= 0x9F:                                    # fixarray
            return self._container(buf, pos, b & 0x0F, depth)
        if b <= 0xBF:                                    # fixstr
            return self._string(buf, pos, b & 0x1F)
        if b in _FIXED:
            return self._end(buf, pos, _FIXED[b])
        if b in _BIN:
            n, pos = self._length(buf, pos, _BIN[b])
            return self._end(buf, pos, n)
        if b in _STR:
            n, pos = self._length(buf, pos, _STR[b])
            return self._string(buf, pos, n)
        if b in _ARRAY or b in _MAP:
            n, pos = self._length(buf, pos, _ARRAY.get(b) or _MAP[b])
            return self._container(buf, pos, n if b in _ARRAY else 2 * n, depth)
        if b in _EXT:
            n, pos = self._length(buf, pos, _EXT[b])
            return self._ext(buf, self._end(buf, pos, 1), n, buf[pos], depth)
        if b in _FIXEXT:
            return self._ext(buf, self._end(buf, pos, 1), _FIXEXT[b], buf[pos], depth)
        raise BudgetError(f"byte 0x{b:02x} at offset {pos - 1} is not a msgpack type")  # 0xc1

    def _string(self, buf: memoryview, pos: int, n: int) -> int:
        if n > self.max_str_bytes:
            raise BudgetError(f"message has a {n}-byte string; strings are limited to {self.max_str_bytes} bytes")
        return self._end(buf, pos, n)


def check_budget(data: bytes, max_objects: int, max_depth: int, max_str_bytes: int) -> int:
    """Raise `BudgetError` unless the first msgpack object of `data` holds at most `max_objects` objects
    (keys, values and elements all count), nests containers at most `max_depth` deep (an ndarray ext
    counts as one level) and has no string over `max_str_bytes`; returns the number of objects."""
    walk = _Walk(max_objects, max_depth, max_str_bytes)
    walk.object(memoryview(data), 0, 0)
    return walk.objects
