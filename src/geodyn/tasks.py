"""Small bundled learning tasks that need no download: the multiplication task and scikit-learn's digits."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["multiplication_task", "digits", "digits_mlp"]


def multiplication_task(n: int, seed: int, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    """y = x₁·x₂ on [−1, 1]²: the covariant-gradient-descent paper's task."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 2, generator=gen, dtype=dtype) * 2 - 1
    return x, (x[:, 0] * x[:, 1]).unsqueeze(1)


def digits(seed: int = 0, test_fraction: float = 0.25, dtype: torch.dtype = torch.float64):
    """scikit-learn's 8×8 digits (1797 images, shipped with the package): standardised features, a seeded split.

    Returns (x_train, y_train, x_test, y_test) with integer class labels. scikit-learn is a core dependency.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the digits task needs scikit-learn: pip install scikit-learn") from exc
    data = load_digits()
    x = torch.tensor(data.data, dtype=dtype)
    y = torch.tensor(data.target, dtype=torch.long)
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-6)
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_test = int(len(x) * test_fraction)
    test, train = perm[:n_test], perm[n_test:]
    return x[train], y[train], x[test], y[test]


def digits_mlp(hidden: int = 32, seed: int = 0, dtype: torch.dtype = torch.float64) -> nn.Module:
    """64 → hidden → hidden → 10 tanh MLP for the digits task."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(64, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 10)
    ).to(dtype)
