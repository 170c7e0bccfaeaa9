"""The quantum regime α = 1 (Sec. 3): from learning parameters to a Schrödinger equation, and back.

    ψ = √p exp(−iθ/ħ)                                                                                 (3.10)
    ħ = 2√(γ/β),  m = 1/γ      (variant A, the default)        ħ = √(2γ/β),  m = 1/(2γ)   (variant B)   (3.12)–(3.13)
    V = (γ/2) g^{μν}∂_μH̄ ∂_νH̄ − (γ/β) ∇_μ(g^{μν}∂_νH̄)                                                   (3.6)
    ∂_t p = γ ∇_μ(p g^{μν}∂_νθ)                                                                         (3.7)
    ∂_t θ = (γ/2) g^{μν}∂_μθ∂_νθ + V + Q                                                                (3.8)
    Q = −(2γ²/β) (1/√p) ∇_μ(g^{μν}∂_ν√p)                                                                (3.9)
    Q_κ = −(2γ²/β) (1/√p) ∂_μ((g⁻¹κg⁻¹)^{μν}∂_ν√p)                                                      (5.3)

What the code establishes about these conventions (tests in ``tests/quantum``):

* **Signs.** With ψ = √p e^{−iθ/ħ}, (3.7)–(3.9) are exactly the real and imaginary parts of (3.11) for variant A,
  with a q-dependent metric (sympy proof). With e^{+iθ/ħ}, (3.11) would need every term of (3.7) and (3.8) negated
  (θ → −θ), so the minus sign of (3.10) is the one that fits the paper's (3.7)–(3.8).
  The probability current is p·v with v = −γ g⁻¹∂θ = (ħ/m) g⁻¹∂ Im log ψ: learning flows *down* the phase gradient.
* **Variant A is the consistent one.** Matching (3.11) to (3.7)–(3.9) fixes 1/(2m) = γ/2 (kinetic term), 1/m = γ
  (continuity) and ħ²/(2m) = 2γ²/β (quantum potential), whose only solution is variant A. Variant B satisfies
  the last relation (ħ²/(2m) = 2γ²/β, so its Bohm potential equals (3.9)) and ħ² ∝ γ/β, but has 1/m = 2γ: its ψ
  obeys (3.11) only if the kinetic and continuity terms of (3.7)–(3.8) carry 2γ instead of γ. Both variants have
  ħ² ∝ γ/β, so ħ is constant iff γ ∝ β. The dynamics here ((3.7)–(3.9) with γ) is variant A's; using variant B for
  dynamics emits a :class:`VariantBWarning`.
* **(5.3) vs (3.9).** (5.3) is written with a plain divergence ∂_μ. Then (5.4) holds exactly (g = κ^{1/2} gives the
  flat Laplacian), but at g = κ (5.3) equals (3.9) only when √g is constant: the two differ by
  (2γ²/β)(1/√p) g^{μν}∂_μ(log √g)∂_ν√p. With the covariant divergence (1/√g)∂_μ(√g ·) it is the other way round.
  :func:`neural_potential` takes ``divergence="partial"`` (default, as printed) or ``"covariant"``.

Nodes of ψ: Q (and Q_κ) is −c Δ√p/√p, singular at a node and, for a numerically computed p, dominated by the error
of √p wherever √p is comparable to that error. The functions return NaN where p ≤ ``floor``·max p (default
1e-12) instead of a regularised value: a floor on √p would produce finite numbers that look like results but
are not, NaN shows where the potential is undefined. The phase θ = −ħ arg ψ is likewise undefined where ψ = 0.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from geodyn.quantum.grid import Grid, TensorField, as_field, div_grad, laplace_beltrami, spectral_gradient
from geodyn.quantum.schrodinger import Hamiltonian

__all__ = [
    "VARIANTS",
    "planck_constant",
    "mass",
    "effective_potential",
    "quantum_potential",
    "neural_potential",
    "from_learning",
    "Madelung",
    "MadelungFields",
    "VariantBWarning",
]

VARIANTS = ("A", "B")

#: RK4's stability limit on the imaginary axis is |λ dt| ≤ 2√2 ≈ 2.83; the guard of :meth:`Madelung.evolve_fields`.
RK4_LIMIT = 2.8


class VariantBWarning(UserWarning):
    """Variant B of (3.12)–(3.13) used for dynamics: its ψ obeys (3.11) only if (3.7)–(3.8) carry 2γ instead of γ,
    while the Madelung equations of this module use the paper's γ, so the two routes describe different flows."""


def _warn_variant_b(where: str) -> None:
    warnings.warn(
        f"{where} with variant B (ħ = √(2γ/β), m = 1/(2γ)): its (3.11) is equivalent to (3.7)–(3.9) only with 2γ in "
        "the kinetic and continuity terms, while the Madelung equations here use γ; use variant A for dynamics",
        VariantBWarning,
        stacklevel=3,
    )


def _variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}: expected one of {VARIANTS}")
    return variant


def planck_constant(gamma: float, beta: float, variant: str = "A") -> float:
    """ħ of (3.12): 2√(γ/β) (variant A, default) or √(2γ/β) (variant B). Only A makes (3.7)–(3.9) equivalent
    to (3.11) with m of (3.13) (see the module docstring); both give ħ² ∝ γ/β."""
    for name, value in (("gamma", gamma), ("beta", beta)):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return 2.0 * math.sqrt(gamma / beta) if _variant(variant) == "A" else math.sqrt(2.0 * gamma / beta)


def mass(gamma: float, variant: str = "A") -> float:
    """m of (3.13): 1/γ (variant A, default) or 1/(2γ) (variant B)."""
    if not gamma > 0:
        raise ValueError(f"gamma must be > 0, got {gamma!r}")
    return 1.0 / gamma if _variant(variant) == "A" else 1.0 / (2.0 * gamma)


def _mask(value: np.ndarray, p: np.ndarray, floor: float) -> np.ndarray:
    out = np.array(value, dtype=np.float64)
    out[p <= floor * np.max(p)] = np.nan
    return out


def quantum_potential(
    p: np.ndarray, grid: Grid, gamma: float, beta: float, metric: Any = None, scheme: str = "fd2", floor: float = 1e-12
) -> np.ndarray:
    """Q = −(2γ²/β) (1/√p) ∇_μ(g^{μν}∂_ν√p) of (3.9), with the Laplace–Beltrami operator of the metric g(q).

    ``scheme`` is the discretisation of :func:`geodyn.quantum.grid.div_grad` ("fd2": the Crank–Nicolson stencil,
    "spectral"). NaN where p ≤ floor·max p (see the module docstring).
    """
    g = as_field(grid, metric)
    r = np.sqrt(np.maximum(np.asarray(p, dtype=np.float64), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = -(2.0 * gamma**2 / beta) * laplace_beltrami(r, g, scheme) / r
    return _mask(q, r * r, floor)


def neural_potential(
    p: np.ndarray,
    grid: Grid,
    gamma: float,
    beta: float,
    kappa: Any,
    metric: Any = None,
    divergence: str = "partial",
    scheme: str = "fd2",
    floor: float = 1e-12,
) -> np.ndarray:
    """Q_κ = −(2γ²/β) (1/√p) ∂_μ((g⁻¹κg⁻¹)^{μν}∂_ν√p), the neural potential (5.3), for diagonal κ and g.

    ``metric`` defaults to g = κ (α = 1). ``divergence="partial"`` is (5.3) as printed (then g = κ^{1/2} gives (5.4)
    exactly); ``"covariant"`` uses (1/√g)∂_μ(√g ·) (then g = κ gives (3.9) exactly). NaN where p ≤ floor·max p.
    """
    k = as_field(grid, kappa)
    g = k if metric is None else as_field(grid, metric)
    if not (k.diagonal and g.diagonal):
        raise ValueError("neural_potential needs diagonal κ and g")
    coeff = k.combine(g, lambda kk, gg: kk / (gg * gg))
    if divergence == "covariant":
        faces = {ax: g.sqrt_det(ax) * coeff.faces(ax) for ax in range(grid.ndim)}
        coeff = TensorField.from_components(grid, g.sqrt_det() * coeff.nodes, faces, coeff.constant)
        scale = 1.0 / g.sqrt_det()
    elif divergence == "partial":
        scale = 1.0
    else:
        raise ValueError(f'divergence must be "partial" or "covariant", got {divergence!r}')
    r = np.sqrt(np.maximum(np.asarray(p, dtype=np.float64), 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        q = -(2.0 * gamma**2 / beta) * scale * div_grad(r, coeff, scheme) / r
    return _mask(q, r * r, floor)


# ---------------------------------------------------------------------------------------------------------------
# the effective potential (3.6)
# ---------------------------------------------------------------------------------------------------------------
def _torch_diagonal(value: Any, ndim: int, shape: tuple[int, ...]) -> list:
    """The diagonal components g_{μμ} (torch tensors of the grid shape) of a metric evaluated on torch coordinates,
    read as :func:`geodyn.quantum.grid._as_components` reads arrays: a sequence of N components; a number or one
    array of the grid shape is c(q)·I (the metric itself in 1-D, conformally flat in N-D); shape (N,) is a constant
    diagonal and (N, *shape) a diagonal field. Full tensors are rejected."""
    if isinstance(value, (list, tuple)):
        if len(value) != ndim:
            raise ValueError(f"a diagonal metric on a {ndim}-D grid needs {ndim} components, got {len(value)}")
        return [torch.as_tensor(v, dtype=torch.float64).expand(shape) for v in value]
    t = torch.as_tensor(value, dtype=torch.float64)
    if t.ndim == 0 or tuple(t.shape) == shape:
        return [t.expand(shape)] * ndim
    if tuple(t.shape) == (ndim,):
        return [t[mu].expand(shape) for mu in range(ndim)]
    if tuple(t.shape) == (ndim, *shape):
        return [t[mu] for mu in range(ndim)]
    if tuple(t.shape) in ((ndim, ndim), (ndim, ndim, *shape)):
        raise ValueError("effective_potential needs a diagonal metric, got a full tensor")
    raise ValueError(f"a metric on a grid of shape {shape} cannot have shape {tuple(t.shape)}")


def _not_torch(exc: BaseException) -> bool:
    """Whether an exception raised by a user's H̄ or g on torch coordinates means "written with numpy": numpy
    functions reject tensors that require grad with a TypeError or with torch's "Can't call numpy()" RuntimeError."""
    return isinstance(exc, TypeError) or (isinstance(exc, RuntimeError) and "numpy" in str(exc))


def _autograd_potential(loss: Callable[..., Any], grid: Grid, gamma: float, beta: float, metric: Any) -> np.ndarray:
    ndim, shape = grid.ndim, grid.shape
    xs = [torch.tensor(c, dtype=torch.float64, requires_grad=True) for c in grid.coords]
    try:
        h = loss(*xs)
        g_value = None if metric is None or np.isscalar(metric) else metric(*xs)
    except (TypeError, RuntimeError) as exc:
        if not _not_torch(exc):
            raise
        raise TypeError(
            'effective_potential(derivatives="autograd") needs H̄ and g written with torch operations; '
            'pass derivatives="fd2" for numpy callables or grid values'
        ) from exc
    if isinstance(h, np.ndarray) or not (isinstance(h, torch.Tensor) or np.isscalar(h)):
        raise TypeError(f"H̄ must return a torch tensor (or a constant) on torch coordinates, got {type(h).__name__}")
    h = torch.as_tensor(h, dtype=torch.float64)
    if g_value is None:
        comps = [torch.full(shape, 1.0 if metric is None else float(metric), dtype=torch.float64)] * ndim
    else:
        comps = _torch_diagonal(g_value, ndim, shape)
    # H̄ need not depend on every coordinate (unused: ∂_μH̄ = 0), nor at all (a constant loss)
    grads = torch.autograd.grad(h.sum(), xs, create_graph=True, allow_unused=True) if h.requires_grad else [None] * ndim
    dh = [torch.zeros(shape, dtype=torch.float64) if d is None else d.expand(shape) for d in grads]
    sqrt_g = torch.stack(comps).prod(0).sqrt()
    kinetic = sum(dh[mu] ** 2 / comps[mu] for mu in range(ndim))
    div = torch.zeros(shape, dtype=torch.float64)
    for mu in range(ndim):
        flux = sqrt_g * dh[mu] / comps[mu]
        if flux.requires_grad:  # otherwise the flux is constant (linear H̄, constant g): no divergence
            (d,) = torch.autograd.grad(flux.sum(), xs[mu], retain_graph=True, allow_unused=True)
            if d is not None:
                div = div + d
    v = 0.5 * gamma * kinetic - (gamma / beta) * div / sqrt_g
    return v.detach().numpy()


def effective_potential(
    loss: Callable[..., Any] | np.ndarray,
    grid: Grid,
    gamma: float,
    beta: float,
    metric: Any = None,
    derivatives: str = "autograd",
) -> np.ndarray:
    """V = (γ/2) g^{μν}∂_μH̄ ∂_νH̄ − (γ/β) ∇_μ(g^{μν}∂_νH̄) of (3.6) on the grid nodes (diagonal metric).

    Args:
        loss: H̄ as a callable of the coordinates ``H(x)`` / ``H(x, y)``, or its values on the grid.
        metric: None (flat), a number, or a callable of the coordinates, as in :mod:`geodyn.quantum.grid` (in N-D
            one array of the grid shape is the conformal metric c(q)·I, a sequence of N arrays the diagonal);
            with ``derivatives="autograd"`` it must accept torch tensors.
        derivatives: ``"autograd"`` — H̄ and g are evaluated on torch float64 tensors and differentiated exactly
            (they must be written with torch operations; H̄ may ignore some coordinates or be linear or constant);
            ``"fd2"`` — second-order differences of grid values (``np.gradient``, one-sided at the box edges since
            H̄ need not be periodic).
    """
    for name, value in (("gamma", gamma), ("beta", beta)):
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    ndim = grid.ndim
    if derivatives == "autograd":
        if not callable(loss) or not (metric is None or np.isscalar(metric) or callable(metric)):
            raise ValueError('derivatives="autograd" needs H̄ and the metric as callables (or a constant metric)')
        return _autograd_potential(loss, grid, gamma, beta, metric)
    if derivatives == "fd2":
        h = grid.evaluate(loss)
        g = as_field(grid, metric)
        if not g.diagonal:
            raise ValueError("effective_potential needs a diagonal metric")
        sqrt_g, ginv = g.sqrt_det(), g.inverse_components()
        dh = [np.gradient(h, sp, axis=ax, edge_order=2) for ax, sp in enumerate(grid.spacing)]
        kinetic = sum(ginv[mu] * dh[mu] ** 2 for mu in range(ndim))
        div = sum(
            np.gradient(sqrt_g * ginv[mu] * dh[mu], grid.spacing[mu], axis=mu, edge_order=2) for mu in range(ndim)
        )
        return 0.5 * gamma * kinetic - (gamma / beta) * div / sqrt_g
    raise ValueError(f'derivatives must be "autograd" or "fd2", got {derivatives!r}')


def from_learning(
    gamma: float,
    beta: float,
    loss: Callable[..., Any] | np.ndarray,
    grid: Grid,
    metric: Any = None,
    variant: str = "A",
    derivatives: str = "autograd",
) -> Hamiltonian:
    """Learning parameters (γ, β, H̄, g) → the Schrödinger problem (ħ, m, V, g) of (3.11): ħ from (3.12), m from
    (3.13), V from (3.6). The returned :class:`~geodyn.quantum.Hamiltonian` carries ``hbar``, ``mass``,
    ``potential`` and ``metric``. Variant B emits a :class:`VariantBWarning` (its dynamics is not (3.7)–(3.9))."""
    if _variant(variant) == "B":
        _warn_variant_b("from_learning")
    v = effective_potential(loss, grid, gamma, beta, metric, derivatives)
    return Hamiltonian(grid, planck_constant(gamma, beta, variant), mass(gamma, variant), v, metric)


# ---------------------------------------------------------------------------------------------------------------
# ψ ↔ (p, θ) and the hydrodynamic (Madelung) equations
# ---------------------------------------------------------------------------------------------------------------
@dataclass
class MadelungFields:
    """(p, θ) on a grid with θ = θ̃ + Σ_μ w_μ (q^μ − a_μ)/L_μ: θ̃ periodic, w_μ the circulation ∮∂_μθ dq^μ along
    axis μ (the winding of (3.14)), in units of θ."""

    p: np.ndarray
    theta: np.ndarray
    winding: tuple[float, ...]


class Madelung:
    """The Madelung map between learning fields (p, θ) and the wave function ψ of the quantum regime, (3.6)–(3.13).

    Args:
        gamma: learning rate γ.
        beta: Lagrange multiplier β of the stationary-entropy-production principle.
        variant: "A" (default) or "B" for ħ and m, see :func:`planck_constant`, :func:`mass`. The dynamics
            (:meth:`hamiltonian`, :meth:`rhs`, :meth:`evolve_fields`, :meth:`current_velocity`) warns with
            :class:`VariantBWarning` for variant B: its ψ and the Madelung equations (3.7)–(3.9) evolve differently.

    Attributes ``hbar`` (3.12) and ``mass`` (3.13).
    """

    def __init__(self, gamma: float, beta: float, variant: str = "A"):
        self.gamma = float(gamma)
        self.beta = float(beta)
        self.variant = _variant(variant)
        self.hbar = planck_constant(gamma, beta, variant)
        self.mass = mass(gamma, variant)

    @property
    def quantum_coefficient(self) -> float:
        """2γ²/β, the coefficient of the quantum potential (3.9) (= ħ²/(2m) in both variants)."""
        return 2.0 * self.gamma**2 / self.beta

    # -- (3.10) ----------------------------------------------------------------------------------------------
    def psi(self, p: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """ψ = √p exp(−iθ/ħ) (3.10)."""
        return np.sqrt(np.maximum(np.asarray(p, dtype=np.float64), 0.0)) * np.exp(-1j * np.asarray(theta) / self.hbar)

    def p_theta(self, psi: np.ndarray, unwrap_axis: int | None = None, floor: float = 0.0) -> tuple[np.ndarray, ...]:
        """(p, θ) = (|ψ|², −ħ arg ψ), the inverse of (3.10).

        θ is defined modulo 2πħ (the shift symmetry (3.14)); it is returned in (−πħ, πħ], or unwrapped along
        ``unwrap_axis`` (continuous across nodes only if p > 0 there). NaN where p ≤ floor·max p (θ is undefined
        at a node; the default floor 0 keeps every value).
        """
        p = np.abs(psi) ** 2
        theta = -self.hbar * np.angle(psi)
        if unwrap_axis is not None:
            theta = np.unwrap(theta, axis=unwrap_axis, period=2.0 * np.pi * self.hbar)
        if floor > 0:
            theta = _mask(theta, p, floor)
        return p, theta

    def fields(self, psi: np.ndarray, grid: Grid) -> MadelungFields:
        """(p, θ̃, winding) of a single-valued ψ in 1-D: the winding is 2πħ × (winding number of ψ), a multiple of
        2πħ by (3.14)."""
        if grid.ndim != 1:
            raise ValueError("fields() is 1-D")
        p, theta = self.p_theta(psi, unwrap_axis=0)
        step = -self.hbar * np.angle(psi[0] / psi[-1])  # the seam: ψ is single valued, so this closes the loop
        w = float(theta[-1] + step - theta[0])
        x = grid.axes[0] - grid.domain[0][0]
        return MadelungFields(p=p, theta=theta - w * x / grid.lengths[0], winding=(w,))

    def winding_phase(self, grid: Grid, winding: tuple[float, ...] | float) -> np.ndarray:
        """The multi-valued part Σ_μ w_μ (q^μ − a_μ)/L_μ of θ."""
        w = np.broadcast_to(np.asarray(winding, dtype=np.float64), (grid.ndim,))
        return sum(
            w[mu] * (c - a) / length
            for mu, (c, (a, _), length) in enumerate(zip(grid.coords, grid.domain, grid.lengths))
        )

    def is_single_valued(self, winding: tuple[float, ...] | float, rtol: float = 1e-12) -> bool:
        """Whether a winding w makes exp(−iθ/ħ) single valued: w ∈ 2πħℤ per axis (3.14)."""
        n = np.asarray(winding, dtype=np.float64) / (2.0 * np.pi * self.hbar)
        return bool(np.all(np.abs(n - np.round(n)) <= rtol * np.maximum(1.0, np.abs(n))))

    # -- potentials ------------------------------------------------------------------------------------------
    def quantum_potential(
        self, p: np.ndarray, grid: Grid, metric: Any = None, scheme: str = "fd2", floor: float = 1e-12
    ) -> np.ndarray:
        """Q of (3.9); see :func:`quantum_potential`."""
        return quantum_potential(p, grid, self.gamma, self.beta, metric, scheme, floor)

    def neural_potential(
        self,
        p: np.ndarray,
        grid: Grid,
        kappa: Any,
        metric: Any = None,
        divergence: str = "partial",
        scheme: str = "fd2",
        floor: float = 1e-12,
    ) -> np.ndarray:
        """Q_κ of (5.3); see :func:`neural_potential`."""
        return neural_potential(p, grid, self.gamma, self.beta, kappa, metric, divergence, scheme, floor)

    def effective_potential(self, loss: Any, grid: Grid, metric: Any = None, derivatives: str = "autograd"):
        """V of (3.6); see :func:`effective_potential`."""
        return effective_potential(loss, grid, self.gamma, self.beta, metric, derivatives)

    def hamiltonian(self, loss: Any, grid: Grid, metric: Any = None, derivatives: str = "autograd") -> Hamiltonian:
        """The problem (ħ, m, V, g) of (3.11) for the loss H̄; see :func:`from_learning`."""
        return from_learning(self.gamma, self.beta, loss, grid, metric, self.variant, derivatives)

    def current_velocity(self, theta_gradient: list[np.ndarray], metric: TensorField) -> list[np.ndarray]:
        """v^μ = −γ g^{μν}∂_νθ, so that (3.7) reads ∂_t p = −∇_μ(p v^μ) (diagonal metric). For variant A this is the
        velocity (ħ/m) g⁻¹∂ Im log ψ of ψ's probability current."""
        if self.variant == "B":
            _warn_variant_b("Madelung.current_velocity")
        ginv = metric.inverse_components()
        return [-self.gamma * ginv[mu] * theta_gradient[mu] for mu in range(len(theta_gradient))]

    def rhs(
        self, fields: MadelungFields, grid: Grid, potential: Any = 0.0, metric: Any = None, floor: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        """(∂_t p, ∂_t θ̃) of (3.7)–(3.9) by spectral derivatives (periodic p, θ̃; diagonal metric; p > 0):

            ∂_t p = γ (1/√g) ∂_μ(√g p g^{μν}∂_νθ),   ∂_t θ = (γ/2) g^{μν}∂_μθ∂_νθ + V + Q.

        The winding part of θ is linear in q and constant in time (∂_t of the circulation vanishes), so ∂_t θ is
        also ∂_t θ̃.
        """
        if self.variant == "B":
            _warn_variant_b("Madelung.rhs")
        return self._rhs(fields, grid, potential, metric, floor)

    def _rhs(
        self, fields: MadelungFields, grid: Grid, potential: Any, metric: Any, floor: float = 0.0
    ) -> tuple[np.ndarray, np.ndarray]:
        g = as_field(grid, metric)
        if not g.diagonal:
            raise ValueError("rhs needs a diagonal metric")
        v = (
            potential
            if isinstance(potential, np.ndarray) and potential.shape == grid.shape
            else grid.evaluate(potential)
        )
        lengths = grid.lengths
        dtheta = [d + fields.winding[mu] / lengths[mu] for mu, d in enumerate(spectral_gradient(fields.theta, grid))]
        sqrt_g, ginv = g.sqrt_det(), g.inverse_components()
        dp = sum(spectral_gradient(sqrt_g * fields.p * ginv[mu] * dtheta[mu], grid)[mu] for mu in range(grid.ndim))
        dp = self.gamma * dp / sqrt_g
        q = quantum_potential(fields.p, grid, self.gamma, self.beta, g, "spectral", floor=floor)
        dth = 0.5 * self.gamma * sum(ginv[mu] * dtheta[mu] ** 2 for mu in range(grid.ndim)) + v + q
        return dp, dth

    def evolve_fields(
        self,
        fields: MadelungFields,
        grid: Grid,
        t1: float,
        dt: float,
        potential: Any = 0.0,
        metric: Any = None,
        ts: list[float] | None = None,
    ) -> list[MadelungFields]:
        """Integrate the Madelung equations (3.7)–(3.9) directly (classical RK4, spectral in space) — an independent
        route to the dynamics that (3.11) describes through ψ, valid while p > 0 everywhere and for every winding
        (single-valued ψ or not). Returns the fields at ``ts`` (default: t1).

        Stability: linearised about a uniform p, (3.7)–(3.9) have the dispersion ω = γ√(γ/β)·g^{μμ}k_μ² (the
        ħ/(2m) of variant A, whatever the variant), and RK4 is stable on the imaginary axis for |ω dt| ≤ 2√2. A
        ValueError is raised when dt·γ√(γ/β)·max_q Σ_μ g^{μμ}(q)(π/h_μ)² exceeds 2.8.
        """
        if self.variant == "B":
            _warn_variant_b("Madelung.evolve_fields")
        ts = [t1] if ts is None else sorted(ts)
        potential, metric = grid.evaluate(potential), as_field(grid, metric)
        if not metric.diagonal:
            raise ValueError("evolve_fields needs a diagonal metric")
        stiffness = self.stability_number(grid, metric, dt)
        if stiffness > RK4_LIMIT:
            raise ValueError(
                f"dt = {dt:g} is outside RK4's stability region: dt·γ√(γ/β)·max Σ g^{{μμ}}k_max² = {stiffness:.3g} > "
                f"{RK4_LIMIT} (take dt ≤ {dt * RK4_LIMIT / stiffness:.3g})"
            )
        out, t, cur = [], 0.0, fields
        for target in ts:
            n = max(1, math.ceil((target - t) / dt - 1e-9)) if target > t else 0
            h = (target - t) / n if n else 0.0
            for _ in range(n):
                cur = self._rk4(cur, grid, h, potential, metric)
            t = target
            out.append(cur)
        return out

    def stability_number(self, grid: Grid, metric: Any, dt: float) -> float:
        """dt·γ√(γ/β)·max_q Σ_μ g^{μμ}(q)(π/h_μ)²: the largest |ω dt| of the linearised Madelung equations on the
        grid (RK4 needs ≤ 2√2; :meth:`evolve_fields` refuses more than 2.8)."""
        ginv = as_field(grid, metric).inverse_components()
        kmax2 = sum(ginv[mu] * (math.pi / h) ** 2 for mu, h in enumerate(grid.spacing))
        return float(dt * math.sqrt(0.5 * self.gamma * self.quantum_coefficient) * np.max(kmax2))

    def _rk4(self, f: MadelungFields, grid: Grid, h: float, potential: Any, metric: Any) -> MadelungFields:
        def shifted(base, kp, kt, s):
            return MadelungFields(base.p + s * kp, base.theta + s * kt, base.winding)

        k1 = self._rhs(f, grid, potential, metric)
        k2 = self._rhs(shifted(f, *k1, 0.5 * h), grid, potential, metric)
        k3 = self._rhs(shifted(f, *k2, 0.5 * h), grid, potential, metric)
        k4 = self._rhs(shifted(f, *k3, h), grid, potential, metric)
        p = f.p + h / 6.0 * (k1[0] + 2 * k2[0] + 2 * k3[0] + k4[0])
        th = f.theta + h / 6.0 * (k1[1] + 2 * k2[1] + 2 * k3[1] + k4[1])
        return MadelungFields(p, th, f.winding)

    def psi_of_fields(self, fields: MadelungFields, grid: Grid) -> np.ndarray:
        """ψ = √p exp(−i(θ̃ + winding part)/ħ) on the nodes [a, b): single valued on the ring iff the winding is
        in 2πħℤ; otherwise the periodic extension jumps by the factor e^{−iw/ħ} across the seam."""
        return self.psi(fields.p, fields.theta + self.winding_phase(grid, fields.winding))

    def __repr__(self) -> str:
        return (
            f"Madelung(gamma={self.gamma:g}, beta={self.beta:g}, variant={self.variant!r}: "
            f"hbar={self.hbar:g}, mass={self.mass:g})"
        )
