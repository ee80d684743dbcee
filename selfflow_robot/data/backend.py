"""Choosing the episode reader: `open_reader(path, backend)` -> the Python or the tf.data backend."""
from __future__ import annotations

import os

from selfflow_robot.data.builder_dir import is_remote
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.tf_backend import TFRLDSReader
from selfflow_robot.errors import ConfigError

BACKENDS = ("auto", "python", "tf")


def open_reader(path: str | os.PathLike, backend: str = "auto", **kwargs) -> RLDSReader:
    """An episode reader over `path` with the chosen backend (same `Episode` layout either way).

    `python` is `RLDSReader` (TF-free); `tf` is `tf_backend.TFRLDSReader` (tensorflow-datasets +
    tf.data, needs the `tf` extra); `auto` is `tf` for remote (`gs://`) paths and `python` otherwise.
    `kwargs` go to the reader (`skip_bad_episodes`, `check_images`).
    """
    if backend not in BACKENDS:
        raise ConfigError(f"data backend must be one of {list(BACKENDS)}, got {backend!r}")
    if backend == "tf" or (backend == "auto" and is_remote(str(path))):
        return TFRLDSReader(path, **kwargs)
    return RLDSReader(path, **kwargs)
