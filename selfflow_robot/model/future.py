"""What the model generates for the future frames: their own tokens, or their change from the last context frame.

With `model.future_delta_scale = s > 0` the future-frame group holds s·(frame − last context frame) in token space.
A model that predicts no change then reproduces the last frame: copy-last-frame, the baseline a world model has
to beat, is its starting point rather than something it must learn to copy through attention, and its capacity
goes to the motion, which is what the actions explain. `s` scales that change to about unit variance (the noise's).
"""
from __future__ import annotations

import torch


def _last_frame(x_ctx: torch.Tensor, per_frame: int, n_tokens: int) -> torch.Tensor:
    """The last context frame's tokens (B, per_frame, d), repeated to `n_tokens` future tokens."""
    return x_ctx[:, -per_frame:].repeat(1, n_tokens // per_frame, 1)


def future_to_model(x_fut: torch.Tensor, x_ctx: torch.Tensor, per_frame: int, delta_scale: float) -> torch.Tensor:
    """The future frames' codec tokens (B, H·per_frame, d) -> what the model generates (its training target)."""
    if not delta_scale:
        return x_fut
    return (x_fut - _last_frame(x_ctx, per_frame, x_fut.shape[1])) * delta_scale


def future_from_model(y: torch.Tensor, x_ctx: torch.Tensor, per_frame: int, delta_scale: float) -> torch.Tensor:
    """What the model generated (B, H·per_frame, d) -> the future frames' codec tokens (what the codec decodes)."""
    if not delta_scale:
        return y
    return y / delta_scale + _last_frame(x_ctx, per_frame, y.shape[1]).to(y.dtype)


__all__ = ["future_from_model", "future_to_model"]
