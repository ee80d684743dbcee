"""Session fixtures for the serving tests: a REAL tiny checkpoint from the real trainer on synthetic RT-1 data."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from selfflow_robot.cli import main as cli
from selfflow_robot.policies.serving.engine import SelfFlowEngine


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """`selfflow-robot data synth` + `selfflow-robot train` (tiny, 2 steps) -> the step dir."""
    root = tmp_path_factory.mktemp("serve_ckpt")
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert cli(["data", "synth", f"output_dir={root / 'synth'}", "episodes=4", "min_steps=12",
                    "max_steps=16"]) == 0
        assert cli(["train", "train=cpu", "model=tiny", f"data.path={root / 'synth'}", "train.steps=2",
                    "train.batch_size=4", "train.save_every=2", "train.val_every=0", "device=cpu",
                    f"output_dir={root / 'run'}"]) == 0
    finally:
        torch.set_num_threads(threads)
    steps = sorted((root / "run" / "checkpoints").glob("step-*"))
    assert steps, "the trainer wrote no checkpoint"
    return steps[-1]


@pytest.fixture(scope="session")
def engine(tiny_checkpoint):
    """The real policy (SelfFlowPolicy via SelfFlowEngine) on CPU, 10 denoising steps."""
    return SelfFlowEngine.from_checkpoint(str(tiny_checkpoint), device="cpu", steps=10)
