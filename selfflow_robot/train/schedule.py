"""Learning-rate schedule (linear warmup, then cosine decay to a floor, or constant) and the EMA decay ramp."""
from __future__ import annotations

import math

import torch

from selfflow_robot.train.config import OptimConfig, Schedule


def lr_factor(step: int, total_steps: int, cfg: OptimConfig) -> float:
    """Multiplier of the peak lr for optimiser step `step` (0-based) of `total_steps`."""
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps  # never exactly 0: the first step already moves
    if cfg.schedule == Schedule.constant:
        return 1.0
    decay_steps = max(1, total_steps - cfg.warmup_steps)
    progress = min(1.0, (step - cfg.warmup_steps) / decay_steps)
    cosine = 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * cosine


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int,
                    cfg: OptimConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """A `LambdaLR` applying `lr_factor`; step it once per optimiser step. Its state_dict is resumable."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, total_steps, cfg))


def ema_decay_at(update: int, decay: float, warmup: bool = True) -> float:
    """EMA decay for update `update` (0-based): `decay`, or with `warmup` min(decay, (1 + n) / (10 + n)).

    The ramp (as in timm's ModelEmaV2 / TF's ExponentialMovingAverage num_updates) averages roughly
    the last ~n/10..n/2 steps early on, so the EMA weights follow a short run; a function of the step
    only, so resume and any process split give the same EMA.
    """
    return min(decay, (1.0 + update) / (10.0 + update)) if warmup else decay
