"""TFRecord framing in pure Python (no TensorFlow): read, index and write records with CRC checks.

A record is: uint64 length (little endian), uint32 masked CRC32C of the length bytes,
`length` payload bytes, uint32 masked CRC32C of the payload. The mask is
`((crc >> 15) | (crc << 17)) + 0xa282ead8 (mod 2**32)`. CRC32C uses `google-crc32c` (C) when
installed and a table-driven fallback otherwise (correct, but slow on large records).
"""
from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from selfflow_robot.errors import DataError

_MASK_DELTA = 0xA282EAD8
_HEADER = 12  # uint64 length + uint32 crc
_FOOTER = 4

try:  # pragma: no cover - depends on the environment
    import google_crc32c as _gcrc

    def crc32c(data: bytes | memoryview) -> int:
        """CRC32C (Castagnoli) of `data`."""
        return _gcrc.value(bytes(data) if isinstance(data, memoryview) else data)
except ImportError:  # pragma: no cover
    _TABLE = []
    for _i in range(256):
        _c = _i
        for _ in range(8):
            _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
        _TABLE.append(_c)

    def crc32c(data: bytes | memoryview) -> int:
        """CRC32C (Castagnoli) of `data` (pure-Python fallback; install google-crc32c for speed)."""
        crc = 0xFFFFFFFF
        for b in bytes(data):
            crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
        return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes | memoryview) -> int:
    """The masked CRC32C TFRecord stores."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


@dataclass(frozen=True)
class RecordRef:
    """Where one record lives: file, record number within the file, payload offset and length."""

    path: str
    index: int
    offset: int   # byte offset of the record header
    length: int   # payload length


def _read_header(f: BinaryIO, path: str, index: int, offset: int, size: int) -> int | None:
    head = f.read(_HEADER)
    if not head:
        return None
    if len(head) < _HEADER:
        raise DataError(f"{path}: truncated TFRecord: record {index} at byte {offset} has a "
                        f"{len(head)}-byte header (12 expected); the file was cut short. "
                        "Re-copy or re-generate this shard, or pass --skip-bad-episodes")
    length, length_crc = struct.unpack("<QI", head)
    if masked_crc(head[:8]) != length_crc:
        raise DataError(f"{path}: corrupt TFRecord: record {index} at byte {offset} fails its length "
                        "CRC check (the file is damaged). Re-copy or re-generate this shard, "
                        "or pass --skip-bad-episodes")
    end = offset + _HEADER + length + _FOOTER
    if end > size:
        raise DataError(f"{path}: truncated TFRecord: record {index} at byte {offset} needs "
                        f"{end - size} more bytes than the file has (file size {size}). "
                        "Re-copy or re-generate this shard, or pass --skip-bad-episodes")
    return length


def index_records(path: str | Path) -> list[RecordRef]:
    """List every record of a TFRecord file by reading headers only (no payload, no data CRC).

    Raises `DataError` at the first truncated or length-corrupt record.
    """
    refs, _ = index_records_partial(path, strict=True)
    return refs


def index_records_partial(path: str | Path, strict: bool = False, *, opener=open,
                          size: int | None = None) -> tuple[list[RecordRef], DataError | None]:
    """Like `index_records`; with `strict=False` returns the good prefix and the error (or None).

    `opener(path, "rb")` and `size` allow other file systems (e.g. `tf.io.gfile.GFile`).
    """
    path = str(path)
    if size is None:
        size = Path(path).stat().st_size
    refs: list[RecordRef] = []
    with opener(path, "rb") as f:
        offset = 0
        while True:
            try:
                length = _read_header(f, path, len(refs), offset, size)
            except DataError as e:
                if strict:
                    raise
                return refs, e
            if length is None:
                return refs, None
            refs.append(RecordRef(path, len(refs), offset, length))
            offset += _HEADER + length + _FOOTER
            f.seek(offset)


def read_record(ref: RecordRef, f: BinaryIO | None = None) -> bytes:
    """Read one record's payload and check its data CRC; raises `DataError` naming file and record."""
    own = f is None
    if own:
        f = open(ref.path, "rb")
    try:
        f.seek(ref.offset + _HEADER)
        buf = f.read(ref.length + _FOOTER)
    finally:
        if own:
            f.close()
    if len(buf) < ref.length + _FOOTER:
        raise DataError(f"{ref.path}: truncated TFRecord: record {ref.index} at byte {ref.offset} ends "
                        "early. Re-copy or re-generate this shard, or pass --skip-bad-episodes")
    payload = buf[:ref.length]
    (data_crc,) = struct.unpack("<I", buf[ref.length:])
    if masked_crc(payload) != data_crc:
        raise DataError(f"{ref.path}: corrupt TFRecord: record {ref.index} (episode payload at byte "
                        f"{ref.offset}) fails its data CRC check. Re-copy or re-generate this shard, "
                        "or pass --skip-bad-episodes")
    return payload


def iter_records(path: str | Path) -> Iterator[bytes]:
    """Yield every payload of a TFRecord file in order, checking both CRCs."""
    path = str(path)
    with open(path, "rb") as f:
        for ref in index_records(path):
            yield read_record(ref, f)


def frame_record(payload: bytes) -> bytes:
    """The framed bytes (header + payload + footer) of one record."""
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", masked_crc(length)) + payload + struct.pack("<I", masked_crc(payload))


class TFRecordWriter:
    """Append framed records to a file (`with TFRecordWriter(path) as w: w.write(payload)`)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._f = open(self.path, "wb")
        self.num_records = 0
        self.num_bytes = 0

    def write(self, payload: bytes) -> None:
        """Write one record."""
        data = frame_record(payload)
        self._f.write(data)
        self.num_records += 1
        self.num_bytes += len(data)

    def close(self) -> None:
        """Flush and close the file."""
        self._f.close()

    def __enter__(self) -> TFRecordWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
