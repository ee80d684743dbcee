"""Action chunk execution: run a predicted chunk for `execute_horizon` steps, optionally ensembled.

The policy predicts H actions at once. `ActionChunker` decides when a new chunk is needed (every
`execute_horizon` steps) and which action to execute now:

- without ensembling: step i of the newest chunk;
- with temporal ensembling (ACT, Octo's `ActionEnsembler`): the weighted mean of every stored
  chunk's prediction for the current time step, weight exp(-temperature * rank) with rank 0 =
  the oldest prediction (temperature 0 = plain mean). Usually paired with `execute_horizon=1`.

Works on any per-step vector (normalised tokens or raw actions) of shape `(H, D)`.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass
class _Chunk:
    start: int          # the time step the chunk's first action is for
    actions: np.ndarray  # (H, D)


class ActionChunker:
    """Stateful chunk executor; `reset()` at every episode start."""

    def __init__(self, horizon: int, execute_horizon: int | None = None, ensemble: bool = False,
                 temperature: float = 0.0) -> None:
        execute_horizon = horizon if execute_horizon is None else execute_horizon
        if not 1 <= execute_horizon <= horizon:
            raise ValueError(f"execute_horizon must be in [1, horizon={horizon}], got {execute_horizon}")
        if temperature < 0:
            raise ValueError(f"ensemble temperature must be >= 0, got {temperature}")
        self.horizon = horizon
        self.execute_horizon = execute_horizon
        self.ensemble = ensemble
        self.temperature = temperature
        self._chunks: deque[_Chunk] = deque()
        self.t = 0  # steps executed since reset

    def reset(self) -> None:
        """Forget all chunks; the next `needs_chunk()` is True."""
        self._chunks.clear()
        self.t = 0

    def needs_chunk(self) -> bool:
        """True when the policy must predict a new chunk before the next `pop()`."""
        if not self._chunks:
            return True
        return self.t - self._chunks[-1].start >= self.execute_horizon

    def push(self, actions: np.ndarray) -> None:
        """Store a chunk `(H, D)` predicted from the current observation (its first action is for now)."""
        actions = np.asarray(actions)
        if actions.ndim != 2 or actions.shape[0] != self.horizon:
            raise ValueError(f"chunk must be (H={self.horizon}, D), got {actions.shape}")
        self._chunks.append(_Chunk(self.t, actions.copy()))
        # Keep only chunks that still cover the current step (or only the newest without ensembling).
        keep = self.horizon if self.ensemble else 1
        while len(self._chunks) > keep or self._chunks[0].start + self.horizon <= self.t:
            self._chunks.popleft()

    def pop(self) -> np.ndarray:
        """The action `(D,)` to execute now; advances time by one step."""
        if self.needs_chunk():
            raise RuntimeError("no chunk covers this step: call push() with a new chunk first")
        live = [c for c in self._chunks if c.start <= self.t < c.start + self.horizon]
        if self.ensemble:
            preds = np.stack([c.actions[self.t - c.start] for c in live])  # oldest first
            w = np.exp(-self.temperature * np.arange(len(live)))
            action = (w[:, None] * preds).sum(0) / w.sum()
        else:
            newest = live[-1]
            action = newest.actions[self.t - newest.start]
        self.t += 1
        return action
