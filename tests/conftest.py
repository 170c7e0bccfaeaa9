import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))


def pytest_collection_modifyitems(config, items):
    if os.environ.get("GEODYN_SKIP_SLOW") == "1":
        skip = pytest.mark.skip(reason="GEODYN_SKIP_SLOW=1")
        for item in items:
            if "slow" in item.keywords:
                item.add_marker(skip)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """The tests use small tensors: one intra-op thread is as fast as two and does not stall when another
    process holds a core (two threads then spin, slowing small ops a hundredfold)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _close_figures():
    """Figures a test leaves open are closed after it (matplotlib keeps every open figure in memory)."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")
