"""Encode and decode `tf.train.Example` protobufs by hand (wire format), without TensorFlow.

Only what TFDS writes is needed: `Example{features: Features{feature: map<string, Feature>}}`,
`Feature` = one of `bytes_list` (1), `float_list` (2), `int64_list` (3). Float and int64 lists
are packed (proto3 default) but unpacked encodings are accepted too. Decoding returns numpy
arrays straight from the packed bytes, which is much faster than going through generic
protobuf objects for the 512-d embeddings of every step.
"""
from __future__ import annotations

import struct

import numpy as np

Value = list | np.ndarray  # list[bytes] for bytes_list, float32 / int64 arrays otherwise


class ProtoError(ValueError):
    """The bytes are not a well-formed `tf.train.Example`."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtoError("varint runs past the end of the message")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift > 70:
            raise ProtoError("varint too long")


def _fields(buf: bytes, start: int, end: int):
    """Yield (field_number, wire_type, value_or_(start, end)) over buf[start:end]."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        num, wt = key >> 3, key & 7
        if wt == 2:
            n, pos = _varint(buf, pos)
            if pos + n > end:
                raise ProtoError("length-delimited field runs past the end of the message")
            yield num, wt, (pos, pos + n)
            pos += n
        elif wt == 0:
            v, pos = _varint(buf, pos)
            yield num, wt, v
        elif wt == 5:
            if pos + 4 > end:
                raise ProtoError("fixed32 field runs past the end of the message")
            yield num, wt, (pos, pos + 4)
            pos += 4
        elif wt == 1:
            if pos + 8 > end:
                raise ProtoError("fixed64 field runs past the end of the message")
            yield num, wt, (pos, pos + 8)
            pos += 8
        else:
            raise ProtoError(f"unsupported wire type {wt}")
    if pos != end:
        raise ProtoError("message overruns its declared length")


def _to_int64(v: int) -> int:
    return v - (1 << 64) if v >= (1 << 63) else v


def _packed_varints(buf: bytes, start: int, end: int) -> list[int]:
    chunk = buf[start:end]
    if chunk and max(chunk) < 0x80:  # fast path: all values in [0, 127] (bools, small ints)
        return list(chunk)
    out, pos = [], start
    while pos < end:
        v, pos = _varint(buf, pos)
        out.append(_to_int64(v))
    return out


def _decode_feature(buf: bytes, start: int, end: int) -> tuple[str, Value]:
    kind, value = "float_list", np.zeros(0, np.float32)  # an empty Feature decodes as empty
    for num, wt, v in _fields(buf, start, end):
        if wt != 2:
            raise ProtoError("Feature holds a non-message field")
        s, e = v
        if num == 1:
            items = []
            for n2, w2, v2 in _fields(buf, s, e):
                if n2 == 1:
                    if w2 != 2:
                        raise ProtoError("bytes list holds a non-bytes value")
                    items.append(buf[v2[0]:v2[1]])
            kind, value = "bytes_list", items
        elif num == 2:
            parts, ints = [], []
            for n2, w2, v2 in _fields(buf, s, e):
                if n2 != 1:
                    continue
                a, b = v2
                if w2 == 2:
                    if (b - a) % 4:
                        raise ProtoError("packed float list length is not a multiple of 4")
                    parts.append(np.frombuffer(buf, "<f4", (b - a) // 4, a))
                else:
                    ints.append(struct.unpack_from("<f", buf, a)[0])
            if ints:
                parts.append(np.asarray(ints, np.float32))
            kind = "float_list"
            value = parts[0] if len(parts) == 1 else (np.concatenate(parts) if parts else np.zeros(0, np.float32))
        elif num == 3:
            vals: list[int] = []
            for n2, w2, v2 in _fields(buf, s, e):
                if n2 != 1:
                    continue
                if w2 == 2:
                    vals.extend(_packed_varints(buf, *v2))
                else:
                    vals.append(_to_int64(v2))
            kind, value = "int64_list", np.asarray(vals, np.int64)
    return kind, value


def decode_example(payload: bytes) -> dict[str, tuple[str, Value]]:
    """Parse a serialized `tf.train.Example` into `{key: (kind, value)}`; raises `ProtoError`."""
    buf = bytes(payload)
    out: dict[str, tuple[str, Value]] = {}
    for num, wt, v in _fields(buf, 0, len(buf)):
        if num != 1 or wt != 2:
            continue
        for n2, w2, (s, e) in _fields(buf, *v):
            if n2 != 1 or w2 != 2:
                continue
            key, feat = None, None
            for n3, w3, v3 in _fields(buf, s, e):
                if n3 == 1 and w3 == 2:
                    key = buf[v3[0]:v3[1]].decode("utf-8")
                elif n3 == 2 and w3 == 2:
                    feat = v3
            if key is None:
                raise ProtoError("feature map entry without a key")
            out[key] = _decode_feature(buf, *feat) if feat else ("float_list", np.zeros(0, np.float32))
    return out


# ---------------------------------------------------------------- encoding


def _enc_varint(v: int) -> bytes:
    if v < 0:
        v += 1 << 64
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _len_field(num: int, data: bytes) -> bytes:
    return _enc_varint((num << 3) | 2) + _enc_varint(len(data)) + data


def encode_feature(value) -> bytes:
    """Encode one `Feature`: list of bytes/str -> bytes_list, float array -> float_list, int/bool -> int64_list."""
    if isinstance(value, (list, tuple)) and (not value or isinstance(value[0], (bytes, bytearray, str))):
        items = [v.encode("utf-8") if isinstance(v, str) else bytes(v) for v in value]
        inner = b"".join(_len_field(1, it) for it in items)
        return _len_field(1, inner)
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        data = arr.astype("<f4").tobytes()
        inner = _len_field(1, data) if data else b""
        return _len_field(2, inner)
    if arr.dtype.kind in "biu":
        data = b"".join(_enc_varint(int(x)) for x in arr.reshape(-1).astype(np.int64))
        inner = _len_field(1, data) if data else b""
        return _len_field(3, inner)
    raise TypeError(f"cannot encode a feature of dtype {arr.dtype}")


def encode_example(features: dict) -> bytes:
    """Serialize `{key: value}` as a `tf.train.Example` (keys sorted, like TFDS)."""
    entries = b"".join(
        _len_field(1, _len_field(1, k.encode("utf-8")) + _len_field(2, encode_feature(features[k])))
        for k in sorted(features)
    )
    return _len_field(1, entries)
