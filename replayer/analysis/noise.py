"""How sure a figure is: intervals across repeated trials, and bootstrap intervals of a change.

Two sources of noise are measured, never assumed away:

- **between runs**: the same point replayed N times with fresh prompt seeds (`--trials N`) gives
  each metric a mean and a 95 % Student-t interval;
- **within a run**: a latency percentile over a few hundred requests moves when a handful of them
  move. `bootstrap_change` resamples the per-request values of both runs (whole trials first, when
  a side has several, then the requests inside each) and gives the 95 % interval of the change.

The interval is the percentile bootstrap (B resamples, a fixed seed so a verdict is reproducible).
Requests of one run are not independent (a burst slows its neighbours), so the within-run interval
is a floor on the real noise; trials widen it by the between-run spread.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
CONFIDENCE = 0.95
_T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
          2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)
"""Student's t at 0.975 for 1 to 30 degrees of freedom (1.96 beyond)."""


@dataclass(frozen=True)
class Spread:
    """One metric over repeated trials: their mean, the 95 % interval of that mean, and the extremes."""

    mean: float
    low: float
    high: float
    min: float
    max: float
    trials: int


def spread(values: Sequence[float | None]) -> Spread | None:
    """The mean and 95 % Student-t interval of per-trial values (None without any value)."""
    array = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if array.size == 0:
        return None
    mean = float(array.mean())
    if array.size == 1:
        return Spread(mean, mean, mean, mean, mean, 1)
    t = _T_975[array.size - 2] if array.size - 1 <= len(_T_975) else 1.96
    half = t * float(array.std(ddof=1)) / math.sqrt(array.size)
    return Spread(mean, mean - half, mean + half, float(array.min()), float(array.max()), int(array.size))


@dataclass(frozen=True)
class Sample:
    """One run's per-request values of a metric and the run's duration (for per-second metrics)."""

    values: np.ndarray
    duration_s: float


Statistic = Callable[[np.ndarray, float], float | None]
"""A metric from pooled per-request values and the pooled duration (None when it has no value)."""


def bootstrap_change(base: Sequence[Sample], new: Sequence[Sample], statistic: Statistic, relative: bool,
                     resamples: int = RESAMPLES, seed: int = 0) -> tuple[float, float] | None:
    """The 95 % interval of `statistic(new) - statistic(base)` (divided by the base's value when
    `relative`), resampling trials and then requests on each side; None when too few values."""
    rng = np.random.default_rng(seed)
    changes = []
    for _ in range(resamples):
        before, after = _resampled(base, statistic, rng), _resampled(new, statistic, rng)
        if before is None or after is None or (relative and before == 0):
            continue
        changes.append((after - before) / before if relative else after - before)
    if len(changes) < resamples // 2:
        return None
    tail = (1 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(changes, [tail, 100 - tail])
    return float(low), float(high)


def _resampled(side: Sequence[Sample], statistic: Statistic, rng: np.random.Generator) -> float | None:
    """The statistic of one resample of a side: its trials drawn with replacement (when it has
    several), then each drawn trial's requests."""
    picks = rng.integers(0, len(side), len(side)) if len(side) > 1 else [0]
    parts, duration_s = [], 0.0
    for index in picks:
        sample = side[index]
        if sample.values.size:
            parts.append(sample.values[rng.integers(0, sample.values.size, sample.values.size)])
        duration_s += sample.duration_s
    if not parts:
        return None
    return statistic(np.concatenate(parts), duration_s)
