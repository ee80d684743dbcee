"""SAPIEN segfaults beside TensorFlow: `make_env` must refuse with a clear message instead.

Runs where TensorFlow is installed (CI's tf environment); skipped elsewhere. Importing TensorFlow
here is safe only because this test never builds a scene.
"""
from __future__ import annotations

import pytest

from selfflow_robot.envs.tasks import make_env
from selfflow_robot.errors import UserError


def test_make_env_refuses_to_start_beside_tensorflow():
    pytest.importorskip("tensorflow", reason="needs TensorFlow (the `tf` extra)")
    with pytest.raises(UserError, match="TensorFlow is loaded in this process"):
        make_env("open_top_drawer")
