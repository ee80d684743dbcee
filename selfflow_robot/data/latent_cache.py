"""The latent cache: every frame of a dataset encoded once by a model's codec, memory-mapped for training.

A cache folder holds
  - `tokens.bin`: the frame tokens of all episodes back to back, (frames, n, d) in `dtype`;
  - `manifest.json`, written last: the key it was made for (the dataset's fingerprint, the codec's, the frame
    size, the dtype), the token shape, and per episode its first frame, its length and the sha256 of its bytes.

A cache serves a run when its key equals the run's: a changed dataset (its `dataset_info.json` or a shard's
name or size, `statistics.dataset_fingerprint`) or codec (its weights or geometry, `FrameCodec.fingerprint`)
needs a new one. A process checks each episode's bytes against its sha256 the first time it reads them, so a
damaged file stops with a message naming the episode. Building writes into a temporary folder that replaces
the old cache only when complete: an interrupted build leaves no cache that looks finished, and a full disk
says so.

This module knows nothing of models: `build_latent_cache` takes the codec as a function, uint8 frames
(N, H, W, 3) -> tokens (N, n, d). `selfflow_robot/train/latents.py` wires it to the model's codec.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from selfflow_robot.data.frames import decode_frames
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.statistics import dataset_fingerprint
from selfflow_robot.errors import DataError, UserError

FORMAT_VERSION = 1
TOKENS_FILE = "tokens.bin"
MANIFEST_FILE = "manifest.json"
DTYPES = ("float32", "float16")

Encode = Callable[[np.ndarray], np.ndarray]  # uint8 frames (N, H, W, 3) -> tokens (N, n, d)


def cache_key(reader: RLDSReader, codec_fingerprint: str, image_size: tuple[int, int], dtype: str = "float32"
              ) -> dict[str, Any]:
    """What a cache must have been made from to serve a run: dataset, codec, frame size, dtype, format."""
    if dtype not in DTYPES:
        raise UserError(f"latent cache dtype must be one of {list(DTYPES)}, got {dtype!r}")
    return {"format": FORMAT_VERSION, "dataset": dataset_fingerprint(reader), "codec": codec_fingerprint,
            "image_size": [int(image_size[0]), int(image_size[1])], "dtype": dtype}


class LatentCache:
    """A finished cache folder, read through a memory map (`frames(episode_id)` -> (T, n, d))."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        manifest = self.folder / MANIFEST_FILE
        try:
            m = json.loads(manifest.read_text())
            self.key: dict[str, Any] = m["key"]
            self.token_shape: tuple[int, int] = (int(m["tokens"]), int(m["token_dim"]))
            self.num_frames = int(m["frames"])
            self.episodes: dict[int, tuple[int, int, str]] = {int(k): (int(v[0]), int(v[1]), str(v[2]))
                                                             for k, v in m["episodes"].items()}
        except FileNotFoundError as e:
            raise DataError(f"{self.folder} is not a finished latent cache (no {MANIFEST_FILE}); build it with "
                            "`selfflow-robot data encode`") from e
        except (ValueError, KeyError, TypeError, IndexError) as e:
            raise DataError(f"{manifest}: unreadable latent-cache manifest ({type(e).__name__}: {e}); delete "
                            f"{self.folder} and encode again") from e
        tokens = self.folder / TOKENS_FILE
        expected = self.nbytes
        size = tokens.stat().st_size if tokens.is_file() else -1
        if size != expected:
            raise DataError(f"{tokens}: {size} bytes, the manifest says {expected}; the latent cache is damaged. "
                            f"Delete {self.folder} and encode again (`selfflow-robot data encode`)")
        self._tokens: np.ndarray | None = None
        self._checked: set[int] = set()

    def __getstate__(self) -> dict:  # the memory map is reopened in each process
        return {**self.__dict__, "_tokens": None}

    @property
    def tokens(self) -> np.ndarray:
        """All frame tokens, (frames, n, d), memory-mapped read-only."""
        if self._tokens is None:
            self._tokens = np.memmap(self.folder / TOKENS_FILE, dtype=self.key["dtype"], mode="r",
                                     shape=(self.num_frames, *self.token_shape))
        return self._tokens

    def __contains__(self, episode_id: int) -> bool:
        return int(episode_id) in self.episodes

    def frames(self, episode_id: int) -> np.ndarray:
        """The tokens of every frame of `episode_id`, (T, n, d) (a view of the map; checked on first use)."""
        if episode_id not in self.episodes:
            raise DataError(f"{self.folder}: episode {episode_id} is not in the latent cache (it was skipped as "
                            "bad when the cache was built)")
        start, length, digest = self.episodes[episode_id]
        view = self.tokens[start:start + length]
        if episode_id not in self._checked:
            if hashlib.sha256(view.tobytes()).hexdigest() != digest:
                raise DataError(f"{self.folder / TOKENS_FILE}: the tokens of episode {episode_id} do not match their "
                                f"checksum; the latent cache is damaged. Delete {self.folder} and encode again")
            self._checked.add(episode_id)
        return view

    @property
    def nbytes(self) -> int:
        """Size of the token file in bytes."""
        return self.num_frames * self.token_shape[0] * self.token_shape[1] * np.dtype(self.key["dtype"]).itemsize


def open_latent_cache(folder: str | Path, key: dict[str, Any]) -> tuple[LatentCache | None, str]:
    """(the cache in `folder`, "") when it is finished and made for `key`, else (None, why not)."""
    folder = Path(folder)
    if not (folder / MANIFEST_FILE).is_file():
        return None, f"no latent cache in {folder}"
    try:
        cache = LatentCache(folder)
    except DataError as e:
        return None, str(e)
    stale = [k for k in key if cache.key.get(k) != key[k]]
    if stale:
        return None, f"the latent cache in {folder} was made for another {', '.join(stale)}"
    return cache, ""


def build_latent_cache(reader: RLDSReader, folder: str | Path, key: dict[str, Any], encode: Encode,
                       image_size: tuple[int, int], *, batch_frames: int = 64, threads: int = 0,
                       progress: bool = True) -> LatentCache:
    """Encode every frame of every episode of `reader` with `encode` into a new cache at `folder`.

    Episodes that are bad are skipped (and left out of the cache) when the reader skips bad episodes,
    else they raise. The cache replaces whatever was at `folder` only once it is complete.
    """
    folder = Path(folder)
    tmp = folder.with_name(f".{folder.name}.building-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    dtype = np.dtype(key["dtype"])
    episodes: dict[str, list] = {}
    frames, shape = 0, None
    try:
        with open(tmp / TOKENS_FILE, "wb") as out:
            bar = tqdm(reader.episode_ids, desc=f"encode frames -> {folder}", unit="episode", disable=not progress)
            for ep_id in bar:
                ep = reader.read(ep_id)
                if ep is None:
                    continue
                try:
                    pixels = decode_frames(ep.images, image_size, threads, where=ep.where())
                except DataError as e:
                    reader.skip_or_raise(e, ep_id)
                    continue
                tok = np.concatenate([np.asarray(encode(pixels[i:i + batch_frames]), dtype)
                                      for i in range(0, len(pixels), batch_frames)])
                if shape is None:
                    shape = tok.shape[1:]
                    _check_space(tmp, tok.nbytes / max(1, len(tok)) * _frames_estimate(reader, len(tok)))
                elif tok.shape[1:] != shape:
                    raise DataError(f"episode {ep_id}: tokens of shape {tok.shape[1:]}, earlier ones {shape}")
                data = np.ascontiguousarray(tok).tobytes()
                out.write(data)
                episodes[str(ep_id)] = [frames, len(tok), hashlib.sha256(data).hexdigest()]
                frames += len(tok)
                bar.set_postfix(frames=frames, MB=f"{out.tell() / 2**20:.0f}")
            out.flush()
            os.fsync(out.fileno())
        if shape is None:
            raise DataError(f"{reader.builder_dir}: no episode could be encoded")
        manifest = {"key": key, "frames": frames, "tokens": int(shape[0]), "token_dim": int(shape[1]),
                    "episodes": episodes}
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest))
        old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
        if folder.exists():
            folder.rename(old)
        tmp.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if e.errno == errno.ENOSPC:
            raise UserError(f"the disk holding {folder} is full: the latent cache did not fit (about "
                            f"{frames} frames were written); free space or set data.latents to a folder on "
                            "another disk") from e
        raise
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return LatentCache(folder)


def _frames_estimate(reader: RLDSReader, first_length: int) -> int:
    """Frames in the dataset, estimated from the first episode's length."""
    return first_length * len(reader)


def _check_space(folder: Path, needed: float) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise UserError(f"the latent cache needs about {needed / 2**30:.2f} GiB and {folder.parent} has "
                        f"{free / 2**30:.2f} GiB free; free space or set data.latents to a folder on another disk")


__all__ = ["DTYPES", "LatentCache", "build_latent_cache", "cache_key", "open_latent_cache"]
