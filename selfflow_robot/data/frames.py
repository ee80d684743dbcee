"""JPEG decode + resize of RT-1 frames, in parallel threads (PIL releases the GIL while decoding).

When the target is at most half the stored size, PIL's JPEG `draft` mode decodes at 1/2,
1/4 or 1/8 scale directly in the DCT, which is several times faster than a full decode
followed by a resize; the result is then resized (bilinear, antialiased) to the exact size.

A frame whose header reads but whose body does not decode (a corrupt JPEG inside an episode) raises
one `DataError` naming the episode and the step (`decode_frames(..., where=, steps=)`), which
`skip_bad_episodes` then skips like any other bad episode.
"""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch.utils.data as tud
from PIL import Image

from selfflow_robot.data import schema
from selfflow_robot.data.builder_dir import FIX_SKIP
from selfflow_robot.errors import DataError

_POOLS: dict[tuple[int, int], ThreadPoolExecutor] = {}


def decode_frame(data: bytes, size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode one encoded image to uint8 (H, W, 3); resize to `size` = (H, W) if given."""
    im = Image.open(io.BytesIO(data))
    if size is not None and (im.size[1], im.size[0]) != tuple(size):
        h, w = size
        if im.format == "JPEG" and im.size[0] >= 2 * w and im.size[1] >= 2 * h:
            im.draft("RGB", (w, h))  # DCT-domain downscale: decodes at 1/2, 1/4 or 1/8 size
        im = im.convert("RGB")
        if (im.size[1], im.size[0]) != (h, w):
            im = im.resize((w, h), Image.BILINEAR)
    elif im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im)


def _pool(threads: int) -> ThreadPoolExecutor:
    key = (os.getpid(), threads)  # a forked DataLoader worker must not reuse the parent's pool
    pool = _POOLS.get(key)
    if pool is None:
        pool = _POOLS[key] = ThreadPoolExecutor(threads, thread_name_prefix="jpeg")
    return pool


def default_threads() -> int:
    """Decode threads: all cores in the main process, 1 inside a DataLoader worker."""
    try:
        if tud.get_worker_info() is not None:
            return 1
    except ImportError:  # pragma: no cover
        pass
    return max(1, min(8, os.cpu_count() or 1))


def decode_frames(frames: Sequence[bytes], size: tuple[int, int] | None = None, threads: int = 0, *,
                  where: str = "", steps: Sequence[int] | None = None) -> np.ndarray:
    """Decode many frames to uint8 (N, H, W, 3) using `threads` threads (0 = `default_threads()`).

    A frame that cannot be decoded raises `DataError` naming `where` (e.g. `Episode.where()`) and its
    step: `steps[i]` when the frames are a selection of an episode's steps, else its position i.
    """
    threads = threads or default_threads()

    def decode(i: int) -> np.ndarray:
        try:
            return decode_frame(frames[i], size)
        except Exception as e:  # PIL raises OSError, SyntaxError, ValueError, DecompressionBombError, ...
            step = int(steps[i]) if steps is not None else i
            raise DataError(f"{where + ', ' if where else ''}key 'steps/{schema.IMAGE}': the frame at step {step} "
                            f"cannot be decoded ({type(e).__name__}: {e}); the JPEG is corrupt. Re-copy or "
                            f"re-convert the data, {FIX_SKIP}") from e

    if threads <= 1 or len(frames) <= 1:
        out = [decode(i) for i in range(len(frames))]
    else:
        out = list(_pool(threads).map(decode, range(len(frames))))
    return np.stack(out) if out else np.zeros((0, *(size or (0, 0)), 3), np.uint8)
