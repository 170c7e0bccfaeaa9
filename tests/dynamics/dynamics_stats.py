"""Statistics shared by the simulator tests: Pearson χ² against bin probabilities, sample-covariance errors."""

from __future__ import annotations

import numpy as np
from scipy import stats

#: False-alarm probability of each Monte-Carlo assertion (seeded runs; a redraw would fail this rarely).
ALPHA = 1e-4
#: |z| bound of one Gaussian-distributed estimate at two-sided level ALPHA (≈ 3.9).
Z = float(stats.norm.isf(ALPHA / 2))


def pooled_chi2(counts: np.ndarray, probs: np.ndarray, total: int, min_expected: float = 5.0):
    """Pearson χ² of observed bin counts against bin probabilities, with every bin whose expected count is below
    ``min_expected`` (and everything outside the bins) pooled into one remainder cell, so the χ² approximation
    to the multinomial holds. Returns (χ², degrees of freedom, the χ² value exceeded with probability ALPHA)."""
    counts = np.asarray(counts, dtype=np.float64).ravel()
    expected = np.asarray(probs, dtype=np.float64).ravel() * total
    keep = expected >= min_expected
    obs = np.append(counts[keep], total - counts[keep].sum())
    exp = np.append(expected[keep], total - expected[keep].sum())
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    dof = obs.size - 1
    return chi2, dof, float(stats.chi2.isf(ALPHA, dof))


def covariance_standard_error(sigma: np.ndarray, n: int) -> np.ndarray:
    """Standard error of the sample covariance of n independent Gaussian vectors with covariance Σ:
    Var(Σ̂_ij) = (Σ_ii Σ_jj + Σ_ij²) / n (Isserlis), to leading order in 1/n."""
    d = np.diag(sigma)
    return np.sqrt((np.outer(d, d) + sigma**2) / n)


def fitted_order(h: np.ndarray, err: np.ndarray, se: np.ndarray | None = None) -> tuple[float, float]:
    """Slope p of log err = p log h + c by weighted least squares (weights 1/(se/err)², the variance of log err)
    and its standard error from those weights; unweighted (and se 0) when ``se`` is None."""
    x, y = np.log(h), np.log(err)
    w = np.ones_like(x) if se is None else (err / se) ** 2
    xm = np.sum(w * x) / np.sum(w)
    sxx = np.sum(w * (x - xm) ** 2)
    slope = float(np.sum(w * (x - xm) * (y - np.sum(w * y) / np.sum(w))) / sxx)
    return slope, (0.0 if se is None else float(1.0 / np.sqrt(sxx)))
