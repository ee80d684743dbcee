"""Fixtures of the eval tests: a tiny checkpoint saved by the trainer's own `save_checkpoint`."""
from __future__ import annotations

from pathlib import Path

import pytest
from tiny_checkpoint import write_tiny_checkpoint

# Every instruction the drawer / apple tasks of the port can give.
EVAL_INSTRUCTIONS = [f"{verb} {d} drawer" for verb in ("open", "close") for d in ("top", "middle", "bottom")] + [
    "place apple into top drawer"]


def write_eval_checkpoint(run_dir: Path, seed: int = 0, train: dict | None = None, **model_overrides) -> Path:
    """A `tiny` checkpoint that knows every drawer/apple instruction (small action statistics)."""
    return write_tiny_checkpoint(run_dir, seed, instructions=EVAL_INSTRUCTIONS, train=train,
                                 action_std=(0.02, 0.02, 0.02, 0.05, 0.05, 0.05, 0.5), **model_overrides)


@pytest.fixture(scope="session")
def eval_ckpt(tmp_path_factory) -> Path:
    """Step dir of a tiny checkpoint that knows every drawer/apple instruction."""
    return write_eval_checkpoint(tmp_path_factory.mktemp("eval_run") / "tinyrun")


@pytest.fixture(scope="session")
def eval_state_ckpt(tmp_path_factory) -> Path:
    """The same, for a model that also takes the robot's proprioception (`model.state_dim=8`)."""
    return write_eval_checkpoint(tmp_path_factory.mktemp("eval_state_run") / "staterun", state_dim=8)


@pytest.fixture(scope="session")
def eval_wm_state_ckpt(tmp_path_factory) -> Path:
    """A state-conditioned checkpoint whose world model takes the state too (`train.world_model_state=true`)."""
    return write_eval_checkpoint(tmp_path_factory.mktemp("eval_wm_state_run") / "wmstaterun", state_dim=8,
                                 train={"world_model_state": True})


@pytest.fixture(scope="session")
def other_eval_ckpt(tmp_path_factory) -> Path:
    """A second checkpoint like `eval_ckpt`, other weights (seed 1): two policies to rank."""
    return write_eval_checkpoint(tmp_path_factory.mktemp("other_run") / "otherrun", seed=1)
