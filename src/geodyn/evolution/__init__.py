"""Evolution as learning (EQUATIONS.md §3, (4.1)–(4.12), and §5 "survival of the smartest").

A population of genomes changes by jump × acceptance (4.1): a symmetric mutation q → q' (4.2) is kept with the
sigmoid probability A = 1/(1 + e^{β_s ΔH}) (4.5) (Metropolis for comparison), optionally followed by Moran or
Wright–Fisher reproduction with fitness e^{−H}. Detailed balance (4.3)/(4.6) makes e^{−β_s H} (4.4) stationary,
and for small jumps the mean step is −(β_s/4) σ ∇H (4.7)–(4.9): the learning dynamics (2.2) with
γ g⁻¹ = (β_s/4) σ (4.10) — a constant, flat metric, α = 0 (4.11). :class:`MemoryJump` gives learners a metric
built from remembered fluctuations instead.

The model (:class:`EvolutionModel`: a :class:`Landscape`, a :class:`JumpLaw`, an :class:`Acceptance`), the stepping
(:class:`Population`, with a :class:`Reproduction` rule) and what is recorded (:mod:`geodyn.evolution.recorders`)
are separate objects; all of it is vectorised torch on the genomes' device.
"""

from geodyn.evolution.acceptance import Acceptance, Metropolis, Sigmoid
from geodyn.evolution.jumps import BitFlip, GaussianJump, JumpLaw, PointMutation, UniformJump
from geodyn.evolution.landscape import (
    DoubleWell,
    FunctionLandscape,
    Landscape,
    MovingOptimum,
    NKLandscape,
    Quadratic,
    TableLandscape,
    all_genomes,
    genome_index,
)
from geodyn.evolution.memory import MemoryJump, ema_beta
from geodyn.evolution.model import EvolutionModel
from geodyn.evolution.population import Population, StepInfo
from geodyn.evolution.recorders import (
    AcceptanceRate,
    EffectiveMetric,
    Histogram,
    MeanEnergy,
    Recorder,
    TimeAverage,
    Trajectories,
)
from geodyn.evolution.reproduction import Moran, Reproduction, WrightFisher, moran_fixation_probability

__all__ = [
    "Population",
    "StepInfo",
    "EvolutionModel",
    "Landscape",
    "Quadratic",
    "DoubleWell",
    "FunctionLandscape",
    "MovingOptimum",
    "NKLandscape",
    "TableLandscape",
    "all_genomes",
    "genome_index",
    "JumpLaw",
    "GaussianJump",
    "UniformJump",
    "BitFlip",
    "PointMutation",
    "Acceptance",
    "Sigmoid",
    "Metropolis",
    "Reproduction",
    "Moran",
    "WrightFisher",
    "moran_fixation_probability",
    "MemoryJump",
    "ema_beta",
    "Recorder",
    "MeanEnergy",
    "TimeAverage",
    "AcceptanceRate",
    "Histogram",
    "EffectiveMetric",
    "Trajectories",
]
