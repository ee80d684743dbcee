"""JPEG decode + resize of RT-1 frames, in parallel threads (PIL releases the GIL while decoding).

When the target is at most half the stored size, PIL's JPEG `draft` mode decodes at 1/2,
1/4 or 1/8 scale directly in the DCT, which is several times faster than a full decode
followed by a resize; the result is then resized (bilinear, antialiased) to the exact size.
"""
from __future__ import annotations

import io
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch.utils.data as tud
from PIL import Image

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


def decode_frames(frames: Sequence[bytes], size: tuple[int, int] | None = None, threads: int = 0) -> np.ndarray:
    """Decode many frames to uint8 (N, H, W, 3) using `threads` threads (0 = `default_threads()`)."""
    threads = threads or default_threads()
    if threads <= 1 or len(frames) <= 1:
        out = [decode_frame(f, size) for f in frames]
    else:
        out = list(_pool(threads).map(lambda f: decode_frame(f, size), frames))
    return np.stack(out) if out else np.zeros((0, *(size or (0, 0)), 3), np.uint8)
