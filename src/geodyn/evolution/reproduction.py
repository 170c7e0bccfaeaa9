"""Reproduction with fitness e^{−w H} (EQUATIONS.md (4.4), H = −log fitness): Moran and Wright–Fisher.

A population of M genomes is split into D demes of n = M / D consecutive genomes (``demes=1``: one
well-mixed population); reproduction never crosses demes, so many small independent populations — e.g. the
200 000 two-genome populations of the fixation test — run as one vectorised batch.

A reproduction rule returns, for every slot, the index of the genome it copies (its parent); the population
gathers genomes, energies, labels and per-genome jump-law state with it. Fitness is e^{−w H}; ``selection`` w
defaults to 1 (fitness = e^{−H}). Sampling is by inverse CDF with one uniform per draw from the population's
generator, so runs are reproducible on CPU and GPU.

The link to selection–mutation dynamics: in a Moran population of n = 2 a single mutant of energy H' among
residents of energy H fixes with probability 1 / (1 + e^{w (H' − H)}), exactly the sigmoid acceptance (4.5) with
β_s = w (:func:`moran_fixation_probability`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["Reproduction", "Moran", "WrightFisher", "moran_fixation_probability"]


def _check_selection(w: float) -> float:
    w = float(w)
    if not w >= 0 or math.isinf(w):
        raise ValueError(f"selection must be a finite number >= 0, got {w!r}")
    return w


def _draw(cdf: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """``count`` indices per row of a CDF (D, n) by inverse transform: (D, count) long."""
    u = torch.rand((cdf.shape[0], count), generator=generator, dtype=cdf.dtype, device=cdf.device)
    idx = torch.searchsorted(cdf, u * cdf[:, -1:], right=True)
    return idx.clamp_max(cdf.shape[1] - 1)


def _fitness_cdf(energies: Tensor, selection: float) -> Tensor:
    """Cumulative fitness e^{−w(H − min H)} within each deme, (D, n); shifting by the minimum avoids underflow."""
    h = energies.to(torch.float64)
    return torch.exp(-selection * (h - h.min(dim=1, keepdim=True).values)).cumsum(1)


class Reproduction:
    """A reproduction rule with fitness e^{−w H} (4.4): :meth:`parents` maps energies (D, n) to parent indices (D, n)
    within each deme."""

    def __init__(self, selection: float = 1.0):
        self.selection = _check_selection(selection)

    def parents(self, energies: Tensor, generator: torch.Generator) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(selection={self.selection:g})"


class Moran(Reproduction):
    """Moran birth–death (fitness e^{−w H}, (4.4)); for n = 2 its fixation probability is the sigmoid (4.5).

    Per event, one genome reproduces with probability ∝ fitness e^{−w H} and its copy
    replaces one genome chosen uniformly (possibly the parent itself). ``events`` events per step
    (``events=None``: n events, one generation). Fitness is read once per step; with several events per step the
    later events see the earlier copies (their energies travel with them)."""

    def __init__(self, selection: float = 1.0, events: int | None = 1):
        super().__init__(selection)
        if events is not None and int(events) < 1:
            raise ValueError(f"events must be >= 1 or None, got {events!r}")
        self.events = None if events is None else int(events)

    def parents(self, energies: Tensor, generator: torch.Generator) -> Tensor:
        d, n = energies.shape
        parent = torch.arange(n, device=energies.device).expand(d, n).clone()
        h = energies
        rows = torch.arange(d, device=energies.device)
        for _ in range(self.events or n):
            born = _draw(_fitness_cdf(h, self.selection), 1, generator)[:, 0]
            dead = torch.randint(n, (d,), generator=generator, device=energies.device)
            parent[rows, dead] = parent[rows, born]
            h = h.clone()
            h[rows, dead] = h[rows, born]
        return parent

    def __repr__(self) -> str:
        return f"Moran(selection={self.selection:g}, events={self.events})"


class WrightFisher(Reproduction):
    """Wright–Fisher: all n slots of a deme are refilled at once, each parent drawn i.i.d. ∝ fitness e^{−w H} (4.4)."""

    def parents(self, energies: Tensor, generator: torch.Generator) -> Tensor:
        return _draw(_fitness_cdf(energies, self.selection), energies.shape[1], generator)


def moran_fixation_probability(dH: float | Tensor, n: int, selection: float = 1.0) -> Tensor:
    """Probability that one mutant (energy H + ΔH) takes over a Moran population of n genomes (the others H).

    With relative fitness r = e^{−w ΔH}: ρ = (1 − 1/r) / (1 − 1/rⁿ) (ρ = 1/n at r = 1). For n = 2 this is
    r / (1 + r) = 1 / (1 + e^{w ΔH}) — the sigmoid acceptance (4.5) with β_s = w.
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    x = torch.as_tensor(dH, dtype=torch.float64) * _check_selection(selection)  # x = −log r
    # (1 − e^{x}) / (1 − e^{n x}) with expm1 for accuracy near x = 0
    neutral = x == 0
    safe = torch.where(neutral, torch.ones_like(x), x)
    rho = torch.expm1(safe) / torch.expm1(n * safe)
    # for large positive n x the ratio underflows gracefully; for large negative it tends to 1 − e^{x}
    return torch.where(neutral, torch.full_like(x, 1.0 / n), rho)
