"""`replayer compare BASE NEW`: is the new run worse than the base, beyond what we tolerate?

Each metric is compared in its own direction: latencies and the error rate regress when they rise,
throughputs, goodput and attainment when they fall. A regression limit is relative (`ttft_p99=10%`:
10 % above the base), except for the error rate and attainment, which are fractions already and
take an absolute limit in percentage points (`error_rate=1%`: one point more).
"""

from __future__ import annotations

from dataclasses import dataclass

from replayer.analysis.slo import FRACTIONS, higher_is_better, is_known_metric, summary_value
from replayer.analysis.summary import Summary
from replayer.errors import ConfigError

SHOWN = ("ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99", "itl_p99", "e2e_p50", "e2e_p99", "request_throughput",
         "output_throughput", "error_rate", "goodput", "attainment")
"""The metrics a comparison shows (those a run has)."""
DEFAULT_LIMITS = {"ttft_p50": 0.10, "ttft_p99": 0.10, "tpot_p50": 0.10, "tpot_p99": 0.10, "e2e_p99": 0.10,
                  "request_throughput": 0.10, "output_throughput": 0.10, "error_rate": 0.01}
"""Used when no --max-regression is given."""


@dataclass(frozen=True)
class Delta:
    """One metric of two runs: the change (relative, or in points for fractions) and the verdict."""

    metric: str
    base: float | None
    new: float | None
    change: float | None
    limit: float | None
    regressed: bool


def parse_limit(text: str) -> tuple[str, float]:
    """`ttft_p99=10%` → ("ttft_p99", 0.10); `error_rate=0.5%` → ("error_rate", 0.005)."""
    metric, sep, value = text.partition("=")
    metric = metric.strip().lower()
    value = value.strip()
    if not sep or not is_known_metric(metric):
        raise ConfigError(f"--max-regression {text!r}: expected METRIC=PERCENT with a metric like ttft_p99, "
                          "output_throughput or error_rate")
    try:
        limit = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise ConfigError(f"--max-regression {text!r}: {value!r} is not a percentage like 10%") from None
    if limit < 0:
        raise ConfigError(f"--max-regression {text!r}: the limit must be >= 0")
    return metric, limit


def compare_summaries(base: Summary, new: Summary, limits: dict[str, float] | None = None) -> list[Delta]:
    """Every shown metric (plus any with a limit) that either run has, with its change and verdict."""
    limits = DEFAULT_LIMITS if not limits else limits
    deltas = []
    for metric in dict.fromkeys((*SHOWN, *limits)):
        before, after = summary_value(metric, base), summary_value(metric, new)
        if before is None and after is None:
            continue
        change = _change(metric, before, after)
        limit = limits.get(metric)
        worse = None if change is None else -change if higher_is_better(metric) else change
        deltas.append(
            Delta(metric, before, after, change, limit, limit is not None and worse is not None and worse > limit)
        )
    return deltas


def _change(metric: str, before: float | None, after: float | None) -> float | None:
    if before is None or after is None:
        return None
    if metric in FRACTIONS:
        return after - before
    return (after - before) / before if before else None
