"""The summary as OpenMetrics text, for dashboards: a Prometheus textfile collector or a pushgateway
reads it as it is (`replayer report RUN --format prometheus`).

Every sample carries the run's labels (run, target, model, backend, API, workload, replayer
version), so runs of several deployments can share one dashboard. Latencies are summaries in
seconds (their quantiles, sum and count); counts, rates and verdicts are gauges, because a finished
run is a snapshot, not a counter that keeps rising.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from replayer.analysis.summary import PERCENTILES, Summary, summary_entry

_LATENCIES = (
    ("ttft", "ttft_ms", "Time to first token of successful requests."),
    ("tpot", "tpot_ms", "Time per output token after the first, per successful request."),
    ("itl", "itl_ms", "Gaps between output chunks, pooled over successful requests."),
    ("e2e", "e2e_ms", "End-to-end latency of successful requests."),
    ("user_ttft", "user_ttft_ms", "Time to first token counted from the intended send time."),
    ("schedule_lag", "schedule_lag_ms", "Actual minus intended send time."),
)
_GAUGES = (
    ("duration_seconds", "duration_s", "From the run's start to its last completion."),
    ("request_throughput", "request_throughput", "Completed requests per second."),
    ("output_throughput", "output_throughput", "Served output tokens per second."),
    ("input_throughput", "input_throughput", "Served input tokens per second."),
    ("client_lag_p99_seconds", "client_lag_p99_ms", "The client's own schedule lag, 99th percentile."),
)


def run_labels(header: dict[str, Any], run: str) -> dict[str, str]:
    """The labels of every sample: which run, against what, replaying what."""
    target = header.get("target") or {}
    workload = header.get("workload") or {}
    return {"run": run, "target": str(target.get("base_url") or ""), "model": str(target.get("model") or ""),
            "backend": str(target.get("backend") or ""), "api": str(target.get("api") or ""),
            "workload": str(workload.get("source") or ""), "version": str(header.get("version") or "")}


def openmetrics_text(summary: Summary, labels: dict[str, str]) -> str:
    """The OpenMetrics exposition of `summary`, every sample labelled with `labels`."""
    return "".join(f"{line}\n" for line in _lines(summary, labels)) + "# EOF\n"


def _lines(summary: Summary, labels: dict[str, str]) -> Iterator[str]:
    for name, key, help_text in _LATENCIES:
        dist = summary_entry(summary, key) or {}
        if not dist.get("count"):
            continue
        metric = f"replayer_{name}_seconds"
        yield from _family(metric, "summary", help_text, "seconds")
        for label, quantile in PERCENTILES:
            if dist.get(label) is not None:
                yield _sample(metric, {**labels, "quantile": f"{quantile / 100:g}"}, dist[label] / 1000)
        yield _sample(f"{metric}_sum", labels, dist["mean"] * dist["count"] / 1000)
        yield _sample(f"{metric}_count", labels, dist["count"])
    yield from _family("replayer_requests", "gauge", "Requests sent, by outcome (ok or a failure kind).")
    yield _sample("replayer_requests", {**labels, "outcome": "ok"}, summary["completed"])
    for kind, count in summary["failures"].items():
        yield _sample("replayer_requests", {**labels, "outcome": kind}, count)
    for name, key, help_text in _GAUGES:
        value = cast("float | None", summary.get(key))
        if value is not None:
            yield from _family(f"replayer_{name}", "gauge", help_text)
            yield _sample(f"replayer_{name}", labels, value / 1000 if key.endswith("_ms") else value)
    yield from _family("replayer_client_limited", "gauge", "1 when the client fell behind its schedule somewhere.")
    yield _sample("replayer_client_limited", labels, int(bool(summary.get("client_limited"))))
    yield from _slo_lines(summary.get("slo"), labels)


def _slo_lines(slo: dict | None, labels: dict[str, str]) -> Iterator[str]:
    if not slo:
        return
    if slo.get("per_request"):
        for name, key in (("goodput", "goodput"), ("attainment_ratio", "attainment")):
            if slo.get(key) is not None:
                yield from _family(f"replayer_{name}", "gauge", f"{key.capitalize()} under the per-request SLOs.")
                yield _sample(f"replayer_{name}", labels, slo[key])
    yield from _family("replayer_slo_passed", "gauge", "1 when the SLO held, by SLO; slo=\"all\" for the verdict.")
    yield _sample("replayer_slo_passed", {**labels, "slo": "all"}, int(bool(slo["passed"])))
    for check in slo["checks"]:
        yield _sample("replayer_slo_passed", {**labels, "slo": check["slo"]}, int(bool(check["passed"])))


def _family(name: str, kind: str, help_text: str, unit: str | None = None) -> Iterator[str]:
    yield f"# TYPE {name} {kind}"
    if unit:
        yield f"# UNIT {name} {unit}"
    yield f"# HELP {name} {_escape(help_text)}"


def _sample(name: str, labels: dict[str, str], value: float) -> str:
    shown = ",".join(f'{key}="{_escape(text)}"' for key, text in labels.items())
    return f"{name}{{{shown}}} {float(value)!r}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
