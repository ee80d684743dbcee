"""Fixtures of the eval tests: a tiny checkpoint saved by the trainer's own `save_checkpoint`."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

# Every instruction the drawer / apple tasks of the port can give.
EVAL_INSTRUCTIONS = [f"{verb} {d} drawer" for verb in ("open", "close") for d in ("top", "middle", "bottom")] + [
    "place apple into top drawer"]


def write_eval_checkpoint(run_dir: Path, seed: int = 0) -> Path:
    """A `tiny` model (random, non-zero output layers) with statistics and a language table, saved as step 1."""
    from selfflow_robot.data.statistics import DatasetStatistics, action_statistics
    from selfflow_robot.model import build_model, dit_config
    from selfflow_robot.train.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    cfg = dit_config("tiny")
    model, _ = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    rng = np.random.default_rng(seed)
    acts = rng.normal(0, [0.02, 0.02, 0.02, 0.05, 0.05, 0.05, 0.5], size=(500, 7))
    acts[:, 6] = np.clip(acts[:, 6], -1, 1)
    stats = DatasetStatistics(action=action_statistics(acts), num_transitions=500, num_trajectories=20)
    table = {s: rng.standard_normal(512).astype(np.float32) for s in EVAL_INSTRUCTIONS}
    config = {"model": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()},
              "data": {"path": "", "val_fraction": 0.25, "seed": 0}}
    return save_checkpoint(run_dir, 1, config=config, model_state=model.state_dict(), ema_state=model.state_dict(),
                           statistics=stats.to_dict(), language_table=table, trainer_state={"step": 1}, keep_last=2)


@pytest.fixture(scope="session")
def eval_ckpt(tmp_path_factory) -> Path:
    """Step dir of a tiny checkpoint that knows every drawer/apple instruction."""
    return write_eval_checkpoint(tmp_path_factory.mktemp("eval_run") / "tinyrun")
