"""Moran and Wright–Fisher reproduction with fitness e^{−wH}; the N = 2 Moran fixation probability is the sigmoid
acceptance (4.5) with β_s = w.

Exact parts to round-off; simulated parts against binomial / multinomial laws at level 1e-4 (evolution_stats).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from evolution_stats import ALPHA, Z, chi2_against
from scipy import stats

from geodyn.evolution import (
    FunctionLandscape,
    GaussianJump,
    Moran,
    Population,
    Sigmoid,
    WrightFisher,
    moran_fixation_probability,
)

LINEAR = FunctionLandscape(lambda q: q[:, 0], lambda q: torch.ones_like(q))  # H(q) = q₀: a genome's energy is q


def absorbing_chain_fixation(dh: float, n: int, w: float) -> float:
    """Fixation probability of one mutant in a Moran population of n, from the birth–death chain itself:
    i → i ± 1 with P₊ = (i r/(i r + n − i))·(n − i)/n, P₋ = ((n − i)/(i r + n − i))·i/n, r = e^{−w ΔH};
    solve x_i = P₊ x_{i+1} + P₋ x_{i−1} + (1 − P₊ − P₋) x_i, x_0 = 0, x_n = 1."""
    r = np.exp(-w * dh)
    a = np.zeros((n + 1, n + 1))
    b = np.zeros(n + 1)
    a[0, 0] = a[n, n] = 1.0
    b[n] = 1.0
    for i in range(1, n):
        tot = i * r + n - i
        up, down = i * r / tot * (n - i) / n, (n - i) / tot * i / n
        a[i, i], a[i, i + 1], a[i, i - 1] = up + down, -up, -down
    return float(np.linalg.solve(a, b)[1])


def test_two_genome_moran_fixation_is_the_sigmoid_exactly():
    dh = torch.linspace(-30, 30, 601, dtype=torch.float64)
    for w in (0.3, 1.0, 2.5):
        torch.testing.assert_close(moran_fixation_probability(dh, 2, w), Sigmoid(w)(dh), rtol=1e-14, atol=1e-300)


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_fixation_formula_against_the_absorbing_chain(n):
    for dh in (-2.0, -0.3, 1e-9, 0.0, 0.7, 3.0):
        ref = absorbing_chain_fixation(dh, n, w=1.3)
        assert abs(float(moran_fixation_probability(dh, n, 1.3)) - ref) <= 1e-12
    assert float(moran_fixation_probability(0.0, n)) == pytest.approx(1 / n, abs=1e-15)


@pytest.mark.parametrize("n", [2, 4])
def test_simulated_moran_fixation(n):
    """Many independent demes of n genomes, one mutant each (energy ΔH above the residents), Moran until fixed."""
    dhs = torch.tensor([-1.5, -0.5, 0.0, 0.5, 1.5], dtype=torch.float64)
    per = 40_000 if n == 2 else 10_000
    demes = per * len(dhs)
    dh = dhs.repeat_interleave(per)
    q0 = torch.zeros(demes, n, dtype=torch.float64)
    q0[:, 0] = dh  # slot 0 is the mutant, H = ΔH; the residents have H = 0
    pop = Population(
        q0.reshape(-1, 1),
        LINEAR,
        GaussianJump(0.0),
        Sigmoid(1.0),  # σ = 0: no mutations
        reproduction=Moran(selection=1.0),
        demes=demes,
        seed=7,
    )
    for _ in range(100):  # in chunks of 5 steps until every deme is absorbed (each chunk absorbs most of the rest)
        pop.run(5)
        g = pop.genomes.reshape(demes, n)
        if bool((g == g[:, :1]).all()):
            break
    assert bool((g == g[:, :1]).all())
    mutant_won = (g[:, 0] == dh) & (dh != 0)
    z_max = float(stats.norm.isf(ALPHA / (2 * len(dhs))))
    for i, d in enumerate(dhs.tolist()):
        if d == 0.0:
            continue  # the mutant is indistinguishable from the residents
        p = float(moran_fixation_probability(d, n))
        p_hat = float(mutant_won[i * per : (i + 1) * per].double().mean())
        se = (p * (1 - p) / per) ** 0.5
        print(f"n = {n}, ΔH = {d:+.1f}: fixed {p_hat:.4f}, theory {p:.4f} (z = {(p_hat - p) / se:+.2f})")
        assert abs(p_hat - p) <= z_max * se


def test_wright_fisher_offspring_are_multinomial():
    """One Wright–Fisher generation: the parents of a deme's n slots are i.i.d. ∝ e^{−wH}; pooled over 20 000
    identical demes, the offspring counts of the n parents are Multinomial(D·n, softmax(−wH))."""
    n, demes, w = 8, 20_000, 0.7
    h = torch.tensor([0.0, 0.3, -0.5, 1.2, 2.0, 0.1, -1.0, 0.6], dtype=torch.float64)
    q0 = h.repeat(demes).reshape(-1, 1)
    pop = Population(
        q0,
        LINEAR,
        GaussianJump(0.0),
        Sigmoid(1.0),
        reproduction=WrightFisher(w),
        demes=demes,
        labels=torch.arange(n).repeat(demes),
        seed=3,
    )
    info = pop.step()
    assert bool(((info.parents // n) == torch.arange(demes).repeat_interleave(n)).all())  # demes never mix
    torch.testing.assert_close(pop.genomes[:, 0], h[pop.labels])  # labels travel with their genomes
    counts = torch.bincount(pop.labels, minlength=n).numpy()
    chi2, dof, limit = chi2_against(counts, torch.softmax(-w * h, 0).numpy(), demes * n)
    print(f"Wright–Fisher offspring: χ² = {chi2:.1f} on {dof} dof (limit {limit:.1f})")
    assert chi2 <= limit


def test_moran_several_events_keep_population_size_and_lineages():
    """A Moran step with n events replaces n slots one at a time; every slot's parent is an original genome of the
    same deme, and the energies carried are those of the copied genomes."""
    n, demes = 6, 500
    q0 = torch.randn(demes * n, 1, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    pop = Population(q0, LINEAR, GaussianJump(0.0), Sigmoid(1.0), reproduction=Moran(events=None), demes=demes, seed=2)
    info = pop.step()
    assert bool(((info.parents // n) == torch.arange(demes).repeat_interleave(n)).all())
    torch.testing.assert_close(pop.genomes, q0[info.parents])
    torch.testing.assert_close(pop.energies, pop.genomes[:, 0])
    # a neutral check of the rates: with equal fitness each event copies a uniform parent onto a uniform slot,
    # so a slot keeps its own genome after n events with probability (1 − 1/n)^n + … ≥ (1 − 1/n)^n
    flat = Population(
        torch.zeros(demes * n, 1, dtype=torch.float64),
        LINEAR,
        GaussianJump(0.0),
        Sigmoid(1.0),
        reproduction=Moran(events=None),
        demes=demes,
        seed=4,
    )
    kept = float((flat.step().parents == torch.arange(demes * n)).double().mean())
    assert kept >= (1 - 1 / n) ** n - Z * ((1 - 1 / n) ** n / (demes * n)) ** 0.5
