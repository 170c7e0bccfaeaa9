"""The evolution model: landscape H, jump law J and acceptance rule A — the kernel (4.1) P = J · A, and nothing
about how it is stepped or what is recorded (that is :class:`~geodyn.evolution.Population` and the recorders).

Exact quantities of the model live here, so tests and experiments can compare a simulation with them:

* :meth:`EvolutionModel.transition_matrix` — the full kernel (4.1) on an enumerated discrete genome space, whose
  stationary vector is the Gibbs state e^{−β_s H}/Z (4.4) when (4.3)/(4.6) hold;
* :meth:`EvolutionModel.gibbs` — that Gibbs state;
* :meth:`EvolutionModel.expected_step` — the mean step ⟨Δq⟩ = E_J[Δq A(H(q + Δq) − H(q))] by quadrature over the
  jump law ((4.7)–(4.9)), not Monte Carlo;
* :meth:`EvolutionModel.drift` and :meth:`EvolutionModel.effective_metric` — its leading order −c β_s σ ∇H and
  the learning-dynamics reading γ g⁻¹ = c β_s σ of (4.10) (c = ¼ for the sigmoid (4.5), ½ for Metropolis).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import optimize
from torch import Tensor

from geodyn.evolution.acceptance import Acceptance
from geodyn.evolution.jumps import JumpLaw
from geodyn.evolution.landscape import Landscape

__all__ = ["EvolutionModel"]


class EvolutionModel:
    """Transition = jump × acceptance (4.1): P(q → q') = J(q → q') A(q → q'), with J symmetric (4.2) and A a
    function of ΔH = H(q') − H(q) at selection strength β_s ((4.5), or Metropolis for comparison)."""

    def __init__(self, landscape: Landscape, jump: JumpLaw, acceptance: Acceptance):
        if not isinstance(landscape, Landscape):
            raise TypeError(f"landscape must be a geodyn.evolution.Landscape, got {landscape!r}")
        if not isinstance(jump, JumpLaw):
            raise TypeError(f"jump must be a geodyn.evolution.JumpLaw, got {jump!r}")
        if not isinstance(acceptance, Acceptance):
            raise TypeError(f"acceptance must be a geodyn.evolution.Acceptance, got {acceptance!r}")
        if landscape.discrete != jump.discrete:
            kind = "discrete" if landscape.discrete else "continuous"
            raise ValueError(f"a {kind} landscape needs a {kind} jump law, got {jump!r}")
        self.landscape, self.jump, self.acceptance = landscape, jump, acceptance

    @property
    def beta_s(self) -> float:
        return self.acceptance.beta_s

    # -- the kernel (4.1) ---------------------------------------------------------------------------------
    def propose(self, q: Tensor, generator: torch.Generator) -> Tensor:
        """q' ~ J(q → ·) (4.2)."""
        return self.jump.sample(q, generator)

    def acceptance_probability(self, h_old: Tensor, h_new: Tensor) -> Tensor:
        """A(q → q') of (4.5) (or Metropolis) from the energies before and after the jump."""
        return self.acceptance(h_new - h_old)

    def transition_matrix(self, states: Tensor, t: int = 0) -> Tensor:
        """The full kernel (4.1) on an enumerated genome space: P[i, j] = J(i → j) A(i → j) for i ≠ j and
        P[i, i] = 1 − Σ_{j≠i} P[i, j] (a rejected or null jump stays). Rows sum to 1; shape (S, S) float64.

        ``states`` (S, L) bool must be closed under the jump law (e.g. :func:`~geodyn.evolution.all_genomes`).
        """
        if not hasattr(self.jump, "matrix"):
            raise TypeError(f"{self.jump!r} has no exact kernel on enumerated states")
        j = self.jump.matrix(states)
        h = self.landscape.energy(states, t).to(torch.float64)
        p = j * self.acceptance(h.unsqueeze(0) - h.unsqueeze(1))
        p.fill_diagonal_(0.0)
        p += torch.diag(1.0 - p.sum(1))
        return p

    def gibbs(self, states: Tensor, t: int = 0) -> Tensor:
        """The equilibrium p_eq = e^{−β_s H} / Z (4.4) on enumerated states, float64."""
        h = self.landscape.energy(states, t).to(torch.float64)
        return torch.softmax(-self.beta_s * h, dim=0)

    # -- the drift (4.7)–(4.10) ---------------------------------------------------------------------------
    def effective_metric(self, dim: int) -> Tensor:
        """γ g⁻¹ = c β_s σ (4.10): the inverse metric of the learning dynamics (2.2) the population follows
        (c = ¼ for the sigmoid (4.9), ½ for Metropolis). σ must be one shared covariance. (N, N) float64."""
        return self.acceptance.drift_coefficient * self.beta_s * self.jump.covariance(dim)

    def drift(self, q: Tensor, t: int = 0) -> Tensor:
        """Leading-order mean step −c β_s σ ∇H(q) ((4.7)–(4.9)); rows of q (P, N)."""
        g = self.landscape.grad(q, t)
        return -g @ self.effective_metric(q.shape[-1]).to(dtype=g.dtype, device=g.device).mT

    def expected_step(self, q: Tensor, t: int = 0, *, nodes: int = 40, panels: int = 64, order: int = 24) -> Tensor:
        """The exact mean step ⟨Δq⟩ = E_J[Δq · A(H(q + Δq) − H(q))] at each point of q (P, N), by quadrature.

        One dimension (laws with ``pdf_1d``): composite Gauss–Legendre (``panels`` × ``order`` nodes) over the
        jump law's support, with panel edges at every zero of ΔH(Δq) (found on a fine grid and refined by
        Brent's method) — so the Metropolis kink at ΔH = 0 is integrated exactly and both rules reach
        ~1e-14 relative accuracy. Higher dimensions: the law's tensor rule (:meth:`GaussianJump.quadrature`,
        ``nodes`` per coordinate), spectrally accurate for the smooth sigmoid, only algebraically for Metropolis.
        Returns (P, N) float64.
        """
        q = torch.as_tensor(q, dtype=torch.float64)
        if q.ndim != 2:
            raise ValueError(f"q must have shape (P, N), got {tuple(q.shape)}")
        if self.landscape.discrete:
            raise TypeError("expected_step is for continuous genomes")
        dim = q.shape[1]
        if dim == 1 and hasattr(self.jump, "pdf_1d"):
            return torch.stack([self._expected_step_1d(q[i : i + 1], t, panels, order) for i in range(q.shape[0])])
        delta, weights = self.jump.quadrature(dim, nodes)
        out = []
        for i in range(q.shape[0]):
            h0 = self.landscape.energy(q[i : i + 1], t)
            a = self.acceptance(self.landscape.energy(q[i] + delta, t) - h0)
            out.append((weights * a) @ delta)
        return torch.stack(out)

    def _expected_step_1d(self, q: Tensor, t: int, panels: int, order: int) -> Tensor:
        lo, hi = self.jump.support_1d()
        h0 = self.landscape.energy(q, t)

        def dh(x: Tensor) -> Tensor:
            return self.landscape.energy(q + x.reshape(-1, 1), t) - h0

        grid = torch.linspace(lo, hi, 8193, dtype=torch.float64)
        vals = dh(grid).numpy()
        edges = set(np.linspace(lo, hi, panels + 1).tolist()) | {0.0}
        sign = np.sign(vals)
        for k in np.nonzero(sign[:-1] * sign[1:] < 0)[0]:
            a, b = float(grid[k]), float(grid[k + 1])
            root = optimize.brentq(lambda x: float(dh(torch.tensor([x], dtype=torch.float64))[0]), a, b, xtol=1e-300)
            edges.add(root)
        edges_arr = np.array(sorted(edges))
        x_gl, w_gl = np.polynomial.legendre.leggauss(order)
        left, right = edges_arr[:-1, None], edges_arr[1:, None]
        x = torch.tensor((0.5 * (right - left) * x_gl + 0.5 * (right + left)).ravel())
        w = torch.tensor((0.5 * (right - left) * w_gl).ravel())
        integrand = x * self.jump.pdf_1d(x) * self.acceptance(dh(x))
        return (w * integrand).sum().reshape(1)

    def __repr__(self) -> str:
        return f"EvolutionModel({self.landscape!r}, {self.jump!r}, {self.acceptance!r})"
