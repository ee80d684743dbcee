"""Fixtures for the policy tests: a tiny checkpoint written by the trainer's own `save_checkpoint`."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from selfflow_robot.data.statistics import DatasetStatistics, action_statistics
from selfflow_robot.model import build_model, dit_config
from selfflow_robot.train.checkpoint import save_checkpoint

INSTRUCTIONS = ["open top drawer", "close middle drawer", "pick coke can"]


def write_tiny_checkpoint(run_dir: Path, seed: int = 0, data: dict | None = None, **model_overrides) -> Path:
    """A `tiny` model with random (non-zero) output layers, statistics and a language table, saved as step 1."""
    torch.manual_seed(seed)
    cfg = dit_config("tiny", **model_overrides)
    model, _ = build_model(cfg)
    with torch.no_grad():  # DiT zero-inits the outputs; give them weights so actions depend on the checkpoint
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    rng = np.random.default_rng(seed)
    acts = rng.normal(0, [0.05, 0.05, 0.05, 0.1, 0.1, 0.1, 0.5], size=(500, 7))
    acts[:, 6] = np.clip(acts[:, 6], -1, 1)
    stats = DatasetStatistics(action=action_statistics(acts), num_transitions=500, num_trajectories=20)
    table = {s: rng.standard_normal(512).astype(np.float32) for s in INSTRUCTIONS}
    config = {"model": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()},
              "data": {"path": "", "val_fraction": 0.25, "seed": 0, **(data or {})}}
    return save_checkpoint(run_dir, 1, config=config, model_state=model.state_dict(), ema_state=model.state_dict(),
                           statistics=stats.to_dict(), language_table=table, trainer_state={"step": 1}, keep_last=2)


@pytest.fixture(scope="session")
def write_tiny_ckpt():
    """The `write_tiny_checkpoint(run_dir, seed=0, data=None, **model_overrides)` function."""
    return write_tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """Step dir of a tiny checkpoint (k=2, H=4, 64x80 frames)."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny_run"))
