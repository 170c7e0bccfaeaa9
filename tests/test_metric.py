"""Metric laws g(λ) (EQUATIONS.md (2.9), §5: (6.1)–(6.9)) — properties, regimes, the intermediate band.

Tolerances are bounds on float64 round-off, written in units of ULP = 2⁻⁵² (so one rounding is ≤ ULP/2),
never tuned to make a run pass; each bound is derived in a comment next to where it is used.
"""

from __future__ import annotations

import functools
import math
import operator
import pickle
from typing import NamedTuple

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from geodyn.metric import (
    FAST,
    INTERMEDIATE,
    SLOW,
    Custom,
    Interpolating,
    MetricLaw,
    Power,
    PowerSum,
    ThreeRegime,
    regime_of_exponent,
)

F64 = torch.float64
ULP = torch.finfo(F64).eps  # 2.22e-16; unit round-off u = ULP / 2
TINY = torch.finfo(F64).tiny
PROPS = settings(max_examples=100, deadline=None)
GRID_STEP = 10.0**0.005  # ratio between neighbours of the log grid of PowerSum._band_on_grid


def sum_rtol(n_terms: int) -> float:
    """Relative round-off of Σ_i c_i f_i(λ) over n positive terms, for comparing two evaluations.

    Each term: ≤ 2 roundings (the power / elementary function, the scaling); the sum: n − 1 additions of
    positive numbers. One evaluation is thus within (3n − 1)·u of the exact value; two evaluations differ
    by at most (3n − 1)·ULP. (3n + 1)·ULP leaves one more rounding for the final comparison.
    """
    return (3 * n_terms + 1) * ULP


def lam_tensor(logs: list[float]) -> torch.Tensor:
    return torch.tensor([10.0**t for t in logs], dtype=F64)


# --------------------------------------------------------------------------------------------------------
# strategies
# --------------------------------------------------------------------------------------------------------

coefs = st.floats(-10, 10).map(lambda u: 10.0**u)
coefs_or_zero = st.one_of(st.just(0.0), coefs)
# Subnormal exponents (a < 2.2e-308) are left out: c·λ^a·a then has no relative accuracy to test.
exponents = st.one_of(st.sampled_from([0.0, 0.5, 1.0, 2.0]), st.floats(0.0, 2.0, allow_subnormal=False))
# log10 λ in [-100, 100]: with coefficients in [1e-10, 1e10] and exponents ≤ 2 every term lies in
# [1e-210, 1e210], far from float64 under-/overflow.
log_lams = st.lists(st.floats(-100, 100), min_size=1, max_size=16)


def _custom_fn(c0: float, c1: float, c2: float, lam: torch.Tensor) -> torch.Tensor:
    """A non-power-law metric: nondecreasing, > 0 for λ > 0, constant term c0 (module level: picklable)."""
    return c0 + c1 * torch.log1p(lam) + c2 * torch.atan(lam)


def custom_law(c0: float, c1: float, c2: float) -> Custom:
    return Custom(functools.partial(_custom_fn, c0, c1, c2), name=f"custom({c0:g}, {c1:g}, {c2:g})")


def _power_sum_fn(terms: tuple[tuple[float, float], ...], lam: torch.Tensor) -> torch.Tensor:
    """Σ c λ^a written independently of geodyn.metric (for the autograd comparison)."""
    return sum((c * lam**a for c, a in terms), torch.zeros_like(lam))


class Case(NamedTuple):
    law: MetricLaw
    g0: float  # exact g(0): the sum of the constant terms
    n: int  # number of terms, for sum_rtol


@st.composite
def composed_laws(draw) -> Case:
    """A PowerSum built by composition: Σ c_i * Power(a_i) [+ constant]."""
    terms = draw(st.lists(st.tuples(coefs, exponents), min_size=1, max_size=4))
    law = functools.reduce(operator.add, (c * Power(a) for c, a in terms))
    const = draw(coefs_or_zero)
    if const:
        law = draw(st.sampled_from([law + const, const + law]))
    g0 = const + sum(c for c, a in terms if a == 0.0)
    return Case(law, g0, len(law.terms))


@st.composite
def laws(draw) -> Case:
    kind = draw(st.sampled_from(["power", "interpolating", "three", "sum", "custom"]))
    if kind == "power":
        a = draw(exponents)
        return Case(Power(a), 1.0 if a == 0.0 else 0.0, 1)
    if kind == "interpolating":
        eps = draw(coefs_or_zero)
        return Case(Interpolating(eps), eps, 2)
    if kind == "three":
        eps, zeta = draw(coefs_or_zero), draw(coefs_or_zero)
        return Case(ThreeRegime(eps, zeta), eps, 3)
    if kind == "sum":
        return draw(composed_laws())
    c0, c1, c2 = draw(coefs_or_zero), draw(coefs_or_zero), draw(coefs)
    return Case(custom_law(c0, c1, c2), c0, 3)


# --------------------------------------------------------------------------------------------------------
# 1. generic properties of every law
# --------------------------------------------------------------------------------------------------------


@PROPS
@given(case=laws(), logs=log_lams)
def test_g_positive_for_positive_lambda_and_constant_term_at_zero(case, logs):
    lam = lam_tensor(logs)
    g = case.law(lam)
    assert g.dtype == F64 and g.shape == lam.shape
    assert bool(torch.isfinite(g).all())
    assert bool((g > 0).all()), (case, lam[g <= 0])
    g0 = case.law(torch.zeros(3, dtype=F64))
    if case.g0 > 0:
        # Positive constant term ⇒ g(0) equals it (merging equal exponents adds coefficients: ≤ n roundings).
        assert bool((g0 > 0).all())
        torch.testing.assert_close(g0, torch.full_like(g0, case.g0), rtol=sum_rtol(case.n), atol=0)
    else:
        assert bool((g0 == 0).all()), (case, g0)


@PROPS
@given(case=laws(), logs=log_lams)
def test_g_nondecreasing(case, logs):
    lam = torch.cat([torch.zeros(1, dtype=F64), lam_tensor(sorted(logs))])
    lam = torch.cat([lam, lam * (1 + 4 * ULP)]).sort().values  # also neighbours a few ULP apart
    g = case.law(lam)
    # g_i ≤ g_{i+1} up to the round-off of two evaluations.
    assert bool((g[:-1] <= g[1:] * (1 + sum_rtol(case.n))).all()), (case, lam, g)


@PROPS
@given(
    case=laws(),
    pairs=st.lists(st.tuples(st.floats(-100, 100), st.floats(-1e6, 1e6)), min_size=1, max_size=16),
)
def test_inverse_and_precondition(case, pairs):
    lam = lam_tensor([t for t, _ in pairs])
    x = torch.tensor([f for _, f in pairs], dtype=F64)
    g = case.law(lam)
    # fl(1/g)·g = (1 + δ₁)(1 + δ₂): within 2u + u² < ULP + ULP² of 1.
    assert bool(((case.law.inverse(lam) * g - 1).abs() <= 2 * ULP).all())
    # precondition = x / g: one division (≤ u) on either side; TINY covers results that underflow.
    torch.testing.assert_close(case.law.precondition(lam, x), x / g, rtol=2 * ULP, atol=TINY)
    # It is a step direction: a positive g keeps the sign of the force.
    p = case.law.precondition(lam, x)
    assert bool(((torch.sign(p) == torch.sign(x)) | (p == 0)).all())


@PROPS
@given(
    case=laws(),
    chunks=st.lists(st.lists(st.one_of(st.none(), st.floats(-100, 100)), min_size=1), min_size=1, max_size=4),
    scalar=st.floats(-100, 100),
)
def test_apply_foreach_matches_call(case, chunks, scalar):
    lams = [torch.tensor([0.0 if t is None else 10.0**t for t in c], dtype=F64) for c in chunks]
    lams.append(torch.tensor(10.0**scalar, dtype=F64))  # a 0-dim tensor
    lams.append(lams[0].repeat(2, 1))  # a 2-D tensor
    before = [lam.clone() for lam in lams]
    out = case.law.apply_foreach(lams)
    assert len(out) == len(lams)
    for lam, old, got in zip(lams, before, out, strict=True):
        assert torch.equal(lam, old), "apply_foreach modified its input"
        assert got.data_ptr() != lam.data_ptr(), "apply_foreach must return new tensors"
        assert got.shape == lam.shape and got.dtype == F64
        # The fast path sums the same terms in another order (constants last): two evaluations.
        torch.testing.assert_close(got, case.law(lam), rtol=sum_rtol(case.n), atol=0)


LAWS_FOR_EMPTY = [
    Power(0),
    Power(0.5),
    Power(1),
    Power(1.5),
    Interpolating(1e-8),
    ThreeRegime(1e-8, 1.0),
    custom_law(1.0, 1.0, 1.0),
]


@pytest.mark.parametrize("law", LAWS_FOR_EMPTY, ids=repr)
def test_apply_foreach_empty_list(law):
    """An optimizer group whose parameters have no gradients asks for g of an empty list: answer []."""
    assert list(law.apply_foreach([])) == []


# --------------------------------------------------------------------------------------------------------
# 2. the local exponent α_eff = d log g / d log λ
# --------------------------------------------------------------------------------------------------------


def fd_exponent(law: MetricLaw, lam: torch.Tensor, h: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Central difference of log g in log λ, and its round-off bound.

    Round-off: log g± carry the relative error of g (≤ sum_rtol) plus one rounding of log (≤ u |log g|);
    the denominator log λ₊ − log λ₋ carries ≤ u (|log λ₊| + |log λ₋|), which multiplies α ≤ 2. Dividing by
    2h, and doubling for the final quotient and the evaluation of λ±, gives the bound returned.
    """
    lp, lm = lam * math.exp(h), lam * math.exp(-h)
    log_gp, log_gm = law(lp).log(), law(lm).log()
    num = log_gp - log_gm
    den = lp.log() - lm.log()
    n = len(law.terms) if isinstance(law, PowerSum) else 3
    err = 2 * (2 * sum_rtol(n) + ULP * (log_gp.abs() + log_gm.abs()) + 2 * ULP * (lp.log().abs() + lm.log().abs()))
    return num / den, err / (2 * h)


@PROPS
@given(a=exponents, logs=log_lams)
def test_power_local_exponent_is_alpha(a, logs):
    lam = lam_tensor(logs)
    law = Power(a)
    assert torch.equal(law.local_exponent(lam), torch.full_like(lam, a))
    assert torch.equal(law.local_exponent(torch.zeros(2, dtype=F64)), torch.full((2,), a, dtype=F64))
    # log g is exactly linear in log λ, so even a step h = 1 has no truncation error: only round-off.
    fd, err = fd_exponent(law, lam, 1.0)
    assert bool(((fd - a).abs() <= err).all()), (fd - a, err)
    # The generic closed form of PowerSum (a ratio of sums) agrees to a few roundings.
    generic = PowerSum([(1.0, a)]).local_exponent(lam)
    assert bool(((generic - a).abs() <= 4 * ULP * a).all())


@PROPS
@given(case=composed_laws(), logs=st.lists(st.floats(-30, 30), min_size=1, max_size=16))
def test_power_sum_local_exponent_closed_form(case, logs):
    law = case.law
    lam = lam_tensor(logs)
    alpha = law.local_exponent(lam)
    a_lo, a_hi = law.terms[0][1], law.terms[-1][1]
    assert bool(((alpha >= a_lo * (1 - 4 * ULP)) & (alpha <= a_hi * (1 + 4 * ULP))).all())

    # (a) finite difference. With f(t) = log g(e^t): f' = α_eff = E_w[a], f'' = Var_w[a], f''' = the third
    # central moment of the exponents under the weights w_i ∝ c_i λ^{a_i}, so |f'''| ≤ R³ with
    # R = a_hi − a_lo, and the central-difference truncation error is ≤ R³ h² / 6.
    h = 1e-4
    fd, err = fd_exponent(law, lam, h)
    tol = (a_hi - a_lo) ** 3 * h**2 / 6 + err
    assert bool(((fd - alpha).abs() <= tol).all()), ((fd - alpha).abs().max(), tol)

    # (b) automatic differentiation of the same function (MetricLaw.local_exponent via Custom). Closed form
    # W/G: W and G each within (n + 2)·u, so α within (2n + 4)·u·α; autograd x·g'/g: each term of g' has
    # ≤ 4 roundings (pow, ·a, ·c, ·x) plus n − 1 additions, so within (2n + 8)·u·α. α ≤ 2.
    tol_ad = 2 * (2 * case.n + 8) * ULP
    customs = [Custom(functools.partial(_power_sum_fn, law.terms))]
    if not law.is_flat:  # Custom(flat law) has no autograd graph: see test_custom_constant_law_...
        customs.append(Custom(law))
    for custom in customs:
        assert bool(((custom.local_exponent(lam) - alpha).abs() <= tol_ad).all())


@pytest.mark.parametrize(
    "law",
    [
        Custom(lambda lam: torch.full_like(lam, 2.0), name="const"),
        Custom(Power(0), name="Power(0)"),
        Custom(3.0 * Power(0), name="3*Power(0)"),
    ],
    ids=repr,
)
def test_custom_constant_law_local_exponent_is_zero(law):
    """A Custom law that ignores λ (SGD, α = 0) has α_eff = 0 and is slow everywhere."""
    lam = torch.logspace(-5, 5, 11, dtype=F64)
    assert torch.equal(law.local_exponent(lam), torch.zeros_like(lam))
    assert bool((law.regime(lam) == SLOW).all())


# --------------------------------------------------------------------------------------------------------
# 3. ThreeRegime at the crossover λ* = ε/ζ
# --------------------------------------------------------------------------------------------------------


@PROPS
@given(log_eps=st.floats(-10, 2), log_zeta=st.floats(-10, 2))
def test_three_regime_crossover(log_eps, log_zeta):
    eps, zeta = 10.0**log_eps, 10.0**log_zeta
    law = ThreeRegime(eps, zeta)
    assert law.crossover == eps / zeta
    lam_star = torch.tensor([eps / zeta], dtype=F64)

    # α_eff(λ*) = (½s + ζλ*)/(ε + s + ζλ*), s = √λ*: with ζλ* = ε(1 + δ), |δ| ≤ 2u, the exact value of this
    # expression is within |δ|/2 ≤ u of ½; numerator and denominator carry ≤ 3 roundings each and the
    # quotient one more, so |α − ½| ≤ u + 7u·½ < 8u. 16·ULP (= 32u) also covers autograd's extra
    # roundings in g' (≤ 4 per term, see test_power_sum_local_exponent_closed_form).
    assert abs(law.local_exponent(lam_star).item() - 0.5) <= 16 * ULP
    assert abs(Custom(law).local_exponent(lam_star).item() - 0.5) <= 16 * ULP

    # The √λ share at λ* is 1/(1 + 2√(εζ)): share = s/(2ε + s) up to δ; ≤ 6 roundings on either side.
    share_star = law.intermediate_share(lam_star).item()
    expected = 1.0 / (1.0 + 2.0 * math.sqrt(eps * zeta))
    assert abs(share_star - expected) <= 8 * ULP * expected

    # ... and it is the maximum share over λ: on a log grid of ±12 decades around λ* nothing exceeds it
    # beyond the round-off of two share evaluations (≤ 6 roundings each).
    grid = lam_star * torch.logspace(-12, 12, 2401, dtype=F64)
    shares = law.intermediate_share(grid)
    assert shares.max().item() <= share_star * (1 + 8 * ULP)
    # The share is unimodal in log λ: strictly lower one decade away on either side.
    assert law.intermediate_share(lam_star * 10).item() < share_star
    assert law.intermediate_share(lam_star / 10).item() < share_star


# --------------------------------------------------------------------------------------------------------
# 4. the intermediate band (6.9)
# --------------------------------------------------------------------------------------------------------


def band_threshold(h: float) -> float:
    """The largest εζ for which a band with share ≥ h exists: ((1 − h)/(2h))²."""
    return ((1.0 - h) / (2.0 * h)) ** 2


@PROPS
@given(h=st.floats(0.01, 0.99), log_eps=st.floats(-10, 2), log_gap=st.floats(-8, 1), below=st.booleans())
def test_band_exists_iff_eps_zeta_below_threshold(h, log_eps, log_gap, below):
    # εζ = T·10^{∓m}, m ≥ 1e-8: relative distance ≥ 2e-8 from the threshold T, far above the few-ULP
    # round-off of εζ and of the discriminant (1−h)² − 4h²εζ.
    m = 10.0**log_gap
    eps = 10.0**log_eps
    product = band_threshold(h) * 10.0 ** (-m if below else m)
    law = ThreeRegime(eps, product / eps)
    band = law.band(share=h)
    lam_star = torch.tensor([law.crossover], dtype=F64)
    max_share = law.intermediate_share(lam_star).item()
    assert (band is not None) == below
    assert (band is not None) == (max_share >= h)
    if band is None:
        return
    lo, hi = band
    assert 0.0 < lo <= law.crossover <= hi < math.inf
    # Share at the endpoints: share − h = −Q(s)/g(s) with Q(s) = hζs² − (1−h)s + hε. Round-off in the
    # discriminant, of absolute size ≤ 4u(1−h)², moves Q(s) by ≤ 3u(1−h)²/(hζ) even at a double root, so
    # |share − h| ≤ 6u·h(1−h) ≤ 2u; evaluating the share (√, two additions, a division) and squaring s to λ
    # add ≤ 6u. Together ≤ 8u; 8·ULP = 16u.
    shares = law.intermediate_share(torch.tensor([lo, hi], dtype=F64))
    assert bool(((shares - h).abs() <= 8 * ULP).all()), shares - h
    # Just outside the band the share is below h, just inside above: the band is maximal.
    outside = law.intermediate_share(torch.tensor([lo * (1 - 1e-6), hi * (1 + 1e-6)], dtype=F64))
    assert bool((outside < h).all())


@PROPS
@given(h=st.floats(0.05, 0.95), log_eps=st.floats(-10, 2), log_product=st.floats(-14, -7))
def test_band_tends_to_eps2_zeta_minus2(h, log_eps, log_product):
    eps = 10.0**log_eps
    zeta = 10.0**log_product / eps
    lo, hi = ThreeRegime(eps, zeta).band(share=h)
    lo_lim = (h / (1 - h)) ** 2 * eps**2
    hi_lim = ((1 - h) / h) ** 2 / zeta**2
    # With x = 4h²εζ/(1−h)² the exact roots are s_lo = (hε/(1−h))·2/(1 + √(1−x)) and
    # s_hi = ((1−h)/(hζ))·(1 + √(1−x))/2, so λ_lo/lo_lim − 1 ∈ [0, 3x] and 1 − λ_hi/hi_lim ∈ [0, x] for x ≤ 1;
    # each side also carries ≤ 8 roundings of the formulas.
    x = 4 * h**2 * eps * zeta / (1 - h) ** 2
    assert x < 1e-3  # the limit regime εζ → 0
    assert abs(lo / lo_lim - 1) <= 3 * x + 8 * ULP
    assert abs(hi / hi_lim - 1) <= 3 * x + 8 * ULP


@pytest.mark.parametrize("eps", [1e-8, 1e-4, 1e-2, 1.0, 10.0])
def test_band_spec_anchor_h_09(eps):
    """Spec §5: a band with share ≥ 0.9 exists for εζ = 10⁻³, not for εζ = 10⁻² ("εζ ≲ 10⁻²")."""
    assert band_threshold(0.9) == pytest.approx(3.0864e-3, rel=1e-4)
    assert ThreeRegime(eps, 1e-3 / eps).band(share=0.9) is not None
    assert ThreeRegime(eps, 1e-2 / eps).band(share=0.9) is None


@PROPS
@given(h=st.floats(0.01, 0.99), eps=coefs)
def test_band_of_interpolating_is_half_line(h, eps):
    lo, hi = Interpolating(eps).band(share=h)
    assert hi == math.inf
    # lo = (hε/((1−h)))²: ≤ 5 roundings.
    assert abs(lo / ((h / (1 - h)) ** 2 * eps**2) - 1) <= 8 * ULP
    share = Interpolating(eps).intermediate_share(torch.tensor([lo], dtype=F64)).item()
    assert abs(share - h) <= 8 * ULP


def test_band_of_pure_powers():
    assert Power(0.5).band() == (0.0, math.inf)
    assert Power(0).band() is None
    assert Power(1).band() is None
    assert Power(2).band() is None
    assert (3 * Power(0) + 2 * Power(1)).band() is None


def _reference_band(eps: float, a: float, zeta: float, h: float) -> tuple[float, float] | None:
    """Band of ε + λ^a + ζλ (a ∈ (¼, ¾)) by bisection in log λ, independent of geodyn.metric.

    1/share = ελ^{−a} + 1 + ζλ^{1−a} is convex in log λ with its minimum at λ_m = aε/((1−a)ζ).
    """

    def share(t: float) -> float:
        lam = 10.0**t
        return lam**a / (eps + lam**a + zeta * lam)

    t_m = math.log10(a * eps / ((1 - a) * zeta))
    if share(t_m) < h:
        return None

    def crossing(inside: float, outside: float) -> float:
        for _ in range(100):
            mid = 0.5 * (inside + outside)
            inside, outside = (mid, outside) if share(mid) >= h else (inside, mid)
        return inside

    return 10.0 ** crossing(t_m, t_m - 80), 10.0 ** crossing(t_m, t_m + 80)


@pytest.mark.parametrize(
    "eps, a, zeta, h",
    [
        (1e-3, 0.4, 1e-2, 0.9),
        (1e-8, 0.6, 1.0, 0.9),
        (1e-4, 0.5 + 1e-9, 1.0, 0.9),  # the band of ThreeRegime(1e-4, 1) up to 1e-9 in the exponent
        (1e-2, 0.3, 1e-3, 0.5),
        (1e-3, 0.4, 10.0, 0.9),  # no band
    ],
)
def test_band_grid_fallback(eps, a, zeta, h):
    law = PowerSum([(eps, 0.0), (1.0, a), (zeta, 1.0)])
    got = law.band(share=h)
    ref = _reference_band(eps, a, zeta, h)
    assert (got is None) == (ref is None)
    if ref is None:
        return
    # The grid keeps its first and last point inside the band: lo within one grid step above the true lo,
    # hi within one step below the true hi (1e-12: the bisection's own resolution and 10**t round-off).
    (lo, hi), (ref_lo, ref_hi) = got, ref
    assert ref_lo * (1 - 1e-12) <= lo <= ref_lo * GRID_STEP * (1 + 1e-12)
    assert ref_hi / GRID_STEP * (1 - 1e-12) <= hi <= ref_hi * (1 + 1e-12)
    if a == 0.5 + 1e-9:
        exact_lo, exact_hi = ThreeRegime(eps, zeta).band(share=h)
        assert exact_lo <= lo <= exact_lo * GRID_STEP * (1 + 1e-6)
        assert exact_hi / GRID_STEP * (1 - 1e-6) <= hi <= exact_hi


# --------------------------------------------------------------------------------------------------------
# 5. regimes
# --------------------------------------------------------------------------------------------------------


@PROPS
@given(
    log_eps=st.floats(-10, 2),
    log_product=st.floats(-12, -0.01),
    u=st.floats(0.01, 20),
    w=st.floats(0.02, 0.98),
)
def test_three_regime_regimes_when_eps_zeta_small(log_eps, log_product, u, w):
    eps = 10.0**log_eps
    zeta = 10.0**log_product / eps
    law = ThreeRegime(eps, zeta)
    slow = eps**2 * 10.0**-u  # below ε²
    mid = eps ** (2 * (1 - w)) * zeta ** (-2 * w)  # a fraction w of the way from ε² to ζ⁻² in log λ
    fast = zeta**-2 * 10.0**u  # above ζ⁻²
    # Every point is ≥ 0.01 decade (2.3 %) — or 2w·|log εζ| ≥ 4e-4 decade — from a boundary: far
    # above round-off.
    got = law.regime(torch.tensor([0.0, slow, mid, fast], dtype=F64))
    assert got.tolist() == [SLOW, SLOW, INTERMEDIATE, FAST]
    grid = law.regime(law.crossover * torch.logspace(-40, 40, 801, dtype=F64))
    assert bool((grid[1:] >= grid[:-1]).all()), "regime must go slow → intermediate → fast as λ grows"


@PROPS
@given(log_eps=st.floats(-10, 2), log_product=st.floats(0.01, 12))
def test_three_regime_no_intermediate_when_eps_zeta_large(log_eps, log_product):
    eps = 10.0**log_eps
    zeta = 10.0**log_product / eps
    law = ThreeRegime(eps, zeta)
    special = torch.tensor([0.0, eps**2, zeta**-2, law.crossover], dtype=F64)
    lam = torch.cat([special, law.crossover * torch.logspace(-40, 40, 1601, dtype=F64)])
    got = law.regime(lam)
    assert not bool((got == INTERMEDIATE).any())
    assert set(got.tolist()) == {SLOW, FAST}


@pytest.mark.parametrize("alpha, expected", [(0.0, SLOW), (0.5, INTERMEDIATE), (1.0, FAST), (2.0, FAST)])
def test_pure_power_regime_constant(alpha, expected):
    lam = torch.cat([torch.zeros(1, dtype=F64), torch.logspace(-100, 100, 401, dtype=F64)])
    assert bool((Power(alpha).regime(lam) == expected).all())
    assert regime_of_exponent(alpha) == expected


@PROPS
@given(eps=coefs, zeta=coefs, logs=st.lists(st.floats(-30, 30), min_size=1, max_size=32))
def test_custom_regime_follows_local_exponent(eps, zeta, logs):
    law = Custom(lambda lam: eps + lam.sqrt() + zeta * lam, name="three-regime-by-hand")
    # Drawn points, plus a grid through the whole slow → fast transition around ε/ζ, where α_eff sweeps
    # (0, 1) and so crosses both cut points.
    lam = torch.cat([lam_tensor(logs), eps / zeta * torch.logspace(-25, 25, 501, dtype=F64)])
    s = lam.sqrt()
    alpha = (0.5 * s + zeta * lam) / (eps + s + zeta * lam)
    expected = (alpha >= 0.25).long() + (alpha >= 0.75).long()
    # α from the formula and from autograd differ by ≤ ~30u (see test_power_sum_local_exponent_closed_form):
    # compare away from the cut points ¼ and ¾.
    clear = ((alpha - 0.25).abs() > 64 * ULP) & ((alpha - 0.75).abs() > 64 * ULP)
    assert torch.equal(law.regime(lam)[clear], expected[clear])
    assert torch.equal(law.regime(lam), regime_of_exponent(law.local_exponent(lam)))
    assert set(law.regime(lam).tolist()) == {SLOW, INTERMEDIATE, FAST}


@pytest.mark.parametrize(
    "alpha, expected",
    [
        (0.0, SLOW),
        (0.2, SLOW),
        (0.3, INTERMEDIATE),
        (0.5, INTERMEDIATE),
        (0.7, INTERMEDIATE),
        (0.8, FAST),
        (1.0, FAST),
        (2.0, FAST),
    ],
)
def test_regime_of_exponent_nearest_class(alpha, expected):
    """Nearest of α = 0, ½, 1 (cut points ¼ and ¾), for floats and tensors alike."""
    assert regime_of_exponent(alpha) == expected
    assert regime_of_exponent(torch.tensor([alpha], dtype=F64)).tolist() == [expected]


# --------------------------------------------------------------------------------------------------------
# 6. composition, flatness, pickling
# --------------------------------------------------------------------------------------------------------


def test_composition_spec_examples():
    three = 1e-3 * Power(0) + Power(0.5) + 10 * Power(1)
    assert three == ThreeRegime(1e-3, 10)
    assert hash(three) == hash(ThreeRegime(1e-3, 10))
    assert three != ThreeRegime(1e-3, 11)
    assert Interpolating(1e-3) == 1e-3 * Power(0) + Power(0.5)
    assert Interpolating(1e-3) != ThreeRegime(1e-3, 10)
    assert Power(0.5) + 1e-3 == Interpolating(1e-3) == 1e-3 + Power(0.5)
    assert sum([1e-3 * Power(0), Power(0.5)]) == Interpolating(1e-3)
    assert 2 * Power(1) == Power(1) + Power(1) == PowerSum([(2.0, 1.0)])


@PROPS
@given(eps=coefs, zeta=coefs, logs=log_lams)
def test_composition_equals_named_laws(eps, zeta, logs):
    three = eps * Power(0) + Power(0.5) + zeta * Power(1)
    assert three == ThreeRegime(eps, zeta)
    assert Interpolating(eps) == eps * Power(0) + Power(0.5)
    lam = lam_tensor(logs)
    assert torch.equal(three(lam), ThreeRegime(eps, zeta)(lam))


@PROPS
@given(case=composed_laws())
def test_is_flat_only_for_constants(case):
    flat = all(a == 0.0 for _, a in case.law.terms)
    assert case.law.is_flat == flat
    lam = torch.logspace(-5, 5, 11, dtype=F64)
    if flat:
        assert bool((case.law(lam) == case.law(lam)[0]).all())


def test_is_flat_named_laws():
    assert Power(0).is_flat and (3 * Power(0)).is_flat and (Power(0) + 2.0).is_flat
    for law in [
        Power(0.5),
        Power(1),
        Power(1e-3),
        Interpolating(1e-8),
        Interpolating(0.0),
        ThreeRegime(1.0, 0.0),
        Power(0) + Power(2),
        custom_law(1.0, 0.0, 0.0),
    ]:
        assert not law.is_flat, law


@PROPS
@given(case=laws(), logs=log_lams)
def test_pickle_round_trip(case, logs):
    law = case.law
    back = pickle.loads(pickle.dumps(law))
    assert type(back) is type(law)
    lam = lam_tensor(logs)
    assert torch.equal(back(lam), law(lam))
    if isinstance(law, PowerSum):
        assert back == law and hash(back) == hash(law)
        assert repr(back) == repr(law)
    for attr in ("alpha", "eps", "zeta"):
        if hasattr(law, attr):
            assert getattr(back, attr) == getattr(law, attr)


# --------------------------------------------------------------------------------------------------------
# 7. bad parameters
# --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Interpolating(-1e-8), r"eps.*-1e-08"),
        (lambda: ThreeRegime(-0.5, 1.0), r"eps.*-0\.5"),
        (lambda: Interpolating(float("nan")), r"eps.*nan"),
        (lambda: ThreeRegime(1e-8, float("inf")), r"zeta.*inf"),
        (lambda: ThreeRegime(1e-8, -2.0), r"zeta.*-2\.0"),
        (lambda: Power(-0.1), r"alpha.*-0\.1"),
        (lambda: Power(2.5), r"alpha.*2\.5"),
        (lambda: Power(float("nan")), r"alpha.*nan"),
        (lambda: PowerSum([(1.0, 3.0)]), r"alpha.*3\.0"),
        (lambda: PowerSum([(-1.0, 0.5)]), r"coefficient.*-1\.0"),
        (lambda: PowerSum([(0.0, 0.0), (0.0, 0.5)]), r"positive coefficient"),
        (lambda: PowerSum([]), r"positive coefficient"),
        (lambda: Power(1) * -2.0, r"-2\.0"),
        (lambda: Power(1) + float("nan"), r"nan"),
        (lambda: ThreeRegime().band(share=1.5), r"share.*1\.5"),
        (lambda: ThreeRegime().band(share=0.0), r"share.*0\.0"),
        (lambda: Interpolating().band(share=float("nan")), r"share.*nan"),
        (lambda: Custom(3.0), r"callable.*3\.0"),
    ],
)
def test_bad_parameters_raise(make, match):
    with pytest.raises(ValueError, match=match):
        make()
