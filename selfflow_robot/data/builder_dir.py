"""Locating an RT-1 TFDS builder dir (local or `gs://`): `dataset_info.json`, its checks, the shard files.

Both reader backends (`reader.RLDSReader`, `tf_backend.TFRLDSReader`) start here, so a bad path or a wrong
dataset gives the same `DataError` either way.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from selfflow_robot.data import schema
from selfflow_robot.errors import DataError, require

# Every message about a bad episode ends with how to skip it.
FIX_SKIP = "or pass --skip-bad-episodes (skip_bad_episodes=true) to skip such episodes"


# ------------------------------------------------------------------ file access (local or gs://)


def is_remote(path: str) -> bool:
    """True for URLs such as `gs://bucket/dir`."""
    return "://" in path


def gfile():
    """`tf.io.gfile` (remote paths need the `tf` extra)."""
    tf = require("tensorflow", "tf")
    return tf.io.gfile


def path_exists(path: str) -> bool:
    return gfile().exists(path) if is_remote(path) else os.path.exists(path)


def read_text(path: str) -> str:
    if is_remote(path):
        with gfile().GFile(path, "r") as f:
            return f.read()
    return Path(path).read_text()


def open_binary(path: str):
    return gfile().GFile(path, "rb") if is_remote(path) else open(path, "rb")


# ------------------------------------------------------------------ locating the builder dir


def resolve_builder_dir(path: str | os.PathLike) -> str:
    """Find the builder dir (`.../fractal20220817_data/0.1.0`) from it or from a parent data_dir.

    Raises `DataError` for a missing directory, a missing `dataset_info.json`, or a dataset
    whose name or version is not fractal20220817_data 0.1.0.
    """
    p = str(path).rstrip("/")
    if not p:
        raise DataError("no dataset path given; set data.path=DIR (a fractal20220817_data/0.1.0 builder "
                        "dir or its parent)")
    if not is_remote(p) and not os.path.isdir(p):
        raise DataError(f"dataset directory {p} does not exist. Point the path at a "
                        f"{schema.RELATIVE_DIR} builder dir (or its parent data_dir), or make a small one "
                        f"with `selfflow-robot data synth output_dir={p}`")
    candidates = [p, f"{p}/{schema.VERSION}", f"{p}/{schema.RELATIVE_DIR}"]
    for c in candidates:
        info_path = f"{c}/dataset_info.json"
        if path_exists(info_path):
            check_info(info_path)
            return c
    if not is_remote(p):
        found = sorted(str(Path(f).parent) for f in Path(p).glob("**/dataset_info.json"))[:5]
        if found:
            names = []
            for f in found:
                try:
                    info = json.loads(Path(f, "dataset_info.json").read_text())
                    names.append(f"{info.get('name', '?')} {info.get('version', '?')} at {f}")
                except (OSError, ValueError):
                    names.append(f"unreadable dataset_info.json at {f}")
            raise DataError(f"{p} holds no {schema.NAME} {schema.VERSION} dataset; found: {'; '.join(names)}. "
                            f"Point the path at {schema.RELATIVE_DIR} (or convert your data with "
                            "`selfflow-robot data convert`)")
    raise DataError(f"{p}: no dataset_info.json here nor in {p}/{schema.RELATIVE_DIR}; this is not a TFDS "
                    f"builder dir. Point the path at the folder holding dataset_info.json and the "
                    f"{schema.NAME}-train.tfrecord-* shards")


def load_info(info_path: str) -> dict:
    """The parsed `dataset_info.json`; `DataError` naming the file when it is unreadable or not a JSON object."""
    try:
        info = json.loads(read_text(info_path))
    except (OSError, ValueError) as e:
        raise DataError(f"{info_path}: cannot read dataset_info.json ({e}); re-copy the dataset") from e
    if not isinstance(info, dict):
        raise DataError(f"{info_path}: holds a JSON {type(info).__name__}, not an object; re-copy the dataset")
    return info


def _check_splits(info: dict, info_path: str) -> None:
    """`splits` is a list of objects and the train split's `shardLengths` are counts (TFDS writes "12" or 12)."""
    if "splits" not in info:
        return
    splits = info["splits"]
    fix = ("re-copy the dataset, or delete the 'splits' entry to read every shard without lengths "
           "(data.backend=python)")
    if not isinstance(splits, list) or not all(isinstance(s, dict) for s in splits):
        raise DataError(f"{info_path}: 'splits' is {json.dumps(splits)[:80]}, not a list of split objects; {fix}")
    for split in splits:
        lengths = split.get("shardLengths")
        if split.get("name") != schema.SPLIT or lengths is None:
            continue
        if not isinstance(lengths, list):
            raise DataError(f"{info_path}: split '{schema.SPLIT}' has shardLengths {json.dumps(lengths)[:80]}, "
                            f"not a list of episode counts; {fix}")
        for i, n in enumerate(lengths):
            if isinstance(n, bool) or not (isinstance(n, int) or (isinstance(n, str) and n.strip().isdigit())) \
                    or int(n) < 0:
                raise DataError(f"{info_path}: split '{schema.SPLIT}' shardLengths[{i}] is {json.dumps(n)}, not an "
                                f"episode count (a non-negative integer); {fix}")


def check_info(info_path: str) -> dict:
    """`load_info` plus the checks both readers rely on: name, version, file format, split layout."""
    info = load_info(info_path)
    name, version = info.get("name"), info.get("version")
    if name != schema.NAME or version != schema.VERSION:
        raise DataError(f"{info_path}: wrong dataset: this is '{name}' version '{version}', the reader needs "
                        f"'{schema.NAME}' version '{schema.VERSION}' (the RT-1 schema). Convert other data "
                        "with `selfflow-robot data convert`")
    if info.get("fileFormat", schema.FILE_FORMAT) != schema.FILE_FORMAT:
        raise DataError(f"{info_path}: fileFormat is '{info.get('fileFormat')}', only 'tfrecord' is supported")
    _check_splits(info, info_path)
    return info


def shard_files(builder_dir: str, info: dict) -> tuple[list[str], list[int] | None]:
    split = next((s for s in info.get("splits", []) if s.get("name") == schema.SPLIT), None)
    if split and split.get("shardLengths"):
        lengths = [int(n) for n in split["shardLengths"]]
        template = split.get("filepathTemplate", schema.FILEPATH_TEMPLATE)
        n = len(lengths)
        files = []
        for i in range(n):
            name = (template.replace("{DATASET}", schema.NAME).replace("{SPLIT}", schema.SPLIT)
                    .replace("{FILEFORMAT}", schema.FILE_FORMAT)
                    .replace("{SHARD_X_OF_Y}", f"{i:05d}-of-{n:05d}"))
            files.append(f"{builder_dir}/{name}")
        missing = [f for f in files if not path_exists(f)]
        if missing:
            raise DataError(f"{builder_dir}: {len(missing)} of {n} shard files listed in dataset_info.json are "
                            f"missing (first: {missing[0]}); re-copy the dataset")
        return files, lengths
    if is_remote(builder_dir):
        files = sorted(gfile().glob(f"{builder_dir}/{schema.NAME}-{schema.SPLIT}.{schema.FILE_FORMAT}-*"))
    else:
        files = sorted(str(f) for f in Path(builder_dir).glob(f"{schema.NAME}-{schema.SPLIT}.{schema.FILE_FORMAT}-*"))
    if not files:
        raise DataError(f"{builder_dir}: no {schema.NAME}-{schema.SPLIT}.tfrecord-* shard files")
    return files, None
