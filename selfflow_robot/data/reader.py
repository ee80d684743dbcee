"""RLDSReader: episodes of a fractal20220817_data TFDS builder directory, steps as whole arrays.

TF-free: TFRecord framing and CRCs are checked in pure Python (`tfrecord`), each record (one
episode) is parsed straight from the protobuf wire format into numpy arrays
(`example_proto`), and JPEG frames are decoded only when a window needs them (`frames`).
`gs://` paths need TensorFlow (its `tf.io.gfile` opens the files); everything else is local.

Every malformed input raises one `DataError` naming the file, the episode (and record) and
the key: missing directory, wrong dataset name or version, truncated or CRC-corrupt
TFRecord, missing key, wrong value count, wrong image shape, NaN/inf in actions, an action
beyond `schema.ACTION_LIMIT`, a string that is not UTF-8, empty episode (and, when a window
decodes it, a frame whose JPEG body is corrupt). With `skip_bad_episodes=True` the bad episode
is logged, counted in `num_skipped` and skipped instead (`skip_or_raise`).
"""
from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from selfflow_robot.data import schema
from selfflow_robot.data.builder_dir import (
    FIX_SKIP,
    check_info,
    gfile,
    is_remote,
    open_binary,
    resolve_builder_dir,
    shard_files,
)
from selfflow_robot.data.example_proto import ProtoError, decode_example
from selfflow_robot.data.tfrecord import RecordRef, index_records_partial, read_record
from selfflow_robot.errors import DataError

log = logging.getLogger(__name__)


@dataclass
class Episode:
    """One RT-1 episode with its steps as whole arrays.

    `steps` maps schema paths (`"action/world_vector"`, `"observation/image"`, ...) to arrays
    with a leading time axis T; `observation/image` is a list of T encoded JPEGs and string
    fields are lists of T `str`. `meta` holds the episode fields (`aspects/...`, `attributes/...`).
    """

    episode_id: int
    file: str
    record: int
    steps: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.steps[schema.IMAGE])

    @property
    def images(self) -> list[bytes]:
        """The T encoded frames."""
        return self.steps[schema.IMAGE]

    @property
    def instruction(self) -> str:
        """The episode's instruction (from its first step)."""
        return self.steps[schema.INSTRUCTION][0]

    @property
    def language_embedding(self) -> np.ndarray:
        """The 512-d instruction embedding (from the first step), float32."""
        return self.steps[schema.EMBEDDING][0]

    def actions(self) -> np.ndarray:
        """(T, 7) float32: world_vector(3), rotation_delta(3), gripper_closedness_action(1) (raw)."""
        return np.concatenate([self.steps[k] for k in schema.ACTION_KEYS], axis=1).astype(np.float32)

    def state(self) -> np.ndarray:
        """(T, 8) float32 proprioception: base_pose_tool_reached(7), gripper_closed(1) (`schema.STATE_KEYS`).

        Raises `DataError` naming the key when the episode does not store it (a state-conditioned model
        cannot train on it)."""
        for k in schema.STATE_KEYS:
            if k not in self.steps:
                raise DataError(f"{self.where(k)}: missing; a model with model.state_dim > 0 or "
                                "model.aux_state_dim > 0 needs the proprioception in every episode (or train "
                                "with both 0)")
        return schema.canonical_state(np.concatenate([self.steps[k] for k in schema.STATE_KEYS], axis=1))

    def terminate(self) -> np.ndarray:
        """(T,) float32: 1.0 where `terminate_episode[0] > 0` (RT-1's terminate index), else 0.0."""
        return (self.steps[schema.TERMINATE][:, 0] > 0).astype(np.float32)

    def where(self, key: str | None = None) -> str:
        """`file, episode N (record R)[, key K]` for error messages."""
        s = f"{self.file}, episode {self.episode_id} (record {self.record})"
        return s + (f", key '{key}'" if key else "")


# ------------------------------------------------------------------ parsing one episode

_INT_DTYPES = {"int32": np.int32, "int64": np.int64, "bool": np.bool_}
_FINITE_KEYS = (*schema.ACTION_KEYS, schema.EMBEDDING)


def _image_size(data: bytes) -> tuple[int, int, int]:
    """(H, W, C) of an encoded image from its header (no full decode)."""
    with Image.open(io.BytesIO(data)) as im:
        channels = {"RGB": 3, "YCbCr": 3, "L": 1, "RGBA": 4, "CMYK": 4}.get(im.mode, len(im.getbands()))
        return im.size[1], im.size[0], channels


def check_steps(steps: dict[str, Any], where: str, check_images: bool = True) -> None:
    """Raise `DataError` (naming `where` and the key) for NaN/inf actions or embeddings, actions beyond
    `schema.ACTION_LIMIT`, and, with `check_images`, for frames whose header is not an image of the schema's
    shape (bodies are decoded later, by `frames.decode_frames`). Shared by both backends."""
    images = steps[schema.IMAGE]
    for key in _FINITE_KEYS:
        arr = steps[key]
        bad = ~np.isfinite(arr)
        if bad.any():
            step = int(np.argwhere(bad)[0][0])
            raise DataError(f"{where}, key 'steps/{key}': {int(bad.sum())} non-finite value(s) (NaN/inf), first at "
                            f"step {step}. Fix the source data, {FIX_SKIP}")
    for key in schema.ACTION_KEYS:
        big = np.abs(steps[key]) > schema.ACTION_LIMIT
        if big.any():
            step, col = (int(i) for i in np.argwhere(big)[0])
            raise DataError(f"{where}, key 'steps/{key}': value {float(steps[key][step, col]):.6g} at step {step} "
                            f"is beyond +-{schema.ACTION_LIMIT:g}, not an RT-1 action (metres / radians per step); "
                            f"fix the source data (a unit or scale error?), {FIX_SKIP}")
    if check_images:
        for t, data in enumerate(images):
            try:
                shape = _image_size(data)
            except Exception as e:  # PIL raises several types for non-images
                raise DataError(f"{where}, key 'steps/{schema.IMAGE}': frame {t} is not a decodable image ({e}); "
                                f"{FIX_SKIP}") from e
            if shape != schema.IMAGE_SHAPE:
                raise DataError(f"{where}, key 'steps/{schema.IMAGE}': frame {t} has shape {shape}, the schema "
                                f"needs {schema.IMAGE_SHAPE}. Resize/pad frames when converting (`selfflow-robot "
                                f"data convert` does), {FIX_SKIP}")


def decode_strings(values: list[bytes], where: str) -> list[str]:
    """UTF-8 strings of one step field; `DataError` naming `where` and the step for bytes that are not UTF-8
    (never a silent U+FFFD that would then be trained on). Shared by both backends."""
    out = []
    for t, v in enumerate(values):
        try:
            out.append(bytes(v).decode("utf-8"))
        except UnicodeDecodeError as e:
            raise DataError(f"{where}: the string at step {t} is not UTF-8 ({e}; starts {bytes(v)[:40]!r}); "
                            f"re-encode the instruction as UTF-8 when converting, {FIX_SKIP}") from e
    return out


def parse_episode(payload: bytes, ref: RecordRef, episode_id: int, check_images: bool = True) -> Episode:
    """Parse and validate one record into an `Episode`; raises `DataError` naming file, episode, key."""
    where = f"{ref.path}, episode {episode_id} (record {ref.index})"
    try:
        feats = decode_example(payload)
    except (ProtoError, UnicodeDecodeError) as e:
        raise DataError(f"{where}: the record is not a valid tf.train.Example ({e}); re-copy the shard, "
                        f"{FIX_SKIP}") from e
    for key in schema.REQUIRED_STEP_KEYS:
        if schema.serialized_key(key) not in feats:
            raise DataError(f"{where}, key 'steps/{key}': missing from the record; the episode does not follow the "
                            f"{schema.NAME} schema. Re-convert it with `selfflow-robot data convert`, {FIX_SKIP}")
    kind, images = feats[schema.serialized_key(schema.IMAGE)]
    if kind != "bytes_list":
        raise DataError(f"{where}, key 'steps/{schema.IMAGE}': holds {kind}, expected encoded images")
    T = len(images)
    if T == 0:
        raise DataError(f"{where}, key 'steps/{schema.IMAGE}': empty episode (0 steps); {FIX_SKIP}")
    steps: dict[str, Any] = {schema.IMAGE: images}
    for f in schema.STEP_FIELDS:
        skey = schema.serialized_key(f.path)
        if f.kind == "image" or skey not in feats:
            continue
        kind, value = feats[skey]
        if f.dtype == "string":
            if kind != "bytes_list" or len(value) != T:
                raise DataError(f"{where}, key '{skey}': expected {T} strings, found {len(value)} {kind} values")
            steps[f.path] = decode_strings(value, f"{where}, key '{skey}'")
            continue
        want = T * f.size
        if len(value) != want or kind == "bytes_list":
            raise DataError(f"{where}, key '{skey}': has {len(value)} {kind} values, the schema needs "
                            f"{T} steps x {f.shape} = {want}; the episode does not follow the {schema.NAME} "
                            f"schema ({FIX_SKIP})")
        arr = np.asarray(value).reshape((T, *f.shape))
        steps[f.path] = arr.astype(_INT_DTYPES[f.dtype]) if f.dtype in _INT_DTYPES else arr.astype(np.float32)
    check_steps(steps, where, check_images)
    meta: dict[str, Any] = {}
    for f in schema.EPISODE_FIELDS:
        if f.path in feats:
            kind, value = feats[f.path]
            if len(value):
                meta[f.path] = value[0].decode("utf-8", "replace") if f.dtype == "string" else value[0].item()
    return Episode(episode_id, ref.path, ref.index, steps, meta)


# ------------------------------------------------------------------ the reader


class RLDSReader:
    """Random access to the episodes of a fractal20220817_data builder dir.

    `path` is the builder dir itself, a parent holding `fractal20220817_data/0.1.0`, or a
    `gs://` builder dir (needs TensorFlow). Episode ids are global and stable: shards in
    order, records in order. The TFRecord framing of every shard is indexed (and checked)
    at construction, so truncated shards fail fast, in the calling process.
    """

    def __init__(self, path: str | os.PathLike, *, skip_bad_episodes: bool = False, check_images: bool = True):
        self.path = str(path)
        self.builder_dir = resolve_builder_dir(path)
        self.info = check_info(f"{self.builder_dir}/dataset_info.json")
        self.skip_bad_episodes = skip_bad_episodes
        self.check_images = check_images
        self.files, lengths = shard_files(self.builder_dir, self.info)
        self.num_skipped = 0
        self.skipped: list[str] = []  # messages of skipped episodes (this process, each episode once)
        self._refs: list[RecordRef | None] = []
        self._bad_index: dict[int, str] = {}
        for i, f in enumerate(self.files):
            refs, err = self._index(f)
            expected = lengths[i] if lengths else None
            lost, msg = 0, ""
            if err is not None:
                if not skip_bad_episodes:
                    raise err
                # the rest of a damaged shard is unreadable: count it as bad episodes
                lost, msg = (expected - len(refs) if expected is not None else 1), str(err)
            elif expected is not None and len(refs) != expected:
                msg = (f"{f}: holds {len(refs)} records but dataset_info.json says {expected}; the shard is "
                       f"incomplete or the metadata is stale. Re-copy the dataset, {FIX_SKIP}")
                if not skip_bad_episodes or len(refs) > expected:
                    raise DataError(msg)
                lost = expected - len(refs)
            if expected is not None and len(refs) > expected:  # only reachable with a framing error
                refs = refs[:expected]
            self._refs.extend(refs)
            if lost > 0:
                log.warning("%d episode(s) of %s are unreadable: %s", lost, f, msg)
                for _ in range(lost):
                    self._bad_index[len(self._refs)] = msg
                    self._refs.append(None)
        self._handles: dict[str, Any] = {}
        self._known_bad: set[int] = set()
        self._pid = os.getpid()

    @staticmethod
    def _index(path: str):
        if is_remote(path):  # header scan through tf.io.gfile (seekable)
            fs = gfile()
            return index_records_partial(path, opener=fs.GFile, size=fs.stat(path).length)
        return index_records_partial(path)

    def __len__(self) -> int:
        return len(self._refs)

    @property
    def episode_ids(self) -> list[int]:
        """All episode ids (0..N-1), including ones that may turn out bad when read."""
        return list(range(len(self._refs)))

    def __getstate__(self) -> dict:  # file handles do not cross process boundaries
        state = dict(self.__dict__)
        state["_handles"] = {}
        return state

    def _handle(self, path: str):
        if self._pid != os.getpid():
            self._handles, self._pid = {}, os.getpid()
        h = self._handles.get(path)
        if h is None:
            if len(self._handles) >= 64:  # bound open files on 1024-shard datasets
                for old in list(self._handles)[:32]:
                    self._handles.pop(old).close()
            h = self._handles[path] = open_binary(path)
        return h

    def read(self, episode_id: int) -> Episode | None:
        """Read and validate one episode; `None` if it is bad and `skip_bad_episodes` is on."""
        if not 0 <= episode_id < len(self._refs):
            raise IndexError(f"episode {episode_id} out of range (dataset has {len(self._refs)})")
        try:
            return self._load(episode_id)
        except DataError as e:
            self.skip_or_raise(e, episode_id)
            return None

    def skip_or_raise(self, error: DataError, episode_id: int) -> None:
        """Raise `error`, or with `skip_bad_episodes` count and log it as a skipped episode (each episode logged
        once, not once per epoch). Also used for faults found after `read`, such as a frame that does not decode."""
        if not self.skip_bad_episodes:
            raise error
        self.num_skipped += 1
        if episode_id not in self._known_bad:
            self._known_bad.add(episode_id)
            self.skipped.append(str(error))
            log.warning("skipping bad episode: %s", error)

    def read_many(self, episode_ids: list[int]) -> list[Episode | None]:
        """`read` of each id, in the given order (the tf backend reads them through one pipeline)."""
        return [self.read(i) for i in episode_ids]

    def _load(self, episode_id: int) -> Episode:
        """Read and validate one episode (raises `DataError`); `read` adds the skipping."""
        ref = self._refs[episode_id]
        if ref is None:
            raise DataError(self._bad_index.get(episode_id, f"episode {episode_id} is unreadable"))
        payload = read_record(ref, self._handle(ref.path))
        return parse_episode(payload, ref, episode_id, self.check_images)

    def __iter__(self) -> Iterator[Episode]:
        """All good episodes in id order (bad ones raise, or are skipped and counted)."""
        for i in range(len(self._refs)):
            ep = self.read(i)
            if ep is not None:
                yield ep

    def close(self) -> None:
        """Close open shard files."""
        for h in self._handles.values():
            h.close()
        self._handles = {}
