"""Tail fits: a planted power law and a planted lognormal are each recognised (Vuong's test)."""

from __future__ import annotations

import numpy as np
import pytest

from geodyn.analysis.spectrum import compare_tail_fits


def test_planted_power_law_is_recognised_and_its_exponent_recovered():
    rng = np.random.default_rng(0)
    a, n = 2.5, 4000
    x = (1 - rng.random(n)) ** (-1 / (a - 1))  # Pareto with x_min = 1
    fit = compare_tail_fits(x, x_min=1.0)
    # MLE standard error of a is (a − 1)/√n ≈ 0.024.
    assert fit.power_exponent == pytest.approx(a, abs=4 * (a - 1) / np.sqrt(n))
    # A truncated lognormal with a wide σ can mimic a power-law tail, so Vuong's test may stay undecided; it
    # must not favour the lognormal.
    assert fit.favoured in ("power law", "neither")
    assert fit.vuong_z > -1.96


def test_planted_lognormal_is_recognised():
    rng = np.random.default_rng(1)
    x = rng.lognormal(mean=0.0, sigma=0.5, size=4000)
    fit = compare_tail_fits(x)
    assert fit.favoured == "lognormal"
    assert fit.lognormal_sigma == pytest.approx(0.5, rel=0.15)


def test_too_few_values():
    with pytest.raises(ValueError, match="at least 10"):
        compare_tail_fits(np.arange(1, 6, dtype=float))
