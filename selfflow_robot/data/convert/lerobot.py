"""LeRobot datasets (codebase v2.0 / v2.1 / v3.0): parquet + mp4 (or images in parquet) -> source episodes.

Read with pyarrow and imageio (ffmpeg; its bundled build decodes H.264, HEVC and AV1), no
`lerobot` package needed:
- `meta/info.json`: `fps`, `features`, `data_path`, `video_path`, `chunks_size`;
- rows: every `data/**/*.parquet`, grouped by `episode_index`, ordered by `frame_index`;
  `action` (list of floats) per row; `task_index` -> instruction via `meta/tasks.jsonl` (v2) or
  `meta/tasks.parquet` (v3);
- frames of `image_key` (e.g. `observation.images.image`): `dtype: video` -> the episode's
  mp4 (v2: one file per episode; v3: a shared file, episode span from `meta/episodes/`),
  frame = round((from_timestamp + timestamp) * fps); `dtype: image` -> PNG/JPEG bytes in the row;
- robot state (with `state_keys`, e.g. `[observation.state]`): those features per row,
  concatenated in order.
An episode that cannot be read (its video missing or undecodable, a broken image, too few frames)
is yielded as a `DataError` naming the dataset and episode (see `source`).
"""
from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from selfflow_robot.data.convert.source import SourceEpisode, SourceItem, concat_state, instruction_text, read_video
from selfflow_robot.errors import DataError, require


def _tasks(root: Path) -> dict[int, str]:
    jl = root / "meta" / "tasks.jsonl"
    if jl.is_file():
        out = {}
        for n, line in enumerate(jl.read_text().splitlines(), 1):
            if line.strip():
                try:
                    d = json.loads(line)
                    out[int(d["task_index"])] = instruction_text(d["task"], f"{jl}:{n}")
                except (ValueError, KeyError, TypeError) as e:
                    raise DataError(f"{jl}:{n}: not a task line {{\"task_index\": N, \"task\": \"...\"}} ({e})") from e
        return out
    pq_path = root / "meta" / "tasks.parquet"
    if pq_path.is_file():
        pq = require("pyarrow.parquet", "data")
        t = pq.read_table(pq_path).to_pydict()
        names = t.get("task") or next((v for k, v in t.items() if k != "task_index"), None)
        if names is None:
            raise DataError(f"{pq_path}: no task names column")
        return {int(i): instruction_text(n, f"{pq_path}, task_index {i}") for i, n in zip(t["task_index"], names)}
    return {}


def _episode_video_spans(root: Path, key: str) -> dict[int, tuple[str, float]]:
    """v3: episode -> (video file, from_timestamp) from meta/episodes/*.parquet."""
    pq = require("pyarrow.parquet", "data")
    info = json.loads((root / "meta" / "info.json").read_text())
    spans = {}
    for f in sorted((root / "meta" / "episodes").glob("**/*.parquet")):
        t = pq.read_table(f).to_pydict()
        for i, ep in enumerate(t["episode_index"]):
            chunk = t[f"videos/{key}/chunk_index"][i]
            file = t[f"videos/{key}/file_index"][i]
            path = info["video_path"].format(video_key=key, chunk_index=chunk, file_index=file)
            spans[int(ep)] = (str(root / path), float(t[f"videos/{key}/from_timestamp"][i]))
    return spans


def iter_lerobot(path: str, *, image_key: str = "", action_key: str = "action", instruction: str = "",
                 state_keys: list[str] | None = None) -> Iterator[SourceItem]:
    """Yield the episodes (or the `DataError` of a bad one) of a local LeRobot dataset folder, in episode order."""
    pq = require("pyarrow.parquet", "data")
    root = Path(path)
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        raise DataError(f"{root}: no meta/info.json; this is not a LeRobot dataset folder")
    try:
        info = json.loads(info_path.read_text())
    except ValueError as e:
        raise DataError(f"{info_path}: not valid JSON ({e})") from e
    version = str(info.get("codebase_version", ""))
    if not version.startswith(("v2", "v3")):
        raise DataError(f"{info_path}: codebase_version {version!r} is not supported (v2.0, v2.1, v3.0)")
    feats = info.get("features", {})
    cams = [k for k, v in feats.items() if v.get("dtype") in ("video", "image")]
    if image_key and image_key not in feats and f"observation.images.{image_key}" in feats:
        image_key = f"observation.images.{image_key}"
    if not image_key:
        if len(cams) != 1:
            raise DataError(f"{info_path}: {'several' if cams else 'no'} camera features {cams}; choose one with "
                            "image_key=")
        image_key = cams[0]
    if image_key not in cams:
        raise DataError(f"{info_path}: '{image_key}' is not a camera feature; cameras: {cams}")
    if action_key not in feats:
        raise DataError(f"{info_path}: no '{action_key}' feature; set action_key= (features: {sorted(feats)})")
    state_keys = list(state_keys or [])
    missing = [k for k in state_keys if k not in feats]
    if missing:
        raise DataError(f"{info_path}: no {missing} feature for state_key (features: {sorted(feats)})")
    fps = float(info["fps"])
    is_video = feats[image_key]["dtype"] == "video"
    tasks = _tasks(root)
    files = sorted((root / "data").glob("**/*.parquet"))
    if not files:
        raise DataError(f"{root}/data: no parquet files")
    spans = _episode_video_spans(root, image_key) if is_video and version.startswith("v3") else {}
    cache: dict[str, list[np.ndarray] | DataError] = {}
    chunks = int(info.get("chunks_size", 1000))
    rows_by_ep: dict[int, list[dict]] = {}
    cols = [c for c in ("episode_index", "frame_index", "timestamp", "task_index", action_key) if c]
    cols += [k for k in state_keys if k not in cols]
    if not is_video:
        cols.append(image_key)
    for f in files:
        t = pq.read_table(f, columns=cols).to_pylist()
        for r in t:
            rows_by_ep.setdefault(int(r["episode_index"]), []).append(r)
    for ep in sorted(rows_by_ep):
        rows = sorted(rows_by_ep[ep], key=lambda r: r["frame_index"])
        where = f"{root} episode {ep}"
        try:
            if is_video:
                vpath, t0 = spans[ep] if spans else (str(root / info["video_path"].format(
                    episode_chunk=ep // chunks, video_key=image_key, episode_index=ep)), 0.0)
                frames = _video_frames(vpath, t0, rows, fps, cache, where)
            else:
                frames = [_row_image(r[image_key], image_key, where, n) for n, r in enumerate(rows)]
            actions = np.asarray([r[action_key] for r in rows], np.float64)
            task = rows[0].get("task_index")
            instr = tasks.get(int(task)) if task is not None else None
            state = concat_state([[r[k] for r in rows] for k in state_keys], state_keys, where) if state_keys else None
        except DataError as e:
            yield e
            continue
        except (KeyError, ValueError, TypeError) as e:  # ragged actions, an episode missing from meta/episodes, ...
            yield DataError(f"{where}: cannot be read ({type(e).__name__}: {e})")
            continue
        yield SourceEpisode(where, frames, actions, instr or instruction or None, state)


def _video_frames(vpath: str, t0: float, rows: list[dict], fps: float, cache: dict[str, list[np.ndarray] | DataError],
                  where: str) -> list[np.ndarray]:
    """The frames of `rows` from the (possibly shared) video `vpath`; one decoded file (or its error) is cached."""
    if vpath not in cache:
        cache.clear()  # keep one decoded file in memory
        if not Path(vpath).is_file():
            cache[vpath] = DataError(f"video {vpath} is missing")
        else:
            try:
                cache[vpath] = read_video(vpath)
            except DataError as e:
                cache[vpath] = e
    video = cache[vpath]
    if isinstance(video, DataError):
        raise DataError(f"{where}: {video}")
    idx = [int(round((t0 + float(r["timestamp"])) * fps)) for r in rows]
    if max(idx) >= len(video):
        raise DataError(f"{where}: needs frame {max(idx)} but {vpath} has {len(video)} frames")
    return [video[i] for i in idx]


def _row_image(value, image_key: str, where: str, n: int) -> np.ndarray:
    """One embedded image (PNG/JPEG bytes, or {"bytes": ...}) of a parquet row, decoded to uint8 RGB."""
    data = value.get("bytes") if isinstance(value, dict) else value
    if not data:
        raise DataError(f"{where}: image feature '{image_key}' has no embedded bytes")
    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
        raise DataError(f"{where}: the '{image_key}' image of frame {n} cannot be decoded "
                        f"({type(e).__name__}: {e})") from e

