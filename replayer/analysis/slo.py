"""Service-level objectives: what a run must achieve, and whether it did.

Two kinds, as DistServe and vLLM's `bench serve --goodput` use them:

- **per-request** SLOs (`ttft<=500ms`, `tpot<=50ms`, `e2e<=20s`) say which requests were good
  enough. A request meets them if it succeeded and is within every one (a request with fewer than
  two tokens has no TPOT and passes that one). They define **goodput** (good requests per second
  of the run) and **attainment** (good requests / requests sent).
- **aggregate** SLOs decide whether the run passes: a latency statistic (`ttft_p99<=500ms`,
  `tpot_p90<=50ms`, `e2e_mean<=8s`), `error_rate<=1%`, a throughput floor
  (`output_throughput>=2000`), or `goodput>=5` / `attainment>=90%` over the per-request SLOs.

Per-request SLOs alone never fail a run; gate on them with `attainment>=P%` or `goodput>=R`.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Sequence
from dataclasses import dataclass

from replayer.analysis.summary import PERCENTILES, Summary, request_latencies, summary_entry
from replayer.errors import ConfigError
from replayer.records import RequestRecord

PER_REQUEST = ("ttft", "tpot", "e2e")
LATENCIES = ("ttft", "tpot", "itl", "e2e", "user_ttft", "user_e2e", "schedule_lag")
STATISTICS = ("mean", *(name for name, _ in PERCENTILES), "max")
FRACTIONS = ("error_rate", "attainment")
RATES = ("goodput", "request_throughput", "output_throughput", "input_throughput")
_OPERATORS = {"<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt}
_TO_MS = {"": 1.0, "ms": 1.0, "s": 1000.0, "us": 0.001}
_PATTERN = re.compile(r"^\s*([a-z_0-9]+)\s*(<=|>=|<|>)\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([a-z%/]*)\s*$")


@dataclass(frozen=True)
class Slo:
    """One objective: `metric op limit`, the limit in the metric's unit (ms, a fraction, or per second)."""

    text: str
    metric: str
    op: str
    limit: float

    @property
    def per_request(self) -> bool:
        return self.metric in PER_REQUEST

    def holds(self, value: float) -> bool:
        return _OPERATORS[self.op](value, self.limit)


def parse_slo(text: str) -> Slo:
    """`ttft_p99<=500ms`, `error_rate<=1%`, `tpot<=50ms`, `goodput>=5`, … (see the module docstring)."""
    match = _PATTERN.match(text.lower())
    if not match:
        raise ConfigError(f"--slo {text!r}: expected METRIC<=VALUE[UNIT], e.g. ttft_p99<=500ms or error_rate<=1%")
    metric, op, number, unit = match.groups()
    value = float(number)
    if metric in PER_REQUEST or _latency_statistic(metric):
        if unit not in _TO_MS:
            raise ConfigError(f"--slo {text!r}: a latency takes ms, s or us, not {unit!r}")
        value *= _TO_MS[unit]
    elif metric in FRACTIONS:
        if unit not in ("", "%"):
            raise ConfigError(f"--slo {text!r}: {metric} is a fraction (0.01) or a percentage (1%)")
        value = value / 100 if unit == "%" else value
    elif metric in RATES:
        if unit not in ("", "/s", "req/s", "tok/s"):
            raise ConfigError(f"--slo {text!r}: {metric} is a rate per second, not {unit!r}")
    else:
        raise ConfigError(f"--slo {text!r}: unknown metric {metric!r}; use ttft, tpot or e2e (per request), "
                          f"LATENCY_STAT with LATENCY in {', '.join(LATENCIES)} and STAT in {', '.join(STATISTICS)}, "
                          f"or {', '.join(FRACTIONS + RATES)}")
    if metric in PER_REQUEST and op not in ("<=", "<"):
        raise ConfigError(f"--slo {text!r}: a per-request SLO is an upper bound (<= or <)")
    return Slo(text.strip(), metric, op, value)


def _latency_statistic(metric: str) -> tuple[str, str] | None:
    """("ttft_ms", "p99") for "ttft_p99", or None when `metric` is not a latency statistic."""
    name, _, statistic = metric.rpartition("_")
    return (f"{name}_ms", statistic) if name in LATENCIES and statistic in STATISTICS else None


def parse_slos(texts: Sequence[str]) -> list[Slo]:
    """Every `--slo`, checked as a set: goodput and attainment need a per-request SLO to count by."""
    slos = [parse_slo(text) for text in texts]
    if not any(slo.per_request for slo in slos):
        for slo in slos:
            if slo.metric in ("goodput", "attainment"):
                raise ConfigError(f"--slo {slo.text!r}: {slo.metric} counts requests that meet the per-request SLOs; "
                                  "add at least one (e.g. --slo ttft<=500ms)")
    return slos


def evaluate(slos: Sequence[Slo], records: Sequence[RequestRecord], summary: Summary, streamed: bool = True) -> dict:
    """The SLO section of a summary: goodput and attainment (with per-request SLOs), each aggregate
    check with its measured value, and whether all of them passed."""
    per_request = [slo for slo in slos if slo.per_request]
    sent = summary["requests_sent"]
    good = sum(1 for r in records if r.sent_ns is not None and _meets(r, per_request, streamed))
    duration_s = summary["duration_s"]
    result: dict = {"per_request": [slo.text for slo in per_request]}
    if per_request:
        result["good_requests"] = good
        result["goodput"] = good / duration_s if duration_s > 0 else None
        result["attainment"] = good / sent if sent else None
    checks = []
    for slo in slos:
        if slo.per_request:
            continue
        value = _aggregate(slo.metric, summary, result)
        checks.append({"slo": slo.text, "value": value, "limit": slo.limit, "unit": _unit(slo.metric),
                       "passed": value is not None and slo.holds(value)})
    result["checks"] = checks
    result["passed"] = all(check["passed"] for check in checks)
    return result


def _unit(metric: str) -> str:
    """The unit of a metric's values (and limits) here: ms, a fraction, or per second."""
    return "fraction" if metric in FRACTIONS else "per_s" if metric in RATES else "ms"


def _meets(record: RequestRecord, slos: Sequence[Slo], streamed: bool) -> bool:
    latencies = request_latencies(record, streamed)
    if latencies is None:
        return False
    return all((value := latencies[f"{slo.metric}_ms"]) is None or slo.holds(value) for slo in slos)


def _aggregate(metric: str, summary: Summary, slo_section: dict) -> float | None:
    """`metric`'s value: from the summary, except goodput and attainment (from `slo_section`) and the
    error rate (computed)."""
    latency = _latency_statistic(metric)
    if latency is not None:
        distribution, statistic = latency
        return (summary_entry(summary, distribution) or {}).get(statistic)
    if metric == "error_rate":
        sent = summary.get("requests_sent") or 0
        return summary.get("failed", 0) / sent if sent else None
    if metric in ("goodput", "attainment"):
        return slo_section.get(metric)
    return summary_entry(summary, metric)


def summary_value(metric: str, summary: Summary) -> float | None:
    """A metric named as in SLOs (`ttft_p99`, `error_rate`, `output_throughput`, `goodput`…) read from a
    finished summary (goodput and attainment only when it has per-request SLOs)."""
    return _aggregate(metric, summary, summary.get("slo") or {})


def is_known_metric(metric: str) -> bool:
    return _latency_statistic(metric) is not None or metric in FRACTIONS or metric in RATES


def higher_is_better(metric: str) -> bool:
    return metric in RATES or metric == "attainment"
