"""Nelson stochastic mechanics: walkers whose density follows |ψ(t)|² of the Schrödinger equation (3.11).

With ψ = √p exp(−iθ/ħ) (3.10), a constant metric g (1-D, periodic) and ħ, m of variant A of (3.12)–(3.13)
(m = 1/γ, the variant whose (3.11) is equivalent to (3.7)–(3.9)):

    current velocity   v = (ħ/m) g⁻¹ ∂ Im log ψ = −γ g⁻¹ ∂θ      (so that (3.7) reads ∂_t p = −∂(p v))
    osmotic velocity   u = (ħ/2m) g⁻¹ ∂ log p   = (ħ/m) g⁻¹ ∂ Re log ψ
    forward drift      b = v + u = (ħ/m) g⁻¹ (Re + Im) ∂ log ψ = (ħ/m) g⁻¹ (Re + Im)(ψ* ∂ψ)/|ψ|²
    diffusion          ν = (ħ/2m) g⁻¹:   dX = b(X, t) dt + √(2ν) dW.

The walkers only use ψ, ħ and m of the Hamiltonian: the expressions in ψ hold for any ħ, m, the equalities with
θ and γ for variant A. The Fokker–Planck equation of this SDE, ∂_t p = −∂(b p) + ν ∂²p = −∂(v p) − ∂(u p − ν ∂p)
= −∂(v p), is the continuity equation of (3.11) ((3.7) for variant A) because u p = ν ∂p: walkers started from
|ψ(0)|² have density |ψ(t)|² at all times.
Since v is θ's gradient flow, the walkers are learning trajectories: (3.7) as an ensemble of stochastic learners
whose noise ν = ħ/(2m) = γ√(γ/β) (variant A) is set by the quantum regime's constants.

Numerics: b is evaluated on the grid from the solver's ψ(t) (spectral ∂ψ) and linearly interpolated at the walkers
(periodic). Time stepping: stochastic Heun (default; predictor X̃ = X + b(X, t)dt + √(2ν)ΔW, corrector
X + ½[b(X, t) + b(X̃, t + dt)]dt + √(2ν)ΔW, weak order 2 for this additive noise) or Euler–Maruyama (weak order 1).
Heun is the default because the Euler–Maruyama bias of the walker density, ~dt·|∂b|·t relative in its width,
is as large as the sampling error of 10⁴ walkers already at dt ≈ 10⁻³ (the drift of a packet of width s has
|∂b| ~ ν/s²). Where |ψ|² ≤ floor·max|ψ|² the drift is set to 0 (it is singular at a
node and meaningless where ψ is at round-off level; walkers reach such points with probability ≲ floor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from geodyn.quantum.grid import Grid, spectral_gradient
from geodyn.quantum.schrodinger import Hamiltonian, _Solver

__all__ = [
    "nelson_velocities",
    "NelsonWalkers",
    "WalkerRun",
    "sample_density",
    "wasserstein_floor",
]


def nelson_velocities(psi: np.ndarray, ham: Hamiltonian, floor: float = 1e-14) -> tuple[np.ndarray, np.ndarray]:
    """(v, u) on the grid: current velocity (ħ/m) g⁻¹ ∂ Im log ψ (= −γ g⁻¹∂θ of (3.7) for variant A, m = 1/γ) and
    osmotic velocity (ħ/2m) g⁻¹ ∂ log p, (3.10), for a constant metric in 1-D. Zero where |ψ|² ≤ floor·max|ψ|²."""
    if ham.grid.ndim != 1 or not ham.metric.constant:
        raise ValueError("Nelson walkers are implemented for 1-D grids with a constant metric")
    ginv = float(ham.metric.inverse_components().flat[0])
    (dpsi,) = spectral_gradient(psi, ham.grid)
    p = np.abs(psi) ** 2
    ok = p > floor * p.max()
    ratio = np.zeros_like(psi)
    ratio[ok] = np.conj(psi[ok]) * dpsi[ok] / p[ok]  # ∂ log ψ
    scale = ham.hbar / ham.mass * ginv
    return scale * ratio.imag, scale * ratio.real


@dataclass
class WalkerRun:
    """Walker positions ``x`` (T, M) and the solver's ψ (T, n) at ``times`` (T,): the times actually recorded, on the
    step grid k·dt (the requested times rounded to the nearest step), in the order requested."""

    times: np.ndarray
    x: np.ndarray
    psi: np.ndarray


class NelsonWalkers:
    """Walkers of Nelson's forward SDE dX = b dt + √(ħ/m g⁻¹) dW driven by ψ(t) from a solver (see the module
    docstring for b and the equations it implements, (3.7), (3.10), (3.11); with ħ, m of variant A the drift is
    the learning flow −γ g⁻¹∂θ plus the osmotic velocity).

    Args:
        hamiltonian: the problem (1-D, constant metric).
        solver: the method that evolves ψ, stepped together with the walkers with the same dt.
        floor: drift set to 0 where |ψ|² ≤ floor·max|ψ|².
        scheme: "heun" (weak order 2) or "euler" (Euler–Maruyama, weak order 1).
    """

    def __init__(self, hamiltonian: Hamiltonian, solver: _Solver, floor: float = 1e-14, scheme: str = "heun"):
        if hamiltonian.grid.ndim != 1 or not hamiltonian.metric.constant:
            raise ValueError("Nelson walkers are implemented for 1-D grids with a constant metric")
        if scheme not in ("heun", "euler"):
            raise ValueError(f'scheme must be "heun" or "euler", got {scheme!r}')
        self.scheme = scheme
        self.ham = hamiltonian
        self.solver = solver
        self.floor = floor
        ginv = float(hamiltonian.metric.inverse_components().flat[0])
        self.diffusion = hamiltonian.hbar / (2.0 * hamiltonian.mass) * ginv

    def drift(self, psi: np.ndarray) -> np.ndarray:
        """b = v + u on the grid nodes."""
        v, u = nelson_velocities(psi, self.ham, self.floor)
        return v + u

    def run(
        self,
        psi0: np.ndarray,
        x0: np.ndarray,
        t1: float,
        ts: list[float] | None = None,
        seed: int = 0,
        progress=None,
        velocity: str = "forward",
    ) -> WalkerRun:
        """Evolve ψ with the solver and the walkers with the SDE (the same step dt = t1/round(t1/solver.dt) for both);
        record positions and ψ at ``ts`` (default: 0 and t1). Each requested time is rounded to the nearest step
        k·dt and :attr:`WalkerRun.times` reports k·dt; a time outside [0, t1], or two times that round to the same
        step, raise ValueError before anything is run.

        ``velocity="current"`` drops the osmotic part (b = v): walkers that follow the current velocity plus noise,
        which do *not* reproduce |ψ|² — a control that shows what the osmotic velocity does.
        """
        if velocity not in ("forward", "current"):
            raise ValueError(f'velocity must be "forward" or "current", got {velocity!r}')
        grid: Grid = self.ham.grid
        n_steps = max(1, round(t1 / self.solver.dt))
        dt = t1 / n_steps
        ts = [0.0, t1] if ts is None else [float(t) for t in ts]
        outside = [t for t in ts if not -0.5 * dt <= t <= t1 + 0.5 * dt]
        if outside:
            raise ValueError(f"record times {outside} are outside [0, {t1}]")
        wanted: dict[int, int] = {}
        for i, t in enumerate(ts):
            k = round(t / dt)
            if k in wanted:
                raise ValueError(
                    f"record times {ts[wanted[k]]} and {t} both round to step {k} (t = {k * dt:g}, dt = {dt:g}); "
                    "request times at least one step apart"
                )
            wanted[k] = i
        (a, b), length = grid.domain[0], grid.lengths[0]
        nodes = np.append(grid.axes[0], b)
        rng = np.random.default_rng(seed)
        x = np.asarray(x0, dtype=np.float64).copy()
        psi = np.asarray(psi0, dtype=np.complex128)
        xs, psis = [None] * len(ts), [None] * len(ts)
        noise = math.sqrt(2.0 * self.diffusion * dt)

        def field(p):
            v, u = nelson_velocities(p, self.ham, self.floor)
            f = v + u if velocity == "forward" else v
            return np.append(f, f[0])

        def at(f, y):
            return np.interp((y - a) % length + a, nodes, f)

        drift = field(psi)
        for k in range(n_steps + 1):
            if k in wanted:
                xs[wanted[k]], psis[wanted[k]] = x.copy(), psi.copy()
            if k == n_steps:
                break
            kick = noise * rng.standard_normal(x.shape)
            b_now = at(drift, x)
            psi = self.solver.propagate(self.ham, psi, 1, dt)
            drift_next = field(psi)
            if self.scheme == "heun":
                x_pred = x + b_now * dt + kick
                x = x + 0.5 * (b_now + at(drift_next, x_pred)) * dt + kick
            else:
                x = x + b_now * dt + kick
            drift = drift_next
            if progress is not None and k % 100 == 0:
                progress(k / n_steps)
        times = np.array([round(t / dt) * dt for t in ts], dtype=np.float64)
        return WalkerRun(times=times, x=np.stack(xs), psi=np.stack(psis))


def _cdf(p: np.ndarray, grid: Grid) -> tuple[np.ndarray, np.ndarray]:
    """Piecewise-linear CDF of the density p, constant on the cells [x_j − h/2, x_j + h/2): (edges, F(edges))."""
    h = grid.spacing[0]
    edges = np.append(grid.axes[0] - 0.5 * h, grid.axes[0][-1] + 0.5 * h)
    mass = np.maximum(p, 0.0) * h
    cdf = np.concatenate([[0.0], np.cumsum(mass)])
    return edges, cdf / cdf[-1]


def sample_density(p: np.ndarray, grid: Grid, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` exact samples of the 1-D density p (|ψ|², (3.10)) on the grid, by inverse transform of its
    cell-wise constant interpolant (its W1 distance to the smooth density is O(h²))."""
    edges, cdf = _cdf(p, grid)
    return np.interp(rng.random(n), cdf, edges)


def wasserstein_floor(p: np.ndarray, grid: Grid, n: int, n_reference: float = math.inf) -> tuple[float, float]:
    """Mean and standard deviation of W1 between the empirical distribution of n exact samples of p and p itself
    (or, with ``n_reference``, an independent sample of that size), to leading order in 1/n.

    W1 = ∫|F_n − F| dx and √n (F_n − F) → B(F(x)), a Brownian bridge, so with 1/n_eff = 1/n + 1/n_ref:
    E W1 ≈ √(2/(π n_eff)) ∫ √(F(1−F)) dx and Var W1 ≈ (1/n_eff) ∫∫ Cov(|B(s)|, |B(t)|) dx dy, using
    E|X||Y| = (2/π) σ_X σ_Y (√(1−ρ²) + ρ arcsin ρ) for centred jointly normal X, Y with correlation ρ and
    Cov(B(s), B(t)) = min(s,t) − s t.
    """
    edges, cdf = _cdf(p, grid)
    centers = 0.5 * (edges[:-1] + edges[1:])
    f = np.interp(centers, edges, cdf)
    h = grid.spacing[0]
    n_eff = 1.0 / (1.0 / n + (0.0 if math.isinf(n_reference) else 1.0 / n_reference))
    sd = np.sqrt(f * (1.0 - f))
    mean = math.sqrt(2.0 / (math.pi * n_eff)) * float(np.sum(sd) * h)
    keep = sd > 1e-9  # far tails contribute nothing and make ρ ill-defined
    s, sig = f[keep], sd[keep]
    cov = np.minimum.outer(s, s) - np.outer(s, s)
    rho = np.clip(cov / np.outer(sig, sig), -1.0, 1.0)
    e_abs = (2.0 / math.pi) * np.outer(sig, sig) * (np.sqrt(1.0 - rho**2) + rho * np.arcsin(rho))
    var = float(np.sum(e_abs - (2.0 / math.pi) * np.outer(sig, sig)) * h * h) / n_eff
    return mean, math.sqrt(max(var, 0.0))
