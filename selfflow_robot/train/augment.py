"""Random-shift augmentation of training windows in the codec's map (`train.random_shift`).

The small-data references translate every observation by a few pixels (DrQ and Diffusion Policy: pad 4 px,
crop at random), so 100 demos show the policy many slightly different camera placements. Here the frames
are already tokens (read from the latent cache), so the shift happens on the codec's map: tokens are
unpatchified to `(B, T, C, H', W')` (latent cells with the autoencoder, one cell = `codec.downsample` pixels;
pixels with pixel patches), padded by replicating the edges, cropped at a random offset and patchified back.
A latent shift is the latents of the shifted frame up to the borders, because the encoder is convolutional.

One offset per window, shared by its context and future frames, so the motion between frames, which the
world model learns, is untouched; the actions are targets in the robot's frame and do not move.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from selfflow_robot.model.codecs import patchify, unpatchify


def random_shift(x_ctx: torch.Tensor, x_fut: torch.Tensor, grid: tuple[int, int], patch: int, max_shift: int,
                 generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Translate each window's frames by one random offset of up to `max_shift` map cells per axis.

    Args:
        x_ctx: context tokens `(B, k*h*w, d)`; x_fut: future tokens `(B, H*h*w, d)` (the codec's layout).
        grid: tokens per frame `(h, w)`; patch: map cells per token side (`codec.patch_size`).
        max_shift: the largest translation, in map cells (0 = none: the tokens come back unchanged).
        generator: CPU generator of the offsets (drawn only when `max_shift > 0`).
    """
    if max_shift <= 0:
        return x_ctx, x_fut
    B, n_ctx, d = x_ctx.shape
    per_frame = grid[0] * grid[1]
    T = (n_ctx + x_fut.shape[1]) // per_frame
    z = unpatchify(torch.cat([x_ctx, x_fut], dim=1), T, grid, patch)      # (B, T, C, H', W')
    _, _, ch, height, width = z.shape
    s = max_shift
    padded = F.pad(z.reshape(B, T * ch, height, width), (s, s, s, s), mode="replicate")
    offsets = torch.randint(0, 2 * s + 1, (B, 2), generator=generator).tolist()
    shifted = torch.stack([padded[b, :, dy:dy + height, dx:dx + width] for b, (dy, dx) in enumerate(offsets)])
    tokens = patchify(shifted.reshape(B, T, ch, height, width), patch)
    return tokens[:, :n_ctx], tokens[:, n_ctx:]
