"""Fixtures for the trainer tests: a tiny synthetic RT-1 dataset written here, and a CLI runner.

Subprocess runs use one intra-op thread (OMP_NUM_THREADS=1): on a busy 2-core machine two
spinning OpenMP threads make tiny matmuls much slower, and a fixed thread count keeps CPU
results bit-reproducible between the runs a test compares.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from selfflow_robot.data.synth import SynthConfig, write_synthetic

# tiny model on 32x40 frames, 4-window batches, cheap validation: seconds per run
FAST = ["train=cpu", "model=tiny", "model.image_size=[32,40]", "train.batch_size=4", "train.log_every=1",
        "train.validation.batches=1", "train.validation.sample_steps=2", "objective.ema_decay=0.9",
        "train.optim.warmup_steps=2"]


@pytest.fixture(scope="session")
def train_data(tmp_path_factory) -> Path:
    """12 synthetic episodes (8-12 steps) in the fractal20220817_data schema; returns the data_dir root."""
    root = tmp_path_factory.mktemp("train_synth")
    write_synthetic(SynthConfig(output_dir=str(root), episodes=12, min_steps=8, max_steps=12, shards=2, seed=3))
    return root


def cli_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return env


def cli_args(data: Path, out: Path, *extra: str) -> list[str]:
    """`python -m selfflow_robot.cli train` with the fast settings plus `extra` overrides."""
    return [sys.executable, "-m", "selfflow_robot.cli", "train", *FAST, f"data.path={data}",
            f"output_dir={out}", *extra]


def run_train(data: Path, out: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(cli_args(data, out, *extra), env=cli_env(), capture_output=True, text=True,
                          timeout=timeout)


def assert_ok(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 0, \
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"


@pytest.fixture(scope="session")
def train_cli():
    """Namespace of the helpers above, for tests."""
    class _H:
        args = staticmethod(cli_args)
        run = staticmethod(run_train)
        ok = staticmethod(assert_ok)
        env = staticmethod(cli_env)
        fast = FAST
    return _H
