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

While a run goes, `SloWatch` tells from the records finished so far when an aggregate SLO can no
longer hold whatever the remaining requests do (`--stop-early`, and every capacity probe): too many
failures for `error_rate`, misses for `attainment`, or requests over a latency bound for its
percentile, max or mean. A run stopped so fails its SLOs.
"""

from __future__ import annotations

import math
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
SLO_OUT_OF_REACH = "slo out of reach"
"""The start of the stop reason of a run stopped because its SLOs could no longer all hold."""
WATCHED_LATENCIES = ("ttft", "tpot", "e2e", "user_ttft", "user_e2e")
"""Latencies measured per successful request, whose statistics a `SloWatch` can bound early."""
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
    if metric in PER_REQUEST or latency_statistic(metric):
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


def latency_statistic(metric: str) -> tuple[str, str] | None:
    """("ttft_ms", "p99") for "ttft_p99", or None when `metric` is not a latency statistic."""
    name, _, statistic = metric.rpartition("_")
    return (f"{name}_ms", statistic) if name in LATENCIES and statistic in STATISTICS else None


def aggregate_slos(texts: Sequence[str]) -> list[str]:
    """The texts of the aggregate SLOs among `texts` (those that decide a run's verdict)."""
    return [slo.text for slo in map(parse_slo, texts) if not slo.per_request]


def parse_slos(texts: Sequence[str]) -> list[Slo]:
    """Every `--slo`, checked as a set: goodput and attainment need a per-request SLO to count by."""
    slos = [parse_slo(text) for text in texts]
    if not any(slo.per_request for slo in slos):
        for slo in slos:
            if slo.metric in ("goodput", "attainment"):
                raise ConfigError(f"--slo {slo.text!r}: {slo.metric} counts requests that meet the per-request SLOs; "
                                  "add at least one (e.g. --slo 'ttft<=500ms')")
    return slos


def evaluate(slos: Sequence[Slo], records: Sequence[RequestRecord], summary: Summary, streamed: bool = True) -> dict:
    """The SLO section of a summary: goodput and attainment (with per-request SLOs), each aggregate
    check with its measured value, and whether all of them passed."""
    per_request = [slo for slo in slos if slo.per_request]
    sent = summary["requests_sent"]
    good = sum(1 for r in records if r.sent_ns is not None and meets(r, per_request, streamed))
    duration_s = summary["duration_s"]
    result: dict = {"per_request": [slo.text for slo in per_request]}
    if per_request:
        result["missed"] = {slo.text: sum(1 for r in records if r.sent_ns is not None and not meets(r, [slo], streamed))
                            for slo in per_request}
        result["good_requests"] = good
        result["goodput"] = good / duration_s if duration_s > 0 else None
        result["attainment"] = good / sent if sent else None
    checks = []
    for slo in slos:
        if slo.per_request:
            continue
        value = _aggregate(slo.metric, summary, result)
        checks.append({"slo": slo.text, "value": value, "limit": slo.limit, "unit": unit_of(slo.metric),
                       "passed": value is not None and slo.holds(value)})
    result["checks"] = checks
    result["passed"] = all(check["passed"] for check in checks)
    return result


def unit_of(metric: str) -> str:
    """The unit of a metric's values (and limits) here: ms, a fraction, or per second."""
    return "fraction" if metric in FRACTIONS else "per_s" if metric in RATES else "ms"


def meets(record: RequestRecord, slos: Sequence[Slo], streamed: bool = True) -> bool:
    """Whether a request succeeded within every per-request SLO of `slos`."""
    latencies = request_latencies(record, streamed)
    return latencies is not None and _within(latencies, slos)


def _aggregate(metric: str, summary: Summary, slo_section: dict) -> float | None:
    """`metric`'s value: from the summary, except goodput and attainment (from `slo_section`) and the
    error rate (computed)."""
    latency = latency_statistic(metric)
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
    return latency_statistic(metric) is not None or metric in FRACTIONS or metric in RATES


def higher_is_better(metric: str) -> bool:
    return metric in RATES or metric == "attainment"


class SloWatch:
    """Fed each finished request of a run, says as soon as one of its aggregate SLOs can no longer
    hold, whatever the requests still to come do (see the module docstring)."""

    def __init__(self, slos: Sequence[Slo], planned: int, streamed: bool = True):
        self.per_request = [slo for slo in slos if slo.per_request]
        self.aggregate = [slo for slo in slos if not slo.per_request]
        self.planned = planned
        """Requests the run will send, warm-up excluded."""
        self.streamed = streamed
        self.failed = 0
        self.missed = 0
        self.over = {slo.text: 0 for slo in self.aggregate}
        """Per latency SLO: successful requests whose latency breaks its bound."""
        self.total_ms = {slo.text: 0.0 for slo in self.aggregate}

    def observe(self, record: RequestRecord) -> str | None:
        """Count one finished request; the stop reason once an SLO is out of reach, else None."""
        if record.warmup or record.sent_ns is None:
            return None
        self.failed += not record.ok
        latencies = request_latencies(record, self.streamed)
        if self.per_request and (latencies is None or not _within(latencies, self.per_request)):
            self.missed += 1
        for slo in self.aggregate:
            latency = latency_statistic(slo.metric)
            value = latencies.get(latency[0]) if latency and latencies else None
            if value is not None:
                self.over[slo.text] += not slo.holds(value)
                self.total_ms[slo.text] += value
        for slo in self.aggregate:
            detail = self._out_of_reach(slo)
            if detail:
                return f"{SLO_OUT_OF_REACH}: {slo.text} ({detail})"
        return None

    def _out_of_reach(self, slo: Slo) -> str | None:
        planned, upper = self.planned, slo.op in ("<=", "<")
        if slo.metric == "error_rate" and upper and planned and not slo.holds(self.failed / planned):
            return f"{self.failed} of {planned} requests failed already"
        if slo.metric == "attainment" and not upper and planned and not slo.holds((planned - self.missed) / planned):
            return f"{self.missed} of {planned} requests missed the per-request SLOs already"
        latency = latency_statistic(slo.metric)
        if latency is None or not upper or latency[0][:-3] not in WATCHED_LATENCIES:
            return None
        most = planned - self.failed  # the most successful requests the statistic can end up over
        over, statistic = self.over[slo.text], latency[1]
        if most <= 0 or not over:
            return None
        if statistic == "mean":
            return None if slo.holds(self.total_ms[slo.text] / most) else f"the mean over {most} is past the bound"
        if statistic == "max":
            return f"{over} requests over {slo.limit:g} ms"
        quantile = dict(PERCENTILES)[statistic] / 100
        if over >= most - math.floor((most - 1) * quantile):
            return f"{over} of at most {most} successful requests over {slo.limit:g} ms"
        return None


def _within(latencies: dict[str, float | None], slos: Sequence[Slo]) -> bool:
    return all((value := latencies[f"{slo.metric}_ms"]) is None or slo.holds(value) for slo in slos)
