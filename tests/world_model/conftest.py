"""Fixtures for the world-model tests: a tiny synthetic dataset and a tiny checkpoint saved by the trainer's
`save_checkpoint`, with statistics and language table computed from that dataset."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from selfflow_robot.checkpoint import save_checkpoint
from selfflow_robot.data.reader import RLDSReader
from selfflow_robot.data.statistics import compute_statistics
from selfflow_robot.data.synth import SynthConfig, write_synthetic
from selfflow_robot.model import build_model, dit_config

VAL_FRACTION = 0.25


@pytest.fixture(scope="session")
def wm_val_fraction() -> float:
    """The held-out share the checkpoint's config records."""
    return VAL_FRACTION


@pytest.fixture(scope="session")
def wm_data(tmp_path_factory) -> Path:
    """8 synthetic episodes of 8-10 steps (256x320 JPEG frames); returns the data dir."""
    root = tmp_path_factory.mktemp("wm_synth")
    write_synthetic(SynthConfig(output_dir=str(root), episodes=8, min_steps=8, max_steps=10, seed=3))
    return root


def write_wm_checkpoint(run_dir: Path, data: Path, train: dict | None = None, **model_overrides) -> Path:
    """An untrained tiny model (random, non-zero outputs) with `data`'s statistics and language table, saved as
    step 1 of `run_dir` (`train`: the config's train section)."""
    torch.manual_seed(0)
    cfg = dit_config("tiny", **model_overrides)
    model, _ = build_model(cfg)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    stats, table = compute_statistics(RLDSReader(data))
    config = {"model": {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items()},
              "data": {"path": str(data), "val_fraction": VAL_FRACTION, "seed": 0},
              **({"train": train} if train else {})}
    return save_checkpoint(run_dir, 1, config=config, model_state=model.state_dict(),
                           ema_state=model.state_dict(), statistics=stats.to_dict(), language_table=table,
                           trainer_state={"step": 1}, keep_last=1)


@pytest.fixture(scope="session")
def wm_ckpt(tmp_path_factory, wm_data) -> Path:
    """Step dir of an untrained tiny model (random, non-zero outputs) for `wm_data`."""
    return write_wm_checkpoint(tmp_path_factory.mktemp("wm_run"), wm_data)


@pytest.fixture(scope="session")
def wm_state_ckpt(tmp_path_factory, wm_data) -> Path:
    """The same with a world model that takes the robot's state (`train.world_model_state=true`)."""
    return write_wm_checkpoint(tmp_path_factory.mktemp("wm_state_run"), wm_data, train={"world_model_state": True},
                               state_dim=8)
