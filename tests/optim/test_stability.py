"""Structured optimizers at their defaults: convergence where Adam converges, float32 = float64 to round-off, no
step (and never NaN) without a gradient history (EQUATIONS.md (2.2), (2.9), §6 "Structures")."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from geodyn.metric import Interpolating, Power
from geodyn.optim import FullCGD, KronCGD, NonFiniteGradientError, presets

STRUCTURED = {
    "KronCGD": lambda p: KronCGD(p),
    "KronCGD-adaptive": lambda p: KronCGD(p, spectrum="adaptive"),
    "FullCGD": lambda p: FullCGD(p),
    "shampoo": lambda p: presets.shampoo(p),
    "soap_like": lambda p: presets.soap_like(p),
    "muon_exact": lambda p: presets.muon_exact(p),
    "natural_gradient_full": lambda p: presets.natural_gradient_full(p),
    "three_regime_kron": lambda p: presets.three_regime_kron(p),
}
DTYPES = [torch.float64, torch.float32]
STEPS = 300


def _least_squares(dtype):
    """min_W ‖X Wᵀ − Y‖²/N for a 10×5 weight: deterministic gradients, factors of rank ≤ 5 in the first steps."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 5, generator=gen, dtype=torch.float64)
    target = 0.1 * torch.randn(10, 5, generator=gen, dtype=torch.float64)
    y = x @ target.T + 0.01 * torch.randn(64, 10, generator=gen, dtype=torch.float64)
    x, y = x.to(dtype), y.to(dtype)
    weight = nn.Parameter(torch.zeros(10, 5, dtype=dtype))

    def loss(step):  # full batch at every step
        return ((x @ weight.T - y) ** 2).mean()

    return [weight], loss


def _teacher_student(dtype):
    """A 6-12-3 tanh MLP fitting a teacher of the same shape on minibatches of 32 (gradient noise)."""
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3)).double()
    student = nn.Sequential(nn.Linear(6, 12), nn.Tanh(), nn.Linear(12, 3)).to(dtype)
    x = torch.randn(512, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    with torch.no_grad():
        y = teacher(x)
    x, y = x.to(dtype), y.to(dtype)

    def loss(step):
        rows = slice(None) if step is None else slice(32 * step % 512, 32 * step % 512 + 32)
        return ((student(x[rows]) - y[rows]) ** 2).mean()

    return list(student.parameters()), loss


PROBLEMS = {"least_squares": _least_squares, "teacher_student": _teacher_student}


def _train(make, problem, dtype):
    """(initial loss, final loss, largest loss seen) on the whole data set over STEPS steps."""
    params, loss = PROBLEMS[problem](dtype)
    opt = make(params)
    start = worst = loss(None).item()
    for step in range(STEPS):
        opt.zero_grad()
        loss(step).backward()
        opt.step()
        current = loss(None).item()
        worst = max(worst, current) if np.isfinite(current) else np.inf
    return start, loss(None).item(), worst


@functools.cache
def _adam(problem, dtype, lr):
    return _train(lambda p: torch.optim.Adam(p, lr=lr), problem, dtype)


@pytest.mark.slow
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("problem", PROBLEMS)
@pytest.mark.parametrize("name", STRUCTURED)
def test_converges_at_defaults_where_adam_does(name, problem, dtype):
    """Each structured optimizer at its default settings against torch.optim.Adam at the same learning rate.

    "Converges" is defined from Adam's own run: Adam must cut the loss to r_A = L_Adam/L₀ ≤ 0.05 in STEPS
    steps (else the problem says nothing), and the optimizer must reach at least half of Adam's progress in
    decades, L/L₀ ≤ √r_A, with every loss finite and never above 2·L₀ (no divergence). Before the relative
    cut-offs 13 of these 32 runs failed: KronCGD and shampoo with eigh failures or NonFiniteGradientError,
    FullCGD (float32) and natural_gradient_full with losses far above Adam's.
    """
    make = STRUCTURED[name]
    lr = make([nn.Parameter(torch.zeros(2, 2))]).param_groups[0]["lr"]
    start_a, final_a, _ = _adam(problem, dtype, lr)
    ratio_adam = final_a / start_a
    assert ratio_adam <= 0.05, f"Adam at lr={lr} does not converge on {problem}: L/L0 = {ratio_adam:.3g}"
    try:
        start, final, worst = _train(make, problem, dtype)
    except NonFiniteGradientError as error:
        pytest.fail(f"{name} diverged on {problem}: {error}")
    assert worst <= 2.0 * start, f"{name}: loss rose to {worst / start:.3g} × its start"
    assert final / start <= ratio_adam**0.5, f"{name}: L/L0 = {final / start:.3g}, Adam {ratio_adam:.3g}"


def _gradients(shape, steps, seed):
    """Gradients exactly representable in float32, so both precisions see the same input."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen, dtype=torch.float64).float().double() for _ in range(steps)]


def _steps(make, grads, dtype):
    p = nn.Parameter(torch.zeros(grads[0].shape, dtype=dtype))
    opt = make([p])
    out = []
    for g in grads:
        before = p.detach().clone()
        p.grad = g.to(dtype)
        opt.step()
        out.append((p.detach() - before).double())
    return out


def _range_condition(grads):
    """Conditioning of the kept part of the Kronecker factors Σ G Gᵀ and Σ Gᵀ G after each step (numpy).

    λ_max/λ_min bounds how much a factor's rounding is amplified by a matrix function f(κ̂)⁻¹ (kron spectrum);
    λ_max/min gap bounds how far it turns the eigenvectors (Davis–Kahan), on which the adaptive spectrum's
    rotated moment depends. The larger of the two over all steps.
    """
    worst, left, right = 1.0, 0.0, 0.0
    for g in grads:
        left, right = left + g.numpy() @ g.numpy().T, right + g.numpy().T @ g.numpy()
        for factor in (left, right):
            lam = np.linalg.eigvalsh(factor)
            kept = lam[lam > len(lam) * np.finfo(float).eps * lam.max()]
            gap = np.diff(kept).min() if len(kept) > 1 else kept.max()
            worst = max(worst, kept.max() / kept.min(), kept.max() / gap)
    return worst


@pytest.mark.parametrize("name", STRUCTURED)
def test_float32_first_steps_agree_with_float64(name):
    """On a 5×3 weight (left factor of rank 3 < 5) the float32 steps equal the float64 ones to round-off.

    Tolerance: the inputs are the same numbers, so the difference is float32 rounding (u = 2⁻²⁴). Each factor
    entry is a dot product of ≤ max(m, n) terms (error ≤ max(m, n)·u relative); the rotations into and out of
    the eigenbasis add ≤ (m + n)·u each; the grafted norm ≤ m·n·u. A perturbation E of a factor changes its
    kept eigenpairs, and so f(κ̂)⁻¹ m̂, by at most cond·‖E‖/‖L‖ relative (first-order perturbation, with the
    gaps of the kept spectrum bounded below by λ_min), cond the condition of the kept spectrum. Together:
    |Δ₃₂ − Δ₆₄| ≤ 4·(m + n)·u·cond·max|Δ₆₄|. Without the cut-offs the float32 first step of shampoo was
    6e4·lr against 0.66·lr in float64 (its null space divided by a bare ε); with a null space that steps, the
    adaptive spectrum's second steps differed by 9–42 % (an arbitrary null basis).
    """
    grads = _gradients((5, 3), 3, seed=0)
    tol = 4 * (5 + 3) * 2.0**-24 * _range_condition(grads)
    for t, (s64, s32) in enumerate(
        zip(_steps(STRUCTURED[name], grads, torch.float64), _steps(STRUCTURED[name], grads, torch.float32)), 1
    ):
        scale = s64.abs().max().item()
        assert scale > 0
        assert (s32 - s64).abs().max().item() <= tol * scale, f"step {t}: {(s32 - s64).abs().max() / scale:.3g}"


@pytest.mark.parametrize("k", [1, 10])
def test_adaptive_both_sides_does_not_depend_on_round_off_in_rank_deficient_factors(k):
    """KronCGD(sides="both", spectrum="adaptive") while L is rank-deficient: a 12×4 weight whose L has rank
    ≤ 4·t for t steps. The null basis eigh returns is arbitrary; the relative cut-off keeps it out of the step,
    so float32 and float64 agree to the round-off bound of the test above over the first 5 steps (with k = 10
    the basis of step 1 is still in use, its null space stale)."""
    grads = _gradients((12, 4), 5, seed=3)
    make = lambda p: KronCGD(p, lr=1e-2, spectrum="adaptive", sides="both", precondition_every=k)  # noqa: E731
    tol = 4 * (12 + 4) * 2.0**-24 * _range_condition(grads)
    for s64, s32 in zip(_steps(make, grads, torch.float64), _steps(make, grads, torch.float32)):
        assert (s32 - s64).abs().max().item() <= tol * s64.abs().max().item()


def test_muon_exact_on_vectors_is_sign_descent_with_sign_zero_zero():
    """muon_exact on a vector: the diagonal limit of g = |m| is Δq = −γ sign(m), and sign(0) = 0 (not NaN)."""
    bias = nn.Parameter(torch.zeros(6, dtype=torch.float64))
    opt = presets.muon_exact([bias], lr=0.1)
    grads = [torch.tensor([1.5, 0.0, -2e-30, 3.0, 0.0, -1.0], dtype=torch.float64)] * 2
    momentum = torch.zeros(6, dtype=torch.float64)
    expected = torch.zeros(6, dtype=torch.float64)
    for g in grads:
        bias.grad = g.clone()
        opt.step()
        momentum = 0.95 * momentum + 0.05 * g
        expected -= 0.1 * torch.sign(momentum)
        assert torch.equal(bias.detach(), expected)


@pytest.mark.parametrize("make", [
    lambda p: KronCGD(p, metric=Power(1.0), moment="raw", precondition_every=1),
    lambda p: KronCGD(p, metric=Power(1.0), moment="raw", spectrum="adaptive", precondition_every=3),
    lambda p: KronCGD(p, metric=Interpolating(1e-12), moment="raw", precondition_every=3),
    lambda p: FullCGD(p, metric=Power(1.0), moment="raw", damping=0.0),
    lambda p: presets.natural_gradient_full(p, precondition_every=3),
], ids=["kron-power1", "kron-adaptive-power1", "kron-tiny-floor", "full-power1", "natural-gradient-full"])  # fmt: skip
def test_coordinates_without_gradient_history_take_no_step(make):
    """A weight whose last row and column never see a gradient, and a bias with a dead entry: those coordinates
    stay exactly where they are (no NaN from 0/0, no 1/ε from a floor), the others move."""
    weight = nn.Parameter(torch.zeros(4, 5, dtype=torch.float64))
    bias = nn.Parameter(torch.zeros(4, dtype=torch.float64))
    opt = make([weight, bias])
    gen = torch.Generator().manual_seed(2)
    for _ in range(5):
        g = torch.randn(4, 5, generator=gen, dtype=torch.float64)
        g[-1, :] = 0.0
        g[:, -1] = 0.0
        weight.grad = g
        bias.grad = torch.randn(4, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 1.0, 1.0, 0.0])
        opt.step()
        assert torch.isfinite(weight).all() and torch.isfinite(bias).all()
    # "No step" up to the orthogonality of eigh's basis: a null eigenvector holds ≤ N·u of the kept ones (N ≤ 24
    # the size of the eigenproblem), so it receives ≤ N·u of their steps. Without the cut: NaN or ~1/ε.
    leak = 24 * 2.0**-53 * max(weight.abs().max(), bias.abs().max())
    assert weight[-1, :].abs().max() <= leak and weight[:, -1].abs().max() <= leak and bias[-1].abs() <= leak
    assert weight[:-1, :-1].abs().min() > 0 and bias[:-1].abs().min() > 0


def test_grafting_gives_adams_step_norm_and_keeps_shampoos_direction():
    """shampoo(grafting="adam") against torch.optim.Adam (norm) and the ungrafted preset (direction).

    Distributed Shampoo's grafting: Δ = ‖Δ_Adam‖ · Δ_Shampoo/‖Δ_Shampoo‖ per tensor, both from the same m̂.
    float64; both sides are a few operations from the same numbers: agreement to 1e-12 relative.
    """
    grads = _gradients((4, 6), 8, seed=5)
    adam = _steps(lambda p: torch.optim.Adam(p, lr=1e-2), grads, torch.float64)
    grafted = _steps(lambda p: presets.shampoo(p, lr=1e-2, precondition_every=3), grads, torch.float64)
    bare = _steps(lambda p: presets.shampoo(p, lr=1e-2, precondition_every=3, grafting=None), grads, torch.float64)
    for a, g, b in zip(adam, grafted, bare):
        assert abs(g.norm() / a.norm() - 1) <= 1e-12
        assert (g / g.norm() - b / b.norm()).abs().max() <= 1e-12


def test_shampoo_eps_is_added_to_the_factors_relative_to_their_scale():
    """Ungrafted shampoo: Δ = −γ (L̂ + ελ_max(L̂) I)^{−1/4} m̂ (R̂ + ελ_max(R̂) I)^{−1/4} (scipy's matrix powers),
    which is invariant to the loss scale; ``relative_eps=False`` gives L̂ + εI, which is not."""
    shape, lr, eps, beta1, beta2 = (4, 6), 0.1, 1e-3, 0.9, 0.999
    grads = [g.numpy() for g in _gradients(shape, 12, seed=6)]
    steps = _steps(
        lambda p: presets.shampoo(p, lr=lr, eps=eps, grafting=None, precondition_every=1),
        [torch.tensor(g) for g in grads], torch.float64,
    )  # fmt: skip
    m, left, right = np.zeros(shape), np.zeros((4, 4)), np.zeros((6, 6))
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        left = beta2 * left + (1 - beta2) * g @ g.T
        right = beta2 * right + (1 - beta2) * g.T @ g
        if t < 6:  # R̂ (6×6) has a null space until 6 gradients: cut off there, compared once full rank
            continue
        lh, rh = left / (1 - beta2**t), right / (1 - beta2**t)
        lh, rh = (f + eps * np.linalg.eigvalsh(f).max() * np.eye(len(f)) for f in (lh, rh))
        expected = -lr * np.real(
            scipy.linalg.fractional_matrix_power(lh, -0.25) @ (m / (1 - beta1**t))
            @ scipy.linalg.fractional_matrix_power(rh, -0.25)
        )  # fmt: skip
        assert np.abs(steps[t - 1].numpy() - expected).max() <= 1e-10 * np.abs(expected).max()

    def first_steps(scale, **kw):
        return _steps(lambda p: presets.shampoo(p, lr=lr, eps=eps, grafting=None, **kw),
                      [torch.tensor(g * scale) for g in grads[:3]], torch.float64)  # fmt: skip

    # Δ(cG) = Δ(G): (c²L)^{-1/4}(cM)(c²R)^{-1/4}, and ε·λ_max scales with c² too. Round-off: ~1e-15.
    for a, b in zip(first_steps(1.0), first_steps(1e-4)):
        assert (a - b).abs().max() <= 1e-12 * a.abs().max()
    absolute = [first_steps(s, relative_eps=False) for s in (1.0, 1e-4)]
    assert (absolute[0][1] - absolute[1][1]).abs().max() > 0.1 * absolute[0][1].abs().max()


def test_natural_gradient_full_damping_is_relative_tikhonov():
    """natural_gradient_full: Δ = −γ (κ̂ + δ·λ_max(κ̂) I)⁻¹ m̂ once κ̂ is full rank (numpy solve)."""
    n, lr, delta, beta1, beta2 = 5, 0.1, 1e-2, 0.9, 0.999
    grads = [g.numpy() for g in _gradients((n,), 8, seed=7)]
    steps = _steps(lambda p: presets.natural_gradient_full(p, lr=lr), [torch.tensor(g) for g in grads], torch.float64)
    m, kappa = np.zeros(n), np.zeros((n, n))
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        kappa = beta2 * kappa + (1 - beta2) * np.outer(g, g)
        if t < n:
            continue
        k_hat = kappa / (1 - beta2**t)
        damped = k_hat + delta * np.linalg.eigvalsh(k_hat).max() * np.eye(n)
        expected = -lr * np.linalg.solve(damped, m / (1 - beta1**t))
        assert np.abs(steps[t - 1].numpy() - expected).max() <= 1e-10 * np.abs(expected).max()


def test_bad_damping_and_grafting_arguments():
    p = [nn.Parameter(torch.zeros(3, 3))]
    with pytest.raises(ValueError, match="damping=-1"):
        KronCGD(p, damping=-1.0)
    with pytest.raises(ValueError, match="damping=nan"):
        FullCGD(p, damping=float("nan"))
    with pytest.raises(ValueError, match="grafting='sgd'"):
        KronCGD(p, grafting="sgd")
    with pytest.raises(ValueError, match="relative_damping='yes'"):
        FullCGD(p, relative_damping="yes")
    with pytest.raises(ValueError, match="grafting_eps=-0.1"):
        presets.shampoo(p, grafting_eps=-0.1)


def test_full_cgd_grafting_gives_adams_step_norm_on_the_group():
    """FullCGD(grafting="adam") grafts onto Adam's step over the whole group vector (its one "tensor")."""
    grads = _gradients((3, 4), 6, seed=8)
    adam = _steps(lambda p: torch.optim.Adam(p, lr=1e-2), grads, torch.float64)
    grafted = _steps(lambda p: FullCGD(p, lr=1e-2, grafting="adam"), grads, torch.float64)
    for a, g in zip(adam, grafted):
        assert abs(g.norm() / a.norm() - 1) <= 1e-12


def test_groups_saved_without_the_new_settings_step_as_before():
    """A state dict whose param_groups predate damping/grafting loads and steps undamped and ungrafted."""
    grads = _gradients((4, 3), 4, seed=9)
    reference = _steps(lambda p: KronCGD(p, lr=0.1, damping=0.0), grads, torch.float64)

    def legacy(params):
        opt = KronCGD(params, lr=0.1)
        saved = opt.state_dict()
        for group in saved["param_groups"]:
            for key in ("damping", "relative_damping", "grafting", "grafting_eps"):
                del group[key]
        opt.load_state_dict(saved)
        return opt

    for a, b in zip(reference, _steps(legacy, grads, torch.float64)):
        assert torch.equal(a, b)
