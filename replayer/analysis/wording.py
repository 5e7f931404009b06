"""The words and numbers every renderer (terminal, Markdown, HTML) shows the same way: number
formatting, the latency rows and their glossary, the comparison with the recording's latencies, SLO
values and verdicts, the client-behind warning."""

from __future__ import annotations

from typing import Any

from replayer.analysis.summary import Summary

LATENCY_ROWS = (
    ("TTFT", "ttft_ms"),
    ("TPOT", "tpot_ms"),
    ("ITL", "itl_ms"),
    ("E2E", "e2e_ms"),
    ("TTFT (user)", "user_ttft_ms"),
    ("sched. lag", "schedule_lag_ms"),
    ("session wait", "session_wait_ms"),
    ("cap wait", "cap_wait_ms"),
)
GLOSSARY = ("TTFT (user) counts from the intended send time; sched. lag = actual - intended send, including "
             "a session turn's wait for its previous turn (session wait, shown when the trace has sessions) "
             "and a request's wait for a --max-concurrency slot (cap wait, of the requests that waited). "
             "TPOT excludes the first token (vLLM's definition; AIPerf and GuideLLM call it ITL).")


def fmt(value: float | None, digits: int = 1, grouping: str = ",") -> str:
    return "–" if value is None else f"{value:{grouping}.{digits}f}"


def recorded_e2e_line(summary: Summary) -> str | None:
    """Served end-to-end latency against the recording's own, request by request (None without it)."""
    ratios = summary.get("e2e_vs_recorded")
    if not ratios or not ratios["count"]:
        return None
    return (f"E2E vs the recording's system, request by request (served / recorded): p50 {ratios['p50']:.2f}x, "
            f"p90 {ratios['p90']:.2f}x, p99 {ratios['p99']:.2f}x over {ratios['count']:,} requests "
            "(below 1x: faster than production)")


def slo_value(check: dict) -> str:
    """A check's measured value in its unit (ms, %, /s), or "no data"."""
    value = check["value"]
    if value is None:
        return "no data"
    if check["unit"] == "fraction":
        return f"{value * 100:.2f}%"
    return f"{value:,.2f} {'ms' if check['unit'] == 'ms' else '/s'}"


def slo_verdict(slo: dict) -> str:
    failed = [check["slo"] for check in slo["checks"] if not check["passed"]]
    if failed:
        return f"SLOs violated: {', '.join(failed)}"
    return f"SLOs met ({len(slo['checks'])} checked)" if slo["checks"] else "no aggregate SLO to check"


def client_behind_warning(summary: Summary) -> str:
    """Why the run is marked client-limited: the windows where the client fell behind its schedule."""
    windows = summary.get("client_behind_windows") or []
    worst = max(windows, key=lambda w: w["lag_p99_ms"], default=None)
    where = (f"in {len(windows)} window(s) of the schedule, worst {worst['start_s']:g}-{worst['end_s']:g} s "
             f"with lag p99 {worst['lag_p99_ms']:.1f} ms ({worst.get('late', '?')} of {worst['requests']:,} sends late)"
             if worst else
             f"overall lag p99 {summary.get('client_lag_p99_ms') or 0:.1f} ms")
    return (
        f"WARNING: the client fell behind its schedule {where} (limit {summary['client_limited_threshold_ms']:g} ms, "
        "session waits excluded): there the client, not the server, limited this run."
    )


def delta_cells(delta: Any) -> tuple[str, str, str, str, str]:
    """A compared metric's base, new, change, 95 % interval and limit as shown (a
    `replayer.analysis.compare.Delta`; fractions in percent and their changes in points)."""
    fraction = delta.metric in ("error_rate", "attainment")
    unit = " pt" if fraction else "%"

    def shown(value: float | None) -> str:
        if value is None:
            return "–"
        return f"{value * 100:.2f}%" if fraction else fmt(value, 2)
    change = "–" if delta.change is None else f"{delta.change * 100:+.2f}{unit}"
    interval = "–" if delta.low is None else f"{delta.low * 100:+.1f} .. {delta.high * 100:+.1f}{unit}"
    limit = "" if delta.limit is None else f"{delta.limit * 100:g}{unit}"
    return shown(delta.base), shown(delta.new), change, interval, limit


GROUP_KINDS = {"turns": "turns", "input_tokens": "input tokens", "model": "model", "log_type": "log type",
               "type": "request type", "recorded": "recorded as"}
"""How each kind of breakdown group is named on every report."""


def group_name(kind: str, name: str) -> str:
    """A breakdown group as the reports show it: `request type search`, `input tokens 0-255`."""
    return f"{GROUP_KINDS.get(kind, kind)} {name}"
