"""Is a noise spectrum a power law? Maximum-likelihood fits of a power law and a lognormal to its tail.

Both are fitted to the values x ≥ x_min (continuous, Clauset–Shalizi–Newman style, with x_min fixed by the
caller): the power law p(x) = (a−1)/x_min (x/x_min)^{−a} has the closed-form MLE a = 1 + n/Σ log(x/x_min); the
lognormal truncated at x_min is fitted numerically. Vuong's test compares them: z > 0 favours the power law,
z < 0 the lognormal, and |z| < 1.96 decides nothing at 5 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special, stats

__all__ = ["TailComparison", "compare_tail_fits"]


@dataclass(frozen=True)
class TailComparison:
    n: int
    x_min: float
    power_exponent: float
    lognormal_mu: float
    lognormal_sigma: float
    loglik_power: float
    loglik_lognormal: float
    vuong_z: float
    p_value: float

    @property
    def favoured(self) -> str:
        if self.p_value >= 0.05:
            return "neither"
        return "power law" if self.vuong_z > 0 else "lognormal"


def _lognormal_logpdf(x: np.ndarray, mu: float, sigma: float, x_min: float) -> np.ndarray:
    log_tail = stats.norm.logsf((math.log(x_min) - mu) / sigma)
    return stats.lognorm.logpdf(x, s=sigma, scale=math.exp(mu)) - log_tail


def compare_tail_fits(values: np.ndarray, x_min: float | None = None) -> TailComparison:
    """Fit a power law and a truncated lognormal to ``values ≥ x_min`` (default: the median) and compare them."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x) & (x > 0)]
    x_min = float(np.median(x)) if x_min is None else float(x_min)
    tail = x[x >= x_min]
    n = tail.size
    if n < 10:
        raise ValueError(f"need at least 10 values above x_min={x_min:g}, got {n}")
    logs = np.log(tail / x_min)
    a = 1.0 + n / logs.sum()
    ll_power = np.log(a - 1) - np.log(x_min) - a * logs

    def negloglik(theta: np.ndarray) -> float:
        mu, log_sigma = theta
        return -float(_lognormal_logpdf(tail, mu, math.exp(log_sigma), x_min).sum())

    start = np.array([np.log(tail).mean(), math.log(max(np.log(tail).std(), 1e-3))])
    fit = optimize.minimize(negloglik, start, method="Nelder-Mead", options={"xatol": 1e-8, "fatol": 1e-10})
    mu, sigma = float(fit.x[0]), math.exp(float(fit.x[1]))
    ll_lognormal = _lognormal_logpdf(tail, mu, sigma, x_min)
    diff = ll_power - ll_lognormal
    spread = diff.std()
    z = float(diff.sum() / (math.sqrt(n) * spread)) if spread > 0 else 0.0
    return TailComparison(
        n=n, x_min=x_min, power_exponent=float(a), lognormal_mu=mu, lognormal_sigma=sigma,
        loglik_power=float(ll_power.sum()), loglik_lognormal=float(ll_lognormal.sum()), vuong_z=z,
        p_value=float(special.erfc(abs(z) / math.sqrt(2))),
    )  # fmt: skip
