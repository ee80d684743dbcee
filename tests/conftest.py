"""Suite-wide fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

SHARED_ASSETS = Path(__file__).resolve().parents[1].parent / "shared" / "assets" / "ManiSkill2_real2sim"


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One intra-op thread per test, restored afterwards.

    The tests run tiny models; on a busy 2-core machine OpenMP spin-waiting between two threads makes
    small matmuls up to 100x slower, and more threads only contend with the other tests' processes.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def sim_assets() -> str:
    """ManiSkill2_real2sim copy for end-to-end runs that simulate: $SELFFLOW_ROBOT_ASSETS, else the shared copy.

    Skips when the assets or ManiSkill3 are missing (CI has both).
    """
    root = os.environ.get("SELFFLOW_ROBOT_ASSETS") or str(SHARED_ASSETS)
    if not Path(root, "data", "real_inpainting").is_dir():
        pytest.skip(f"ManiSkill2_real2sim assets not at {root} (set SELFFLOW_ROBOT_ASSETS)")
    pytest.importorskip("mani_skill", reason="ManiSkill3 not installed; run .ci/install_sim_deps.sh")
    return root
