"""A tiny checkpoint written by the trainer's own `save_checkpoint` (shared by the policy and eval tests)."""
from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from selfflow_robot.checkpoint import save_checkpoint
from selfflow_robot.data.statistics import DatasetStatistics, action_statistics
from selfflow_robot.model import build_model, dit_config

INSTRUCTIONS = ["open top drawer", "close middle drawer", "pick coke can"]
ACTION_STD = (0.05, 0.05, 0.05, 0.1, 0.1, 0.1, 0.5)


def write_tiny_checkpoint(run_dir: Path, seed: int = 0, data: dict | None = None, *,
                          instructions: Sequence[str] = INSTRUCTIONS, action_std: Sequence[float] = ACTION_STD,
                          train: dict | None = None, **model_overrides) -> Path:
    """A `tiny` model with random (non-zero) output layers, statistics of actions drawn with `action_std`
    and a language table of `instructions`, saved as step 1 of `run_dir` (`train`: the config's train section)."""
    torch.manual_seed(seed)
    cfg = dit_config("tiny", **model_overrides)
    model, _ = build_model(cfg)
    with torch.no_grad():  # DiT zero-inits the outputs; give them weights so actions depend on the checkpoint
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    rng = np.random.default_rng(seed)
    acts = rng.normal(0, list(action_std), size=(500, 7))
    acts[:, 6] = np.clip(acts[:, 6], -1, 1)
    state = action_statistics(rng.normal(0, 0.2, size=(500, cfg.state_dim)), cfg.state_dim) if cfg.state_dim else None
    stats = DatasetStatistics(action=action_statistics(acts), num_transitions=500, num_trajectories=20, state=state)
    table = {s: rng.standard_normal(512).astype(np.float32) for s in instructions}
    config = {"model": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()},
              "data": {"path": "", "val_fraction": 0.25, "seed": 0, **(data or {})},
              **({"train": train} if train else {})}
    return save_checkpoint(run_dir, 1, config=config, model_state=model.state_dict(), ema_state=model.state_dict(),
                           statistics=stats.to_dict(), language_table=table, trainer_state={"step": 1}, keep_last=2)
