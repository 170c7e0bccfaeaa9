"""Public constructors and solvers check shapes and values up front: a ValueError naming the argument, never NaN,
a silently wrong answer, or an error from deep inside torch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from geodyn.dynamics import EulerMaruyama, FokkerPlanck1D, FokkerPlanck2D, LangevinEnsemble, LearningModel
from geodyn.evolution import (
    GaussianJump,
    MovingOptimum,
    PointMutation,
    Population,
    Quadratic,
    Sigmoid,
    TableLandscape,
    UniformJump,
    all_genomes,
)
from geodyn.metric import Power
from geodyn.quantum import (
    CrankNicolsonSchrodinger,
    Grid,
    Hamiltonian,
    SplitStepSchrodinger,
    effective_potential,
    evolve,
    from_learning,
    ground_state,
)


# -- evolution ------------------------------------------------------------------------------------------------------
def test_empty_population_is_rejected():
    with pytest.raises(ValueError, match=r"genomes must have shape \(M, N\) with M, N >= 1, got \(0, 3\)"):
        Population(torch.zeros(0, 3), Quadratic(), GaussianJump(std=0.1), Sigmoid(1.0))


def test_table_landscape_with_genomes_of_the_wrong_length():
    table = TableLandscape(torch.arange(8.0))  # L = 3 loci
    short = all_genomes(2)  # 2 loci would index entries 0..3 of an 8-entry table: silently wrong
    with pytest.raises(ValueError, match="genomes must have 3 loci for a table of 8 entries, got 2"):
        table.energy(short)
    with pytest.raises(ValueError, match="genomes must have 3 loci"):
        table.energy(all_genomes(4))  # too long: was a bare IndexError
    with pytest.raises(ValueError, match="genomes have length 2 but TableLandscape"):
        Population(short, table, PointMutation(), Sigmoid(1.0))
    # the right length still reads the entry of Σ x_j 2^j
    assert table.energy(all_genomes(3)).tolist() == list(range(8))


def test_continuous_genome_of_the_wrong_dimension():
    land = Quadratic(curvature=[1.0, 2.0])
    with pytest.raises(ValueError, match="genomes have length 3 but Quadratic"):
        Population(torch.zeros(5, 3, dtype=torch.float64), land, GaussianJump(std=0.1), Sigmoid(1.0))
    with pytest.raises(ValueError, match="genomes have length 3"):
        land.energy(torch.zeros(5, 3, dtype=torch.float64))  # was "mat1 and mat2 shapes" / broadcast errors
    with pytest.raises(ValueError, match="jump std has 2 entries but the genomes have length 3"):
        Population(torch.zeros(5, 3, dtype=torch.float64), Quadratic(), GaussianJump(std=[0.1, 0.2]), Sigmoid(1.0))
    with pytest.raises(ValueError, match="jump covariance is \\(2, 2\\) but the genomes have length 1"):
        Population(torch.zeros(5, 1, dtype=torch.float64), Quadratic(), GaussianJump(cov=torch.eye(2)), Sigmoid(1.0))
    with pytest.raises(ValueError, match="half_width has 2 entries"):
        Population(torch.zeros(5, 1, dtype=torch.float64), Quadratic(), UniformJump([0.1, 0.1]), Sigmoid(1.0))
    moving = MovingOptimum.switching(1.0, [[0.0, 0.0], [1.0, 1.0]], period=5)
    with pytest.raises(ValueError, match="length 1 but MovingOptimum"):
        Population(torch.zeros(4, 1, dtype=torch.float64), moving, GaussianJump(std=0.1), Sigmoid(1.0))
    with pytest.raises(ValueError, match="disagree on N"):
        Quadratic(curvature=[1.0, 2.0], center=[0.0, 0.0, 0.0])


# -- dynamics -------------------------------------------------------------------------------------------------------
def _ensemble(kappa=1.0):
    return LangevinEnsemble(lambda q: 0.5 * (q * q).sum(-1), metric=Power(0.5), kappa=kappa, gamma=0.1)


def test_langevin_bad_walkers():
    with pytest.raises(ValueError, match=r"q0 must have shape \(M, N\) with M, N >= 1, got \(0, 2\)"):
        _ensemble().simulate(torch.zeros(0, 2), 3, EulerMaruyama(0.1))
    with pytest.raises(ValueError, match="q0 must be finite"):
        _ensemble().simulate([[math.nan]], 3, EulerMaruyama(0.1))
    with pytest.raises(ValueError, match="kappa has size 3 but q has N = 2"):
        _ensemble(kappa=torch.ones(3)).simulate(torch.zeros(4, 2), 3, EulerMaruyama(0.1))
    with pytest.raises(ValueError, match="kappa must be finite"):
        LearningModel(lambda q: q.sum(-1), metric=Power(1), kappa=[1.0, math.inf], gamma=0.1)
    with pytest.raises(ValueError, match="gamma must be a finite number > 0, got -1.0"):
        LearningModel(lambda q: q.sum(-1), metric=Power(1), gamma=-1.0)
    with pytest.raises(ValueError, match="dt must be a finite number > 0, got nan"):
        EulerMaruyama(math.nan)


def test_fokker_planck_bad_grid_and_times():
    model = dict(grad=lambda q: q, metric=Power(1.0), kappa=1.0, gamma=0.5)
    with pytest.raises(ValueError, match=r"domain must be \(a, b\) with b > a, got \(1.0, -1.0\)"):
        FokkerPlanck1D(**model, domain=(1.0, -1.0), n=10)
    with pytest.raises(ValueError, match="n must be >= 2 cells, got 1"):
        FokkerPlanck1D(**model, domain=(-1.0, 1.0), n=1)
    with pytest.raises(ValueError, match="shape must have at least 2 cells per axis, got \\(1, 5\\)"):
        FokkerPlanck2D(**model, domain=((-1, 1), (-1, 1)), shape=(1, 5))
    fp = FokkerPlanck1D(**model, domain=(-2.0, 2.0), n=20)
    p0 = fp.normalize(np.ones(20))
    with pytest.raises(ValueError, match="dt must be a finite number > 0, got 0.0"):
        fp.evolve(p0, 1.0, 0.0)
    with pytest.raises(ValueError, match="t_final must be a finite number >= 0, got nan"):
        fp.evolve(p0, math.nan, 0.1)
    with pytest.raises(ValueError, match="density has 5 values for a grid of shape \\(20,\\)"):
        fp.evolve(np.ones(5), 1.0, 0.1)


# -- quantum --------------------------------------------------------------------------------------------------------
def test_quantum_bad_parameters():
    grid = Grid((-4.0, 4.0), 32)
    with pytest.raises(ValueError, match="hbar must be a finite number > 0, got 0.0"):
        Hamiltonian(grid, 0.0, 1.0)
    with pytest.raises(ValueError, match="mass must be a finite number > 0, got inf"):
        Hamiltonian(grid, 1.0, math.inf)
    with pytest.raises(
        ValueError, match=r"potential must be a number or an array of the grid shape \(32,\), got \(16,\)"
    ):
        Hamiltonian(grid, 1.0, 1.0, potential=np.zeros(16))
    with pytest.raises(ValueError, match="dt must be a finite number > 0, got -0.1"):
        SplitStepSchrodinger(-0.1)
    with pytest.raises(ValueError, match="beta must be a finite number > 0, got 0.0"):
        effective_potential(lambda x: x * x, grid, 0.5, 0.0)
    with pytest.raises(ValueError, match="gamma must be a finite number > 0, got nan"):
        from_learning(math.nan, 1.0, lambda x: x * x, grid)
    ham = Hamiltonian(grid, 1.0, 1.0)
    with pytest.raises(ValueError, match="psi0 has shape \\(8,\\), the grid \\(32,\\)"):
        evolve(ham, np.ones(8), 1.0, CrankNicolsonSchrodinger(0.1))
    with pytest.raises(ValueError, match="need finite t0 <= t1"):
        evolve(ham, np.ones(32), -1.0, CrankNicolsonSchrodinger(0.1))
    with pytest.raises(ValueError, match="dtau must be a finite number > 0, got 0.0"):
        ground_state(ham, CrankNicolsonSchrodinger(0.1), dtau=0.0)
