"""Noise-level distributions p(t) on [0, 1] (t=1 = noise), with their CDFs for testing and plots."""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from selfflow_robot.config import check_choice
from selfflow_robot.objective.config import TIME_DISTRIBUTIONS, ObjectiveConfig


@dataclass(frozen=True)
class TimeDistribution:
    """p(t): `uniform`, `logit_normal` (sigmoid(N(mean, std))) or `shifted` (u -> shift·u / (1 + (shift-1)·u))."""

    kind: str = "uniform"
    mean: float = 0.0
    std: float = 1.0
    shift: float = 1.0

    def __post_init__(self) -> None:
        check_choice("time distribution", self.kind, TIME_DISTRIBUTIONS)

    @classmethod
    def from_config(cls, cfg: ObjectiveConfig) -> TimeDistribution:
        return cls(cfg.time_dist, cfg.time_mean, cfg.time_std, cfg.time_shift)

    def sample(self, n: int, *, device: torch.device | str = "cpu",
               generator: torch.Generator | None = None) -> torch.Tensor:
        """n i.i.d. draws, float32 (n,)."""
        if self.kind == "logit_normal":
            z = torch.randn(n, device=device, generator=generator)
            return torch.sigmoid(self.mean + self.std * z)
        u = torch.rand(n, device=device, generator=generator)
        if self.kind == "shifted":
            u = self.shift * u / (1 + (self.shift - 1) * u)
        return u

    def cdf(self, t: torch.Tensor) -> torch.Tensor:
        """P(T <= t) for t in [0, 1]."""
        t = t.double().clamp(0, 1)
        if self.kind == "uniform":
            return t
        if self.kind == "shifted":
            return t / (self.shift - (self.shift - 1) * t)
        logit = torch.log(t) - torch.log1p(-t)
        return 0.5 * (1 + torch.erf((logit - self.mean) / (self.std * math.sqrt(2))))
