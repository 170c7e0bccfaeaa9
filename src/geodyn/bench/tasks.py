"""The benchmark tasks (BENCHMARKS.md §2): problems that run on two CPU cores without downloads.

A :class:`Task` is a declaration: what is trained, on which data, for how many steps, and the target it must reach.
The target is part of the definition and was fixed before any optimizer was compared: a value a little looser than
the best that AdamW reached over the full learning-rate grid (seed 0) within the full step budget; the quick target
is set the same way for the quick budget (docs/bench.md lists both calibrations). ``Task.build(seed)`` returns a
:class:`Problem`, the live state of one run: its parameters, a minibatch loss for step t, and the evaluation of
the target's metric.

Data (digits split, text split, planted quadratic) is fixed across seeds; a seed changes the initialisation and
the order of minibatches only, so the spread over seeds measures the optimizer, not the data set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Literal

import torch
from torch import Tensor, nn
from torch.nn import functional as F

__all__ = ["Task", "Problem", "TASKS", "task_names"]


@dataclass
class Problem:
    """One run's state: ``params`` to optimise, ``loss(step)`` the minibatch loss at step t (a scalar tensor with a
    graph), ``evaluate()`` the target's metric (a float, computed without gradients), ``module`` when the
    parameters belong to an ``nn.Module``, and ``hidden``: the hidden-layer weight matrices (2-D; not the input
    layer, embeddings or output head), which Muon orthogonalises while the rest goes to AdamW."""

    params: list[Tensor]
    loss: Callable[[int], Tensor]
    evaluate: Callable[[], float]
    module: nn.Module | None = None
    hidden: list[Tensor] = field(default_factory=list)


@dataclass(frozen=True)
class Task:
    """A benchmark task. ``metric`` names what ``evaluate`` returns; the run reaches the target when the metric is
    ≤ ``target`` (``goal="min"``) or ≥ ``target`` (``goal="max"``). ``steps`` is the step budget per size and
    ``eval_every`` the evaluation interval (steps to target are resolved to that interval)."""

    name: str
    description: str
    metric: str
    goal: Literal["min", "max"]
    target: float
    quick_target: float
    steps: dict[str, int]
    eval_every: dict[str, int]
    build: Callable[[int], Problem] = field(repr=False)

    def target_for(self, size: str) -> float:
        """The full-size target, or the looser one that fits the quick size's smaller step budget."""
        return self.quick_target if size == "quick" else self.target

    def reached(self, value: float, size: str = "full") -> bool:
        if not math.isfinite(value):
            return False
        target = self.target_for(size)
        return value <= target if self.goal == "min" else value >= target


# --------------------------------------------------------------------------------------------------- Rosenbrock


def rosenbrock(x: Tensor) -> Tensor:
    """Chained Rosenbrock Σᵢ 100 (x_{i+1} − xᵢ²)² + (1 − xᵢ)², minimum 0 at x = 1."""
    return (100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2).sum()


def _rosenbrock(dim: int) -> Callable[[int], Problem]:
    def build(seed: int) -> Problem:
        # The classic start (−1.2, 1) repeated, with a seeded perturbation of 1e-2 so that seeds differ.
        gen = torch.Generator().manual_seed(seed)
        start = torch.tensor([-1.2, 1.0], dtype=torch.float64).repeat(dim // 2)
        x = (start + 1e-2 * torch.randn(dim, generator=gen, dtype=torch.float64)).requires_grad_()

        def evaluate() -> float:
            with torch.no_grad():
                return float(rosenbrock(x))

        return Problem([x], lambda t: rosenbrock(x), evaluate)

    return build


# ------------------------------------------------------------------------------------------- noisy quadratic

NQ_DIM = 64


@cache
def _noisy_quadratic_spectrum() -> tuple[Tensor, Tensor]:
    """Curvatures h log-spaced over four decades; noise variances κ log-spaced over four decades and assigned by a
    fixed random permutation, so that κ is not proportional to the curvature (where α matters, §2)."""
    h = torch.logspace(0.0, -4.0, NQ_DIM, dtype=torch.float64)
    kappa = torch.logspace(-4.0, 0.0, NQ_DIM, dtype=torch.float64)
    perm = torch.randperm(NQ_DIM, generator=torch.Generator().manual_seed(1234))
    return h, kappa[perm]


def _noisy_quadratic(seed: int) -> Problem:
    h, kappa = _noisy_quadratic_spectrum()
    gen = torch.Generator().manual_seed(10_000 + seed)
    x = torch.ones(NQ_DIM, dtype=torch.float64, requires_grad=True)
    noise_scale = kappa.sqrt()

    def loss(t: int) -> Tensor:
        # H(x) = ½ Σ hᵢ xᵢ² + φ with ∇φ = √κ ξ: the minibatch gradient is h x + √κ ξ, ξ ~ N(0, I) (2.3)–(2.8).
        xi = torch.randn(NQ_DIM, generator=gen, dtype=torch.float64)
        return 0.5 * (h * x * x).sum() + (noise_scale * xi * x).sum()

    def evaluate() -> float:
        with torch.no_grad():
            return float(0.5 * (h * x * x).sum())

    return Problem([x], loss, evaluate)


# ------------------------------------------------------------------------------------------------------ digits


@cache
def _digits() -> tuple[Tensor, Tensor, Tensor, Tensor]:
    from geodyn.tasks import digits

    return digits(seed=0, dtype=torch.float32)


def _hidden_linear(model: nn.Module) -> list[Tensor]:
    """Weights of the Linear layers between the first and the last one (2-D, so Muon applies)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    return [m.weight for m in linears[1:-1]]


def _classifier(make_model: Callable[[], nn.Module], image: bool, batch: int = 32) -> Callable[[int], Problem]:
    def build(seed: int) -> Problem:
        x_train, y_train, x_test, y_test = _digits()
        if image:
            x_train, x_test = x_train.view(-1, 1, 8, 8), x_test.view(-1, 1, 8, 8)
        torch.manual_seed(seed)
        model = make_model()
        gen = torch.Generator().manual_seed(20_000 + seed)

        def loss(t: int) -> Tensor:
            idx = torch.randint(0, len(x_train), (batch,), generator=gen)
            return F.cross_entropy(model(x_train[idx]), y_train[idx])

        def evaluate() -> float:
            with torch.no_grad():
                return float((model(x_test).argmax(1) == y_test).double().mean())

        return Problem(list(model.parameters()), loss, evaluate, module=model, hidden=_hidden_linear(model))

    return build


def _logistic() -> nn.Module:
    return nn.Linear(64, 10)


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 10))


def _cnn() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 16, 3), nn.ReLU(), nn.Conv2d(16, 32, 3), nn.ReLU(), nn.Flatten(), nn.Linear(32 * 4 * 4, 10)
    )


# ------------------------------------------------------------------------------------------------ multiplication


def _multiplication(seed: int, batch: int = 32) -> Problem:
    from geodyn.tasks import multiplication_task

    x_train, y_train = multiplication_task(1024, seed=0, dtype=torch.float32)
    x_test, y_test = multiplication_task(1024, seed=1, dtype=torch.float32)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(2, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 1))
    gen = torch.Generator().manual_seed(30_000 + seed)

    def loss(t: int) -> Tensor:
        idx = torch.randint(0, len(x_train), (batch,), generator=gen)
        return F.mse_loss(model(x_train[idx]), y_train[idx])

    def evaluate() -> float:
        with torch.no_grad():
            return float(F.mse_loss(model(x_test), y_test))

    return Problem(list(model.parameters()), loss, evaluate, module=model, hidden=_hidden_linear(model))


# ---------------------------------------------------------------------------------------- character language model

CONTEXT = 32


@cache
def _text() -> tuple[Tensor, Tensor, int]:
    """The pydoc topics that ship with Python, as one character stream (topics in sorted order; characters outside
    printable ASCII mapped to '?'), split 90 / 10 into train and held-out text."""
    from pydoc_data.topics import topics

    text = "\n".join(topics[k] for k in sorted(topics))
    text = "".join(c if (32 <= ord(c) < 127 or c == "\n") else "?" for c in text)
    vocab = sorted(set(text))
    index = {c: i for i, c in enumerate(vocab)}
    ids = torch.tensor([index[c] for c in text], dtype=torch.long)
    cut = int(0.9 * len(ids))
    return ids[:cut], ids[cut:], len(vocab)


class CharTransformer(nn.Module):
    """A small causal transformer: token + learned position embeddings, pre-norm encoder layers, a linear head."""

    def __init__(self, vocab: int, d_model: int = 64, heads: int = 4, layers: int = 2, context: int = CONTEXT):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.position = nn.Parameter(0.02 * torch.randn(context, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout=0.0, batch_first=True, norm_first=True)
        self.blocks = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(context), persistent=False)

    def forward(self, ids: Tensor) -> Tensor:
        n = ids.shape[1]
        h = self.embed(ids) + self.position[:n]
        h = self.blocks(h, mask=self.mask[:n, :n], is_causal=True)
        return self.head(self.norm(h))


def _windows(ids: Tensor, starts: Tensor) -> tuple[Tensor, Tensor]:
    offsets = torch.arange(CONTEXT + 1)
    chunk = ids[starts[:, None] + offsets]
    return chunk[:, :-1], chunk[:, 1:]


def _char_lm(seed: int, batch: int = 16, eval_windows: int = 128) -> Problem:
    train, held_out, vocab = _text()
    torch.manual_seed(seed)
    model = CharTransformer(vocab)
    gen = torch.Generator().manual_seed(40_000 + seed)
    # A fixed held-out sample (the same for every seed and optimizer).
    fixed = torch.Generator().manual_seed(7)
    eval_starts = torch.randint(0, len(held_out) - CONTEXT - 1, (eval_windows,), generator=fixed)
    x_eval, y_eval = _windows(held_out, eval_starts)

    def loss(t: int) -> Tensor:
        starts = torch.randint(0, len(train) - CONTEXT - 1, (batch,), generator=gen)
        x, y = _windows(train, starts)
        return F.cross_entropy(model(x).flatten(0, 1), y.flatten())

    def evaluate() -> float:
        with torch.no_grad():
            return float(F.cross_entropy(model(x_eval).flatten(0, 1), y_eval.flatten()))

    hidden = [p for p in model.blocks.parameters() if p.ndim == 2]  # attention and feed-forward matrices
    return Problem(list(model.parameters()), loss, evaluate, module=model, hidden=hidden)


# ---------------------------------------------------------------------------------------------------- registry

TASKS: dict[str, Task] = {
    t.name: t
    for t in [
        Task(
            "rosenbrock-2d",
            "Rosenbrock function in 2-D from (−1.2, 1), exact gradients: a curved, ill-conditioned valley.",
            metric="loss",
            goal="min",
            target=1e-3,
            quick_target=5e-2,
            steps={"quick": 600, "full": 3000},
            eval_every={"quick": 10, "full": 10},
            build=_rosenbrock(2),
        ),
        Task(
            "rosenbrock-64d",
            "Chained Rosenbrock in 64-D, exact gradients.",
            metric="loss",
            goal="min",
            target=5e-2,
            quick_target=60.0,
            steps={"quick": 600, "full": 3000},
            eval_every={"quick": 10, "full": 10},
            build=_rosenbrock(64),
        ),
        Task(
            "noisy-quadratic",
            f"½ Σ hᵢ xᵢ² in {NQ_DIM}-D with curvatures over four decades and Gaussian gradient noise whose "
            "variances span four decades, permuted against the curvatures (κ not ∝ curvature).",
            metric="loss",
            goal="min",
            target=5e-2,
            quick_target=0.1,
            steps={"quick": 600, "full": 3000},
            eval_every={"quick": 10, "full": 10},
            build=_noisy_quadratic,
        ),
        Task(
            "logreg-digits",
            "Logistic regression on scikit-learn's 8×8 digits (standardised), minibatch 32; held-out accuracy.",
            metric="accuracy",
            goal="max",
            target=0.97,
            quick_target=0.96,
            steps={"quick": 300, "full": 1500},
            eval_every={"quick": 10, "full": 10},
            build=_classifier(_logistic, image=False),
        ),
        Task(
            "mlp-digits",
            "MLP 64-64-64-10 (tanh) on digits, minibatch 32; held-out accuracy.",
            metric="accuracy",
            goal="max",
            target=0.965,
            quick_target=0.96,
            steps={"quick": 300, "full": 1500},
            eval_every={"quick": 10, "full": 10},
            build=_classifier(_mlp, image=False),
        ),
        Task(
            "cnn-digits",
            "CNN (two 3×3 convolutions, 16 and 32 channels, then a linear layer) on 8×8 digits, minibatch 32; "
            "held-out accuracy.",
            metric="accuracy",
            goal="max",
            target=0.98,
            quick_target=0.97,
            steps={"quick": 300, "full": 1500},
            eval_every={"quick": 10, "full": 10},
            build=_classifier(_cnn, image=True),
        ),
        Task(
            "multiplication",
            "MLP 2-32-32-1 (tanh) learns y = x₁·x₂ on [−1, 1]² from 1024 samples, minibatch 32; held-out MSE.",
            metric="mse",
            goal="min",
            target=1e-4,
            quick_target=5e-4,
            steps={"quick": 600, "full": 3000},
            eval_every={"quick": 10, "full": 10},
            build=_multiplication,
        ),
        Task(
            "char-transformer",
            f"Character-level causal transformer (2 layers, d=64, 4 heads, context {CONTEXT}) on the pydoc topics "
            "text that ships with Python, minibatch 16; held-out cross-entropy (nats per character).",
            metric="held-out loss",
            goal="min",
            target=1.9,
            quick_target=2.4,
            steps={"quick": 150, "full": 600},
            eval_every={"quick": 25, "full": 25},
            build=_char_lm,
        ),
    ]
}


def task_names() -> list[str]:
    return list(TASKS)
