"""Receding-horizon control loop for a robot driven by `selfflow-robot serve`.

The robot executes the current action chunk at its control rate while the next chunk is being
computed on the server (no idle frames, as in LeRobot's async inference or Octo's RHC wrapper):

- tick k executes action ``k - start`` of the current chunk, where ``start`` is the tick at which
  that chunk's observation was taken (so actions made stale by the round trip are skipped);
- a request for the next chunk is sent ``prefetch`` ticks before the current one runs out of its
  `execute_horizon` actions; ``prefetch`` follows the measured round-trip latency;
- if no new chunk has arrived, the loop keeps executing the old chunk up to its end, then sends
  `hold_action` (zero motion, gripper unchanged for RT-1's relative gripper) and counts the tick
  as starved;
- one request is in flight at a time, so a round trip of L ticks leaves H - L fresh actions per
  chunk: control without starving needs a chunk duration H / control_hz of at least 2 L;
- every action is clipped to the checkpoint's safe bounds: per dimension
  ``[q01 - margin * (q99 - q01), q99 + margin * (q99 - q01)]``, with q01/q99 from the server's
  metadata (the checkpoint's dataset_statistics.json).

Like `client.py`, this module needs only numpy, msgpack and websockets (no torch).
See docs/deployment.md for an example with a real controller.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

try:
    from .client import PolicyClient
except ImportError:  # a vendored copy next to client.py
    from client import PolicyClient  # type: ignore[no-redef]

__all__ = ["ActionBounds", "LoopStats", "RecedingHorizonLoop"]


@dataclass(frozen=True)
class ActionBounds:
    """Per-dimension safe action range, `low <= action <= high`."""

    low: np.ndarray
    high: np.ndarray

    def __post_init__(self) -> None:
        if self.low.shape != self.high.shape or self.low.ndim != 1:
            raise ValueError(f"bounds must be two equal 1-D arrays, got {self.low.shape} and {self.high.shape}")
        if not np.all(self.low <= self.high):
            raise ValueError("every lower bound must be <= its upper bound")

    @classmethod
    def from_quantiles(cls, q01: Any, q99: Any, margin: float = 0.1) -> ActionBounds:
        """``[q01 - margin * span, q99 + margin * span]`` with ``span = q99 - q01`` (margin >= 0)."""
        if margin < 0:
            raise ValueError(f"margin must be >= 0, got {margin}")
        lo, hi = np.asarray(q01, dtype=np.float64), np.asarray(q99, dtype=np.float64)
        span = hi - lo
        return cls(lo - margin * span, hi + margin * span)

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any], margin: float = 0.1) -> ActionBounds:
        """Bounds from the server's metadata (``action_q01`` / ``action_q99``)."""
        missing = [k for k in ("action_q01", "action_q99") if k not in metadata]
        if missing:
            raise KeyError(f"server metadata has no {missing}: cannot derive safe action bounds")
        return cls.from_quantiles(metadata["action_q01"], metadata["action_q99"], margin)

    def clip(self, action: np.ndarray) -> tuple[np.ndarray, bool]:
        """The clipped action (float32) and whether any dimension was outside the bounds."""
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.low.shape:
            raise ValueError(f"action has shape {a.shape}, bounds are for {self.low.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"non-finite action {a}")
        out = np.clip(a, self.low, self.high)
        return out.astype(np.float32), bool(np.any(out != a))


@dataclass
class LoopStats:
    """What one `RecedingHorizonLoop.run` did."""

    steps: int = 0
    requests: int = 0
    chunks: int = 0
    clipped_steps: int = 0
    starved_steps: int = 0
    stale_actions_skipped: int = 0
    overrun_ticks: int = 0
    terminated: bool = False
    round_trip_ms: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        rt = np.asarray(self.round_trip_ms) if self.round_trip_ms else np.zeros(1)
        return {"steps": self.steps, "requests": self.requests, "chunks": self.chunks,
                "clipped_steps": self.clipped_steps,
                "starved_steps": self.starved_steps, "stale_actions_skipped": self.stale_actions_skipped,
                "overrun_ticks": self.overrun_ticks, "terminated": self.terminated,
                "round_trip_ms_p50": float(np.percentile(rt, 50)), "round_trip_ms_p99": float(np.percentile(rt, 99))}


@dataclass
class _Chunk:
    start: int               # tick at which the observation behind this chunk was taken
    actions: np.ndarray      # (H, D) raw actions
    terminate: np.ndarray    # (H,) terminate flag


class RecedingHorizonLoop:
    """Run a remote policy on a robot: execute chunks at `control_hz` while the next one is computed.

    Args:
        client: a connected `PolicyClient` (its metadata gives chunk length and action bounds).
        get_observation: returns the current camera image, uint8 ``(H, W, 3)``.
        apply_action: sends one clipped raw action ``(7,)`` (float32) to the robot's controller.
        control_hz: the robot's control rate (RT-1 data: 3 Hz).
        execute_horizon: actions of each chunk to execute before switching (default: the whole chunk).
        margin: safety margin of the bounds, as a fraction of the q01..q99 span.
        hold_action: sent when no fresh action is available (default zeros: no motion, gripper held).
        clock, sleep: injectable time source (defaults: `time.monotonic`, `time.sleep`).
    """

    def __init__(self, client: PolicyClient, get_observation: Callable[[], np.ndarray],
                 apply_action: Callable[[np.ndarray], None], control_hz: float,
                 execute_horizon: int | None = None, margin: float = 0.1,
                 hold_action: np.ndarray | None = None,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> None:
        if control_hz <= 0:
            raise ValueError(f"control_hz must be > 0, got {control_hz}")
        self.client = client
        self.get_observation = get_observation
        self.apply_action = apply_action
        self.period = 1.0 / control_hz
        self.chunk_length = int(client.metadata["chunk_length"])
        self.execute_horizon = self.chunk_length if execute_horizon is None else int(execute_horizon)
        if not 1 <= self.execute_horizon <= self.chunk_length:
            raise ValueError(f"execute_horizon must be in 1..{self.chunk_length}, got {execute_horizon}")
        self.bounds = ActionBounds.from_metadata(client.metadata, margin)
        dim = self.bounds.low.shape[0]
        self.hold_action = np.zeros(dim, np.float32) if hold_action is None else np.asarray(hold_action, np.float32)
        self.clock = clock
        self.sleep = sleep
        self._latency_s = 0.0  # running estimate of the round trip

    def _request(self, step: int, stats: LoopStats) -> tuple[int, float, dict[str, Any]]:
        stats.requests += 1
        t0 = self.clock()
        reply = self.client.infer(self.get_observation())
        return step, self.clock() - t0, reply

    def _accept(self, result: tuple[int, float, dict[str, Any]], stats: LoopStats) -> _Chunk:
        step, rtt, reply = result
        stats.chunks += 1
        stats.round_trip_ms.append(rtt * 1e3)
        self._latency_s = rtt if stats.chunks == 1 else 0.7 * self._latency_s + 0.3 * rtt
        actions = np.asarray(reply["actions"], dtype=np.float32)
        if actions.ndim != 2 or actions.shape[0] != self.chunk_length:
            raise ValueError(f"server sent actions of shape {actions.shape}, expected ({self.chunk_length}, D)")
        terminate = np.asarray(reply.get("terminate", np.zeros(len(actions))), dtype=np.float32).reshape(-1)
        return _Chunk(step, actions, terminate)

    def prefetch_ticks(self) -> int:
        """Ticks before the end of the executed part of a chunk at which the next request goes out."""
        return int(min(self.execute_horizon, max(1, math.ceil(self._latency_s / self.period) + 1)))

    def run(self, instruction: str, max_steps: int, stop_on_terminate: bool = True) -> LoopStats:
        """Reset the server session with `instruction` and control the robot for up to `max_steps` ticks."""
        stats = LoopStats()
        self.client.reset(instruction)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="policy-request") as pool:
            chunk = self._accept(self._request(0, stats), stats)  # nothing to execute before the first chunk
            pending: Future | None = None
            next_tick = self.clock()
            for k in range(max_steps):
                if pending is not None and pending.done():
                    new = self._accept(pending.result(), stats)
                    pending = None
                    stats.stale_actions_skipped += max(0, k - new.start)
                    chunk = new
                index = k - chunk.start
                if pending is None and index >= self.execute_horizon - self.prefetch_ticks():
                    pending = pool.submit(self._request, k, stats)
                if index < self.chunk_length:
                    action, clipped = self.bounds.clip(chunk.actions[index])
                    stats.clipped_steps += int(clipped)
                    done = bool(chunk.terminate[index] > 0.5)
                else:  # the round trip outlasted the whole chunk
                    action, done = self.hold_action, False
                    stats.starved_steps += 1
                self.apply_action(action)
                stats.steps += 1
                if done and stop_on_terminate:
                    stats.terminated = True
                    break
                next_tick += self.period
                delay = next_tick - self.clock()
                if delay > 0:
                    self.sleep(delay)
                else:
                    stats.overrun_ticks += 1
                    next_tick = self.clock()  # do not try to catch up with a burst of actions
            if pending is not None:
                pending.result()  # let the in-flight request finish so the connection stays in sync (unused)
        return stats
