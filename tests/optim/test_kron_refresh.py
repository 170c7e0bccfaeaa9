"""The power-iteration refresh of cached eigenbases (geodyn.optim.spectral.power_qr) against eigh, in float64.

Bounds, for a basis Q₀ that diagonalises F₀ exactly (an eigh) followed by refreshes on F_k = F_{k−1} + E_k:

- Off-diagonal mass. Q_{k−1}ᵀ F_k Q_{k−1} = (diagonal + O_{k−1}) + Q_{k−1}ᵀ E_k Q_{k−1}, and one power-QR step
  multiplies the (i, j) off-diagonal entry by λ_i/λ_j < 1 (columns in decreasing order) to first order. So
  ‖O_k‖_F ≤ S_k = Σ_{j≤k} ‖E_j‖_F, up to a second-order term ≤ S_k²/δ (δ the smallest eigen-gap): the
  allowance below is S_k (1 + S_k/δ).
- Eigenvalues. The returned λ are the Rayleigh quotients of the previous basis, the diagonal of D + O with
  ‖O‖_2 ≤ ‖O_{k−1}‖_F + ‖E_k‖_F ≤ S_k: by Weyl's inequality, sorted, |λ − λ_exact| ≤ S_k (same allowance).
- Preconditioner. Q f(D) Qᵀ against f(F) = Q f(D + O) Qᵀ: the Fréchet derivative of a matrix function in the
  Frobenius norm is bounded by its largest divided difference (Daleckii–Krein), ≤ max |f'| on the spectrum; for
  f(x) = x^{-1/2} that is ½ λ_min^{-3/2}, so ‖Q f(D) Qᵀ − F^{-1/2}‖_F ≤ ½ λ_min^{-3/2} S_k to first order (with
  the same second-order allowance, and λ_min shrunk by S_k for the eigenvalue error).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch
from torch import nn

from geodyn.metric import Power, ThreeRegime
from geodyn.optim import KronCGD
from geodyn.optim.spectral import clipped_eigh, power_qr


def _spd(n, rng, spread=100.0):
    """F = U diag(λ) Uᵀ with λ log-spaced over ``spread`` (smallest gap ≈ λ_min (spread^{1/(n−1)} − 1))."""
    u, _ = np.linalg.qr(rng.normal(size=(n, n)))
    lam = np.geomspace(1.0, spread, n)
    return u @ np.diag(lam) @ u.T, lam


def _sym(rng, n, size):
    e = rng.normal(size=(n, n))
    e = e + e.T
    return e * (size / np.linalg.norm(e))


def test_power_qr_is_exact_on_a_stationary_factor():
    """E = 0: the refreshed basis diagonalises F to round-off and λ equal eigh's (‖F‖ ε·n ≈ 1e-12 scale)."""
    rng = np.random.default_rng(0)
    f, lam = _spd(8, rng)
    f = torch.tensor(f)
    lam0, q0 = clipped_eigh(f)
    lam1, q1 = power_qr(f, q0)
    rotated = q1.mT @ f @ q1
    off = rotated - torch.diag(torch.diagonal(rotated))
    assert off.abs().max().item() <= 1e-12 * lam.max()
    assert (lam1 - lam0).abs().max().item() <= 1e-12 * lam.max()
    assert (q1.mT @ q1 - torch.eye(8, dtype=torch.float64)).abs().max().item() <= 1e-13
    # columns stay where they were (up to sign): the adaptive spectrum's rotated moment stays aligned
    assert (torch.abs((q0 * q1).sum(0)) - 1).abs().max().item() <= 1e-12


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_power_qr_drift_stays_within_the_first_order_bound(seed):
    rng = np.random.default_rng(seed)
    n, refreshes, drift = 10, 25, 1e-4  # drift per refresh relative to λ_max = 100: Σ‖E‖ = 0.25 < λ_min = 1
    f, lam = _spd(n, rng)
    gap = np.diff(lam).min()
    lam_t, q = clipped_eigh(torch.tensor(f))
    batch_f, batch_q = [], []
    total = 0.0
    for _ in range(refreshes):
        e = _sym(rng, n, drift * lam.max())
        f = f + e
        total += np.linalg.norm(e)
        lam_t, q = power_qr(torch.tensor(f), q)
        allowance = total * (1 + total / gap)
        rotated = (q.mT @ torch.tensor(f) @ q).numpy()
        off = rotated - np.diag(np.diag(rotated))
        assert np.linalg.norm(off) <= allowance
        exact = np.linalg.eigvalsh(f)
        assert np.abs(np.sort(lam_t.numpy()) - exact).max() <= allowance
        inv_sqrt = (q @ torch.diag(lam_t.rsqrt()) @ q.mT).numpy()
        reference = np.real(scipy.linalg.fractional_matrix_power(f, -0.5))
        lam_min = exact.min() - allowance
        assert np.linalg.norm(inv_sqrt - reference) <= 0.5 * lam_min**-1.5 * allowance
        batch_f.append(f.copy())
        batch_q.append(q)
    # A batch refreshes each factor as it would alone.
    fs = torch.tensor(np.stack(batch_f[-3:]))
    previous = torch.stack(batch_q[-4:-1])
    lam_b, q_b = power_qr(fs, previous)
    for i in range(3):
        lam_i, q_i = power_qr(fs[i], previous[i])
        assert torch.equal(lam_b[i], lam_i) and torch.equal(q_b[i], q_i)


def test_power_qr_contracts_the_off_diagonal_on_a_fixed_factor():
    """From a slightly rotated eigenbasis of a fixed F, each refresh multiplies off-diagonal entry (i, j) by
    λ_i/λ_j, so ‖O‖_F shrinks at least by ρ = max λ_{i+1}/λ_i (1/1.67 here), up to the second-order factor
    1 + ‖O‖_F/δ."""
    rng = np.random.default_rng(5)
    n = 10
    f, lam = _spd(n, rng)
    gap, rho = np.diff(lam).min(), (lam[:-1] / lam[1:]).max()
    _, q = clipped_eigh(torch.tensor(f))
    q = torch.linalg.matrix_exp(torch.tensor(_sym(rng, n, 1e-3)) - torch.tensor(_sym(rng, n, 1e-3)).mT) @ q
    f_t = torch.tensor(f)

    def off(basis):
        rotated = (basis.mT @ f_t @ basis).numpy()
        return np.linalg.norm(rotated - np.diag(np.diag(rotated)))

    before = off(q)
    assert before > 1e-3  # the start is off by a measurable rotation
    for _ in range(6):
        _, q = power_qr(f_t, q)
        after = off(q)
        assert after <= rho * before * (1 + before / gap)
        before = after


@pytest.mark.parametrize("spectrum", ["kron", "adaptive"])
def test_qr_refresh_on_stationary_factors_steps_like_eigh(spectrum):
    """A constant gradient with the raw moment keeps L̂ = G Gᵀ and R̂ = GᵀG fixed: the qr-refreshed run is the
    eigh run (bases equal up to column signs, which neither spectrum sees) to round-off."""
    rng = np.random.default_rng(4)
    g = torch.tensor(rng.normal(size=(5, 5)) + 3 * np.eye(5))
    runs = []
    for refresh in ("eigh", "qr"):
        p = nn.Parameter(torch.zeros(5, 5, dtype=torch.float64))
        opt = KronCGD([p], lr=0.1, metric=ThreeRegime(1e-3, 1.0), moment="raw", spectrum=spectrum,
                      precondition_every=3, refresh=refresh)  # fmt: skip
        history = []
        for _ in range(12):
            p.grad = g.clone()
            opt.step()
            history.append(p.detach().clone())
        runs.append(history)
    for a, b in zip(*runs):
        assert (a - b).abs().max().item() <= 1e-12 * max(1.0, b.abs().max().item())


def test_default_refresh_is_qr_only_between_stale_refreshes():
    """precondition_every = 1 keeps exact eigendecompositions (muon_exact, Shampoo at k = 1)."""
    p = [nn.Parameter(torch.zeros(3, 3))]
    from geodyn.optim.kron import structure_options

    assert structure_options(KronCGD(p, precondition_every=1).param_groups[0])["refresh"] == "eigh"
    assert structure_options(KronCGD(p, precondition_every=10).param_groups[0])["refresh"] == "qr"
    assert structure_options(KronCGD(p, metric=Power(0.5), precondition_every=10,
                                     refresh="eigh").param_groups[0])["refresh"] == "eigh"  # fmt: skip


def test_a_group_saved_before_the_refresh_option_keeps_eigh():
    """State dicts written before ``refresh`` existed lack it: such groups keep refreshing by eigh (as they did)."""
    p = [nn.Parameter(torch.zeros(3, 3, dtype=torch.float64))]
    opt = KronCGD(p, precondition_every=10)
    p[0].grad = torch.ones(3, 3, dtype=torch.float64)
    opt.step()
    saved = opt.state_dict()
    del saved["param_groups"][0]["refresh"]
    del saved["param_groups"][0]["foreach"]
    fresh = KronCGD(p, precondition_every=10)
    fresh.load_state_dict(saved)
    from geodyn.optim.kron import structure_options

    assert structure_options(fresh.param_groups[0])["refresh"] == "eigh"
    assert structure_options(opt.param_groups[0])["refresh"] == "qr"
