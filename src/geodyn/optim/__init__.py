"""Covariant gradient descent optimizers for PyTorch (EQUATIONS.md (2.2), (2.9), §6).

- :class:`CGD`: diagonal noise covariance (every parameter; O(N)).
- :class:`KronCGD`: Kronecker-factored covariance per weight matrix (Shampoo, SOAP and Muon as limits).
- :class:`FullCGD`: the full N×N covariance (natural gradient; small models).

:mod:`geodyn.optim.distributed` holds what they need under torch.distributed (DDP, FSDP2); see docs/scaling.md.
"""

from geodyn.optim import distributed, presets
from geodyn.optim.cgd import CGD, NonFiniteGradientError
from geodyn.optim.full import FullCGD
from geodyn.optim.kron import KronCGD

__all__ = ["CGD", "KronCGD", "FullCGD", "NonFiniteGradientError", "distributed", "presets"]
