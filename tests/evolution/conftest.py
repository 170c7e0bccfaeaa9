"""Evolution tests run torch on one intra-op thread.

Their tensors are small (10³–10⁶ elements per op), where a second OpenMP thread buys little, and on a shared
machine whose other core is busy one parallel op (e.g. ``torch.bucketize`` on 4096 numbers) was measured to take
8 ms with two threads against 0.07 ms with one. Results do not depend on the thread count beyond the order of
floating-point sums.
"""

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
