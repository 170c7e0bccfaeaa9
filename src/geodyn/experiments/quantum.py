"""The quantum regime (Sec. 3) and the neural potential (Sec. 5) as experiments; importing this module registers
them in this order:

* ``schrodinger-from-learning`` (:mod:`.quantum_learning`) — learning parameters (γ, β, H̄, κ(q), g = κ) → (ħ, m, V)
  by (3.6), (3.12)–(3.13): the learning dynamics (3.7)–(3.9) against ψ of (3.11), the constants against sympy's
  unique solution, the zero-energy state at βγ = 1; controls: variant B, (3.1)'s stationary state.
* ``quantum-shift-symmetry`` (:mod:`.quantum_shift`) — (3.14) on a ring: the windings at which ψ and the Madelung
  fields evolve alike are exactly 2πħℤ; controls: 2πℤ, 2πħ_Bℤ.
* ``nelson-walkers`` (:mod:`.quantum_nelson`) — stochastic learners whose density follows |ψ(t)|²; control: no
  osmotic velocity.
* ``neural-potential`` (:mod:`.quantum_neural`) — (5.3)–(5.4) against sympy closed forms; controls: the plain-∂ and
  √g-covariant readings.

The sympy derivations and the findings about the spec are in :mod:`.quantum_symbolic`.
"""

from geodyn.experiments.quantum_learning import double_well, noise_kappa, schrodinger_from_learning
from geodyn.experiments.quantum_nelson import nelson
from geodyn.experiments.quantum_neural import neural
from geodyn.experiments.quantum_shift import shift_symmetry

__all__ = ["double_well", "noise_kappa", "schrodinger_from_learning", "shift_symmetry", "nelson", "neural"]
