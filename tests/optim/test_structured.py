"""KronCGD and FullCGD against independent float64 computations (EQUATIONS.md (2.9), §6 "Structures")."""

from __future__ import annotations

import copy
import io

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from geodyn.metric import Interpolating, Power, ScaleFreeThreeRegime, ThreeRegime
from geodyn.optim import CGD, FullCGD, KronCGD

TOL = 1e-10


def _matrix_power(a: np.ndarray, p: float) -> np.ndarray:
    """A^p for symmetric PSD A through scipy (an implementation independent of geodyn's eigh path)."""
    return np.real(scipy.linalg.fractional_matrix_power(a, p))


def _grads(shape, steps, seed, rank=None):
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=shape)
    out = []
    for _ in range(steps):
        if rank is not None:  # low-rank gradients, no mean
            out.append(rng.normal(size=(shape[0], rank)) @ rng.normal(size=(rank, shape[1])))
            continue
        out.append(mean + rng.normal(size=shape) * np.linspace(0.2, 3.0, shape[-1]))
    return out


def _run(opt_factory, grads, shape):
    """Feed prescribed gradients; return the parameter after each step (starting at 0)."""
    p = nn.Parameter(torch.zeros(shape, dtype=torch.float64))
    opt = opt_factory([p])
    history = []
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
        history.append(p.detach().clone().numpy())
    return history, opt, p


@pytest.mark.parametrize("alpha", [0.5, 1.0, 0.3])
@pytest.mark.parametrize("beta1", [0.0, 0.9])
def test_kron_power_law_is_left_right_matrix_powers(alpha, beta1):
    """Power(α), raw moment, kron spectrum, no trace normalisation: Δq = −γ L̂^{−α/2} m̂ R̂^{−α/2} (Shampoo at ½)."""
    shape, steps, lr, beta2 = (4, 6), 20, 0.1, 0.95
    grads = _grads(shape, steps, seed=1)
    history, _, _ = _run(
        lambda p: KronCGD(p, lr=lr, metric=Power(alpha), moment="raw", betas=(beta1, beta2),
                          trace_normalize=False, precondition_every=1, damping=0.0),
        grads, shape,
    )  # fmt: skip
    m, left, right = np.zeros(shape), np.zeros((4, 4)), np.zeros((6, 6))
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        left = beta2 * left + (1 - beta2) * g @ g.T
        right = beta2 * right + (1 - beta2) * g.T @ g
        if t < 10:  # R̂ (6×6) is singular before 6 gradients; compare once both factors are well conditioned
            continue
        lh, rh, mh = left / (1 - beta2**t), right / (1 - beta2**t), m / (1 - beta1**t)
        step = -lr * _matrix_power(lh, -alpha / 2) @ mh @ _matrix_power(rh, -alpha / 2)
        measured = history[t - 1] - history[t - 2]
        assert np.abs(measured - step).max() <= TOL * max(1.0, np.abs(step).max())


@pytest.mark.parametrize("shape", [(5, 7), (7, 5), (6, 6)])
def test_muon_limit_is_the_polar_factor(shape):
    """One-sided instantaneous κ = M Mᵀ with Power(½) gives Δq = −γ U Vᵀ for M = U Σ Vᵀ (the momentum)."""
    lr, mu = 0.02, 0.9
    grads = _grads(shape, 8, seed=2)
    history, _, _ = _run(
        lambda p: KronCGD(p, lr=lr, metric=Power(0.5), moment="momentum", betas=(mu, 0.0), sides="smaller",
                          trace_normalize=False, precondition_every=1, bias_correction=False, damping=0.0),
        grads, shape,
    )  # fmt: skip
    m, q = np.zeros(shape), np.zeros(shape)
    for t, g in enumerate(grads):
        m = mu * m + (1 - mu) * g
        u, _, vt = np.linalg.svd(m, full_matrices=False)
        q = q - lr * u @ vt
        assert np.abs(history[t] - q).max() <= TOL


def test_muon_limit_on_a_rank_deficient_momentum():
    shape = (5, 7)
    grads = _grads(shape, 1, seed=3, rank=2)
    history, _, _ = _run(
        lambda p: KronCGD(p, lr=1.0, metric=Power(0.5), moment="momentum", betas=(0.0, 0.0), sides="smaller",
                          trace_normalize=False, precondition_every=1, bias_correction=False, damping=0.0),
        grads, shape,
    )  # fmt: skip
    u, s, vt = np.linalg.svd(grads[0], full_matrices=False)
    r = int((s > 1e-10 * s[0]).sum())
    assert r == 2
    np.testing.assert_allclose(history[0], -u[:, :r] @ vt[:r], atol=1e-10, rtol=0)


def test_trace_normalisation_makes_kron_kappa_exact_for_isotropic_noise():
    """For iid noise of variance s² per entry, κ = s² I: the normalised Kronecker eigenvalues equal s²."""
    shape, steps, s2 = (6, 9), 4000, 0.25
    rng = np.random.default_rng(5)
    grads = [rng.normal(scale=np.sqrt(s2), size=shape) for _ in range(steps)]
    p = nn.Parameter(torch.zeros(shape, dtype=torch.float64))
    opt = KronCGD([p], lr=0.0, metric=Power(1.0), moment="raw", betas=(0.0, 0.999), precondition_every=1)
    for g in grads:
        p.grad = torch.tensor(g)
        opt.step()
    state = opt.state[p]
    sl, sr = state["left_eigenvalues"].sqrt(), state["right_eigenvalues"].sqrt()
    lam = (sl[:, None] * sr[None, :]) * state["left_eigenvalues"].sum() / (sl.sum() * sr.sum())
    # EMA over ~1000 effective samples of 54 entries: relative error of the mean eigenvalue ~ 1/√(54·1000).
    assert abs(lam.mean().item() / s2 - 1) < 0.05
    bare = (sl[:, None] * sr[None, :]).mean().item()
    assert bare / s2 > 5  # without normalisation the product overstates κ by ≈ √(mn) ≈ 7.3


def test_adaptive_spectrum_against_independent_rotation():
    """SOAP-like spectrum: the metric law acts on an EMA of the deviation rotated into the cached eigenbasis.

    A rank-deficient factor (the first steps) has an arbitrary basis of its null space, so the reference takes
    the optimizer's bases at each refresh after checking that they are eigenbases of L̂ and R̂. Entries along a
    null direction of either factor at the last refresh take no step (the pseudo-inverse convention: the step
    must not depend on the arbitrary null basis), and so do entries whose rotated variance is below
    (m+n)·ε_float32 of the largest (round-off of an entry without noise); the reference zeroes both.
    """
    shape, steps, lr, beta1, beta2, k = (3, 5), 9, 0.05, 0.9, 0.99, 4
    law = ThreeRegime(1e-6, 2.0)
    grads = _grads(shape, steps, seed=7)
    p = nn.Parameter(torch.zeros(shape, dtype=torch.float64))
    opt = KronCGD([p], lr=lr, metric=law, moment="central", betas=(beta1, beta2), spectrum="adaptive",
                  precondition_every=k, damping=0.0, refresh="eigh")  # fmt: skip
    m, left, right, v, q = np.zeros(shape), np.zeros((3, 3)), np.zeros((5, 5)), np.zeros(shape), np.zeros(shape)
    for t, g in enumerate(grads, start=1):
        p.grad = torch.tensor(g)
        opt.step()
        m = beta1 * m + (1 - beta1) * g
        d = g - m
        left = beta2 * left + (1 - beta2) * d @ d.T
        right = beta2 * right + (1 - beta2) * d.T @ d
        bc2 = 1 - beta2**t
        if (t - 1) % k == 0:
            ql, qr = (opt.state[p][f"{side}_basis"].numpy().copy() for side in ("left", "right"))
            kept = []
            for basis, factor in ((ql, left / bc2), (qr, right / bc2)):
                rotated = basis.T @ factor @ basis
                assert np.abs(rotated - np.diag(np.diag(rotated))).max() <= 1e-12 * np.abs(factor).max()
                assert np.abs(basis.T @ basis - np.eye(len(basis))).max() <= 1e-12
                eig = np.diag(rotated)
                kept.append(eig > len(basis) * np.finfo(float).eps * eig.max())
            has_history = kept[0][:, None] & kept[1][None, :]
        dr = ql.T @ d @ qr
        v = beta2 * v + (1 - beta2) * dr * dr
        lam = v / bc2
        resolved = lam > (3 + 5) * np.finfo(np.float32).eps * lam.max()  # the float32-level cut of a variance
        inverse = np.where(has_history & resolved, 1.0 / (1e-6 + np.sqrt(lam) + 2.0 * lam), 0.0)
        q = q - lr * ql @ ((ql.T @ (m / (1 - beta1**t)) @ qr) * inverse) @ qr.T
        assert np.abs(p.detach().numpy() - q).max() <= TOL * max(1.0, np.abs(q).max())


@pytest.mark.parametrize("k", [1, 3])
def test_full_cgd_equals_independent_matrix_law(k):
    """FullCGD on gradients with a rotated (non-diagonal) κ: Δq = −γ f(κ̂)⁻¹ m̂ with f applied in κ̂'s eigenbasis."""
    n, steps, lr, beta1, beta2 = 6, 10, 0.1, 0.8, 0.9
    law = ThreeRegime(1e-4, 3.0)
    rng = np.random.default_rng(11)
    mix = rng.normal(size=(n, n))
    grads = [rng.normal(size=n) + mix @ rng.normal(size=n) for _ in range(steps)]
    history, _, _ = _run(
        lambda p: FullCGD(p, lr=lr, metric=law, betas=(beta1, beta2), precondition_every=k, damping=0.0), grads, (n,)
    )
    m, kappa, q = np.zeros(n), np.zeros((n, n)), np.zeros(n)
    for t, g in enumerate(grads, start=1):
        m = beta1 * m + (1 - beta1) * g
        d = g - m
        kappa = beta2 * kappa + (1 - beta2) * np.outer(d, d)
        if (t - 1) % k == 0:
            lam, basis = scipy.linalg.eigh(kappa / (1 - beta2**t))
            lam = np.clip(lam, 0, None)
            lam[lam <= n * np.finfo(float).eps * lam.max()] = 0.0
        # Pseudo-inverse convention: a direction cut at the last refresh has no history and takes no step (with
        # k = 3 new gradients reach the stale null space, where the floor 1e-4 alone would give steps ~1e3).
        inverse = np.where(lam > 0, 1.0 / (1e-4 + np.sqrt(lam) + 3.0 * lam), 0.0)
        q = q - lr * basis @ (inverse * (basis.T @ (m / (1 - beta1**t))))
        assert np.abs(history[t - 1] - q).max() <= TOL * max(1.0, np.abs(q).max())


def test_full_cgd_with_diagonal_kappa_equals_cgd():
    """Gradients on one coordinate per step keep the raw κ̂ diagonal: FullCGD must then step exactly like CGD."""
    n, steps = 5, 40
    rng = np.random.default_rng(3)
    grads = []
    for _ in range(steps):
        g = np.zeros(n)
        g[rng.integers(n)] = rng.normal() * 3
        grads.append(g)
    law = ThreeRegime(1e-3, 0.5)
    full, _, _ = _run(
        lambda p: FullCGD(p, lr=0.05, metric=law, moment="raw", betas=(0.0, 0.9), damping=0.0), grads, (n,)
    )
    diag, _, _ = _run(lambda p: CGD(p, lr=0.05, metric=law, moment="raw", betas=(0.0, 0.9)), grads, (n,))
    assert max(np.abs(a - b).max() for a, b in zip(full, diag)) <= 1e-12


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5), nn.Tanh(), nn.Linear(5, 2)
    ).double()


def _train(model, opt, steps, seed=0):
    gen = torch.Generator().manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(8, 1, 8, 8, generator=gen, dtype=torch.float64)
        y = x.mean(dim=(1, 2, 3))[:, None].repeat(1, 2)
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()


@pytest.mark.parametrize("spectrum", ["kron", "adaptive"])
def test_kron_state_dict_resume_is_bit_identical(spectrum):
    model = _cnn()
    opt = KronCGD(model.parameters(), lr=1e-2, metric=ThreeRegime(1e-8, 1.0), spectrum=spectrum, precondition_every=3)
    _train(model, opt, 7)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buffer)
    _train(model, opt, 6, seed=1)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=False)
    resumed = _cnn()
    resumed.load_state_dict(saved["model"])
    fresh = KronCGD(
        resumed.parameters(), lr=1e-2, metric=ThreeRegime(1e-8, 1.0), spectrum=spectrum, precondition_every=3
    )
    fresh.load_state_dict(saved["opt"])
    assert "left_basis" in fresh.state[resumed[0].weight]  # eigenbases travel with the state
    _train(resumed, fresh, 6, seed=1)
    for a, b in zip(model.parameters(), resumed.parameters()):
        assert torch.equal(a, b)


def test_kron_uses_diagonal_cgd_for_vectors_and_oversized_matrices():
    model = _cnn()
    twin = copy.deepcopy(model)
    law = Interpolating(1e-8)
    kron = KronCGD(model.parameters(), lr=1e-2, metric=law, max_factor_dim=100)
    diag = CGD(twin.parameters(), lr=1e-2, metric=law)
    _train(model, kron, 5)
    _train(twin, diag, 5)
    state = kron.state[model[3].weight]  # 5 × 144 has a side above max_factor_dim: diagonal
    assert "noise_moment" in state and "left" not in state
    assert kron.state[model[0].weight]["left"].shape == (4, 4)  # conv 4×1×3×3 read as 4 × 9
    assert kron.state[model[0].weight]["right"].shape == (9, 9)
    assert "noise_moment" in kron.state[model[0].bias]


@pytest.mark.parametrize("foreach", [None, False])
def test_kron_steps_oversized_matrices_exactly_like_diagonal_cgd(foreach):
    """A Linear layer too wide for factors steps exactly like diagonal CGD (same implementation: loop or foreach)."""
    model, law = _cnn(), Interpolating(1e-8)
    alone, alone_twin = copy.deepcopy(model[3]), copy.deepcopy(model[3])
    opt_a = KronCGD(alone.parameters(), lr=1e-2, metric=law, max_factor_dim=100, foreach=foreach)
    opt_b = CGD(alone_twin.parameters(), lr=1e-2, metric=law, foreach=foreach)
    for step in range(5):
        for layer, opt in ((alone, opt_a), (alone_twin, opt_b)):
            opt.zero_grad()
            layer(torch.full((3, 144), 0.1 * step, dtype=torch.float64)).pow(2).sum().backward()
            opt.step()
    assert torch.equal(alone.weight, alone_twin.weight) and torch.equal(alone.bias, alone_twin.bias)


@pytest.mark.parametrize("make", [
    lambda p: KronCGD(p, lr=0.1, metric=Power(0.5), moment="raw", precondition_every=1),
    lambda p: KronCGD(p, lr=0.1, metric=Power(1.0), spectrum="adaptive", precondition_every=1),
    lambda p: FullCGD(p, lr=0.1, metric=Power(1.0), moment="raw"),
    lambda p: FullCGD(p, lr=0.1, metric=Power(0.5), moment="central"),
], ids=["kron-shampoo", "kron-adaptive", "full-raw", "full-central"])  # fmt: skip
def test_rank_deficient_and_zero_gradients_give_finite_steps(make):
    shape = (6, 8)
    grads = [np.zeros(shape)] + _grads(shape, 3, seed=4, rank=1) + [np.zeros(shape)]
    history, _, _ = _run(make, grads, shape)
    assert all(np.isfinite(h).all() for h in history)
    assert np.abs(history[0]).max() == 0.0  # a zero gradient on a zero state moves nothing
    assert np.abs(history[-2]).max() > 0.0


def test_kron_bad_structure_arguments():
    p = [nn.Parameter(torch.zeros(3, 3))]
    with pytest.raises(ValueError, match="spectrum='soap'"):
        KronCGD(p, spectrum="soap")
    with pytest.raises(ValueError, match="sides='top'"):
        KronCGD(p, sides="top")
    with pytest.raises(ValueError, match="precondition_every=0"):
        KronCGD(p, precondition_every=0)
    with pytest.raises(ValueError, match="precondition_every=0"):
        FullCGD(p, precondition_every=0)


def test_presets_of_structured_limits():
    from geodyn.optim import presets

    g = _grads((4, 6), 1, seed=9)[0]
    # Muon: the first step is −γ U Vᵀ of the momentum (1−μ)G, i.e. of G.
    history, _, _ = _run(lambda p: presets.muon_exact(p, lr=0.1), [g], (4, 6))
    u, _, vt = np.linalg.svd(g, full_matrices=False)
    np.testing.assert_allclose(history[0], -0.1 * u @ vt, atol=1e-12, rtol=0)
    # Full natural gradient: κ̂ = G Gᵀ has rank one, so its pseudo-inverse gives Δq = −γ G/‖G‖².
    vec = g.reshape(-1)
    history, _, _ = _run(lambda p: presets.natural_gradient_full(p, lr=0.1, damping=0.0), [vec], vec.shape)
    np.testing.assert_allclose(history[0], -0.1 * vec / (vec @ vec), atol=1e-12, rtol=0)
    # Shampoo without ε is the KronCGD configuration checked above against scipy's matrix powers.
    grads = _grads((4, 6), 6, seed=10)
    a, _, _ = _run(lambda p: presets.shampoo(p, lr=0.1, eps=0.0, grafting=None, precondition_every=2), grads, (4, 6))
    b, _, _ = _run(
        lambda p: KronCGD(p, lr=0.1, metric=Power(0.5), moment="raw", trace_normalize=False, precondition_every=2,
                          damping=0.0),
        grads, (4, 6),
    )  # fmt: skip
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert isinstance(presets.three_regime_kron([nn.Parameter(torch.zeros(2, 2))]).param_groups[0]["metric"],
                      ScaleFreeThreeRegime)  # fmt: skip
