"""Symbolic proofs (sympy) of the quantum-regime identities for a general q-dependent 1-D metric g(q):

* (3.7)–(3.9) with ψ = √p e^{−iθ/ħ} (3.10) and ħ, m of (3.12)–(3.13) give (3.11) — for variant A exactly; what
  variant B satisfies and what it does not; what the opposite phase sign gives;
* ħ, m are the *unique* constants that make the equivalence work;
* (3.6) and (3.9) together: at βγ = 1, √p = e^{−H̄/(2γ)} has V + Q = 0 for every H̄ and g(q);
* (5.3) vs (3.9) at g = κ and (5.4) at g = κ^{1/2}.
"""

from __future__ import annotations

import sympy as sp

from geodyn.quantum import mass, planck_constant

q, t = sp.symbols("q t", real=True)
gam, beta = sp.symbols("gamma beta", positive=True)
g = sp.Function("g")(q)
R = sp.Function("R")(q, t)  # √p
theta = sp.Function("theta")(q, t)
V = sp.Function("V")(q)


def lb(f):
    """Laplace–Beltrami in 1-D: (1/√g) ∂(√g g⁻¹ ∂f)."""
    return sp.diff(sp.sqrt(g) * sp.diff(f, q) / g, q) / sp.sqrt(g)


def madelung_rates(gk=gam, gc=gam, cq=2 * gam**2 / beta, s_pot=1):
    """(∂_t R, ∂_t θ) from (3.7)–(3.9): ∂_t p = gc ∇(p g⁻¹∂θ), ∂_t θ = (gk/2) g⁻¹θ'² + s_pot (V + Q),
    Q = −cq ΔR/R (the paper's equations: gk = gc = γ, cq = 2γ²/β, s_pot = 1)."""
    dp = gc * sp.diff(sp.sqrt(g) * R**2 * sp.diff(theta, q) / g, q) / sp.sqrt(g)
    q_pot = -cq * lb(R) / R
    dth = gk / 2 * sp.diff(theta, q) ** 2 / g + s_pot * (V + q_pot)
    return dp / (2 * R), dth


def real_jets(expr):
    """Replace every derivative and function value by a real symbol (positive for R and g), so that the real and
    imaginary parts of the expression can be separated; returns (expr, symbols)."""
    expr = sp.expand(expr)
    derivs = list(expr.atoms(sp.Derivative))
    reps = {d: sp.Symbol(f"d{i}", real=True) for i, d in enumerate(derivs)}
    expr = expr.xreplace(reps)
    funcs = {f for f in expr.atoms(sp.core.function.AppliedUndef)}
    fr = {}
    for f in funcs:
        positive = f.func.__name__ in ("R", "g")
        fr[f] = (
            sp.Symbol(f"f_{f.func.__name__}", positive=True)
            if positive
            else sp.Symbol(f"f_{f.func.__name__}", real=True)
        )
    return expr.xreplace(fr), list(reps.values()) + list(fr.values())


def schrodinger_residual(hbar, m, sign=-1, **rates):
    """[iħ∂_tψ − (−(ħ²/2m)∇(g⁻¹∂ψ) + Vψ)] / (phase), with ∂_t of R and θ from the Madelung equations; split into
    (real, imaginary) parts."""
    phase = sp.exp(sign * sp.I * theta / hbar)
    psi = R * phase
    d_r, d_th = madelung_rates(**rates)
    dpsi = (d_r + sign * sp.I * R * d_th / hbar) * phase
    res = sp.I * hbar * dpsi - (-(hbar**2) / (2 * m) * lb(psi) + V * psi)
    expr, _ = real_jets(sp.expand(res / phase))
    re, im = expr.as_real_imag()
    return sp.simplify(re), sp.simplify(im)


def hbar_m(variant):
    """ħ, m of (3.12)–(3.13) as sympy expressions, from the package's own functions (checked at a sample point)."""
    h = 2 * sp.sqrt(gam / beta) if variant == "A" else sp.sqrt(2 * gam / beta)
    m = 1 / gam if variant == "A" else 1 / (2 * gam)
    pt = {gam: sp.Rational(3, 10), beta: sp.Rational(7, 2)}
    assert abs(float(h.subs(pt)) - planck_constant(0.3, 3.5, variant)) < 1e-15
    assert abs(float(m.subs(pt)) - mass(0.3, variant)) < 1e-15
    return h, m


def test_variant_a_gives_schrodinger_exactly_for_q_dependent_metric():
    h, m = hbar_m("A")
    re, im = schrodinger_residual(h, m)
    assert re == 0 and im == 0


def test_opposite_phase_sign_needs_the_opposite_flow():
    """ψ = √p e^{+iθ/ħ} with (3.7)–(3.8) as printed does not give (3.11); it does with every term of (3.7) and (3.8)
    negated (∂_t p = −γ∇(p g⁻¹∂θ), ∂_t θ = −(γ/2)g⁻¹θ'² − V − Q, i.e. θ → −θ). So the minus sign of (3.10) is the
    one that matches the paper's (3.7)–(3.8)."""
    h, m = hbar_m("A")
    re, im = schrodinger_residual(h, m, sign=+1)
    assert not (re == 0 and im == 0)
    re2, im2 = schrodinger_residual(h, m, sign=+1, gk=-gam, gc=-gam, s_pot=-1)
    assert re2 == 0 and im2 == 0


def test_variant_b_what_holds_and_what_does_not():
    h, m = hbar_m("B")
    re, im = schrodinger_residual(h, m)
    assert not (re == 0 and im == 0), "variant B must not reproduce (3.7)–(3.9) with the paper's γ"
    # what holds: the quantum-potential coefficient ħ²/(2m) = 2γ²/β (same as A) and ħ² ∝ γ/β
    assert sp.simplify(h**2 / (2 * m) - 2 * gam**2 / beta) == 0
    assert sp.simplify(sp.diff(h**2 * beta / gam, gam)) == 0 and sp.simplify(sp.diff(h**2 * beta / gam, beta)) == 0
    # the exact statement: B's ψ obeys (3.11) iff the kinetic and continuity terms carry 2γ (1/(2m) = γ, 1/m = 2γ)
    re_b, im_b = schrodinger_residual(h, m, gk=2 * gam, gc=2 * gam)
    assert re_b == 0 and im_b == 0
    # ħ/m, the one combination of the free dynamics: A gives 2γ^{3/2}/√β, B √2 times that
    ha, ma = hbar_m("A")
    assert sp.simplify((h / m) / (ha / ma) - sp.sqrt(2)) == 0


def test_variant_a_is_the_unique_solution():
    """Unknown ħ, m > 0: requiring the residual to vanish for all p, θ, g, V forces (3.12)–(3.13) variant A."""
    hb, mm = sp.symbols("hbar m", positive=True)
    phase = sp.exp(-sp.I * theta / hb)
    psi = R * phase
    d_r, d_th = madelung_rates()
    res = sp.I * hb * (d_r - sp.I * R * d_th / hb) * phase - (-(hb**2) / (2 * mm) * lb(psi) + V * psi)
    expr, jets = real_jets(sp.expand(res / phase))
    re, im = expr.as_real_imag()
    eqs = []
    for part in (re, im):
        num = sp.numer(sp.together(sp.expand(part)))
        eqs += sp.Poly(sp.expand(num), *jets).coeffs()
    sol = sp.solve(eqs, [hb, mm], dict=True)
    assert len(sol) == 1
    assert sp.simplify(sol[0][hb] - 2 * sp.sqrt(gam / beta)) == 0
    assert sp.simplify(sol[0][mm] - 1 / gam) == 0


def test_hbar_constant_iff_gamma_proportional_to_beta():
    """Along schedules γ = c β^a, ħ (either variant) is constant iff a = 1 (3.12)."""
    c, a, b = sp.symbols("c a b", positive=True)
    for variant in ("A", "B"):
        h, _ = hbar_m(variant)
        along = h.subs(gam, c * b**a).subs(beta, b)
        slope = sp.simplify(sp.diff(sp.log(along), b) * b)  # d log ħ / d log β
        assert sp.simplify(slope - (a - 1) / 2) == 0


def test_effective_and_quantum_potential_cancel_on_exp_minus_loss_over_2gamma():
    """(3.6) + (3.9): for R = √p = e^{−cH̄}, V + Q ≡ 0 for all H̄ and g(q) iff c = 1/(2γ) and βγ = 1 — an exact
    zero-energy (nodeless, so ground) state of (3.11) used by the numerical tests."""
    hbar_fn = sp.Function("H")(q)
    cc = sp.symbols("c", positive=True)
    r = sp.exp(-cc * hbar_fn)
    v = gam / 2 * sp.diff(hbar_fn, q) ** 2 / g - gam / beta * lb(hbar_fn)
    qp = -2 * gam**2 / beta * lb(r) / r
    total = sp.simplify(sp.expand(v + qp))
    expr, jets = real_jets(total)
    num = sp.numer(sp.together(expr))
    eqs = sp.Poly(sp.expand(num), *jets).coeffs()
    sol = sp.solve(eqs, [cc, beta], dict=True)
    assert sol == [{cc: 1 / (2 * gam), beta: 1 / gam}]


def test_neural_potential_identities_symbolically():
    """(5.3) with a plain divergence: at g = κ^{1/2} it is the flat form (5.4); at g = κ it differs from (3.9) by
    (2γ²/β)(1/√p) g⁻¹ (∂ log √g) ∂√p (zero iff g is constant)."""
    kappa = sp.Function("kappa", positive=True)(q)
    r = sp.Function("R", positive=True)(q)
    c = 2 * gam**2 / beta

    def q_kappa(gm):
        return -c * sp.diff(kappa / gm**2 * sp.diff(r, q), q) / r

    flat = -c * sp.diff(r, q, 2) / r
    assert sp.simplify(q_kappa(sp.sqrt(kappa)) - flat) == 0
    q39 = -c * sp.diff(sp.sqrt(kappa) * sp.diff(r, q) / kappa, q) / sp.sqrt(kappa) / r
    diff = sp.simplify(q_kappa(kappa) - q39)
    expected = c / r / kappa * sp.diff(sp.log(sp.sqrt(kappa)), q) * sp.diff(r, q)
    assert sp.simplify(diff - expected) == 0
    assert diff != 0
