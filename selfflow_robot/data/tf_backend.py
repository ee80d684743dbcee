"""TFRLDSReader: the tf.data backend of the RT-1 reader (tensorflow-datasets, steps as whole tensors).

It opens the same builder dir as `RLDSReader` with
`tfds.builder_from_directory(dir).as_dataset(split=..., decoders={"steps": SkipDecoding()})`,
so each element is one episode whose steps are whole tensors (not a nested `tf.data.Dataset`)
and whose frames are still encoded JPEG bytes. Each episode is turned into exactly the
`Episode` the Python backend makes (same keys, dtypes, shapes, bytes; validated by the same
`check_steps`), so windows, `RT1Windows` and statistics work unchanged with either backend.

- Episode ids are the split's record order (shards in order, records in order), as in the
  Python backend: tf.data reads the shards one after another (`interleave_cycle_length=1`).
- `read(i)` of the episode after the previous one continues one streaming tf.data pipeline
  (ordered passes: statistics, `__iter__`); a jump opens the slice `train[i:i+1]`.
- `decode_frames_tf` / `iter_decoded` decode JPEGs (and optionally resize) in tf.data with
  `num_parallel_calls=AUTOTUNE`, for consumers that want whole decoded episodes. Training
  windows still decode through `windows.EpisodeWindows` (PIL, JPEG draft mode), so they are
  identical whichever backend read the episode.
- TensorFlow is imported lazily, logs at level 2 (`TF_CPP_MIN_LOG_LEVEL`), and uses few threads
  (`threads`, default 2: intra/inter-op and the tf.data private pool) so it shares a small
  machine with torch. TF errors while reading become one-line `DataError`s naming the shard,
  the episode (record) and the fix; `skip_bad_episodes` skips and counts them.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from selfflow_robot.data import schema
from selfflow_robot.data.builder_dir import FIX_SKIP, check_info, resolve_builder_dir, shard_files
from selfflow_robot.data.reader import Episode, RLDSReader, check_steps, decode_strings
from selfflow_robot.errors import DataError, require

_THREADS_SET: list[int] = []


def tf_modules(threads: int = 2):
    """(tensorflow, tensorflow_datasets), imported on first use with quiet logs and `threads` threads."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    tf = require("tensorflow", "tf")
    tfds = require("tensorflow_datasets", "tf")
    if not _THREADS_SET:
        try:  # only possible before TF's runtime starts; later calls keep the first setting
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:
            pass
        try:
            tf.config.set_visible_devices([], "GPU")  # frames are decoded on the CPU; leave GPUs to torch
        except (RuntimeError, ValueError):
            pass
        _THREADS_SET.append(threads)
    return tf, tfds


def _options(tf, threads: int):
    opts = tf.data.Options()
    opts.threading.private_threadpool_size = max(1, threads)
    opts.deterministic = True
    return opts


def _read_config(tfds):
    # one shard after another (episode ids = record order), no in-memory cache of small datasets
    return tfds.ReadConfig(interleave_cycle_length=1, try_autocache=False, num_parallel_calls_for_interleave_files=1)


def _meta(ep: dict) -> dict[str, Any]:
    """Episode fields as the Python backend gives them: bools/ints as int, strings as str."""
    meta: dict[str, Any] = {}
    for f in schema.EPISODE_FIELDS:
        group, name = f.path.split("/", 1)
        if group in ep and name in ep[group]:
            v = ep[group][name]
            meta[f.path] = v.decode("utf-8", "replace") if f.dtype == "string" else int(v)
    return meta


def _steps(ep_steps: dict, where: str) -> dict[str, Any]:
    """Whole-tensor steps (numpy, nested) -> the Python backend's flat `steps` dict."""
    def get(path: str):
        node = ep_steps
        for part in path.split("/"):
            node = node[part]
        return node

    images = get(schema.IMAGE)
    T = len(images)
    if T == 0:
        raise DataError(f"{where}, key 'steps/{schema.IMAGE}': empty episode (0 steps); {FIX_SKIP}")
    steps: dict[str, Any] = {schema.IMAGE: [bytes(b) for b in images]}
    for f in schema.STEP_FIELDS:
        if f.kind == "image":
            continue
        try:
            v = get(f.path)
        except KeyError:
            continue
        n = len(v) if f.dtype == "string" else int(np.size(v))
        if n == 0:  # tf.io.parse_sequence_example gives a key absent from the record as empty
            if f.path in schema.REQUIRED_STEP_KEYS:
                raise DataError(f"{where}, key 'steps/{f.path}': missing from the record; the episode does not "
                                f"follow the {schema.NAME} schema. Re-convert it with `selfflow-robot data "
                                f"convert`, {FIX_SKIP}")
            continue
        if f.dtype == "string":
            if n != T:
                raise DataError(f"{where}, key 'steps/{f.path}': expected {T} strings, found {n}")
            steps[f.path] = decode_strings(list(v), f"{where}, key 'steps/{f.path}'")
            continue
        if n != T * f.size:
            raise DataError(f"{where}, key 'steps/{f.path}': has {n} values, the schema needs {T} steps x "
                            f"{f.shape} = {T * f.size}; the episode does not follow the {schema.NAME} schema "
                            f"({FIX_SKIP})")
        steps[f.path] = np.ascontiguousarray(v).reshape((T, *f.shape))
    return steps


class TFRLDSReader(RLDSReader):
    """`RLDSReader`'s interface over tensorflow-datasets + tf.data (see the module docstring).

    Args:
        path: builder dir, its parent data_dir, or a `gs://` builder dir.
        skip_bad_episodes: skip (log, count in `num_skipped`) episodes TF cannot read or that fail checks.
        check_images: check every frame's header (shape 256x320x3), as the Python backend does.
        threads: TensorFlow threads (intra/inter-op, and the tf.data pool of each pipeline).
    """

    backend = "tf"

    def __init__(self, path: str | os.PathLike, *, skip_bad_episodes: bool = False, check_images: bool = True,
                 threads: int = 2):
        self.path = str(path)
        self.builder_dir = resolve_builder_dir(path)      # same DataErrors as the Python backend
        self.info = check_info(f"{self.builder_dir}/dataset_info.json")
        self.skip_bad_episodes = skip_bad_episodes
        self.check_images = check_images
        self.threads = max(1, threads)
        self.files, lengths = shard_files(self.builder_dir, self.info)
        if lengths is None:
            raise DataError(f"{self.builder_dir}/dataset_info.json: no shardLengths for split '{schema.SPLIT}'; "
                            "tensorflow-datasets needs them. Use backend=python, or re-write dataset_info.json")
        # (shard file, record) of every episode id: for error messages
        self._refs = [(f, r) for f, n in zip(self.files, lengths) for r in range(n)]
        self.num_skipped = 0
        self.skipped: list[str] = []
        self._known_bad: set[int] = set()
        self._bad_index: dict[int, str] = {}
        self._handles: dict[str, Any] = {}
        self._pid = os.getpid()
        self._builder = None
        self._stream: Iterator | None = None   # streaming pipeline positioned at episode `_stream_next`
        self._stream_next = -1
        self._last = -2

    def __getstate__(self) -> dict:  # TF objects do not cross process boundaries
        state = dict(self.__dict__)
        state.update(_builder=None, _stream=None, _stream_next=-1, _last=-2)
        return state

    # -------------------------------------------------------------- tf.data pipelines

    def builder(self):
        """The `tfds` builder of this dir (made on first use, per process)."""
        if self._builder is None or self._pid != os.getpid():
            _, tfds = tf_modules(self.threads)
            try:
                self._builder = tfds.builder_from_directory(self.builder_dir)
            except Exception as e:  # tfds raises several types for unreadable metadata
                raise DataError(f"{self.builder_dir}: tensorflow-datasets cannot open this builder dir ({e}); "
                                "re-copy the dataset or use backend=python") from e
            self._pid = os.getpid()
        return self._builder

    def episodes_dataset(self, start: int = 0, stop: int | None = None):
        """tf.data.Dataset of episodes [start, stop) in id order, steps as whole tensors, images encoded."""
        tf, tfds = tf_modules(self.threads)
        stop = len(self._refs) if stop is None else stop
        ds = self.builder().as_dataset(split=f"{schema.SPLIT}[{start}:{stop}]",
                                       decoders={"steps": tfds.decode.SkipDecoding()}, shuffle_files=False,
                                       read_config=_read_config(tfds))
        return ds.with_options(_options(tf, self.threads))

    def _where(self, episode_id: int) -> str:
        f, r = self._refs[episode_id]
        return f"{f}, episode {episode_id} (record {r})"

    def _to_episode(self, raw: dict, episode_id: int) -> Episode:
        where = self._where(episode_id)
        steps = _steps(raw["steps"], where)
        for key in schema.REQUIRED_STEP_KEYS:
            if key not in steps:
                raise DataError(f"{where}, key 'steps/{key}': missing from the episode; it does not follow the "
                                f"{schema.NAME} schema, {FIX_SKIP}")
        check_steps(steps, where, self.check_images)
        f, r = self._refs[episode_id]
        return Episode(episode_id, f, r, steps, _meta(raw))

    def _tf_error(self, e: Exception, episode_id: int) -> DataError:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        return DataError(f"{self._where(episode_id)}: TensorFlow cannot read this episode ({type(e).__name__}: "
                         f"{msg}); the shard is truncated/corrupt or the record does not follow the {schema.NAME} "
                         f"schema. backend=python names the key; re-copy the shard, {FIX_SKIP}")

    def _load(self, episode_id: int) -> Episode:
        tf, _ = tf_modules(self.threads)
        sequential = episode_id == self._last + 1
        self._last = episode_id
        try:
            if sequential:
                if self._stream is None or self._stream_next != episode_id:
                    self._stream = self.episodes_dataset(episode_id).as_numpy_iterator()
                self._stream_next = episode_id + 1
                try:
                    raw = next(self._stream)
                except StopIteration:
                    raise DataError(f"{self._where(episode_id)}: the shard ends before this record; "
                                    f"re-copy the dataset, {FIX_SKIP}") from None
            else:
                self._stream = None
                raw = next(self.episodes_dataset(episode_id, episode_id + 1).as_numpy_iterator())
        except tf.errors.OpError as e:
            self._stream = None  # a failed pipeline cannot continue; the next read reopens after this episode
            raise self._tf_error(e, episode_id) from None
        return self._to_episode(raw, episode_id)

    def read_many(self, episode_ids: list[int]) -> list[Episode | None]:
        """The episodes `episode_ids` in that order through ONE pipeline (split `train[a:a+1]+train[b:b+1]+...`),
        which saves the ~0.1 s of opening a pipeline per episode on shuffled blocks. `None` for skipped ones."""
        ids = list(episode_ids)
        if len(ids) <= 1:
            return [self.read(i) for i in ids]
        tf, tfds = tf_modules(self.threads)
        for i in ids:
            if not 0 <= i < len(self._refs):
                raise IndexError(f"episode {i} out of range (dataset has {len(self._refs)})")
        split = "+".join(f"{schema.SPLIT}[{i}:{i + 1}]" for i in ids)
        try:
            ds = self.builder().as_dataset(split=split, decoders={"steps": tfds.decode.SkipDecoding()},
                                           shuffle_files=False, read_config=_read_config(tfds))
            raws = list(ds.with_options(_options(tf, self.threads)).as_numpy_iterator())
        except tf.errors.OpError:
            return [self.read(i) for i in ids]  # one by one: names the bad episode, skips it if asked
        out: list[Episode | None] = []
        for i, raw in zip(ids, raws, strict=True):
            try:
                out.append(self._to_episode(raw, i))
            except DataError as e:
                self.skip_or_raise(e, i)
                out.append(None)
        return out

    def close(self) -> None:
        """Drop the open pipeline."""
        self._stream, self._stream_next = None, -1

    # -------------------------------------------------------------- decoded frames (tf.data, parallel)

    def iter_decoded(self, size: tuple[int, int] | None = None, start: int = 0, stop: int | None = None
                     ) -> Iterator[tuple[Episode, np.ndarray]]:
        """(episode, frames uint8 (T, h, w, 3)) in id order; frames decoded (and resized to `size` with
        antialiased bilinear) in tf.data, episodes in parallel (`num_parallel_calls=AUTOTUNE`).
        Bad episodes raise `DataError` (or are skipped with `skip_bad_episodes`)."""
        tf, _ = tf_modules(self.threads)
        decode = _frame_decoder(tf, size)

        def with_frames(ep):
            frames = tf.map_fn(decode, ep["steps"]["observation"]["image"],
                               fn_output_signature=tf.TensorSpec((None, None, 3), tf.uint8))
            return ep, frames

        stop = len(self._refs) if stop is None else stop
        i = start
        while i < stop:
            ds = self.episodes_dataset(i, stop).map(with_frames, num_parallel_calls=tf.data.AUTOTUNE,
                                                    deterministic=True).prefetch(1)
            it = ds.as_numpy_iterator()
            try:
                for raw, frames in it:
                    try:
                        ep = self._to_episode(raw, i)
                    except DataError as e:
                        self.skip_or_raise(e, i)
                    else:
                        yield ep, frames
                    i += 1
            except tf.errors.OpError as e:
                self.skip_or_raise(self._tf_error(e, i), i)
                i += 1


def _frame_decoder(tf, size: tuple[int, int] | None):
    def decode(data):
        im = tf.io.decode_jpeg(data, channels=3)
        if size is not None:
            im = tf.image.resize(im, size, method="bilinear", antialias=True)
            im = tf.cast(tf.clip_by_value(tf.round(im), 0, 255), tf.uint8)
        return im
    return decode


def decode_frames_tf(frames: list[bytes], size: tuple[int, int] | None = None, threads: int = 2) -> np.ndarray:
    """Decode encoded frames to uint8 (N, h, w, 3) in a tf.data pipeline, `num_parallel_calls=AUTOTUNE`
    on a private pool of `threads` threads (the TF counterpart of `frames.decode_frames`)."""
    tf, _ = tf_modules(threads)
    if not frames:
        return np.zeros((0, *(size or (0, 0)), 3), np.uint8)
    ds = (tf.data.Dataset.from_tensor_slices(tf.constant(list(frames), tf.string))
          .map(_frame_decoder(tf, size), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
          .batch(len(frames)).with_options(_options(tf, threads)))
    return next(ds.as_numpy_iterator())
