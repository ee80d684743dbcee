"""`FlowBatch` (what an objective consumes) and `LossOutput` (what it returns)."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import NamedTuple

import torch


@dataclass
class FlowBatch:
    """One training batch as clean tokens plus which groups are generated.

    Args:
        x0: dict[group, (B, N_g, d_g)] clean tokens (codec frame tokens; normalised 8-D action tokens).
        noisy: dict[group, (B,) bool]: True = the group is generated (noised, in the loss) for that example,
            False = clean conditioning (tau = 0). Groups missing here are clean.
        text: (B, text_dim) instruction embeddings, or None.
        text_drop: (B,) bool, True = use the learned null text (CFG dropout); shared by student and teacher.
        key_mask: dict[group, (B, N_g) bool], False = absent token (padding); None = all present.
        loss_mask: dict[group, (B, N_g) bool], False = no loss on that token; None = all tokens count.
        state: (B, state_dim) normalised proprioception (models with `state_dim > 0`), or None.
        state_drop: (B,) bool, True = use the learned null state (the world-model examples).
        state_target: (B, aux_state_dim) normalised state at the last context frame, the target of the
            model's state-prediction head (models with `aux_state_dim > 0`), or None.
    """

    x0: dict[str, torch.Tensor]
    noisy: dict[str, torch.Tensor]
    text: torch.Tensor | None = None
    text_drop: torch.Tensor | None = None
    key_mask: dict[str, torch.Tensor] | None = None
    loss_mask: dict[str, torch.Tensor] | None = None
    state: torch.Tensor | None = None
    state_drop: torch.Tensor | None = None
    state_target: torch.Tensor | None = None

    @property
    def batch_size(self) -> int:
        return next(iter(self.x0.values())).shape[0]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> FlowBatch:
        def move(v):
            if v is None:
                return None
            if isinstance(v, dict):
                return {k: t.to(device, non_blocking=non_blocking) for k, t in v.items()}
            return v.to(device, non_blocking=non_blocking)
        return replace(self, **{f: move(getattr(self, f)) for f in
                                ("x0", "noisy", "text", "text_drop", "key_mask", "loss_mask",
                                "state", "state_drop", "state_target")})

    def repeat_interleave(self, k: int) -> FlowBatch:
        """Each example k times in a row (row i*k + j = copy j of example i): the rows of k noise draws."""
        if k == 1:
            return self

        def rep(v):
            if v is None:
                return None
            if isinstance(v, dict):
                return {g: t.repeat_interleave(k, 0) for g, t in v.items()}
            return v.repeat_interleave(k, 0)
        return replace(self, **{f: rep(getattr(self, f)) for f in
                                ("x0", "noisy", "text", "text_drop", "key_mask", "loss_mask",
                                 "state", "state_drop", "state_target")})

    def token_weights(self, group: str) -> torch.Tensor:
        """(B, N_g) bool: tokens of `group` that are noisy, present and in the loss."""
        x = self.x0[group]
        B, N = x.shape[:2]
        w = self.noisy[group].to(torch.bool)[:, None].expand(B, N) if group in self.noisy \
            else torch.zeros(B, N, dtype=torch.bool, device=x.device)
        if self.key_mask is not None and group in self.key_mask:
            w = w & self.key_mask[group].to(torch.bool)
        if self.loss_mask is not None and group in self.loss_mask:
            w = w & self.loss_mask[group].to(torch.bool)
        return w


class LossOutput(NamedTuple):
    """`loss`: scalar to backpropagate; `logs`: detached scalars (`flow`, and for selfflow `rep`, `teacher_cos`);
    `per_example`: detached (B,) flow error of each example over its own loss tokens (for per-mode logging)."""

    loss: torch.Tensor
    logs: dict[str, torch.Tensor]
    per_example: torch.Tensor | None = None


def state_kwargs(batch: FlowBatch) -> dict[str, torch.Tensor]:
    """The model's state arguments for `batch` (none without a state, so state-free models need not take them)."""
    if batch.state is None:
        return {}
    if batch.state_drop is None:
        return {"state": batch.state}
    return {"state": batch.state, "state_drop": batch.state_drop}
