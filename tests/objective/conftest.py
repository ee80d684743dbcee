"""One intra-op thread for these small-tensor tests: on a busy 2-core machine, OpenMP spin-waiting
between two threads makes tiny matmuls up to 100x slower. Restored after each test."""
import pytest
import torch


@pytest.fixture(autouse=True)
def single_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
