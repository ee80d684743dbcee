"""Fixtures of the simulation tests: the shared ManiSkill2_real2sim copy, one env per task (module scope)."""
import os
from pathlib import Path

import pytest

from selfflow_robot.envs import tasks

REPO = Path(__file__).resolve().parents[2]
SHARED_ASSETS = REPO.parent / "shared" / "assets" / "ManiSkill2_real2sim"


@pytest.fixture(scope="session")
def asset_root() -> str:
    """The asset copy tests use: $SELFFLOW_ROBOT_ASSETS, else ../shared/assets/ManiSkill2_real2sim."""
    root = os.environ.get("SELFFLOW_ROBOT_ASSETS") or str(SHARED_ASSETS)
    if not Path(root, "data", "real_inpainting").is_dir():
        pytest.skip(f"ManiSkill2_real2sim assets not at {root} (set SELFFLOW_ROBOT_ASSETS)")
    return root


@pytest.fixture(scope="session")
def sim(asset_root):
    """The task module after checking ManiSkill3 is installed (run .ci/install_sim_deps.sh)."""
    pytest.importorskip("mani_skill", reason="ManiSkill3 not installed; run .ci/install_sim_deps.sh")
    return tasks
