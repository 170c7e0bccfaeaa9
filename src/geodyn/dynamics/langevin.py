"""Walker ensembles of the learning dynamics: the discrete process (2.5)–(2.6) and the SDE of (2.7).

Three separate pieces, as in diffrax:

* the **model** — :class:`~geodyn.dynamics.model.LearningModel` (loss H̄, metric law g = f(κ), κ(q), γ);
* the **integrator** — :class:`DiscreteLearning` (one optimizer step per unit time, (2.5)/(2.6)) or
  :class:`EulerMaruyama` (the Itô SDE whose density obeys the gradient-form Fokker–Planck equation (2.7));
* what is **recorded** — :mod:`geodyn.dynamics.recorders` (moments, histograms, subsampled trajectories).

:class:`LangevinEnsemble` ties them: ``LangevinEnsemble(loss, metric=..., kappa=..., gamma=...).simulate(q0,
n_steps, solver, recorders)`` advances M walkers q0 of shape (M, N) on q0's device and dtype (float64 by
default for lists/arrays) and returns a :class:`Solution` with the final walkers; the recorders hold the rest.

Noise: standard normal draws z (M, N) per step from a seeded ``torch.Generator`` on the walkers' device, or
supplied by the caller (``noise``) — e.g. summed fine draws for strong-convergence studies on one Brownian path.
With ``simulate(compile=True)`` the step is one compiled program (:mod:`geodyn.dynamics.compiled`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from geodyn.dynamics.compiled import compiled_step, uniform_pairs
from geodyn.dynamics.model import LearningModel, TensorFn
from geodyn.dynamics.recorders import Recorder
from geodyn.metric import MetricLaw

__all__ = ["LangevinEnsemble", "DiscreteLearning", "EulerMaruyama", "Solution"]


class DiscreteLearning:
    """One step of the discrete learning dynamics (2.5)/(2.6) per unit of learning time (Δt_q = 1):

    q ← q − γ g⁻¹ ∇H̄ + η,   η = −γ g⁻¹ ξ,   ξ ~ N(0, κ),   so Cov η = γ² g⁻¹κg⁻¹ (2.8).

    ξ = κ^{1/2} z with the symmetric square root, z ~ N(0, I). No Itô drift: this is the learning algorithm
    itself (κ, g evaluated at the current q), not a discretisation of (2.7).
    """

    dt = 1.0

    def step(self, model: LearningModel, q: Tensor, z: Tensor) -> Tensor:
        """q_{k+1} from q_k and standard normal draws z (M, N)."""
        f = model.factors(q)
        return q + model.gradient_drift(q, f) - model.gamma * f.apply_noise(z)

    def __repr__(self) -> str:
        return "DiscreteLearning()"


class EulerMaruyama:
    """Euler–Maruyama for the Itô SDE of the Fokker–Planck equation (2.7):

    dq = [−γ g⁻¹∇H̄ + ∂_ν D^{μν}] dt + γ g⁻¹κ^{1/2} dW,   D = (γ²/2) g⁻¹κg⁻¹,

    strong order ½, weak order 1. The Itô drift ∂_ν D^{μν} makes the walker density obey the gradient
    ("Hänggi–Klimontovich") form ∂_t p = ∂_μ[γ g^{μν} p ∂_νH̄ + D^{μν}∂_ν p] of (2.7) when D depends on q;
    ``ito_drift=False`` drops it (then the density obeys ∂_t p = ∂_μ[γ g^{μν}p∂_νH̄] + ∂_μ∂_ν(D^{μν}p) instead,
    whose stationary state differs — kept to show that the term matters).
    """

    def __init__(self, dt: float, ito_drift: bool = True):
        dt = float(dt)
        if not dt > 0 or math.isinf(dt):
            raise ValueError(f"dt must be a finite number > 0, got {dt!r}")
        self.dt = dt
        self.ito_drift = bool(ito_drift)

    def step(self, model: LearningModel, q: Tensor, z: Tensor) -> Tensor:
        """q(t + dt) from q(t) and standard normal draws z (M, N) (dW = √dt z)."""
        a, f = model.drift_and_factors(q, self.ito_drift)
        return torch.add(q, a, alpha=self.dt).add_(f.apply_noise(z), alpha=model.gamma * math.sqrt(self.dt))

    def __repr__(self) -> str:
        return f"EulerMaruyama(dt={self.dt:g}, ito_drift={self.ito_drift})"


@dataclass
class Solution:
    """Result of :meth:`LangevinEnsemble.simulate` ((2.5)/(2.6) or (2.7)): final walkers ``q`` (M, N) at time ``t``
    after ``n_steps``; ``recorders`` are the finished recorders (their results are attributes)."""

    q: Tensor
    t: float
    n_steps: int
    recorders: tuple[Recorder, ...]


Solver = DiscreteLearning | EulerMaruyama


class LangevinEnsemble:
    """M walkers in N dimensions following the learning dynamics (2.5)–(2.6) or the SDE of (2.7).

    Args:
        loss: H̄ — batched (P, N) ↦ (P,) (autograd of the summed loss) or, with ``per_sample``, (N,) ↦ ().
        grad: analytic ∇H̄, (P, N) ↦ (P, N), instead of autograd.
        metric: the metric law f, g = f(κ) (2.9), e.g. ``Power(0.5)``.
        kappa: κ — a number, (N,), (N, N), or a callable q ↦ (P, N) (diagonal) | (P, N, N) (full).
        gamma: learning rate γ.
        divergence: analytic Itô drift ∂_ν D^{μν}, (P, N) ↦ (P, N); default autograd.
        per_sample: see ``loss``.
        model: a ready :class:`LearningModel` instead of the arguments above.

    Use :meth:`simulate` with :class:`DiscreteLearning` (mode (a), (2.5)/(2.6)) or :class:`EulerMaruyama`
    (mode (b), (2.7)). The fields are available as ``ensemble.model`` (drift, diffusion, Itô drift, …).
    """

    def __init__(
        self,
        loss: TensorFn | None = None,
        *,
        grad: TensorFn | None = None,
        metric: MetricLaw | None = None,
        kappa: float | Tensor | TensorFn = 1.0,
        gamma: float | None = None,
        divergence: TensorFn | None = None,
        per_sample: bool = False,
        model: LearningModel | None = None,
    ):
        self.model = _resolve_model(model, loss, grad, metric, kappa, gamma, divergence, per_sample)

    def simulate(
        self,
        q0: Tensor | Sequence,
        n_steps: int,
        solver: Solver,
        recorders: Sequence[Recorder] = (),
        seed: int | None = 0,
        generator: torch.Generator | None = None,
        noise: Tensor | Callable[[int], Tensor] | None = None,
        t0: float = 0.0,
        dtype: torch.dtype | None = torch.float64,
        device: torch.device | str | None = None,
        compile: bool = False,
    ) -> Solution:
        """Advance the walkers q0 (M, N) by ``n_steps`` steps of ``solver`` ((2.5)/(2.6) or the SDE of (2.7));
        feed every step to the recorders.

        The walkers are float64 by default (``dtype=None`` keeps q0's floating dtype) on ``device`` (default: q0's).
        Noise per step: ``noise[k]`` (a (n_steps, M, N) tensor of standard normal draws) or ``noise(k)`` (a
        callable), else ``torch.randn`` from ``generator`` or a new generator seeded with ``seed`` on the walkers'
        device. Raises FloatingPointError if a walker ends non-finite (step too large for the drift).

        ``compile=True`` runs each step as one ``torch.compile`` (inductor) program (:mod:`geodyn.dynamics.compiled`):
        the drift, the automatic Itô drift (forward-mode passes of κ and H̄, :mod:`geodyn.dynamics.model`), the
        update and, without ``noise``, the normals (Box–Muller from the generator's uniforms) fused. The first step
        compiles (seconds; a C++ compiler is needed on CPU). Given the same normals (``noise``) the walkers equal
        the eager ones to round-off; a seeded run draws the same law from another stream than the eager run.
        Worth it for long runs of many walkers (``benchmarks/simulator_cost.py``).
        """
        q = torch.as_tensor(q0)
        if dtype is not None or not q.is_floating_point():
            q = q.to(dtype=dtype or torch.float64)
        if device is not None:
            q = q.to(device=device)
        if q.ndim != 2 or q.shape[0] < 1 or q.shape[1] < 1:
            raise ValueError(f"q0 must have shape (M, N) with M, N >= 1, got {tuple(q.shape)}")
        if not bool(torch.isfinite(q).all()):
            raise ValueError("q0 must be finite")
        if not self.model.kappa_is_callable:
            self.model.kappa_at(q[:1])  # a constant κ of the wrong size fails here, before any step
        q = q.clone()
        n_steps = int(n_steps)
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        if isinstance(noise, Tensor) and (noise.shape[0] < n_steps or noise.shape[1:] != q.shape):
            raise ValueError(f"noise must have shape ({n_steps}, {q.shape[0]}, {q.shape[1]}), got {tuple(noise.shape)}")
        if noise is None and generator is None:
            generator = torch.Generator(device=q.device)
            if seed is None:
                generator.seed()
            else:
                generator.manual_seed(int(seed))
        if compile:
            program = compiled_step(solver, self.model, q, uniforms=noise is None)
        recorders = tuple(recorders)
        for r in recorders:
            r.start(q, t0, n_steps)
        t = t0
        with torch.no_grad():
            for k in range(1, n_steps + 1):
                if noise is None:
                    if compile:
                        draws = uniform_pairs(q, generator)
                    else:
                        draws = torch.randn(q.shape, generator=generator, dtype=q.dtype, device=q.device)
                elif isinstance(noise, Tensor):
                    draws = noise[k - 1].to(dtype=q.dtype, device=q.device)
                else:
                    draws = noise(k - 1).to(dtype=q.dtype, device=q.device)
                q_new = program(q, draws) if compile else solver.step(self.model, q, draws)
                t = t0 + k * solver.dt
                for r in recorders:
                    r.update(k, t, q, q_new)
                q = q_new
        for r in recorders:
            r.finish()
        if not bool(torch.isfinite(q).all()):
            raise FloatingPointError(f"walkers became non-finite within {n_steps} steps of {solver!r}; reduce dt/gamma")
        return Solution(q=q, t=t, n_steps=n_steps, recorders=recorders)

    def __repr__(self) -> str:
        return f"LangevinEnsemble({self.model!r})"


def _resolve_model(model, loss, grad, metric, kappa, gamma, divergence, per_sample) -> LearningModel:
    if model is not None:
        if any(x is not None for x in (loss, grad, metric, gamma, divergence)):
            raise ValueError("give either model= or the model's arguments, not both")
        return model
    if metric is None or gamma is None:
        raise ValueError("metric and gamma are required (or pass model=)")
    return LearningModel(
        loss, grad=grad, metric=metric, kappa=kappa, gamma=gamma, divergence=divergence, per_sample=per_sample
    )
