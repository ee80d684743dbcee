"""Linear interpolant, t=1 = noise: x_tau = (1 - tau)·x0 + tau·eps, velocity target eps - x0."""
from __future__ import annotations

import torch


def interpolate(x0: torch.Tensor, eps: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """x_tau for tokens (B, N, d) with tau (B,) or (B, N) broadcast over tokens and channels."""
    tau = tau.to(x0.dtype)
    tau = tau[:, None, None] if tau.dim() == 1 else tau[..., None]
    return (1 - tau) * x0 + tau * eps


def velocity_target(x0: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """d x_tau / d tau = eps - x0."""
    return eps - x0
