"""Exponential moving average of a model's weights: the Self-Flow teacher and the weights saved as ema.safetensors."""
from __future__ import annotations

import copy

import torch
import torch.nn as nn


class EMA:
    """`module` is a frozen copy of `model`; `update(model)` sets ema = decay·ema + (1 - decay)·param.

    Buffers are copied as they are. Call `update` after every optimizer step.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.module = copy.deepcopy(model)
        self.module.requires_grad_(False)
        self.module.eval()

    @torch.no_grad()
    def update(self, model: nn.Module, decay: float | None = None) -> None:
        d = self.decay if decay is None else decay
        ema_params = list(self.module.parameters())
        params = [p.detach() for p in model.parameters()]
        if len(ema_params) != len(params):
            raise ValueError(f"EMA holds {len(ema_params)} parameters, the model has {len(params)}")
        torch._foreach_mul_(ema_params, d)
        torch._foreach_add_(ema_params, params, alpha=1.0 - d)
        for b_ema, b in zip(self.module.buffers(), model.buffers()):
            b_ema.copy_(b)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.module.load_state_dict(state)
