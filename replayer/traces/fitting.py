"""Maximum-likelihood fits of the BurstGPT paper's arrival models: Gamma and Weibull inter-arrival times.

Gamma's shape has no closed form; Minka's starting point plus Newton steps on
`log(k) − ψ(k) = log(mean) − mean(log x)` converge in a handful of iterations. ψ and ψ′ are
computed here (recurrence up to x ≥ 10, then the asymptotic series), so no SciPy is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def digamma(x: float) -> float:
    """ψ(x) for x > 0, accurate to ~1e-12."""
    result = 0.0
    while x < 10.0:
        result -= 1.0 / x
        x += 1.0
    inv2 = 1.0 / (x * x)
    series = inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 * (1 / 252 - inv2 * (1 / 240 - inv2 / 132))))
    return result + math.log(x) - 0.5 / x - series


def trigamma(x: float) -> float:
    """ψ′(x) for x > 0, accurate to ~1e-12."""
    result = 0.0
    while x < 10.0:
        result += 1.0 / (x * x)
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    series = inv * (1 + inv * (0.5 + inv * (1 / 6 - inv2 * (1 / 30 - inv2 * (1 / 42 - inv2 / 30)))))
    return result + series


@dataclass(frozen=True)
class ArrivalFit:
    """A fitted inter-arrival law, `gamma` or `weibull`, and how well it fits (KS distance).
    Its CV measures burstiness: 1 is Poisson; shape < 1 is burstier for both laws."""

    family: str
    shape: float
    scale: float
    samples: int
    ks_statistic: float

    @property
    def cv(self) -> float:
        return 1.0 / math.sqrt(self.shape) if self.family == "gamma" else weibull_cv(self.shape)


def fit_gamma(values: np.ndarray, iterations: int = 50) -> ArrivalFit | None:
    """MLE Gamma fit of the positive values (zeros, e.g. same-second arrivals, are left out); None if < 2."""
    x = np.asarray(values, dtype=np.float64)
    x = x[x > 0]
    if x.size < 2:
        return None
    mean = float(x.mean())
    s = math.log(mean) - float(np.log(x).mean())
    if s <= 0:  # all values equal: a degenerate, perfectly regular process
        return ArrivalFit("gamma", shape=math.inf, scale=0.0, samples=int(x.size), ks_statistic=0.0)
    k = (3 - s + math.sqrt((s - 3) ** 2 + 24 * s)) / (12 * s)
    for _ in range(iterations):
        step = (math.log(k) - digamma(k) - s) / (1 / k - trigamma(k))
        k = max(k - step, k / 10)
        if abs(step) < 1e-10 * k:
            break
    scale = mean / k
    ks = ks_distance(x, lambda v: gamma_cdf(v, k, scale))
    return ArrivalFit("gamma", shape=k, scale=scale, samples=int(x.size), ks_statistic=ks)


def _regularized_lower_gamma(a: float, x: np.ndarray) -> np.ndarray:
    """P(a, x), the Gamma CDF with unit scale, by series (x < a+1) or continued fraction (Numerical Recipes)."""
    out = np.empty_like(x)
    log_gamma_a = math.lgamma(a)
    for i, xi in enumerate(x):
        if xi <= 0:
            out[i] = 0.0
        elif xi < a + 1:
            term = total = 1.0 / a
            n = a
            for _ in range(500):
                n += 1
                term *= xi / n
                total += term
                if abs(term) < abs(total) * 1e-12:
                    break
            out[i] = total * math.exp(-xi + a * math.log(xi) - log_gamma_a)
        else:
            b, c, d = xi + 1 - a, 1e300, 1 / (xi + 1 - a)
            h = d
            for n in range(1, 500):
                an = -n * (n - a)
                b += 2
                d = an * d + b
                d = 1e-300 if abs(d) < 1e-300 else d
                c = b + an / c
                c = 1e-300 if abs(c) < 1e-300 else c
                d = 1 / d
                delta = d * c
                h *= delta
                if abs(delta - 1) < 1e-12:
                    break
            out[i] = 1 - math.exp(-xi + a * math.log(xi) - log_gamma_a) * h
    return out


def gamma_cdf(x: np.ndarray, shape: float, scale: float) -> np.ndarray:
    """CDF of Gamma(shape, scale) at each x."""
    return _regularized_lower_gamma(shape, np.asarray(x, dtype=np.float64) / scale)


def weibull_cdf(x: np.ndarray, shape: float, scale: float) -> np.ndarray:
    """CDF of Weibull(shape, scale) at each x."""
    return 1.0 - np.exp(-((np.asarray(x, dtype=np.float64) / scale) ** shape))


def ks_distance(x: np.ndarray, cdf: Callable[[np.ndarray], np.ndarray], max_points: int = 2000) -> float:
    """Kolmogorov–Smirnov distance between the sample and a fitted CDF (on a fixed-seed subsample)."""
    sample = np.sort(x if x.size <= max_points else np.random.default_rng(0).choice(x, max_points, replace=False))
    fitted = cdf(sample)
    n = sample.size
    above = np.arange(1, n + 1) / n - fitted
    below = fitted - np.arange(0, n) / n
    return float(max(above.max(), below.max()))


def weibull_cv(shape: float) -> float:
    """Coefficient of variation of a Weibull distribution with this shape."""
    g1 = math.gamma(1 + 1 / shape)
    return math.sqrt(math.gamma(1 + 2 / shape) / (g1 * g1) - 1)


def fit_weibull(values: np.ndarray) -> ArrivalFit | None:
    """MLE Weibull fit of the positive values: the shape solves the profile-likelihood equation by
    Newton's method, kept inside a bisection bracket (the equation rises in k, so the bracket always
    holds the root; a handful of passes over the data instead of the 200 that bisection alone took)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[x > 0]
    if x.size < 2 or np.all(x == x[0]):
        return None
    logs = np.log(x)
    mean_log = float(logs.mean())
    squared = logs * logs
    scaled = logs - logs.max()  # x^k computed as exp(k·(log x − max)) to avoid overflow

    def equation(k: float) -> tuple[float, float]:
        """The profile equation at k and its slope (the weighted variance of the logs, plus 1/k²)."""
        weights = np.exp(k * scaled)
        total = float(weights.sum())
        first = float(weights @ logs) / total
        second = float(weights @ squared) / total
        return first - 1 / k - mean_log, second - first * first + 1 / (k * k)

    low, high = 1e-3, 1.0
    while equation(high)[0] < 0:
        high *= 2
    k = high / 2
    for _ in range(200):
        value, slope = equation(k)
        low, high = (k, high) if value < 0 else (low, k)
        step = k - value / slope
        following = step if low < step < high else (low + high) / 2
        if abs(following - k) <= 1e-12 * k:
            k = following
            break
        k = following
    scale = float(np.mean(x ** k)) ** (1 / k)
    ks = ks_distance(x, lambda v: weibull_cdf(v, k, scale))
    return ArrivalFit("weibull", shape=k, scale=scale, samples=int(x.size), ks_statistic=ks)
