"""Learning-dynamics simulators: walker ensembles (2.5)–(2.7) and Fokker–Planck grid solvers (2.7), (3.1), (4.12).

The model (:class:`LearningModel`: loss H̄, metric law g = f(κ), κ(q), γ), the integrators
(:class:`DiscreteLearning` for (2.5)/(2.6), :class:`EulerMaruyama` for the SDE of (2.7)) and what is recorded
(:class:`Moments`, :class:`TimeAveragedMoments`, :class:`IncrementMoments`, :class:`Histogram`,
:class:`Trajectories`) are separate objects; :class:`LangevinEnsemble` runs walkers, :class:`FokkerPlanck1D` and
:class:`FokkerPlanck2D` evolve densities on a grid from the same model.
"""

from geodyn.dynamics.fokker_planck import FokkerPlanck1D, FokkerPlanck2D, GridSolution
from geodyn.dynamics.langevin import DiscreteLearning, EulerMaruyama, LangevinEnsemble, Solution
from geodyn.dynamics.model import LearningModel
from geodyn.dynamics.recorders import (
    Histogram,
    IncrementMoments,
    Moments,
    Recorder,
    TimeAveragedMoments,
    Trajectories,
)

__all__ = [
    "LearningModel",
    "LangevinEnsemble",
    "DiscreteLearning",
    "EulerMaruyama",
    "Solution",
    "FokkerPlanck1D",
    "FokkerPlanck2D",
    "GridSolution",
    "Recorder",
    "Moments",
    "TimeAveragedMoments",
    "IncrementMoments",
    "Histogram",
    "Trajectories",
]
