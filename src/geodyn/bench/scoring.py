"""Scores of the benchmark: steps and wall time to a target, their summary over seeds, and performance profiles.

A run that never reaches the target scores infinity (BENCHMARKS.md §2). The performance profile of Dolan and Moré
(Math. Program. 91, 2002) summarises many tasks: for optimizer s on task p with score t_{p,s}, the ratio
r_{p,s} = t_{p,s} / min_s' t_{p,s'}, and ρ_s(τ) = |{p : r_{p,s} ≤ τ}| / (number of tasks); ρ_s(1) is the share of
tasks on which s was best, and ρ_s(∞) the share it solved at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "INF",
    "first_reached",
    "steps_to_target",
    "time_to_target",
    "Spread",
    "spread",
    "ratio",
    "performance_ratios",
    "performance_profile",
    "PairedTest",
    "sign_test",
]

INF = math.inf


def first_reached(values: Sequence[float], target: float, goal: str, hold: int = 1) -> int | None:
    """Index of the first value of the first run of ``hold`` consecutive values that reach ``target`` (≤ for goal
    "min", ≥ for "max"); None if there is none. Non-finite values never reach it."""
    if goal not in ("min", "max"):
        raise ValueError(f"goal must be 'min' or 'max', got {goal!r}")
    if not isinstance(hold, int) or hold < 1:
        raise ValueError(f"hold must be an integer >= 1, got {hold!r}")
    streak = 0
    for i, v in enumerate(values):
        ok = v is not None and math.isfinite(v) and ((v <= target) if goal == "min" else (v >= target))
        streak = streak + 1 if ok else 0
        if streak == hold:
            return i - hold + 1
    return None


def steps_to_target(steps: Sequence[int], values: Sequence[float], target: float, goal: str, hold: int = 1) -> float:
    """The step at which the curve (``steps``, ``values``) reaches the target and then holds it for ``hold``
    evaluations in all; ∞ when it never does."""
    if len(steps) != len(values):
        raise ValueError(f"steps and values differ in length: {len(steps)} != {len(values)}")
    i = first_reached(values, target, goal, hold)
    return INF if i is None else float(steps[i])


def time_to_target(seconds: Sequence[float], values: Sequence[float], target: float, goal: str, hold: int = 1) -> float:
    """Training seconds (evaluation excluded) until the curve reaches the target (held as in steps_to_target)."""
    return steps_to_target(seconds, values, target, goal, hold)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Spread:
    """Median and range of a score over seeds (∞ counts as the largest value)."""

    median: float
    low: float
    high: float
    reached: int
    runs: int

    def as_dict(self) -> dict[str, float | int]:
        return {"median": self.median, "low": self.low, "high": self.high, "reached": self.reached, "runs": self.runs}


def spread(scores: Sequence[float]) -> Spread:
    """Median, min and max over seeds. With an even count the median is the mean of the middle two (∞ if either is
    ∞), so a median is finite only when more than half of the seeds reached the target (two of three, three of
    five). [min, max] is a distribution-free interval for the median: it covers the true median with probability
    1 − 2·2⁻ⁿ over n seeds (75 % for 3, 93.75 % for 5)."""
    if not scores:
        return Spread(INF, INF, INF, 0, 0)
    ordered = sorted(float(s) for s in scores)
    n = len(ordered)
    mid = ordered[n // 2] if n % 2 else 0.5 * (ordered[n // 2 - 1] + ordered[n // 2])
    return Spread(mid, ordered[0], ordered[-1], sum(math.isfinite(s) for s in ordered), n)


def ratio(score: float, reference: float) -> float:
    """score / reference, with ∞/x = ∞ and x/∞ = 0 for finite x; NaN when both are ∞ (no comparison)."""
    if math.isinf(score) and math.isinf(reference):
        return math.nan
    if math.isinf(reference):
        return 0.0
    return score / reference


def performance_ratios(scores: np.ndarray) -> np.ndarray:
    """r_{p,s} = t_{p,s} / min_s t_{p,s} for a (tasks × optimizers) array of scores (∞: unreached; NaN: the
    optimizer does not apply to the task, which stays NaN). A task that no optimizer solved gives ∞ for all that
    apply. Scores must be positive."""
    scores = np.asarray(scores, dtype=float)
    if scores.ndim != 2:
        raise ValueError(f"scores must be a 2-D (tasks × optimizers) array, got shape {scores.shape}")
    if np.any(scores[~np.isnan(scores)] <= 0):
        raise ValueError("scores must be positive (steps or seconds to target)")
    with np.errstate(invalid="ignore"):
        best = np.nanmin(np.where(np.isnan(scores), np.inf, scores), axis=1, keepdims=True)
        r = scores / best
    unsolved = ~np.isfinite(best[:, 0])
    r[unsolved] = np.where(np.isnan(scores[unsolved]), np.nan, np.inf)
    return r


def performance_profile(scores: np.ndarray, taus: np.ndarray) -> np.ndarray:
    """ρ_s(τ) for each τ in ``taus``: an array (len(taus) × optimizers) of the share of the tasks an optimizer
    applies to with r_{p,s} ≤ τ (NaN for an optimizer that applies to none)."""
    r = performance_ratios(scores)
    taus = np.asarray(taus, dtype=float)
    applies = ~np.isnan(r)
    hits = (r[None, :, :] <= taus[:, None, None]).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return hits / applies.sum(axis=0)[None, :]


@dataclass(frozen=True)
class PairedTest:
    """An optimizer against the reference on the same seeds (same initialisation and minibatches): ``wins`` (fewer
    steps), ``losses``, ``ties`` and the exact two-sided sign-test p-value of wins vs losses."""

    wins: int
    losses: int
    ties: int
    p_value: float

    def as_dict(self) -> dict[str, float | int]:
        return {"wins": self.wins, "losses": self.losses, "ties": self.ties, "p_value": self.p_value}


def sign_test(scores: Sequence[float], reference: Sequence[float]) -> PairedTest:
    """Paired sign test of ``scores`` against ``reference`` seed by seed (∞, unreached, is worse than any finite
    score and ties with ∞). Under H₀ (either is equally likely to win a seed) wins ~ Binomial(wins + losses, ½);
    p = P(|wins − n/2| ≥ observed), exact. With 5 seeds the smallest possible p is 2/2⁵ = 0.0625."""
    if len(scores) != len(reference):
        raise ValueError(f"paired scores differ in length: {len(scores)} != {len(reference)}")
    wins = sum(a < b for a, b in zip(scores, reference, strict=True))
    losses = sum(a > b for a, b in zip(scores, reference, strict=True))
    n = wins + losses
    if n == 0:
        return PairedTest(0, 0, len(scores), 1.0)
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0**n
    return PairedTest(wins, losses, len(scores) - n, min(1.0, 2.0 * tail))
