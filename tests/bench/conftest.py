import pytest
import torch

from geodyn.bench import tasks as bench_tasks
from geodyn.bench.tasks import Problem, Task


def _toy(seed: int, device: str = "cpu") -> Problem:
    """A 4-D quadratic with noisy gradients: cheap enough for tests of the runner, and its target depends on lr."""
    gen = torch.Generator().manual_seed(seed)
    h = torch.tensor([1.0, 0.3, 0.1, 0.03], dtype=torch.float64)
    x = torch.ones(4, dtype=torch.float64, requires_grad=True)

    def loss(t):
        return 0.5 * (h * x * x).sum() + 0.01 * (torch.randn(4, generator=gen, dtype=torch.float64) * x).sum()

    def evaluate(split="validation"):
        with torch.no_grad():
            return float(0.5 * (h * x * x).sum())

    return Problem([x], loss, evaluate)


TOY = Task(
    "toy",
    "4-D noisy quadratic (tests only)",
    metric="loss",
    goal="min",
    target=0.05,
    quick_target=0.05,
    steps={"quick": 60, "full": 60},
    eval_every={"quick": 5, "full": 5},
    build=_toy,
)


@pytest.fixture
def toy_task(monkeypatch):
    monkeypatch.setitem(bench_tasks.TASKS, "toy", TOY)
    return "toy"
