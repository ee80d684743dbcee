"""`Metrics`: the server's request counts, error counts, batch sizes and latency percentiles (`/metrics`)."""
from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any

import numpy as np


class Metrics:
    """Thread-safe counters and a latency window for `/metrics`."""

    def __init__(self, window: int = 10_000) -> None:
        self._lock = threading.Lock()
        self.started = time.time()
        self.requests: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.batch_sizes: Counter[int] = Counter()
        self.connections_total = 0
        self.connections_open = 0
        self.auth_failures = 0
        self.requests_cancelled = 0
        self._latency_ms: deque[float] = deque(maxlen=window)
        self._infer_ms: deque[float] = deque(maxlen=window)

    def count(self, kind: str) -> None:
        """One request of `kind` (``infer``, ``reset``, ``invalid``)."""
        with self._lock:
            self.requests[kind] += 1

    def error(self, code: str) -> None:
        """One error reply (or refused handshake) with `code`."""
        with self._lock:
            self.errors[code] += 1

    def connection(self, delta: int) -> None:
        """A connection opened (+1) or closed (-1)."""
        with self._lock:
            self.connections_open += delta
            self.connections_total += max(delta, 0)

    def auth_failure(self) -> None:
        """A request without the right token."""
        with self._lock:
            self.auth_failures += 1

    def cancelled(self) -> None:
        """A request dropped unanswered because its client disconnected first."""
        with self._lock:
            self.requests_cancelled += 1

    def infer_done(self, server_ms: float, infer_ms: float) -> None:
        """An answered ``infer``: its time in the server and in the model (ms)."""
        with self._lock:
            self._latency_ms.append(server_ms)
            self._infer_ms.append(infer_ms)

    def batch(self, size: int) -> None:
        """One batch of `size` requests went through the engine."""
        with self._lock:
            self.batch_sizes[size] += 1

    @staticmethod
    def _percentiles(values: Sequence[float]) -> dict[str, float]:
        if not values:
            return {}
        a = np.asarray(values, dtype=np.float64)
        p50, p90, p99 = np.percentile(a, [50, 90, 99])
        return {"p50": round(float(p50), 3), "p90": round(float(p90), 3), "p99": round(float(p99), 3),
                "max": round(float(a.max()), 3), "mean": round(float(a.mean()), 3), "n": int(a.size)}

    def snapshot(self) -> dict[str, Any]:
        """The `/metrics` JSON: counts, errors, cancelled requests, connections, latency percentiles, batch sizes."""
        with self._lock:
            lat, inf = list(self._latency_ms), list(self._infer_ms)
            batches = dict(sorted(self.batch_sizes.items()))
            n_batches = sum(batches.values())
            return {
                "uptime_s": round(time.time() - self.started, 1),
                "requests": dict(self.requests),
                "requests_total": int(sum(self.requests.values())),
                "errors": dict(self.errors),
                "errors_total": int(sum(self.errors.values())),
                "auth_failures": self.auth_failures,
                "requests_cancelled": self.requests_cancelled,
                "connections_open": self.connections_open,
                "connections_total": self.connections_total,
                "latency_ms": self._percentiles(lat),
                "infer_ms": self._percentiles(inf),
                "batch_sizes": {str(k): v for k, v in batches.items()},
                "mean_batch_size": round(sum(k * v for k, v in batches.items()) / n_batches, 3) if n_batches else 0.0,
            }
