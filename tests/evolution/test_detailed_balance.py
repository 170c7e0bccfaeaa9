"""Detailed balance (4.3)/(4.6) and the Gibbs state (4.4), exactly, on enumerated discrete genome spaces.

The kernel (4.1) P = J · A is built in full on {0,1}^L (2^L states) for NK landscapes; its stationary vector is
computed independently of geodyn (a dense linear solve of πP = π, Σπ = 1) and compared with e^{−β_s H}/Z.
Tolerance 1e-12 absolute on π (entries ~ 1/2^L ≥ 1e-4): the solve is backward stable, so its error is a few
units of κ(A)·ε, far below 1e-12 for these well-conditioned 256-state chains. Then the population's stepping is
checked against the same matrix: one step from a fixed genome, and T steps from uniform genomes, both against
the exact multinomial laws (χ² at level 1e-4, evolution_stats.py).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from evolution_stats import Z, chi2_against

from geodyn.evolution import (
    BitFlip,
    EvolutionModel,
    JumpLaw,
    Metropolis,
    NKLandscape,
    PointMutation,
    Population,
    Sigmoid,
    all_genomes,
    genome_index,
)

L = 8
STATES = all_genomes(L)


def stationary(p: np.ndarray) -> np.ndarray:
    """π with π P = π, Σ π = 1, by one dense solve (the last balance equation replaced by the normalisation)."""
    n = p.shape[0]
    a = p.T - np.eye(n)
    a[-1] = 1.0
    b = np.zeros(n)
    b[-1] = 1.0
    return np.linalg.solve(a, b)


@pytest.mark.parametrize("acceptance", [Sigmoid(1.7), Metropolis(1.7)], ids=["sigmoid", "metropolis"])
@pytest.mark.parametrize("jump", [PointMutation(1), PointMutation(3), BitFlip(0.13)], ids=repr)
def test_stationary_vector_is_gibbs_to_1e12(jump, acceptance):
    model = EvolutionModel(NKLandscape(L, 3, seed=11, energy="log", scale=4.0), jump, acceptance)
    p = model.transition_matrix(STATES).numpy()
    assert p.min() >= 0.0
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=0, atol=1e-14)
    pi = stationary(p)
    gibbs = model.gibbs(STATES).numpy()
    err = np.abs(pi - gibbs).max()
    print(f"{jump!r} {acceptance!r}: max |π − e^(−βH)/Z| = {err:.2e}")
    assert err <= 1e-12
    # detailed balance (4.3) itself: the probability flux π_i P_ij is a symmetric matrix (to round-off of P)
    flux = gibbs[:, None] * p
    assert np.abs(flux - flux.T).max() <= 1e-15


class BiasedFlip(JumpLaw):
    """A non-symmetric jump law (violates (4.2)): 0 → 1 with probability 0.2, 1 → 0 with 0.05 per locus."""

    discrete = True

    def matrix(self, states):
        up = (~states[:, None, :] & states[None, :, :]).sum(-1).double()
        down = (states[:, None, :] & ~states[None, :, :]).sum(-1).double()
        ones = states.sum(-1).double()[:, None]
        stay0, stay1 = (L - ones) - up, ones - down
        return 0.2**up * 0.8**stay0 * 0.05**down * 0.95**stay1


def test_broken_symmetry_is_detected():
    """The same comparison fails when J is not symmetric, so the 1e-12 test above can fail."""
    model = EvolutionModel(NKLandscape(L, 3, seed=11, scale=4.0), BiasedFlip(), Sigmoid(1.7))
    pi = stationary(model.transition_matrix(STATES).numpy())
    assert np.abs(pi - model.gibbs(STATES).numpy()).max() > 1e-3


def test_wrong_selection_strength_is_detected():
    """Gibbs at β_s is not the stationary state of the kernel at 1.1 β_s (differences ≫ 1e-12)."""
    land = NKLandscape(L, 3, seed=11, scale=4.0)
    pi = stationary(EvolutionModel(land, PointMutation(1), Sigmoid(1.1 * 1.7)).transition_matrix(STATES).numpy())
    gibbs = EvolutionModel(land, PointMutation(1), Sigmoid(1.7)).gibbs(STATES).numpy()
    assert np.abs(pi - gibbs).max() > 1e-4


@pytest.mark.parametrize("acceptance", [Sigmoid(2.0), Metropolis(2.0)], ids=["sigmoid", "metropolis"])
def test_one_population_step_follows_the_kernel(acceptance):
    """200 000 copies of one genome take one step; the outcome counts are multinomial with the kernel's row."""
    length = 6
    states = all_genomes(length)
    model = EvolutionModel(NKLandscape(length, 2, seed=3, scale=5.0), BitFlip(0.15), acceptance)
    start = 37
    pop = Population(states[start].expand(200_000, length), model=model, seed=5)
    pop.step()
    counts = torch.bincount(genome_index(pop.genomes), minlength=2**length).numpy()
    row = model.transition_matrix(states).numpy()[start]
    chi2, dof, limit = chi2_against(counts, row, pop.size)
    print(f"one step, {acceptance!r}: χ² = {chi2:.1f} on {dof} dof (limit {limit:.1f})")
    assert chi2 <= limit
    # and the energies the population carries are those of its genomes
    torch.testing.assert_close(pop.energies, model.landscape.energy(pop.genomes), rtol=0, atol=0)


def test_population_after_t_steps_matches_matrix_power():
    """Independent genomes from uniform after T steps: counts vs the exact law p₀ Pᵀ (no mixing assumed)."""
    length, steps, m = 6, 15, 100_000
    states = all_genomes(length)
    model = EvolutionModel(NKLandscape(length, 2, seed=4, scale=5.0), PointMutation(1), Sigmoid(1.5))
    gen = torch.Generator().manual_seed(9)
    q0 = states[torch.randint(2**length, (m,), generator=gen)]
    pop = Population(q0, model=model, seed=10)
    p0 = torch.bincount(genome_index(q0), minlength=2**length).double().numpy() / m  # the drawn start
    pop.run(steps)
    exact = p0 @ np.linalg.matrix_power(model.transition_matrix(states).numpy(), steps)
    counts = torch.bincount(genome_index(pop.genomes), minlength=2**length).numpy()
    chi2, dof, limit = chi2_against(counts, exact, m)
    # conditioning on the drawn start leaves the outcome a sum of independent multinomials: Var ≤ multinomial's,
    # so the Pearson χ² bound stays conservative
    print(f"after {steps} steps: χ² = {chi2:.1f} on {dof} dof (limit {limit:.1f})")
    assert chi2 <= limit
    # the chain has not mixed yet: the exact law still differs from Gibbs by ≫ the Monte-Carlo error
    gibbs = model.gibbs(states).numpy()
    se = np.sqrt(gibbs * (1 - gibbs) / m)
    assert np.max(np.abs(exact - gibbs) / se) > Z
