"""Fixtures for the policy tests: a tiny checkpoint written by the trainer's own `save_checkpoint`."""
from __future__ import annotations

from pathlib import Path

import pytest
from tiny_checkpoint import write_tiny_checkpoint


@pytest.fixture(scope="session")
def write_tiny_ckpt():
    """The `write_tiny_checkpoint(run_dir, seed=0, data=None, **model_overrides)` function."""
    return write_tiny_checkpoint


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory) -> Path:
    """Step dir of a tiny checkpoint (k=2, H=4, 64x80 frames)."""
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny_run"))
