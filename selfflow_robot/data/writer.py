"""Write episodes as a TFDS builder directory in the exact fractal20220817_data 0.1.0 schema.

No TensorFlow: records are encoded by `example_proto` and framed by `tfrecord`;
`features.json` comes from tensorflow-datasets' own `FeaturesDict.save_config`, and
`dataset_info.json` is written by hand with the fields TFDS needs (name, version,
fileFormat, splits with filepathTemplate / shardLengths / numBytes). The result is read by
`tfds.builder_from_directory(dir).as_dataset()` and by our `RLDSReader`.

An episode is a dict of per-step arrays keyed by schema path with a leading time axis
(`"action/world_vector"`: (T, 3), `"observation/image"`: (T, 256, 320, 3) uint8 or a list of
T JPEG bytes, `"observation/natural_language_instruction"`: str or list of T str, ...) plus
optional episode fields (`"aspects/success"`, `"attributes/env_name"`, ...). Step fields
that are not given are written as zeros (empty strings); `is_first`/`is_last`/
`is_terminal` default to the first/last step.
"""
from __future__ import annotations

import io
import json
import os
import shutil
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from selfflow_robot.data import schema
from selfflow_robot.data.example_proto import encode_example
from selfflow_robot.data.tfrecord import TFRecordWriter
from selfflow_robot.errors import DataError, UserError
from selfflow_robot.files import check_writable_dir


def encode_jpeg(frame: np.ndarray, quality: int = 90) -> bytes:
    """JPEG-encode one uint8 (H, W, 3) frame with PIL."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(frame, dtype=np.uint8)).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _steps_len(episode: dict[str, Any]) -> int:
    for key in (schema.WORLD_VECTOR, schema.IMAGE):
        if key in episode:
            return len(episode[key])
    raise DataError(f"episode has neither '{schema.WORLD_VECTOR}' nor '{schema.IMAGE}'")


def episode_to_features(episode: dict[str, Any], *, jpeg_quality: int = 90,
                        validate: bool = True) -> dict[str, Any]:
    """Flatten one episode into `tf.train.Example` features (keys as TFDS serializes them)."""
    T = _steps_len(episode)
    if validate and T == 0:
        raise DataError("cannot write an empty episode (0 steps)")
    known = set(schema.STEP_FIELD) | set(schema.EPISODE_FIELD)
    unknown = sorted(set(episode) - known)
    if validate and unknown:
        raise DataError(f"unknown episode keys {unknown}; allowed keys are the schema paths in "
                        "selfflow_robot/data/schema.py")
    out: dict[str, Any] = {}
    for f in schema.STEP_FIELDS:
        key = schema.serialized_key(f.path)
        v = episode.get(f.path)
        if f.kind == "image":
            if v is None:
                raise DataError(f"episode is missing '{f.path}'")
            frames = list(v)
            if frames and not isinstance(frames[0], (bytes, bytearray)):
                if validate and tuple(np.shape(frames[0])) != f.shape:
                    raise DataError(f"'{f.path}' frames have shape {np.shape(frames[0])}, the schema needs "
                                    f"{f.shape}; resize or pad them first")
                frames = [encode_jpeg(fr, jpeg_quality) for fr in frames]
            out[key] = frames
        elif f.dtype == "string":
            if v is None:
                v = [""] * T
            elif isinstance(v, (str, bytes)):
                v = [v] * T
            out[key] = [s if isinstance(s, (bytes, str)) else str(s) for s in v]
        else:
            if v is None:
                if f.path == "is_first":
                    v = np.arange(T) == 0
                elif f.path in ("is_last", "is_terminal"):
                    v = np.arange(T) == T - 1
                else:
                    v = np.zeros((T, *f.shape), f.dtype)
            arr = np.asarray(v)
            if validate and arr.shape != (T, *f.shape):
                raise DataError(f"'{f.path}' has shape {arr.shape}, the schema needs {(T, *f.shape)}")
            out[key] = arr.astype(np.float32) if f.dtype == "float32" else arr.astype(np.int64)
    for f in schema.EPISODE_FIELDS:
        v = episode.get(f.path)
        if f.dtype == "string":
            out[f.path] = ["" if v is None else str(v)]
        else:
            out[f.path] = np.asarray([0 if v is None else v], np.int64)
    return out


def _dataset_info(shard_lengths: list[int], shard_bytes: list[int], description: str) -> dict:
    return {
        "name": schema.NAME,
        "version": schema.VERSION,
        "description": description,
        "fileFormat": schema.FILE_FORMAT,
        "moduleName": "selfflow_robot.data.writer",
        "releaseNotes": {schema.VERSION: "Initial release"},
        "splits": [{
            "name": schema.SPLIT,
            "filepathTemplate": schema.FILEPATH_TEMPLATE,
            "shardLengths": [str(n) for n in shard_lengths],
            "numBytes": str(sum(shard_bytes)),
        }],
    }


def write_features_json(directory: Path) -> None:
    """Write `features.json` with tensorflow-datasets' own serializer."""
    schema.features_dict().save_config(str(directory))


class DatasetWriter:
    """Write episodes into `<output_dir>/fractal20220817_data/0.1.0/`, atomically.

    Shards are filled in order (`episodes_per_shard` each); files are renamed to their final
    `-of-NNNNN` names and the whole folder moved into place only in `close()`, so a crash
    never leaves a half dataset where a reader looks.
    """

    def __init__(self, output_dir: str | Path, *, episodes_per_shard: int = 100, overwrite: bool = False,
                 jpeg_quality: int = 90, description: str = schema.DESCRIPTION, validate: bool = True):
        check_writable_dir(output_dir, "output_dir")
        self.root = Path(output_dir)
        self.final = self.root / schema.NAME / schema.VERSION
        if self.final.exists() and not overwrite:
            raise UserError(f"{self.final} already exists; pass overwrite=true to replace it "
                            "or choose another output_dir")
        self.overwrite = overwrite
        self.tmp = self.root / schema.NAME / f".{schema.VERSION}.tmp-{os.getpid()}-{int(time.time())}"
        # folders this writer creates, removed again by abort() when left empty
        self._created = [p for p in (self.root, self.root / schema.NAME) if not p.exists()]
        self.tmp.mkdir(parents=True)
        self.episodes_per_shard = max(1, int(episodes_per_shard))
        self.jpeg_quality = jpeg_quality
        self.description = description
        self.validate = validate
        self._writer: TFRecordWriter | None = None
        self._shard_lengths: list[int] = []
        self._shard_bytes: list[int] = []
        self.num_episodes = 0

    def _roll(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._shard_lengths.append(self._writer.num_records)
            self._shard_bytes.append(self._writer.num_bytes)
        self._writer = TFRecordWriter(self.tmp / f"shard-{len(self._shard_lengths):05d}")

    def write(self, episode: dict[str, Any]) -> None:
        """Append one episode (see the module docstring for its layout)."""
        self.write_features(episode_to_features(episode, jpeg_quality=self.jpeg_quality, validate=self.validate))

    def write_features(self, features: dict[str, Any]) -> None:
        """Append one already-flattened example (keys as TFDS serializes them)."""
        if self._writer is None or self._writer.num_records >= self.episodes_per_shard:
            self._roll()
        self._writer.write(encode_example(features))
        self.num_episodes += 1

    def close(self) -> Path:
        """Finish shards, write metadata, move the dataset into place; returns the builder dir."""
        if self._writer is None:
            self.abort()
            raise DataError("no episodes were written; nothing to save")
        self._roll()
        self._writer.close()
        (self.tmp / self._writer.path.name).unlink()  # the empty shard opened by the last roll
        n = len(self._shard_lengths)
        for i in range(n):
            (self.tmp / f"shard-{i:05d}").rename(self.tmp / schema.shard_filename(i, n))
        write_features_json(self.tmp)
        info = _dataset_info(self._shard_lengths, self._shard_bytes, self.description)
        (self.tmp / "dataset_info.json").write_text(json.dumps(info, indent=2))
        if self.final.exists():
            old = self.final.with_name(self.final.name + f".old-{os.getpid()}")
            self.final.rename(old)
            shutil.rmtree(old)
        self.tmp.rename(self.final)
        return self.final

    def abort(self) -> None:
        """Remove the temporary folder (nothing is published)."""
        if self._writer is not None:
            self._writer.close()
        shutil.rmtree(self.tmp, ignore_errors=True)
        for p in reversed(self._created):
            try:
                p.rmdir()
            except OSError:
                pass

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_dataset(episodes: Iterable[dict[str, Any]], output_dir: str | Path, **kwargs) -> Path:
    """Write all `episodes` (dicts as in the module docstring); returns the builder dir."""
    with DatasetWriter(output_dir, **kwargs) as w:
        for ep in episodes:
            w.write(ep)
    return w.final
