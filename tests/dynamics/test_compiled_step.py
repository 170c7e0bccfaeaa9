"""``LangevinEnsemble.simulate(compile=True)``: the Euler–Maruyama step of (2.7) as one ``torch.compile`` program
(forward-mode Itô drift ∂_ν D^{μν} and ∇H̄ from the same dual-number passes) equals the SDE step written out in
closed form with numpy, from the same walkers and the same normals.

Reference: a q-dependent diagonal κ with g = κ^α, so g⁻¹ = κ^{−α}, B = κ^{½−α} and, with D = (γ²/2) κ^{1−2α},
∂_μ D^{μμ} = (γ²/2)(1 − 2α) κ_μ^{−2α} ∂_μκ_μ (EQUATIONS.md (2.7), (2.9)); ∇H̄ and ∂_μκ_μ by hand.
"""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest
import torch
from scipy import stats

from geodyn.dynamics import DiscreteLearning, EulerMaruyama, LangevinEnsemble
from geodyn.dynamics.compiled import box_muller
from geodyn.metric import Power, ThreeRegime

pytestmark = pytest.mark.skipif(
    shutil.which("c++") is None and shutil.which("g++") is None,
    reason="torch.compile (inductor) needs a C++ compiler on CPU",
)

F64 = torch.float64
GAMMA, DT = 0.5, 1e-3
U32 = torch.finfo(torch.float32).eps / 2  # unit round-off of float32


def loss(q: torch.Tensor) -> torch.Tensor:
    """H̄ = Σ_μ (q_μ² − 1)² + q_0 q_1 (a batched (P, 3) ↦ (P,) loss that couples coordinates)."""
    return ((q * q - 1.0) ** 2).sum(-1) + q[:, 0] * q[:, 1]


def kappa(q: torch.Tensor) -> torch.Tensor:
    """κ_μ = 0.5 + 0.5 q_μ² + 0.25 q_{μ+1}² (cyclic): diagonal, ≥ 0.5, each entry depending on two coordinates."""
    return 0.5 + 0.5 * q * q + 0.25 * torch.roll(q, -1, dims=1) ** 2


def reference_terms(q: np.ndarray, z: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(q, dt·a, γ√dt B z) of the EM step with a = −γ κ^{−α}∇H̄ + (γ²/2)(1 − 2α) κ^{−2α} ∂_μκ_μ, in numpy."""
    k = 0.5 + 0.5 * q * q + 0.25 * np.roll(q, -1, axis=1) ** 2
    grad = 4 * q * (q * q - 1.0)
    grad[:, 0] += q[:, 1]
    grad[:, 1] += q[:, 0]
    dk = q  # ∂_μ κ_μ = q_μ (the q_{μ+1} term does not depend on q_μ)
    a = -GAMMA * k**-alpha * grad + 0.5 * GAMMA**2 * (1 - 2 * alpha) * k ** (-2 * alpha) * dk
    return q, DT * a, GAMMA * math.sqrt(DT) * k ** (0.5 - alpha) * z


def walkers(m: int = 257, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return 1.2 * torch.randn(m, 3, generator=gen, dtype=F64), torch.randn(4, m, 3, generator=gen, dtype=F64)


@pytest.mark.parametrize("alpha", [1.0, 0.75])
def test_compiled_step_equals_closed_form_float64(alpha):
    """One compiled step from given walkers and normals equals the closed form to float64 round-off: entries are
    O(10) after ~40 operations, so 1e-12 (≈ 4500 ulp) is a bound no discretisation or sign error can meet
    (the Itô drift alone contributes dt·(γ²/2)|1 − 2α| κ^{−2α}|q| ~ 1e-4 here)."""
    q, z = walkers()
    ens = LangevinEnsemble(loss, metric=Power(alpha), kappa=kappa, gamma=GAMMA)
    out = ens.simulate(q, 1, EulerMaruyama(DT), noise=z, compile=True).q
    expect = sum(reference_terms(q.numpy(), z[0].numpy(), alpha))
    assert np.abs(out.numpy() - expect).max() <= 1e-12
    # four steps with supplied normals: equal to the eager steps (|Δ| grows at most like (1 + dt·Lip)^k ≈ 1)
    compiled = ens.simulate(q, 4, EulerMaruyama(DT), noise=z, compile=True).q
    eager = ens.simulate(q, 4, EulerMaruyama(DT), noise=z).q
    assert torch.allclose(compiled, eager, rtol=0, atol=1e-12)


def numpy_box_muller(u: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    r = np.sqrt(-2.0 * np.log1p(-u[0]))
    return np.concatenate([r * np.cos(2 * np.pi * u[1]), r * np.sin(2 * np.pi * u[1])])[: shape[0] * shape[1]].reshape(
        shape
    )


def test_seeded_compiled_run_draws_box_muller_normals_from_its_generator():
    """Without ``noise`` the compiled program makes its normals from the generator's uniform pairs (M·N = 771 is
    odd: the last sine is dropped). Four seeded steps equal eager steps fed those normals computed in numpy."""
    q, _ = walkers()
    ens = LangevinEnsemble(loss, metric=Power(1.0), kappa=kappa, gamma=GAMMA)
    compiled = ens.simulate(q, 4, EulerMaruyama(DT), seed=11, compile=True).q
    gen = torch.Generator().manual_seed(11)
    half = (q.numel() + 1) // 2
    z = [numpy_box_muller(torch.rand((2, half), generator=gen, dtype=F64).numpy(), q.shape) for _ in range(4)]
    eager = ens.simulate(q, 4, EulerMaruyama(DT), noise=torch.tensor(np.stack(z))).q
    assert torch.allclose(compiled, eager, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_box_muller_normals_are_standard_normal(dtype):
    """2·10⁵ draws of :func:`box_muller` (eager; the compiled program runs the same function): Kolmogorov–Smirnov
    against N(0, 1) and the sample variance (standard error √(2/n) = 0.0032) at level 1e-4, and the cosine and
    sine halves uncorrelated (standard error 1/√(n/2))."""
    gen = torch.Generator().manual_seed(2)
    n = 200_001
    u = torch.rand((2, (n + 1) // 2), generator=gen, dtype=dtype)
    z = box_muller(u, (n,)).double().numpy()
    assert stats.kstest(z, "norm").pvalue > 1e-4
    z4 = stats.norm.isf(0.5e-4)
    assert abs(z.var() - 1.0) <= z4 * math.sqrt(2 / n)
    assert abs(np.corrcoef(z[: n // 2], z[n // 2 + 1 :][: n // 2])[0, 1]) <= z4 / math.sqrt(n // 2)


def test_compiled_step_float32_within_round_off_bound():
    """dtype=float32: walkers, normals and arithmetic in float32. Bound on |step32 − step64| per entry, from the
    structure q + dt·a + γ√dt B z: q is rounded once on input and twice in the two sums (3u|q|); dt·a and the
    noise term are products/sums of at most ~30 rounded float32 operations on rounded inputs (relative error
    ≤ 30u after first order), and a perturbation u|q| of q changes them by at most their own size times a
    few u. So |Δ| ≤ u (4|q| + 64 (|dt·a| + |γ√dt B z|)), u = 2⁻²⁴."""
    q, z = walkers()
    ens = LangevinEnsemble(loss, metric=Power(1.0), kappa=kappa, gamma=GAMMA)
    q32, z32 = q.float(), z[:1].float()
    out = ens.simulate(q32, 1, EulerMaruyama(DT), noise=z32, dtype=torch.float32, compile=True).q
    assert out.dtype == torch.float32
    q0, drift, noise = reference_terms(q32.double().numpy(), z32[0].double().numpy(), 1.0)
    bound = U32 * (4 * np.abs(q0) + 64 * (np.abs(drift) + np.abs(noise)))
    assert np.all(np.abs(out.double().numpy() - (q0 + drift + noise)) <= bound)


def test_compiled_step_with_analytic_grad_and_many_coordinates():
    """N = 6 > FUSED_GRAD_MAX_N with an analytic ``grad``: the compiled step takes ∇H̄ from ``grad`` and the Itô
    drift from forward mode; equal to the closed form (same bound as the float64 test)."""
    gen = torch.Generator().manual_seed(5)
    q = torch.randn(64, 6, generator=gen, dtype=F64)
    z = torch.randn(1, 64, 6, generator=gen, dtype=F64)

    def grad(x):
        return 4 * x * (x * x - 1.0)

    ens = LangevinEnsemble(grad=grad, metric=Power(1.0), kappa=kappa, gamma=GAMMA)
    out = ens.simulate(q, 1, EulerMaruyama(DT), noise=z, compile=True).q.numpy()
    qn, zn = q.numpy(), z[0].numpy()
    k = 0.5 + 0.5 * qn * qn + 0.25 * np.roll(qn, -1, axis=1) ** 2
    a = -GAMMA * grad(q).numpy() / k - 0.5 * GAMMA**2 * qn / k**2
    expect = qn + DT * a + GAMMA * math.sqrt(DT) * k**-0.5 * zn
    assert np.abs(out - expect).max() <= 1e-12


@pytest.mark.parametrize(
    ("solver", "law"),
    [(DiscreteLearning(), Power(0.5)), (EulerMaruyama(DT), ThreeRegime(0.2, 0.8))],
    ids=["discrete-power", "em-three-regime"],
)
def test_compiled_steps_equal_eager_steps_for_other_solvers_and_laws(solver, law):
    """The discrete process (2.5)/(2.6) and a power-sum law g = ε + √κ + ζκ (6.5) (h'(λ) from its terms): three
    compiled steps with supplied normals equal the eager steps (reverse-mode Itô drift, checked against finite
    differences in test_dynamics_model.py) to 1e-12."""
    q, z = walkers(m=64)
    ens = LangevinEnsemble(loss, metric=law, kappa=kappa, gamma=0.1)
    compiled = ens.simulate(q, 3, solver, noise=z, compile=True).q
    eager = ens.simulate(q, 3, solver, noise=z).q
    assert torch.allclose(compiled, eager, rtol=0, atol=1e-12)
