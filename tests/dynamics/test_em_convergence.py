"""Euler–Maruyama for the SDE of (2.7): strong order ½ and weak order 1, by nested step refinement.

The model is chosen so that the SDE is linear with multiplicative noise — α = 0 (g = I), H̄ = a q²/(2γ),
κ(q) = (b + c q)²/γ² — hence D = (b + cq)²/2, the Itô drift ∂_q D = c(b + cq) (by autograd), and

    dX = (cb + (c² − a) X) dt + |b + cX| dW.

Levels k use dt_k = T/2^k on one Brownian path (coarse increments are sums of fine ones). For such a linear SDE
the joint second moments of (X_{dt}, X_{dt/2}) under the two EM recursions obey an exact linear map (computed
below with Gauss–Hermite quadrature, exact for these polynomial integrands), so both the strong error
E(X_{dt} − X_{dt/2})² and the weak difference E X²_{dt} − E X²_{dt/2} of the *scheme* are known exactly at every
level. The walkers are checked against them within Monte-Carlo error, and the orders fitted from the walkers
against ½ (strong, RMS) and 1 (weak). |b + cX| = b + cX except on paths reaching X < −b/c = −3.3, a 4.7σ event
(probability < 2e-6) whose effect is far below the Monte-Carlo error.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from dynamics_stats import Z, fitted_order

from geodyn.dynamics import EulerMaruyama, LangevinEnsemble
from geodyn.metric import Power

F64 = torch.float64
A, B, C, GAMMA, T, X0 = 1.0, 1.0, 0.3, 0.5, 1.0, 0.0
LEVELS = list(range(3, 9))  # differences between dt = T/2^k and T/2^(k+1), k = 3..8 (8 … 512 steps)


def mu(x):
    return C * B + (C * C - A) * x


def sigma(x):
    return B + C * x


def monomials(xc, xf):
    return np.array([np.ones_like(xc), xc, xf, xc * xc, xc * xf, xf * xf], dtype=np.float64)


def coarse_step_map(h: float) -> np.ndarray:
    """6×6 matrix T with E[m(X'_c, X'_f)] = T m(X_c, X_f), m = (1, x_c, x_f, x_c², x_c x_f, x_f²), for one coarse EM
    step 2h and two fine EM steps h on the same increments W1, W2 ~ N(0, h). The integrand is a polynomial of
    degree ≤ 2 in each of W1, W2, so 3-point Gauss–Hermite is exact; the map is found by evaluating at six
    points unisolvent for quadratics in (x_c, x_f)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(3)
    weights = weights / weights.sum()
    points = np.array([(0, 0), (1, 0), (0, 1), (2, 0), (1, 1), (0, 2)], dtype=np.float64)
    images = np.zeros((6, 6))
    for p, (xc, xf) in enumerate(points):
        for z1, w1 in zip(nodes, weights, strict=True):
            for z2, w2 in zip(nodes, weights, strict=True):
                dw1, dw2 = math.sqrt(h) * z1, math.sqrt(h) * z2
                c1 = xc + mu(xc) * 2 * h + sigma(xc) * (dw1 + dw2)
                f1 = xf + mu(xf) * h + sigma(xf) * dw1
                f2 = f1 + mu(f1) * h + sigma(f1) * dw2
                images[p] += w1 * w2 * monomials(c1, f2)
    return np.linalg.solve(monomials(points[:, 0], points[:, 1]).T, images).T


def exact_level_errors() -> tuple[np.ndarray, np.ndarray]:
    """(E(X_dt − X_dt/2)², E X²_dt − E X²_dt/2) at T for each level, exactly (no Monte Carlo)."""
    strong, weak = [], []
    for k in LEVELS:
        step = coarse_step_map(T / 2 ** (k + 1))
        m = monomials(np.float64(X0), np.float64(X0))
        for _ in range(2**k):
            m = step @ m
        strong.append(m[3] - 2 * m[4] + m[5])
        weak.append(m[3] - m[5])
    return np.array(strong), np.array(weak)


def test_euler_maruyama_strong_half_weak_one():
    ens = LangevinEnsemble(
        lambda q: A * q[:, 0] ** 2 / (2 * GAMMA),
        metric=Power(0),
        kappa=lambda q: (B + C * q) ** 2 / GAMMA**2,
        gamma=GAMMA,
    )
    m, finest = 10000, LEVELS[-1] + 1
    noise = {finest: torch.randn(2**finest, m, 1, dtype=F64, generator=torch.Generator().manual_seed(70))}
    for k in range(finest - 1, LEVELS[0] - 1, -1):  # dW_coarse = dW_1 + dW_2  ⇔  z_coarse = (z_1 + z_2)/√2
        noise[k] = (noise[k + 1][0::2] + noise[k + 1][1::2]) / math.sqrt(2)
    x = {
        k: ens.simulate(torch.full((m, 1), X0, dtype=F64), 2**k, EulerMaruyama(T / 2**k), noise=noise[k]).q[:, 0]
        for k in noise
    }
    exact_strong, exact_weak = exact_level_errors()
    strong, strong_se, weak, weak_se = [], [], [], []
    for k in LEVELS:
        d2 = (x[k] - x[k + 1]) ** 2
        dw = x[k] ** 2 - x[k + 1] ** 2
        strong.append(d2.mean().item())
        strong_se.append(d2.std().item() / math.sqrt(m))
        weak.append(dw.mean().item())
        weak_se.append(dw.std().item() / math.sqrt(m))
    strong, strong_se, weak, weak_se = map(np.array, (strong, strong_se, weak, weak_se))
    # 1. the walkers are the EM scheme: every level agrees with the exact moments within Monte-Carlo error
    #    (m i.i.d. paths; the mean of m squared differences is Gaussian to O(m^-1/2)).
    assert (np.abs(strong - exact_strong) < Z * strong_se).all(), (strong, exact_strong, strong_se)
    assert (np.abs(weak - exact_weak) < Z * weak_se).all(), (weak, exact_weak, weak_se)
    h = T / 2.0 ** np.array(LEVELS)
    # 2. orders from the walkers (weighted least squares on the log errors; RMS error for the strong order,
    #    whose log has standard error ½·se/mean). The tolerance is the fit's Monte-Carlo standard error times Z
    #    plus the deterministic pre-asymptotic offset, i.e. the same fit on the exact values minus the theory.
    #    Levels are weighted as independent: they share paths, but their leading error terms are sums of products
    #    of distinct fine increments at different levels, which are uncorrelated.
    p_strong, se_strong = fitted_order(h, np.sqrt(strong), 0.5 * strong_se / strong * np.sqrt(strong))
    p_weak, se_weak = fitted_order(h, weak, weak_se)
    p_strong_exact, _ = fitted_order(h, np.sqrt(exact_strong))
    p_weak_exact, _ = fitted_order(h, exact_weak)
    assert abs(p_strong - 0.5) < Z * se_strong + abs(p_strong_exact - 0.5), (p_strong, se_strong, p_strong_exact)
    assert abs(p_weak - 1.0) < Z * se_weak + abs(p_weak_exact - 1.0), (p_weak, se_weak, p_weak_exact)
    # 3. the scheme's exact local orders approach ½ and 1 as dt → 0 (pre-asymptotic terms are O(dt)); at the
    #    finest pair they are within 0.05, and closer than at the coarsest pair.
    local_strong = 0.5 * np.log2(exact_strong[:-1] / exact_strong[1:])
    local_weak = np.log2(exact_weak[:-1] / exact_weak[1:])
    assert abs(local_strong[-1] - 0.5) < 0.05 and abs(local_strong[-1] - 0.5) < abs(local_strong[0] - 0.5)
    assert abs(local_weak[-1] - 1.0) < 0.05 and abs(local_weak[-1] - 1.0) < abs(local_weak[0] - 1.0)


if __name__ == "__main__":  # pragma: no cover - prints the measured numbers for the report
    s, w = exact_level_errors()
    print("exact strong MS", s, "local", 0.5 * np.log2(s[:-1] / s[1:]))
    print("exact weak", w, "local", np.log2(w[:-1] / w[1:]))
