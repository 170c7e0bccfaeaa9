"""Statistics shared by the evolution tests: χ² against exact probabilities, integrated autocorrelation times.

Every Monte-Carlo assertion of these tests is made at the two-sided false-alarm level ALPHA = 1e-4 (|z| < 3.89,
or the χ² value exceeded with probability 1e-4), the convention of tests/dynamics. All runs are seeded, so a test
either passes or fails deterministically; a redraw would fail about once in 10⁴.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

ALPHA = 1e-4
Z = float(stats.norm.isf(ALPHA / 2))


def chi2_against(counts: np.ndarray, probs: np.ndarray, total: float, min_expected: float = 5.0):
    """Pearson χ² of counts (from ``total`` independent draws) against exact probabilities; cells with expected
    count below ``min_expected`` and all mass outside the cells are pooled into one remainder cell.
    Returns (χ², dof, the χ² value exceeded with probability ALPHA)."""
    counts = np.asarray(counts, dtype=np.float64).ravel()
    expected = np.asarray(probs, dtype=np.float64).ravel() * total
    keep = expected >= min_expected
    obs = np.append(counts[keep], total - counts[keep].sum())
    exp = np.append(expected[keep], total - expected[keep].sum())
    if exp[-1] < min_expected:  # nothing worth a remainder cell: drop it (its mass is in the kept cells' total)
        obs, exp = obs[:-1], exp[:-1]
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    dof = obs.size - 1
    return chi2, dof, float(stats.chi2.isf(ALPHA, dof))


def integrated_autocorrelation_time(x: np.ndarray) -> float:
    """τ_int = ½ + Σ_{k≥1} ρ(k) of a stationary series, from chains x of shape (T, chains) (rows: time).

    The autocorrelation ρ(k) is pooled over the independent chains (FFT, chain means subtracted) and summed with
    Geyer's initial positive sequence: τ = −½ + Σ_m Γ_m, Γ_m = ρ(2m) + ρ(2m + 1), up to the first Γ_m ≤ 0 — a
    window that adapts to slow tails (here: hops between the wells). Var(mean of all T·chains values) =
    Var(x) · 2τ_int / (T·chains). Returns ½ (no correlation) for a constant series.
    """
    x = np.asarray(x, dtype=np.float64)
    t = x.shape[0]
    y = x - x.mean(0, keepdims=True)
    n = 1 << (2 * t - 1).bit_length()
    f = np.fft.rfft(y, n=n, axis=0)
    acov = np.fft.irfft(f * np.conj(f), n=n, axis=0)[:t].sum(1) / (t * x.shape[1])
    if acov[0] <= 0:
        return 0.5
    rho = acov / acov[0]
    pairs = rho[: 2 * (t // 2)].reshape(-1, 2).sum(1)
    stop = np.nonzero(pairs <= 0)[0]
    m = stop[0] if stop.size else pairs.size
    return max(-0.5 + float(pairs[:m].sum()), 0.5)
