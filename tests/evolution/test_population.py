"""Building blocks of geodyn.evolution: landscapes (NK generator), jump laws, acceptance rules, the memory learners,
the population's stepping and its recorders. Exact identities to round-off; Monte-Carlo ones at level 1e-4."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from evolution_stats import Z

from geodyn.evolution import (
    AcceptanceRate,
    BitFlip,
    DoubleWell,
    EvolutionModel,
    GaussianJump,
    MeanEnergy,
    MemoryJump,
    Metropolis,
    MovingOptimum,
    NKLandscape,
    PointMutation,
    Population,
    Quadratic,
    Sigmoid,
    TableLandscape,
    TimeAverage,
    Trajectories,
    UniformJump,
    WrightFisher,
    all_genomes,
    ema_beta,
    genome_index,
)
from geodyn.metric import Power, ThreeRegime

F64 = torch.float64


# -- landscapes -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("neighbours", ["random", "adjacent"])
def test_nk_landscape_matches_a_direct_loop_and_is_seeded(neighbours):
    nk = NKLandscape(12, 3, seed=5, neighbours=neighbours)
    x = torch.rand(64, 12, generator=torch.Generator().manual_seed(0)) < 0.5
    ref = []
    for row in x.tolist():
        f = [float(nk.tables[i, sum(int(row[int(nk.loci[i, j])]) << j for j in range(4))]) for i in range(12)]
        ref.append(-math.log(sum(f) / 12))
    torch.testing.assert_close(nk.energy(x), torch.tensor(ref, dtype=F64), rtol=1e-14, atol=0)
    # each locus has itself first and k distinct other neighbours
    assert bool((nk.loci[:, 0] == torch.arange(12)).all())
    assert all(len(set(row)) == 4 for row in nk.loci.tolist())
    # same seed, same landscape; another seed, another one
    assert torch.equal(NKLandscape(12, 3, seed=5, neighbours=neighbours).energy(x), nk.energy(x))
    assert not torch.equal(NKLandscape(12, 3, seed=6, neighbours=neighbours).energy(x), nk.energy(x))
    assert bool(((nk.tables > 0) & (nk.tables < 1)).all())
    lin = NKLandscape(12, 3, seed=5, neighbours=neighbours, energy="linear", scale=2.0)
    torch.testing.assert_close(lin.energy(x), -2.0 * nk.mean_fitness(x))


def test_nk_with_k_zero_is_additive():
    """K = 0: no epistasis, F is a sum of independent per-locus terms (a smooth, single-peaked landscape)."""
    nk = NKLandscape(6, 0, seed=1, energy="linear")
    states = all_genomes(6)
    f = -nk.energy(states)
    best = nk.tables.argmax(1).bool()
    assert int(genome_index(best.unsqueeze(0))) == int(f.argmax())


def test_genome_enumeration_round_trip_and_table_landscape():
    states = all_genomes(5)
    assert states.shape == (32, 5)
    assert torch.equal(genome_index(states), torch.arange(32))
    values = torch.linspace(0, 1, 32, dtype=F64)
    torch.testing.assert_close(TableLandscape(values).energy(states.flip(0)), values.flip(0))


def test_continuous_landscape_gradients():
    q = torch.randn(20, 3, generator=torch.Generator().manual_seed(2), dtype=F64)
    k = torch.tensor([[2.0, 0.3, 0.0], [0.3, 1.0, -0.2], [0.0, -0.2, 0.5]], dtype=F64)
    for land in (Quadratic(k, center=[0.1, -0.2, 0.3]), Quadratic([1.0, 2.0, 3.0]), DoubleWell(1.3, 0.8, 0.2)):
        auto = super(type(land), land).grad(q)  # the base class's autograd gradient
        torch.testing.assert_close(land.grad(q), auto, rtol=1e-13, atol=1e-13)


def test_moving_optimum_switches_and_oscillates():
    c = torch.tensor([[1.0, 2.0], [-1.0, -2.0]], dtype=F64)
    land = MovingOptimum.switching(1.0, c, period=10)
    q = c[0].unsqueeze(0)
    assert float(land.energy(q, 9)) == 0.0 and float(land.energy(q, 10)) == pytest.approx(0.5 * 20.0)
    assert float(land.energy(q, 20)) == 0.0
    osc = MovingOptimum.oscillating([1.0, 1.0], amplitude=[2.0, 0.0], period=8)
    torch.testing.assert_close(osc.center(2), torch.tensor([2.0, 0.0], dtype=F64))
    # the population re-evaluates energies as the environment changes
    pop = Population(q.expand(4, 2), land, GaussianJump(1e-30), Sigmoid(1.0), seed=0)
    for _ in range(10):
        pop.step()
    assert pop.t == 10
    torch.testing.assert_close(pop.energies, land.energy(pop.genomes, 10))


# -- jump laws -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("jump", [BitFlip(0.2), PointMutation(1), PointMutation(3)], ids=repr)
def test_discrete_kernels_are_symmetric_and_normalised(jump):
    j = jump.matrix(all_genomes(7))
    torch.testing.assert_close(j, j.T, rtol=0, atol=0)
    torch.testing.assert_close(j.sum(1), torch.ones(128, dtype=F64), rtol=0, atol=1e-15)


def test_point_mutation_flips_exactly_k_loci_and_bitflip_at_its_rate():
    x = torch.zeros(20_000, 16, dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    for k in (1, 4):
        assert bool((PointMutation(k).sample(x, gen).sum(1) == k).all())
    flips = BitFlip(0.1).sample(x, gen).double().mean()
    assert abs(float(flips) - 0.1) <= Z * math.sqrt(0.09 / x.numel())


@pytest.mark.parametrize(
    "jump",
    [
        GaussianJump(torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=F64)),
        GaussianJump(torch.tensor([0.4, 0.1])),
        GaussianJump(std=0.3),
        UniformJump(torch.tensor([0.5, 1.0])),
    ],
    ids=["full", "diagonal", "std", "uniform"],
)
def test_continuous_jump_covariance(jump):
    """Sample covariance of 400 000 jumps vs σ: Var(σ̂_ij) = (E[Δ_i²Δ_j²] − σ_ij²)/n, bounded here by the Gaussian
    (Isserlis) value ×1.0 for Gaussian laws and by the uniform law's (smaller) fourth moments otherwise."""
    n = 400_000
    d = jump.sample(torch.zeros(n, 2, dtype=F64), torch.Generator().manual_seed(1))
    cov = d.T @ d / n
    sigma = jump.covariance(2)
    se = torch.sqrt((torch.outer(sigma.diag(), sigma.diag()) + sigma**2) / n)
    assert bool(((cov - sigma).abs() <= Z * se).all())
    assert bool((d.mean(0).abs() <= Z * sigma.diag().sqrt() / math.sqrt(n)).all())


def test_gaussian_quadrature_rule_integrates_moments():
    sigma = torch.tensor([[0.5, 0.2], [0.2, 0.3]], dtype=F64)
    nodes, w = GaussianJump(sigma).quadrature(2, 6)
    torch.testing.assert_close(w.sum(), torch.tensor(1.0, dtype=F64))
    torch.testing.assert_close((w[:, None, None] * nodes[:, :, None] * nodes[:, None, :]).sum(0), sigma)
    fourth = (w * nodes[:, 0] ** 4).sum()
    torch.testing.assert_close(fourth, 3 * sigma[0, 0] ** 2)


# -- acceptance ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("rule", [Sigmoid(1.7), Metropolis(1.7)], ids=["sigmoid", "metropolis"])
def test_acceptance_ratio_is_the_boltzmann_factor(rule):
    """A(ΔH)/A(−ΔH) = e^{−β_s ΔH}: detailed balance (4.3) for any symmetric J; no overflow at huge |ΔH|."""
    dh = torch.linspace(-20, 20, 4001, dtype=F64)
    torch.testing.assert_close(rule(dh) / rule(-dh), torch.exp(-1.7 * dh), rtol=1e-13, atol=0)
    big = rule(torch.tensor([-1e6, 1e6], dtype=F64))
    assert torch.equal(big, torch.tensor([1.0, 0.0], dtype=F64))


def test_sigmoid_is_four_five():
    dh = torch.tensor([-1.0, 0.0, 0.3], dtype=F64)
    torch.testing.assert_close(Sigmoid(2.0)(dh), 1 / (1 + torch.exp(2.0 * dh)), rtol=1e-15, atol=0)


# -- population stepping ----------------------------------------------------------------------------------------------
def test_population_is_reproducible_from_its_seed():
    def run(seed):
        pop = Population(torch.zeros(100, 3, dtype=F64), DoubleWell(), GaussianJump(0.1), Sigmoid(2.0), seed=seed)
        return pop.run(25).genomes

    assert torch.equal(run(3), run(3))
    assert not torch.equal(run(3), run(4))


def test_step_accepts_and_rejects_consistently():
    land = Quadratic(1.0)
    pop = Population(torch.randn(5000, 2, dtype=F64), land, GaussianJump(0.5), Metropolis(1.0), seed=1)
    info = pop.step()
    torch.testing.assert_close(info.q_selected[info.accepted], info.proposal[info.accepted])
    torch.testing.assert_close(info.q_selected[~info.accepted], info.q_old[~info.accepted])
    torch.testing.assert_close(info.h_selected, land.energy(info.q_selected))
    # every downhill Metropolis move is accepted
    assert bool(info.accepted[info.h_proposal <= info.h_old].all())


def test_float32_step_matches_a_float64_reference_from_the_same_draws():
    """``dtype=torch.float32``: one step equals the step (4.1), (4.5) recomputed in float64 numpy from the same
    float32 normals z and uniforms u (re-drawn from a generator with the population's seed, in its order).

    Bounds (u₃₂ = 2⁻²⁴, first order, then doubled for higher orders): the proposal q + s z rounds s = 0.3, s·z
    and the sum: |Δq'| ≤ 3u₃₂(|q| + |s z|). H = Σ_i w_i², w = q² − 1, over 16 coordinates: q² and the
    subtraction give |Δw| ≤ u₃₂(q² + |w|), the square 2|w||Δw| + u₃₂w², the 15 additions 15u₃₂ Σ w², and an
    input error Δq' adds |∂H/∂q_i| |Δq'_i| = |4 q_i w_i| |Δq'_i|. The float32 decision u < σ(−β ΔH) may differ
    from float64 only where |u − A| ≤ (β/4)(|ΔH(q')| + |ΔH(q)|) + 2u₃₂ (σ' ≤ ¼, one rounding each side).
    """
    seed, beta, m = 7, 2.0, 4000
    q0 = torch.randn(m, 16, generator=torch.Generator().manual_seed(1), dtype=torch.float32)
    pop = Population(q0, DoubleWell(), GaussianJump(0.3**2), Sigmoid(beta), seed=seed, dtype=torch.float32)
    info = pop.step()
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(q0.shape, generator=gen, dtype=torch.float32).double().numpy()
    u = torch.rand(m, generator=gen, dtype=torch.float32).double().numpy()
    q = q0.double().numpy()
    prop = q + 0.3 * z
    u32 = 2.0**-24
    dq = np.abs(info.proposal.double().numpy() - prop)
    assert np.all(dq <= 3 * u32 * (np.abs(q) + np.abs(0.3 * z)))

    def energy(x):
        return ((x * x - 1.0) ** 2).sum(1)

    def energy_bound(x, dx):
        w = x * x - 1.0
        dw = u32 * (x * x + np.abs(w))
        return 2 * ((2 * np.abs(w) * dw + u32 * w * w + np.abs(4 * x * w) * dx).sum(1) + 15 * u32 * (w * w).sum(1))

    h_old, h_prop = energy(q), energy(prop)
    bound_prop = energy_bound(prop, 3 * u32 * (np.abs(q) + np.abs(0.3 * z)))
    bound_old = energy_bound(q, 0.0 * q)
    assert np.all(np.abs(info.h_proposal.double().numpy() - h_prop) <= bound_prop)
    assert np.all(np.abs(info.h_old.double().numpy() - h_old) <= bound_old)
    a = 1.0 / (1.0 + np.exp(beta * (h_prop - h_old)))
    clear = np.abs(u - a) > beta / 4 * (bound_prop + bound_old) + 2 * u32
    accepted = info.accepted.numpy()
    assert clear.mean() > 0.99  # the comparison is decided for nearly every genome
    assert np.array_equal(accepted[clear], (u < a)[clear])
    assert 0.2 < accepted.mean() < 0.8  # both outcomes are exercised
    sel = np.where(accepted[:, None], info.proposal.numpy(), q0.numpy())
    assert np.array_equal(info.q.numpy(), sel)
    assert info.q.dtype == info.h.dtype == torch.float32


def test_population_rejects_bad_arguments():
    with pytest.raises(ValueError, match="demes"):
        Population(torch.zeros(10, 2), Quadratic(1.0), GaussianJump(0.1), Sigmoid(1.0), demes=3)
    with pytest.raises(ValueError, match="continuous landscape needs a continuous jump"):
        EvolutionModel(Quadratic(1.0), BitFlip(0.1), Sigmoid(1.0))
    with pytest.raises(ValueError, match="model= or its parts"):
        Population(
            torch.zeros(4, 1), Quadratic(1.0), model=EvolutionModel(Quadratic(1.0), GaussianJump(1.0), Sigmoid(1.0))
        )
    with pytest.raises(ValueError, match="beta_s"):
        Sigmoid(-1.0)
    with pytest.raises(ValueError, match="dtype must be a floating dtype"):
        Population(torch.zeros(4, 1), Quadratic(1.0), GaussianJump(0.1), Sigmoid(1.0), dtype=torch.int64)
    with pytest.raises(ValueError, match="dtype must be a floating dtype"):
        Population(torch.zeros(4, 8, dtype=torch.bool), NKLandscape(8, 2), PointMutation(1), Sigmoid(1.0),
                   dtype=torch.float32)  # fmt: skip


def test_recorders():
    land = Quadratic(1.0)
    pop = Population(
        torch.randn(300, 2, dtype=F64), land, GaussianJump(0.2), Sigmoid(1.0), seed=5, labels=torch.arange(300) % 3
    )
    mean, avg, acc, traj = MeanEnergy(every=5, labels=3), TimeAverage(burn_in=10), AcceptanceRate(), Trajectories(4)
    pop.run(40, [mean, avg, acc, traj])
    assert mean.steps == list(range(0, 41, 5)) and mean.energy.shape == (9,)
    assert mean.fraction_by_label.shape == (9, 3)
    torch.testing.assert_close(mean.energy[-1], pop.energies.mean())
    torch.testing.assert_close(mean.fitness_by_label[-1, 1], torch.exp(-pop.energies[1::3]).mean())
    assert avg.count == 31 and avg.fitness.shape == (300,)
    assert acc.rate.shape == (40,) and 0.3 < acc.mean < 0.6  # ≈ ½ for small jumps under the sigmoid
    assert traj.q.shape == (41, 4, 2)
    torch.testing.assert_close(traj.q[-1], pop.genomes[:4])


# -- memory learners ----------------------------------------------------------------------------------------------
def test_memory_jump_flat_law_is_isotropic_and_budget_is_trace():
    law = [Power(0.0), Power(0.5), ThreeRegime(0.01, 2.0)]
    kinds = torch.arange(30) % 3
    jump = MemoryJump(law, [0.3, 0.5, 0.7], tau=5.0, size=30, dim=4, kinds=kinds)
    torch.testing.assert_close(
        jump.variances(), (torch.tensor([0.3, 0.5, 0.7], dtype=F64)[kinds] ** 2).unsqueeze(-1).expand(30, 4)
    )  # no memory yet: s² I
    land = Quadratic(torch.tensor([0.01, 0.1, 1.0, 10.0], dtype=F64))
    pop = Population(
        torch.randn(30, 4, generator=torch.Generator().manual_seed(0), dtype=F64), land, jump, Sigmoid(1.0), seed=1
    )
    pop.run(20)
    var = jump.variances()
    torch.testing.assert_close(var[kinds == 0], torch.full((10, 4), 0.09, dtype=F64))
    scales = torch.tensor([0.3, 0.5, 0.7], dtype=F64)[kinds]
    torch.testing.assert_close(var.sum(1), 4 * scales**2)  # tr σ = N s² for every learner
    # the memory learners mutate less along the stiff direction (large κ̂ there)
    assert bool((var[kinds == 1, 3] < var[kinds == 1, 0]).all())


def test_memory_ema_matches_a_direct_computation():
    """μ, κ̂ after three observations, central moment, bias-corrected (EQUATIONS.md §6 with β = τ/(1+τ))."""
    land = Quadratic(torch.tensor([1.0, 3.0], dtype=F64))
    q0 = torch.tensor([[1.0, -2.0], [0.5, 0.5]], dtype=F64)
    tau = 4.0
    jump = MemoryJump(Power(0.5), 0.2, tau, size=2, dim=2)
    pop = Population(q0, land, jump, Sigmoid(1.0), seed=3)
    b = ema_beta(tau)
    mu = torch.zeros(2, 2, dtype=F64)
    kap = torch.zeros(2, 2, dtype=F64)
    for _ in range(3):
        pop.step()
        g = land.grad(pop.genomes)
        mu = b * mu + (1 - b) * g
        kap = b * kap + (1 - b) * (g - mu) ** 2
    torch.testing.assert_close(jump.kappa_hat(), kap / (1 - b**3))
    ginv = 1 / (kap / (1 - b**3)).sqrt()
    torch.testing.assert_close(jump.variances(), 2 * 0.04 * ginv / ginv.sum(1, keepdim=True))


def test_pooled_memory_and_inheritance():
    land = Quadratic(torch.tensor([1.0, 4.0], dtype=F64))
    m = 40
    kinds = torch.arange(m) % 2
    pooled = MemoryJump([Power(0.5), Power(1.0)], 0.3, 10.0, size=m, dim=2, kinds=kinds, pooled=True)
    pop = Population(torch.randn(m, 2, dtype=F64), land, pooled, Sigmoid(1.0), seed=2)
    pop.run(5)
    k = pooled.kappa_hat()
    assert pooled.kappa.shape == (2, 2)
    assert torch.equal(k[kinds == 0], k[0].expand(20, 2)) and torch.equal(k[kinds == 1], k[1].expand(20, 2))
    # individual memories are inherited with the genome under reproduction
    own = MemoryJump([Power(0.0), Power(0.5)], 0.3, 10.0, size=m, dim=2, kinds=kinds)
    pop = Population(
        torch.randn(m, 2, dtype=F64),
        land,
        own,
        Sigmoid(1.0),
        seed=2,
        reproduction=WrightFisher(),
        labels=kinds,
        reproduce_every=3,
    )
    pop.run(2)
    mu, kap = own.mean.clone(), own.kappa.clone()
    info = pop.step()  # step 3: selection, the memory observes, then Wright–Fisher reproduction
    assert info.parents is not None and not torch.equal(info.parents, torch.arange(m))
    b = ema_beta(10.0)
    g = land.grad(info.q_selected)
    mu = b * mu + (1 - b) * g
    kap = b * kap + (1 - b) * (g - mu) ** 2
    torch.testing.assert_close(own.kappa, kap[info.parents])
    torch.testing.assert_close(own.mean, mu[info.parents])
    assert torch.equal(own.kinds, kinds[info.parents]) and torch.equal(own.kinds, pop.labels)
    torch.testing.assert_close(pop.genomes, info.q_selected[info.parents])


def test_ema_beta_convention():
    assert ema_beta(9.0) == pytest.approx(0.9) and ema_beta(999.0) == pytest.approx(0.999)
    assert np.isclose(ema_beta(0.0), 0.0)
