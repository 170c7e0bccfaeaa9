"""Metric laws: the map from noise-covariance eigenvalues λ to metric eigenvalues g(λ).

A metric law is the one object every part of geodyn shares (optimizers, simulators, the quantum and
evolution models, the regime analysis). It acts on the eigenvalues of the noise covariance κ, so a matrix
metric g = f(κ) is f applied in the eigenbasis of κ (EQUATIONS.md (2.9)); a diagonal metric applies it
elementwise.

Laws compose like the terms of the paper's metrics: ``Power(0)``, ``Power(0.5)`` and ``Power(1)`` are the
three pure regimes (6.1)–(6.3), and sums of scaled powers give the interpolating metric (6.4) and the
three-regime metric (6.5)/(6.8)::

    eps * Power(0) + Power(0.5) + zeta * Power(1)  ==  ThreeRegime(eps, zeta)

This module imports nothing else of geodyn.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import Tensor

__all__ = [
    "MetricLaw",
    "PowerSum",
    "Power",
    "Interpolating",
    "ThreeRegime",
    "ScaleFreeThreeRegime",
    "Custom",
    "SLOW",
    "INTERMEDIATE",
    "FAST",
    "regime_of_exponent",
    "metric_from_spec",
]

#: Regime labels returned by :meth:`MetricLaw.regime`.
SLOW, INTERMEDIATE, FAST = 0, 1, 2


def regime_of_exponent(alpha: float | Tensor) -> int | Tensor:
    """Regime of a local exponent: the nearest of α = 0 (slow), ½ (intermediate), 1 (fast).

    The cut points ¼ and ¾ are the midpoints between the three regimes of EQUATIONS.md §4–5.
    """
    if isinstance(alpha, Tensor):
        return (alpha >= 0.25).long() + (alpha >= 0.75).long()
    return int(alpha >= 0.25) + int(alpha >= 0.75)


def _check_nonnegative(name: str, value: float) -> float:
    value = float(value)
    if math.isnan(value) or value < 0 or math.isinf(value):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return value


def _power(lam: Tensor, a: float) -> Tensor:
    if a == 0.0:
        return torch.ones_like(lam)
    if a == 0.5:
        return lam.sqrt()
    if a == 1.0:
        return lam
    return lam.pow(a)


class MetricLaw:
    """A law g = f(λ) mapping noise-covariance eigenvalues λ ≥ 0 to metric eigenvalues (EQUATIONS.md (2.9)).

    Subclasses implement :meth:`__call__`; the rest has generic definitions that subclasses may sharpen.
    """

    #: True when g does not depend on λ, so optimizers need not estimate κ at all (α = 0, (6.3)).
    is_flat: bool = False
    #: True when g(λ) of each entry depends on that entry alone (so a sharded tensor may be stepped shard by shard).
    elementwise: bool = True

    def __call__(self, lam: Tensor) -> Tensor:  # pragma: no cover - abstract
        """g(λ), elementwise."""
        raise NotImplementedError

    def inverse(self, lam: Tensor) -> Tensor:
        """g(λ)⁻¹, elementwise: the factor of γ g⁻¹ ∇H in (2.2)."""
        return self(lam).reciprocal()

    def precondition(self, lam: Tensor, force: Tensor) -> Tensor:
        """g(λ)⁻¹ · force, elementwise: the covariant step direction of (2.2) in the eigenbasis of κ."""
        return force / self(lam)

    def apply_foreach(self, lams: Sequence[Tensor], scale: float = 1.0) -> list[Tensor]:
        """g(scale·λ) for a list of tensors (the optimizer fast path). New tensors; inputs are not modified."""
        return [self(lam * scale if scale != 1.0 else lam) for lam in lams]

    def local_exponent(self, lam: Tensor) -> Tensor:
        """α_eff(λ) = d log g / d log λ (EQUATIONS.md §5), by automatic differentiation."""
        x = lam.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            g = self(x)
            if not g.requires_grad:  # a constant law: α_eff ≡ 0
                return torch.zeros_like(lam)
            (dg,) = torch.autograd.grad(g.sum(), x, allow_unused=True, materialize_grads=True)
        return (x * dg / g).detach()

    def regime(self, lam: Tensor) -> Tensor:
        """Regime of each eigenvalue: 0 slow, 1 intermediate, 2 fast (nearest of α = 0, ½, 1 to α_eff)."""
        return regime_of_exponent(self.local_exponent(lam))

    def band(self, share: float = 0.9) -> tuple[float, float] | None:
        """The intermediate band (6.9): the λ-interval where the intermediate part of g is ≥ ``share`` of g.

        Defined for laws made of terms; ``None`` for a law that does not expose its terms.
        """
        return None

    def spec(self) -> dict[str, object]:
        """The law as plain data (str, float, lists): what optimizer state dicts store instead of the object.

        :func:`metric_from_spec` rebuilds it. A law that is not made of known terms (:class:`Custom`, or a
        subclass with its own evaluation) is stored by name only, ``{"kind": "custom", "name": ...}``; it cannot
        be rebuilt from data and is matched by name against the law the loading optimizer was built with.
        """
        return {"kind": "custom", "name": repr(self)}


class PowerSum(MetricLaw):
    """g(λ) = Σ_i c_i λ^{a_i}, c_i ≥ 0, a_i ∈ [0, 2]: the family of (6.1)–(6.5) and (6.8).

    The *regime* of λ is the class (slow / intermediate / fast, by :func:`regime_of_exponent`) of the term
    that dominates g(λ) — the classification convention of EQUATIONS.md §5.
    """

    def __init__(self, terms: Sequence[tuple[float, float]]):
        merged: dict[float, float] = {}
        for coef, alpha in terms:
            alpha = float(alpha)
            if math.isnan(alpha) or not 0.0 <= alpha <= 2.0:
                raise ValueError(f"metric exponent alpha must be in [0, 2], got {alpha!r}")
            merged[alpha] = merged.get(alpha, 0.0) + _check_nonnegative("metric coefficient", coef)
        kept = tuple(sorted((c, a) for a, c in merged.items() if c > 0.0))
        if not kept:
            raise ValueError(f"a metric law needs at least one term with a positive coefficient, got terms {terms!r}")
        # Sorted by exponent so ties (e.g. at λ = 0) resolve to the slowest term.
        self.terms: tuple[tuple[float, float], ...] = tuple(sorted(kept, key=lambda t: t[1]))
        self.is_flat = all(a == 0.0 for _, a in self.terms)

    # -- composition -------------------------------------------------------------------------------
    def __add__(self, other: object) -> PowerSum:
        if isinstance(other, PowerSum):
            return PowerSum(self.terms + other.terms)
        if isinstance(other, (int, float)):
            return PowerSum(self.terms + ((float(other), 0.0),))
        return NotImplemented

    __radd__ = __add__

    def __mul__(self, scale: object) -> PowerSum:
        if not isinstance(scale, (int, float)):
            return NotImplemented
        scale = _check_nonnegative("metric scale", scale)
        return PowerSum(tuple((c * scale, a) for c, a in self.terms))

    __rmul__ = __mul__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PowerSum) and self.terms == other.terms

    def __hash__(self) -> int:
        return hash(self.terms)

    def __repr__(self) -> str:
        body = " + ".join(f"{c:g}*λ^{a:g}" for c, a in self.terms)
        return f"PowerSum({body})"

    def spec(self) -> dict[str, object]:
        """``{"kind": "power_sum", "terms": [[c, a], ...]}``; a subclass of unknown evaluation is stored as custom."""
        if type(self) is not PowerSum:
            return super().spec()
        return {"kind": "power_sum", "terms": [[c, a] for c, a in self.terms]}

    # -- evaluation --------------------------------------------------------------------------------
    def _term_values(self, lam: Tensor) -> list[Tensor]:
        return [_power(lam, a) * c if c != 1.0 else _power(lam, a) for c, a in self.terms]

    def __call__(self, lam: Tensor) -> Tensor:
        """g(λ) = Σ c_i λ^{a_i} ((6.8) for the three-regime law)."""
        values = self._term_values(lam)
        g = values[0]
        for v in values[1:]:
            g = g + v
        return g

    def apply_foreach(self, lams: Sequence[Tensor], scale: float = 1.0) -> list[Tensor]:
        """g(scale·λ) over a list with multi-tensor kernels; constant terms are added last (as Adam adds eps).

        The scale is folded into the coefficients, g(sλ) = Σ c s^a λ^a, so no scaled copy of λ is made (the
        optimizer passes its bias correction 1/(1−β₂ᵗ) here).
        """
        lams = list(lams)
        if not lams:
            return []
        out: list[Tensor] | None = None
        constant = 0.0
        for c, a in self.terms:
            c = c * scale**a if scale != 1.0 else c
            if a == 0.0:
                constant += c
                continue
            if out is None:
                if a == 0.5:
                    out = list(torch._foreach_sqrt(lams))
                elif a == 1.0:
                    out = [lam.clone() for lam in lams]
                else:
                    out = list(torch._foreach_pow(lams, a))
                if c != 1.0:
                    torch._foreach_mul_(out, c)
            elif a == 1.0:
                torch._foreach_add_(out, lams, alpha=c)
            else:
                term = torch._foreach_sqrt(lams) if a == 0.5 else torch._foreach_pow(lams, a)
                torch._foreach_add_(out, term, alpha=c)
        if out is None:
            return [torch.full_like(lam, constant) for lam in lams]
        if constant:
            torch._foreach_add_(out, constant)
        return out

    def local_exponent(self, lam: Tensor) -> Tensor:
        """α_eff(λ) = Σ a_i c_i λ^{a_i} / Σ c_i λ^{a_i}; at g = 0 the limit λ → 0 (the smallest exponent)."""
        values = self._term_values(lam)
        g = values[0]
        weighted = values[0] * self.terms[0][1]
        for v, (_, a) in zip(values[1:], self.terms[1:], strict=True):
            g = g + v
            weighted = weighted + v * a
        smallest = torch.full_like(g, self.terms[0][1])
        return torch.where(g > 0, weighted / torch.where(g > 0, g, torch.ones_like(g)), smallest)

    def regime(self, lam: Tensor) -> Tensor:
        """0 slow / 1 intermediate / 2 fast by the dominant term of g(λ) (EQUATIONS.md §5 convention)."""
        values = torch.stack(self._term_values(lam), dim=0)
        classes = torch.tensor([regime_of_exponent(a) for _, a in self.terms], dtype=torch.long, device=values.device)
        return classes[values.argmax(dim=0)]

    def _class_coefficients(self) -> tuple[float, float, float] | None:
        """(c₀, c½, c₁) when every exponent is 0, ½ or 1; None otherwise."""
        coef = {0.0: 0.0, 0.5: 0.0, 1.0: 0.0}
        for c, a in self.terms:
            if a not in coef:
                return None
            coef[a] += c
        return coef[0.0], coef[0.5], coef[1.0]

    def intermediate_share(self, lam: Tensor) -> Tensor:
        """Share of g(λ) carried by the intermediate-class terms (the √λ term of (6.8)); at g = 0 its λ → 0 limit."""
        values = self._term_values(lam)
        mid = torch.zeros_like(values[0])
        for v, (_, a) in zip(values, self.terms, strict=True):
            if regime_of_exponent(a) == INTERMEDIATE:
                mid = mid + v
        g = sum(values[1:], values[0])
        limit = float(regime_of_exponent(self.terms[0][1]) == INTERMEDIATE)  # the smallest exponent dominates
        return torch.where(g > 0, mid / torch.where(g > 0, g, torch.ones_like(g)), torch.full_like(g, limit))

    def band(self, share: float = 0.9) -> tuple[float, float] | None:
        """The intermediate band (6.9): λ where the √λ-term's share of g is ≥ ``share``, or None.

        For g = ε + √λ + ζλ and s = √λ the condition is the quadratic hζs² − (1−h)s + hε ≤ 0, whose roots give
        the band; it exists iff εζ ≤ ((1−h)/(2h))² (for h = 0.9: εζ ≤ 3.09e-3, the spec's "εζ ≲ 10⁻²"), and
        for εζ → 0 it tends to [(h/(1−h))² ε², ((1−h)/h)² ζ⁻²] — (6.9)'s ε² ≪ λ ≪ ζ⁻² made quantitative.
        Laws with other exponents are banded numerically on a log grid.
        """
        h = float(share)
        if not 0.0 < h < 1.0:
            raise ValueError(f"share must be in (0, 1), got {share!r}")
        coefs = self._class_coefficients()
        if coefs is None:
            return self._band_on_grid(h)
        c0, c_half, c1 = coefs
        if c_half == 0.0:
            return None
        b = (1.0 - h) * c_half
        if c1 == 0.0:  # linear: s ≥ h c0 / ((1−h) c½)
            return ((h * c0 / b) ** 2, math.inf)
        disc = b * b - 4.0 * h * h * c0 * c1
        if disc < 0.0:
            return None
        root = math.sqrt(disc)
        s_hi = (b + root) / (2.0 * h * c1)
        # The smaller root via Vieta's formula avoids cancellation when c0 c1 is tiny.
        s_lo = (2.0 * h * c0) / (b + root)
        return (s_lo**2, s_hi**2)

    def _band_on_grid(self, h: float) -> tuple[float, float] | None:
        lam = torch.logspace(-60, 60, 24001, dtype=torch.float64)
        inside = (self.intermediate_share(lam) >= h).nonzero().flatten()
        if inside.numel() == 0:
            return None
        lo, hi = int(inside[0]), int(inside[-1])
        return (0.0 if lo == 0 else float(lam[lo]), math.inf if hi == lam.numel() - 1 else float(lam[hi]))


class Power(PowerSum):
    """g = κ^α (2.9). α = 0: SGD / classical evolution (6.3); ½: Adam-like (6.2); 1: natural gradient (6.1)."""

    def __init__(self, alpha: float = 0.5):
        alpha = float(alpha)
        if math.isnan(alpha) or not 0.0 <= alpha <= 2.0:
            raise ValueError(f"alpha must be in [0, 2], got {alpha!r}")
        super().__init__([(1.0, alpha)])
        self.alpha = alpha

    def local_exponent(self, lam: Tensor) -> Tensor:
        """α_eff ≡ α for a pure power law."""
        return torch.full_like(lam, self.alpha)

    def __repr__(self) -> str:
        return f"Power(alpha={self.alpha:g})"

    def spec(self) -> dict[str, object]:
        return {"kind": "power", "alpha": self.alpha} if type(self) is Power else MetricLaw.spec(self)


class Interpolating(PowerSum):
    """g = ε I + κ^{1/2} (6.4): α = ½ for large fluctuations, α = 0 for small — Adam's √v + ε as a matrix law."""

    def __init__(self, eps: float = 1e-8):
        self.eps = _check_nonnegative("eps", eps)
        super().__init__([(self.eps, 0.0), (1.0, 0.5)])

    def __repr__(self) -> str:
        return f"Interpolating(eps={self.eps:g})"

    def spec(self) -> dict[str, object]:
        return {"kind": "interpolating", "eps": self.eps} if type(self) is Interpolating else MetricLaw.spec(self)


class ThreeRegime(PowerSum):
    """g = ε I + κ^{1/2} + ζ κ (6.5); per eigenvalue g(λ) = ε + √λ + ζλ (6.8).

    Slow (α ≈ 0) for λ < ε², intermediate (α ≈ ½) for ε² < λ < ζ⁻², fast (α ≈ 1) above; the intermediate
    band exists only when εζ ≪ 1 ((6.6), (6.7), (6.9)). α_eff(ε/ζ) = ½ exactly for every ε, ζ > 0.
    """

    def __init__(self, eps: float = 1e-8, zeta: float = 1.0):
        self.eps = _check_nonnegative("eps", eps)
        self.zeta = _check_nonnegative("zeta", zeta)
        super().__init__([(self.eps, 0.0), (1.0, 0.5), (self.zeta, 1.0)])

    @property
    def crossover(self) -> float:
        """λ* = ε/ζ, where α_eff = ½ exactly and the √λ share is maximal, 1/(1 + 2√(εζ))."""
        return self.eps / self.zeta if self.zeta > 0 else math.inf

    def __repr__(self) -> str:
        return f"ThreeRegime(eps={self.eps:g}, zeta={self.zeta:g})"

    def spec(self) -> dict[str, object]:
        if type(self) is not ThreeRegime:
            return MetricLaw.spec(self)
        return {"kind": "three_regime", "eps": self.eps, "zeta": self.zeta}


class ScaleFreeThreeRegime(MetricLaw):
    """The three-regime law with ε and ζ in units of the tensor's own noise scale (EQUATIONS.md §7, (6.5), (6.8)).

    In g = ε + √λ + ζλ the eigenvalue λ has units of gradient², so ε has units of gradient and ζ of 1/gradient: a
    fixed ζ puts a different regime at every loss scale. Here, for the tensor K̂ the law receives (one parameter's
    diagonal noise moment, or the eigenvalues of one matrix's κ̂ in KronCGD),

        s = statistic of √K̂  ("rms": (mean K̂)^{1/2}; "median": median of √K̂, falling back to the RMS where the
                              median is 0 but some K̂ is not),
        ε = ε̃ s,   ζ = ζ̃ / s,
        g(λ) = ε̃ s + √λ + ζ̃ λ / s = s · f̃(λ / s²),   f̃(x) = ε̃ + √x + ζ̃ x.

    Invariance: rescaling the loss by c rescales G and m by c and K̂ by c², hence s by |c| and g by |c|; the step
    γ m̂ / g is unchanged (up to round-off), as Adam's is up to its absolute ε. The band (6.9) ε² ≪ λ ≪ ζ⁻² becomes
    ε̃² ≪ λ/s² ≪ ζ̃⁻² and sits where the tensor's noise is; the crossover (6.7) is λ* = (ε̃/ζ̃) s².

    ``local_exponent``, ``regime``, ``intermediate_share`` and ``band`` are those of f̃ and are relative to s: they
    take s from the tensor passed in (held fixed, not differentiated: α_eff = d log f̃ / d log x at x = λ/s²) and
    ``band`` is returned in units of s² (an interval of λ/s²). A tensor whose K̂ is all zero has s = 0 and g = 0:
    it takes no step (the pseudo-inverse convention of :mod:`geodyn.optim.spectral`).

    The law is not elementwise: every optimizer path applies it to one parameter's whole K̂ (reference and foreach
    steps call it per tensor; the compiled step calls it, never inlines it, as it is not a :class:`PowerSum`).
    """

    STATISTICS = ("rms", "median")
    elementwise = False  # s is a statistic of the whole tensor

    def __init__(self, eps: float = 0.1, zeta: float = 1.0, statistic: str = "rms"):
        if statistic not in self.STATISTICS:
            raise ValueError(f"unknown statistic={statistic!r}: expected one of {', '.join(self.STATISTICS)}")
        self.eps = _check_nonnegative("eps", eps)
        self.zeta = _check_nonnegative("zeta", zeta)
        self.statistic = statistic
        #: f̃, the law in units of s: g(λ) = s · f̃(λ/s²).
        self.relative = ThreeRegime(self.eps, self.zeta)

    def scale(self, lam: Tensor) -> Tensor:
        """s, the noise scale of the tensor (a 0-dim tensor, ≥ 0; 0 only when every λ is 0)."""
        rms = lam.mean().clamp_min(0.0).sqrt()
        if self.statistic == "rms":
            return rms
        median = lam.flatten().median().clamp_min(0.0).sqrt()
        return torch.where(median > 0, median, rms)

    def __call__(self, lam: Tensor) -> Tensor:
        """g(λ) = ε̃ s + √λ + ζ̃ λ / s over the whole tensor (s from the tensor)."""
        if lam.numel() == 0:
            return lam.clone()
        s = self.scale(lam)
        safe = torch.where(s > 0, s, torch.ones_like(s))  # s = 0 only with λ ≡ 0, where the ζ̃ term is 0 too
        g = lam.sqrt()
        if self.zeta:
            g = g + lam * (self.zeta / safe)
        return g + s * self.eps if self.eps else g

    def apply_foreach(self, lams: Sequence[Tensor], scale: float = 1.0) -> list[Tensor]:
        """g(scale·λ) = √scale · g(λ) (g is homogeneous of degree ½ in λ), so no scaled copy of λ is made."""
        root = math.sqrt(scale)
        return [self(lam) * root if scale != 1.0 else self(lam) for lam in lams]

    def _relative_lam(self, lam: Tensor) -> Tensor:
        s2 = self.scale(lam.detach()) ** 2 if lam.numel() else lam.new_ones(())
        return lam.detach() / torch.where(s2 > 0, s2, torch.ones_like(s2))

    def local_exponent(self, lam: Tensor) -> Tensor:
        """α_eff of f̃ at x = λ/s² (s held fixed: the exponent relative to the tensor's noise scale)."""
        return self.relative.local_exponent(self._relative_lam(lam))

    def regime(self, lam: Tensor) -> Tensor:
        """0 slow / 1 intermediate / 2 fast by the dominant term of f̃(λ/s²) (EQUATIONS.md §5 convention)."""
        return self.relative.regime(self._relative_lam(lam))

    def intermediate_share(self, lam: Tensor) -> Tensor:
        """Share of g carried by the √λ term, elementwise (s from the tensor)."""
        return self.relative.intermediate_share(self._relative_lam(lam))

    def band(self, share: float = 0.9) -> tuple[float, float] | None:
        """The intermediate band (6.9) in units of s²: the interval of λ/s² where √λ carries ≥ ``share`` of g."""
        return self.relative.band(share)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ScaleFreeThreeRegime) and self.spec() == other.spec()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.eps, self.zeta, self.statistic))

    def __repr__(self) -> str:
        return f"ScaleFreeThreeRegime(eps={self.eps:g}, zeta={self.zeta:g}, statistic={self.statistic!r})"

    def spec(self) -> dict[str, object]:
        if type(self) is not ScaleFreeThreeRegime:
            return MetricLaw.spec(self)
        return {"kind": "scale_free_three_regime", "eps": self.eps, "zeta": self.zeta, "statistic": self.statistic}


class Custom(MetricLaw):
    """A metric law from any elementwise callable λ ↦ g(λ) > 0 built from torch operations.

    α_eff comes from automatic differentiation; the regime is the nearest of α = 0, ½, 1 to α_eff. A custom law
    exposes no terms, so its regime follows the local exponent rather than the dominant term: the same function
    as a :class:`PowerSum` may classify points near the crossovers differently, and it has no ``band()``.
    """

    def __init__(self, fn: Callable[[Tensor], Tensor], name: str | None = None):
        if not callable(fn):
            raise ValueError(f"Custom metric law needs a callable, got {fn!r}")
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "custom")

    def __call__(self, lam: Tensor) -> Tensor:
        """g(λ) = fn(λ)."""
        return self.fn(lam)

    def __repr__(self) -> str:
        return f"Custom({self.name})"


def _spec_number(spec: dict[str, object], key: str) -> float:
    value = spec.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"invalid metric spec {spec!r}: {key}={value!r} is not a number")
    return float(value)


def metric_from_spec(spec: dict[str, object]) -> MetricLaw:
    """The law a :meth:`MetricLaw.spec` describes (the inverse of ``spec`` for every law made of terms).

    Raises ValueError naming the spec when it is malformed or describes a custom law (which has no data form).
    """
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"invalid metric spec {spec!r}: expected a dict with a 'kind'")
    kind = spec["kind"]
    if kind == "power":
        return Power(_spec_number(spec, "alpha"))
    if kind == "interpolating":
        return Interpolating(_spec_number(spec, "eps"))
    if kind == "three_regime":
        return ThreeRegime(_spec_number(spec, "eps"), _spec_number(spec, "zeta"))
    if kind == "scale_free_three_regime":
        statistic = spec.get("statistic", "rms")
        if statistic not in ScaleFreeThreeRegime.STATISTICS:
            raise ValueError(
                f"invalid metric spec {spec!r}: statistic={statistic!r} is not one of "
                f"{', '.join(ScaleFreeThreeRegime.STATISTICS)}"
            )
        return ScaleFreeThreeRegime(_spec_number(spec, "eps"), _spec_number(spec, "zeta"), str(statistic))
    if kind == "power_sum":
        terms = spec.get("terms")
        if not isinstance(terms, (list, tuple)) or not all(isinstance(t, (list, tuple)) and len(t) == 2 for t in terms):
            raise ValueError(f"invalid metric spec {spec!r}: terms={terms!r} must be a list of [coef, alpha] pairs")
        return PowerSum([(_spec_number({"c": c}, "c"), _spec_number({"a": a}, "a")) for c, a in terms])
    if kind == "custom":
        raise ValueError(f"metric spec {spec!r} names a custom law, which cannot be rebuilt from data")
    raise ValueError(f"unknown metric spec kind={kind!r} in {spec!r}")
