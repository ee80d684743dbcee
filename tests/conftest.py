"""Suite-wide fixtures."""
from __future__ import annotations

import pytest
import torch


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
