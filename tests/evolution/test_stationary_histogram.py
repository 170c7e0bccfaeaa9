"""The stationary state of continuous genomes is the Gibbs density e^{−β_s H}/Z (4.4) on a 1-D double well.

Genomes start exactly in the Gibbs state (rejection sampling), so every recorded step is a stationary sample and
the time-averaged histogram is unbiased; detailed balance (4.3) holds exactly for the symmetric Gaussian jumps, so
there is no discretisation error to allow for. The exact bin probabilities are quadratures of e^{−β_s H}.

Monte-Carlo error: M independent chains of T correlated steps. For each bin b the indicator series has
integrated autocorrelation time τ_b (estimated from recorded trajectories, Geyer's initial positive
sequence), so the bin
fraction has variance p_b(1 − p_b)·2τ_b/(M T): an effective sample size n_eff,b = M T / (2τ_b). The test uses
per-bin z-scores with that variance and their χ² sum (≈ χ² with B − 1 dof; limit at level 1e-4). As an
independent check of that error bar, the spread of G = 32 independent genome groups (batch means over
independent chains, which contains every autocorrelation by construction) must agree with it.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from evolution_stats import ALPHA, integrated_autocorrelation_time
from scipy import integrate, stats

from geodyn.evolution import DoubleWell, GaussianJump, Histogram, Metropolis, Population, Sigmoid, Trajectories

BETA = 2.5
WELL = DoubleWell(height=1.0, width=1.0, tilt=0.15)
EDGES = np.linspace(-1.8, 1.8, 25)  # 0.15-wide bins; the mass outside is 2e-6 (pooled into no bin)
M, T, TRACKED, GROUPS = 4096, 1500, 1024, 32


def gibbs_samples(m: int, beta: float, seed: int) -> torch.Tensor:
    """Exact draws from e^{−βH} on [−3, 3] by rejection from the uniform law (mass outside: < e^{−100})."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    h_min = float(WELL.energy(torch.linspace(-3, 3, 20001, dtype=torch.float64).reshape(-1, 1)).min())
    while sum(len(o) for o in out) < m:
        x = 6.0 * torch.rand(8 * m, 1, generator=gen, dtype=torch.float64) - 3.0
        keep = torch.rand(8 * m, generator=gen, dtype=torch.float64) < torch.exp(-beta * (WELL.energy(x) - h_min))
        out.append(x[keep])
    return torch.cat(out)[:m]


def bin_probabilities(beta: float) -> np.ndarray:
    def h(x):
        return float(WELL.energy(torch.tensor([[x]], dtype=torch.float64)))

    z = integrate.quad(lambda x: math.exp(-beta * h(x)), -np.inf, np.inf, epsabs=0, epsrel=1e-13, limit=200)[0]
    return np.array(
        [
            integrate.quad(lambda x: math.exp(-beta * h(x)), a, b, epsabs=0, epsrel=1e-13)[0] / z
            for a, b in zip(EDGES[:-1], EDGES[1:], strict=True)
        ]
    )


@pytest.mark.parametrize(
    ("acceptance", "dtype"),
    [(Sigmoid(BETA), torch.float64), (Metropolis(BETA), torch.float64), (Sigmoid(BETA), torch.float32)],
    ids=["sigmoid", "metropolis", "sigmoid-float32"],
)
def test_stationary_histogram_is_gibbs(acceptance, dtype):
    """float32 genomes (``dtype=``) keep detailed balance up to float32 rounding of q and H (relative 6e-8, far
    below the Monte-Carlo resolution of ~1e-3 per bin), so they face the same test."""
    q0 = gibbs_samples(M, BETA, seed=1)
    pop = Population(q0, WELL, GaussianJump(0.6**2), acceptance, seed=2, dtype=dtype)
    assert pop.genomes.dtype == dtype
    hist = Histogram(EDGES, groups=GROUPS)
    traj = Trajectories(TRACKED)
    pop.run(T, [hist, traj])

    p_exact = bin_probabilities(BETA)
    p_hat = hist.probabilities().numpy()
    n = float(hist.samples.sum())  # M·T genome-steps
    # τ_b per bin from the indicator series of 1024 tracked chains (steps 1..T)
    x = traj.q[1:, :, 0].numpy()
    idx = np.digitize(x, EDGES) - 1
    tau = np.array([integrated_autocorrelation_time((idx == b).astype(float)) for b in range(len(p_exact))])
    n_eff = n / (2.0 * tau)
    se = np.sqrt(p_exact * (1 - p_exact) / n_eff)
    z = (p_hat - p_exact) / se
    chi2 = float((z**2).sum())
    limit = float(stats.chi2.isf(ALPHA, len(z) - 1))
    # batch means over independent genome groups: an error bar that needs no τ estimate at all
    groups = hist.group_probabilities().numpy()
    se_batch = groups.std(0, ddof=1) / math.sqrt(GROUPS)
    ratio = se_batch / se
    print(
        f"\n{acceptance!r}: M·T = {n:.0f}, τ_int per bin {tau.min():.1f}…{tau.max():.1f}, "
        f"n_eff {n_eff.min():.0f}…{n_eff.max():.0f}; χ² = {chi2:.1f} on {len(z) - 1} dof (limit {limit:.1f}), "
        f"max |z| = {np.abs(z).max():.2f}; batch-means SE / τ-based SE: {ratio.min():.2f}…{ratio.max():.2f}"
    )
    assert chi2 <= limit
    z_bonferroni = float(stats.norm.isf(ALPHA / (2 * len(z))))  # |z| bound for the largest of B bins
    assert np.abs(z).max() <= z_bonferroni
    # a standard deviation from G samples has relative error ≈ 1/√(2(G−1)) = 0.127 (Bonferroni over the bins)
    assert np.all(np.abs(np.log(ratio)) <= z_bonferroni / math.sqrt(2 * (GROUPS - 1)))
    # the same data reject a neighbouring Gibbs state (β_s × 1.1): the test can fail
    z_wrong = (p_hat - bin_probabilities(1.1 * BETA)) / se
    assert float((z_wrong**2).sum()) > 10 * limit
