"""Covariant gradient descent optimizers for PyTorch (EQUATIONS.md (2.2), (2.9), §6)."""

from geodyn.optim import presets
from geodyn.optim.cgd import CGD, NonFiniteGradientError

__all__ = ["CGD", "NonFiniteGradientError", "presets"]
