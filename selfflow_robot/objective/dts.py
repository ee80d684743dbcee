"""Dual-Timestep Scheduling (Self-Flow): per-token noise levels for the student and the teacher.

Per example: t, s ~ p(t) i.i.d. (not sorted), a Bernoulli(R_M) token mask M over the noisy tokens;
student tau_i = s on masked tokens, t elsewhere; teacher tau = min(t, s) on every noisy token.
Clean groups get tau = 0 for both. Each token's marginal noise level is still p(t).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from selfflow_robot.constants import ACTIONS, FUTURE
from selfflow_robot.objective.config import ObjectiveConfig
from selfflow_robot.objective.timesteps import TimeDistribution


@dataclass
class DualTimesteps:
    """t, s: (B,); mask: dict[group, (B, N_g) bool] (True = token gets s);
    student: dict[group, (B, N_g)] per-token tau; teacher: dict[group, (B,)] tau (min(t, s) or 0)."""

    t: torch.Tensor
    s: torch.Tensor
    mask: dict[str, torch.Tensor]
    student: dict[str, torch.Tensor]
    teacher: dict[str, torch.Tensor]


def mask_ratios(cfg: ObjectiveConfig, horizon: int) -> dict[str, float]:
    """R_M per group: future frames are video (horizon > 1) or a single image; actions have their own."""
    frames = cfg.mask_ratio_video if horizon > 1 else cfg.mask_ratio_image
    return {FUTURE: frames, ACTIONS: cfg.mask_ratio_actions}


def dual_timesteps(shapes: Mapping[str, tuple[int, int]], noisy: Mapping[str, torch.Tensor],
                   ratios: Mapping[str, float], dist: TimeDistribution, *, device: torch.device | str,
                   generator: torch.Generator | None = None) -> DualTimesteps:
    """Draw DTS noise levels for groups of shape (B, N_g); `noisy[g]` (B,) bool marks generated groups."""
    B = next(iter(shapes.values()))[0]
    t = dist.sample(B, device=device, generator=generator)
    s = dist.sample(B, device=device, generator=generator)
    t_min = torch.minimum(t, s)
    mask, student, teacher = {}, {}, {}
    for g, (_, n) in shapes.items():
        on = noisy[g].to(device=device, dtype=torch.bool) if g in noisy \
            else torch.zeros(B, dtype=torch.bool, device=device)
        u = torch.rand(B, n, device=device, generator=generator)
        mask[g] = (u < ratios.get(g, 0.0)) & on[:, None]
        student[g] = torch.where(mask[g], s[:, None], t[:, None]) * on[:, None]     # (B, N_g), 0 when clean
        teacher[g] = t_min * on                                                     # (B,)
    return DualTimesteps(t, s, mask, student, teacher)


def single_timestep(shapes: Mapping[str, tuple[int, int]], noisy: Mapping[str, torch.Tensor],
                    dist: TimeDistribution, *, device: torch.device | str,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Vanilla flow matching: one t per example for every noisy group; returns t (B,) and tau dict[group, (B,)]."""
    B = next(iter(shapes.values()))[0]
    t = dist.sample(B, device=device, generator=generator)
    tau = {g: t * noisy[g].to(device=device, dtype=t.dtype) if g in noisy else torch.zeros_like(t)
           for g in shapes}
    return t, tau

