"""Random-shift augmentation (`train/augment.py`): one translation per window, in the codec's map, edges
replicated; context and future frames move together; off = the tokens unchanged."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from selfflow_robot.model.codecs import patchify, unpatchify
from selfflow_robot.train.augment import random_shift


def _window_tokens(B=8, T=3, ch=2, size=(8, 10), p=2, seed=0):
    z = torch.randn(B, T, ch, *size, generator=torch.Generator().manual_seed(seed))
    return z, patchify(z, p)


def _offset_of(z_b: torch.Tensor, out_b: torch.Tensor, s: int) -> tuple[int, int] | None:
    """The (dy, dx) crop of the replicate-padded map that gives `out_b` for every frame at once, if any."""
    T, ch, h, w = z_b.shape
    padded = F.pad(z_b.reshape(1, T * ch, h, w), (s, s, s, s), mode="replicate")[0].reshape(T, ch, h + 2 * s, -1)
    for dy in range(2 * s + 1):
        for dx in range(2 * s + 1):
            if torch.equal(padded[..., dy:dy + h, dx:dx + w], out_b):
                return dy, dx
    return None


def test_each_window_moves_by_one_offset_shared_by_its_frames():
    grid, p, s, k = (4, 5), 2, 2, 2
    z, tokens = _window_tokens()
    per_frame = grid[0] * grid[1]
    x_ctx, x_fut = tokens[:, :k * per_frame], tokens[:, k * per_frame:]
    ctx, fut = random_shift(x_ctx, x_fut, grid, p, s, torch.Generator().manual_seed(1))
    assert ctx.shape == x_ctx.shape and fut.shape == x_fut.shape
    out = unpatchify(torch.cat([ctx, fut], 1), z.shape[1], grid, p)
    offsets = [_offset_of(z[b], out[b], s) for b in range(len(z))]
    assert None not in offsets                                   # every frame of a window: the same crop
    assert len(set(offsets)) > 1                                 # windows get their own offsets
    assert any(o != (s, s) for o in offsets)                     # ... which really move the frames


def test_shift_is_seeded_and_off_by_default():
    grid, p = (4, 5), 2
    _, tokens = _window_tokens()
    x_ctx, x_fut = tokens[:, :20], tokens[:, 20:]
    a = random_shift(x_ctx, x_fut, grid, p, 1, torch.Generator().manual_seed(3))
    b = random_shift(x_ctx, x_fut, grid, p, 1, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    gen = torch.Generator().manual_seed(3)
    state = gen.get_state()
    off = random_shift(x_ctx, x_fut, grid, p, 0, gen)
    assert off[0] is x_ctx and off[1] is x_fut and torch.equal(gen.get_state(), state)   # no draw when off
