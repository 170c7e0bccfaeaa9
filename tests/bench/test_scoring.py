"""Scoring on synthetic curves: steps and time to target, ∞ when unreached, spreads, ratios, profiles."""

import math

import numpy as np
import pytest

from geodyn.bench.scoring import (
    INF,
    first_reached,
    performance_profile,
    performance_ratios,
    ratio,
    spread,
    steps_to_target,
    time_to_target,
)


def test_steps_to_target_is_the_first_crossing():
    steps = [0, 10, 20, 30, 40]
    values = [5.0, 2.0, 0.9, 1.5, 0.1]
    assert steps_to_target(steps, values, 1.0, "min") == 20
    assert steps_to_target(steps, values, 0.1, "min") == 40
    assert steps_to_target(steps, values, 5.0, "min") == 0  # already there at the start


def test_unreached_scores_infinity():
    assert steps_to_target([0, 1, 2], [3.0, 2.0, 1.5], 1.0, "min") == INF
    assert time_to_target([0.0, 0.5, 1.0], [0.1, 0.2, 0.3], 0.9, "max") == INF
    assert steps_to_target([], [], 1.0, "min") == INF


def test_goal_max_and_nonfinite_values():
    acc = [0.1, float("nan"), 0.95, 0.97]
    assert steps_to_target([0, 1, 2, 3], acc, 0.96, "max") == 3
    assert first_reached([float("nan"), None, -math.inf, 0.5], 1.0, "min") == 3  # −∞ is divergence, not success


def test_time_to_target_reads_the_clock_of_the_first_crossing():
    seconds = [0.0, 0.25, 0.75, 1.5]
    values = [1.0, 0.6, 0.4, 0.2]
    assert time_to_target(seconds, values, 0.5, "min") == 0.75


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="goal"):
        steps_to_target([0], [1.0], 1.0, "minimise")
    with pytest.raises(ValueError, match="length"):
        steps_to_target([0, 1], [1.0], 1.0, "min")


def test_spread_median_and_range_with_infinity():
    s = spread([30.0, 10.0, 20.0])
    assert (s.median, s.low, s.high, s.reached, s.runs) == (20.0, 10.0, 30.0, 3, 3)
    s = spread([10.0, INF, 20.0])
    assert (s.median, s.high, s.reached) == (20.0, INF, 2)
    s = spread([10.0, INF, INF])  # most seeds unreached: the median is unreached
    assert s.median == INF and s.reached == 1
    assert spread([10.0, INF]).median == INF  # even count: mean of the middle two
    assert spread([10.0, 20.0]).median == 15.0


def test_ratio_conventions():
    assert ratio(50.0, 100.0) == 0.5
    assert ratio(INF, 100.0) == INF
    assert ratio(50.0, INF) == 0.0
    assert math.isnan(ratio(INF, INF))


def test_performance_ratios_and_profile_by_hand():
    # three tasks × three optimizers; task 3 solved by nobody
    scores = np.array([[10.0, 20.0, 40.0], [30.0, 15.0, INF], [INF, INF, INF]])
    r = performance_ratios(scores)
    np.testing.assert_array_equal(r[0], [1.0, 2.0, 4.0])
    np.testing.assert_array_equal(r[1], [2.0, 1.0, INF])
    assert np.all(np.isinf(r[2]))
    rho = performance_profile(scores, np.array([1.0, 2.0, 4.0, 1e9]))
    # optimizer 0: best on task 1, ×2 on task 2 → ρ(1) = 1/3, ρ(2) = 2/3 and stays there (task 3 unsolved)
    np.testing.assert_allclose(rho[:, 0], [1 / 3, 2 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(rho[:, 1], [1 / 3, 2 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(rho[:, 2], [0.0, 0.0, 1 / 3, 1 / 3])
    assert np.all(np.diff(rho, axis=0) >= 0)  # a profile never decreases in τ


def test_performance_ratios_refuse_bad_scores():
    with pytest.raises(ValueError, match="2-D"):
        performance_ratios(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="positive"):
        performance_ratios(np.array([[0.0, 1.0]]))


def test_not_applicable_pairs_leave_the_profile_denominator():
    # optimizer 2 applies only to task 1 (NaN elsewhere): its share counts that one task
    scores = np.array([[10.0, 20.0, 10.0], [30.0, 15.0, np.nan], [20.0, INF, np.nan]])
    r = performance_ratios(scores)
    assert np.isnan(r[1, 2]) and np.isnan(r[2, 2]) and r[2, 1] == INF
    rho = performance_profile(scores, np.array([1.0, 2.0, 1e9]))
    np.testing.assert_allclose(rho[:, 2], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(rho[:, 0], [2 / 3, 1.0, 1.0])
    np.testing.assert_allclose(rho[:, 1], [1 / 3, 2 / 3, 2 / 3])
