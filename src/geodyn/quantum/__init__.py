"""The quantum regime α = 1 (Sec. 3) and the neural potential of general α (Sec. 5).

* :mod:`geodyn.quantum.madelung` — ħ and m from learning parameters (3.12)–(3.13), the effective potential V (3.6),
  the quantum potential Q (3.9) and the neural potential Q_κ (5.3)–(5.4), ψ ↔ (p, θ) (3.10), the hydrodynamic
  equations (3.7)–(3.8) and the windings of the shift symmetry (3.14);
* :mod:`geodyn.quantum.schrodinger` — the Schrödinger equation (3.11) as problem (:class:`Hamiltonian`), method
  (:class:`SplitStepSchrodinger`, :class:`CrankNicolsonSchrodinger`) and output (:class:`SaveAt`,
  :class:`Solution`), real and imaginary time;
* :mod:`geodyn.quantum.nelson` — Nelson walkers whose density follows |ψ(t)|²;
* :mod:`geodyn.quantum.grid` — periodic grids, metric fields g(q) and the Laplace–Beltrami operator.

Fields on grids are numpy arrays (float64, complex128).
"""

from geodyn.quantum.grid import Grid, TensorField, laplace_beltrami, metric_from_law
from geodyn.quantum.madelung import (
    Madelung,
    MadelungFields,
    VariantBWarning,
    effective_potential,
    from_learning,
    mass,
    neural_potential,
    planck_constant,
    quantum_potential,
)
from geodyn.quantum.nelson import NelsonWalkers, nelson_velocities, sample_density, wasserstein_floor
from geodyn.quantum.schrodinger import (
    CrankNicolsonSchrodinger,
    GroundState,
    Hamiltonian,
    SaveAt,
    Solution,
    SplitStepSchrodinger,
    evolve,
    gaussian,
    ground_state,
)

__all__ = [
    "Grid",
    "TensorField",
    "laplace_beltrami",
    "metric_from_law",
    "Madelung",
    "MadelungFields",
    "VariantBWarning",
    "planck_constant",
    "mass",
    "effective_potential",
    "quantum_potential",
    "neural_potential",
    "from_learning",
    "Hamiltonian",
    "SplitStepSchrodinger",
    "CrankNicolsonSchrodinger",
    "SaveAt",
    "Solution",
    "GroundState",
    "evolve",
    "ground_state",
    "gaussian",
    "NelsonWalkers",
    "nelson_velocities",
    "sample_density",
    "wasserstein_floor",
]
