"""One self-contained HTML page per experiment (capacity search, sweep, trials), like a run's report:
inline SVG, no script, no network. It reads only the experiment's JSON, so `replayer report DIR`
rebuilds it from the runs' records through the same data.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from replayer.analysis.charts import COLORS, HEIGHT, PAD, WIDTH, line_chart
from replayer.analysis.html import number, page, table
from replayer.analysis.slo import aggregate_slos, parse_slo, unit_of

_LATENCY_CURVES = (("TTFT p50", "ttft_p50"), ("TTFT p99", "ttft_p99"), ("TPOT p99", "tpot_p99"), ("E2E p99", "e2e_p99"))
_SPREAD_SHOWN = ("ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99", "itl_p99", "e2e_p50", "e2e_p99", "sent_rate",
                 "request_throughput", "output_throughput", "error_rate", "goodput", "attainment")


def render_experiment(result: dict[str, Any], title: str) -> str:
    """The report page of a `capacity`, `sweep` or `trials` result."""
    body = {"capacity": _capacity, "sweep": _sweep, "trials": _trials}[result["kind"]](result)
    heading = f"replayer {result['kind']} · {title}"
    return page(heading, f"<header><h1>{html.escape(heading)}</h1></header>{body}<p class='note'>Every run "
                         "directory has its own report.html.</p>")


def _settings(result: dict[str, Any], extra: list[tuple[str, str]]) -> str:
    workload = result.get("workload") or {}
    rows = [("workload", workload.get("synthetic") or workload.get("trace") or "default sample"),
            ("target", result.get("target") or ""), ("SLOs", ", ".join(result.get("slos") or ()) or "none"),
            ("trials per point", str(result.get("trials", 1))), *extra,
            ("elapsed", f"{result.get('elapsed_s', 0):.0f} s")]
    if result.get("stopped"):
        rows.append(("stopped early", result["stopped"]))
    return table(("", ""), rows)


def _capacity(result: dict[str, Any]) -> str:
    load = result.get("load", "speedup")
    probes = sorted((p for p in result["probes"] if not p.get("inconclusive")), key=lambda p: p[load])
    found = result[f"max_{load}"] is not None
    probed = (("speedups probed", f"{result['low']:g}x up to {result['high']:g}x") if load == "speedup" else
              ("closed-loop users probed", f"{result['low']:g} up to {result['high']:g}"))
    parts = [f"<p class='{'pass' if found else 'fail'}'>{html.escape(result['verdict'])}</p>",
             _settings(result, [("precision", f"{result['precision']:.0%}"), probed])]
    rates = [p["rate"] or 0.0 for p in probes]
    for slo_text in result["slos"]:
        slo = parse_slo(slo_text)
        if slo.per_request:
            continue
        values = [(p["slo_values"].get(slo_text) or {}).get("value") for p in probes]
        passed = [bool(p["passed"]) for p in probes]
        parts.append(f"<h2>{html.escape(slo_text)} by load (green: probe passed, red: failed)</h2>")
        parts.append(line_chart(rates, {slo.metric: values}, unit_of(slo.metric), "rate (req/s; as planned for a "
                                "probe stopped early)",
                                y_reach=[slo.limit], overlay=_limit_and_verdicts(slo.limit, rates, values, passed)))
    parts.append("<h2>Probes, in the order run</h2>")
    rows: list[tuple[str, ...]] = []
    for number_, probe in enumerate(result["probes"], start=1):
        verdict: str = ("inconclusive" if probe.get("inconclusive") else
                   "<span class='pass'>pass</span>" if probe["passed"] else "<span class='fail'>fail</span>")
        shown = [number((probe["slo_values"].get(text) or {}).get("value")) for text in aggregate_slos(result["slos"])]
        why = str(probe.get("stopped_early") or probe.get("inconclusive") or "")
        shown_load = f"{probe[load]:.3g}x" if load == "speedup" else f"{probe[load]:.0f}"
        rows.append((str(number_), shown_load, number(probe["metrics"]["sent_rate"]),
                     number(probe["planned_rate"]), verdict,
                     *shown, html.escape(why), _links(probe["runs"])))
    load_column = "speedup" if load == "speedup" else "users"
    parts.append(table(("#", load_column, "sent req/s", "planned req/s", "verdict", *aggregate_slos(result["slos"]),
                        "stopped early", "runs"), rows, escape=False))
    return "".join(parts)


def _sweep(result: dict[str, Any]) -> str:
    points = result["points"]
    knee = result.get("knee")
    rates = [p["metrics"]["sent_rate"] or 0.0 for p in points]
    knee_text = (f"knee at {knee['load']} {knee['value']:.4g} ({knee['sent_rate']:.3g} req/s): TTFT p99 grew "
                 f"{knee['ttft_p99_ratio']:.2f}x while the load grew {knee['load_ratio']:.2f}x"
                 if knee else "no knee: TTFT p99 never grew faster than the load")
    parts = [f"<p>{html.escape(knee_text)}</p>", _settings(result, [("points", str(len(points)))])]
    knee_rate = knee["sent_rate"] if knee else None
    parts.append("<h2>Latency versus load (dashed: the knee)</h2>")
    parts.append(line_chart(rates, {label: [p["metrics"][key] for p in points] for label, key in _LATENCY_CURVES},
                            "ms", "sent rate (req/s)", dots=True, overlay=_vertical(knee_rate)))
    throughput = {"completed req/s": [p["metrics"]["request_throughput"] for p in points]}
    if any(p["metrics"].get("goodput") is not None for p in points):
        throughput["goodput req/s"] = [p["metrics"]["goodput"] for p in points]
    parts.append("<h2>Goodput and throughput versus load</h2>")
    parts.append(line_chart(rates, throughput, "requests/s", "sent rate (req/s)", dots=True,
                            overlay=_vertical(knee_rate)))
    rows = [(f"{p['load']} {p['value']:.4g}", number(p["metrics"]["sent_rate"]), number(p["metrics"]["ttft_p50"]),
             number(p["metrics"]["ttft_p99"]), number(p["metrics"]["tpot_p99"]), number(p["metrics"]["e2e_p99"]),
             number(p["metrics"]["request_throughput"]), number(p["metrics"].get("goodput")),
             _percent(p["metrics"].get("attainment")), _percent(p["metrics"]["error_rate"]), _links(p["runs"]))
            for p in points]
    parts.append("<h2>Points</h2>")
    parts.append(table(("load", "sent req/s", "TTFT p50", "TTFT p99", "TPOT p99", "E2E p99", "completed/s",
                        "goodput/s", "attainment", "errors", "runs"), rows, escape=False))
    return "".join(parts)


def _trials(result: dict[str, Any]) -> str:
    point = result["point"]
    parts = [_settings(result, [])]
    if point.get("passed") is not None:
        passed = sum(1 for trial in point["trials"] if trial["passed"])
        parts.append(f"<p class='{'pass' if point['passed'] else 'fail'}'>SLOs held in {passed} of "
                     f"{len(point['trials'])} trials</p>")
    parts.append("<h2>Spread across trials (mean and its 95% interval)</h2>")
    spreads = point.get("spread") or {}
    rows = [(name, number(s["mean"]), f"{number(s['low'])} .. {number(s['high'])}", number(s["min"]),
             number(s["max"])) for name in _SPREAD_SHOWN if (s := spreads.get(name))]
    parts.append(table(("metric", "mean", "95% interval", "min", "max"), rows))
    parts.append("<h2>Trials</h2>")
    parts.append(table(("run", "requests", "sent req/s", "SLOs"),
                       [(_links([t["run"]]), str(t["requests_sent"]), number(t["sent_rate"]),
                         "pass" if t["passed"] else "FAIL") for t in point["trials"]], escape=False))
    return "".join(parts)


def _limit_and_verdicts(limit: float, rates: list[float], values: list[float | None], passed: list[bool]
                        ) -> Callable[[Callable[[float], float], Callable[[float], float]], list[str]]:
    """A dashed line at the SLO's limit and each probe's dot, green if it passed, red if not."""
    def draw(scale_x: Callable[[float], float], scale_y: Callable[[float], float]) -> list[str]:
        y = scale_y(limit)
        marks = [f"<line x1='{PAD}' x2='{WIDTH - PAD}' y1='{y:.1f}' y2='{y:.1f}' stroke='#555' "
                 f"stroke-dasharray='5,4'/><text x='{WIDTH - PAD - 4}' y='{y - 4:.1f}' text-anchor='end'>limit</text>"]
        for rate, value, ok in zip(rates, values, passed):
            if value is not None:
                marks.append(f"<circle cx='{scale_x(rate):.1f}' cy='{scale_y(value):.1f}' r='4' "
                             f"fill='{COLORS[2] if ok else COLORS[1]}'/>")
        return marks
    return draw


def _vertical(x: float | None) -> Callable[[Callable[[float], float], Callable[[float], float]], list[str]]:
    def draw(scale_x: Callable[[float], float], _: Callable[[float], float]) -> list[str]:
        if x is None:
            return []
        at = scale_x(x)
        return [f"<line x1='{at:.1f}' x2='{at:.1f}' y1='{PAD}' y2='{HEIGHT - PAD}' stroke='#555' "
                f"stroke-dasharray='5,4'/><text x='{at + 4:.1f}' y='{PAD + 12}'>knee</text>"]
    return draw


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _links(runs: list[str]) -> str:
    return " ".join(f"<a href='{html.escape(run)}/report.html'>{html.escape(run.rsplit('/', 1)[-1])}</a>"
                    for run in runs)
