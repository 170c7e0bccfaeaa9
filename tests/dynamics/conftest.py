"""The simulator tests run small tensors (≤ 2·10⁴ walkers × 3 dims): one intra-op thread is as fast as two and,
unlike two, does not stall when another process holds a core. Restored after each test."""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
