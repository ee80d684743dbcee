"""Capture and restore every RNG the trainer touches (Python, NumPy, torch CPU and CUDA).

Also derives per-micro-batch seeds: the trainer reseeds torch before each micro-batch from
(seed, step, global micro-batch index), so the noise an example sees does not depend on how
the global batch is split over processes or accumulation steps, nor on where a run resumed.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def micro_batch_seed(seed: int, step: int, micro_index: int) -> int:
    """A 63-bit seed, a pure function of (seed, step, global micro-batch index)."""
    state = np.random.SeedSequence([seed & 0xFFFFFFFF, step, micro_index]).generate_state(2, np.uint32)
    return int((int(state[0]) << 31) ^ int(state[1])) & ((1 << 63) - 1)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % (1 << 32))
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """The current states as plain Python / tensors (loadable with `torch.load(weights_only=True)`)."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"name": np_state[0], "keys": torch.from_numpy(np_state[1].astype(np.int64)),
                  "pos": int(np_state[2]), "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state`."""
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    n = state["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
