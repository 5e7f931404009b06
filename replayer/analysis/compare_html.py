"""`replayer compare BASE NEW --format html`: one self-contained page that sets two runs side by
side, with the run page's building blocks: what each side ran, the verdict, every metric's change
with its 95 % interval and verdict, and the two runs' curves and CDFs overlaid.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from replayer.analysis.charts import cdf_chart, line_chart
from replayer.analysis.compare import Delta
from replayer.analysis.html import page, page_bins, run_span_s, table
from replayer.analysis.runs import run_settings
from replayer.analysis.summary import latency_samples
from replayer.analysis.wording import delta_cells
from replayer.records import RecordFile, RequestRecord


def render_compare(base_name: str, new_name: str, deltas: Sequence[Delta], base: Sequence[RecordFile],
                   new: Sequence[RecordFile], same_workload: bool) -> str:
    """The comparison page: `base` and `new` are each side's runs (several: the trials of one point)."""
    names = (f"base: {base_name}", f"new: {new_name}")
    title = f"replayer compare {base_name} → {new_name}"
    sides = [_pooled(files) for files in (base, new)]
    streamed = all(run_settings(f)["streamed"] for f in (*base, *new))
    body = [f"<header><h1>{html.escape(title)}</h1></header>", _sides(names, base[0].header, new[0].header),
            _banner(deltas, same_workload), "<h2>Metrics (change with its 95% interval)</h2>", _delta_table(deltas),
            "<h2>Over time (the first run of each side)</h2><div class='charts'>",
            *_overlaid_curves(names, [files[0].records for files in (base, new)], streamed),
            "</div><h2>Distributions</h2><div class='charts'>"]
    samples = [latency_samples(records, streamed) for records in sides]
    for name, key in (("TTFT", "ttft_ms"), ("TPOT", "tpot_ms"), ("E2E", "e2e_ms")):
        if any(s[key] for s in samples):
            body.append(cdf_chart({names[0]: samples[0][key], names[1]: samples[1][key]}, f"{name} (ms)",
                                  title=f"{name} CDF"))
    body.append("</div>")
    return page(title, "".join(body))


def _pooled(files: Sequence[RecordFile]) -> list[RequestRecord]:
    return [record for f in files for record in f.records]


def _sides(names: Sequence[str], *headers: dict) -> str:
    def describe(header: dict) -> list[str]:
        workload, target = header.get("workload") or {}, header.get("target") or {}
        return [f"{workload.get('source', '')} at speedup {workload.get('speedup', 1):g}",
                str(target.get("base_url") or ""), f"{target.get('model', '')} ({target.get('backend', '')})",
                str(target.get("api") or ""), str(header.get("created") or ""), str(header.get("version") or "")]
    rows = zip(("workload", "target", "model (backend)", "API", "created", "replayer"), *map(describe, headers))
    return table(("", *names), list(rows))


def _banner(deltas: Sequence[Delta], same_workload: bool) -> str:
    regressed = [d.metric for d in deltas if d.regressed]
    items = [("bad", f"regressions beyond the limits and beyond noise: {', '.join(regressed)}") if regressed else
             ("ok", "no regression beyond the limits: every limited change is within noise or better")]
    improved = [d.metric for d in deltas if d.verdict == "improvement"]
    if improved:
        items.append(("ok", f"improvements: {', '.join(improved)}"))
    if not same_workload:
        items.append(("warn", "the runs replayed different workloads (trace, shaping or speedup): throughputs are "
                              "not comparable and are not judged"))
    shown = "".join(f"<li class='{level}'>{html.escape(text)}</li>" for level, text in items)
    return f"<section id='verdict' class='{items[0][0]}'><strong>Verdict</strong><ul>{shown}</ul></section>"


def _delta_table(deltas: Sequence[Delta]) -> str:
    rows = []
    for d in deltas:
        verdict = d.verdict.upper() if d.regressed else d.verdict
        css = "fail" if d.regressed else "pass" if d.verdict == "improvement" else ""
        rows.append((html.escape(d.metric), *map(html.escape, delta_cells(d)), f"<span class='{css}'>{verdict}</span>"))
    return table(("metric", "base", "new", "change", "95% interval", "limit", "verdict"), rows, escape=False)


def _overlaid_curves(names: Sequence[str], runs: Sequence[Sequence[RequestRecord]], streamed: bool) -> list[str]:
    span_s = max(run_span_s(records) for records in runs)
    bins = [page_bins(records, streamed, span_s) for records in runs]  # (the same bins on both sides)
    times = bins[0]["t_s"]
    charts = []
    for key, label, unit in (("ttft_p99", "TTFT p99 by send time", "ms"), ("e2e_p99", "E2E p99 by send time", "ms"),
                             ("tpot_p99", "TPOT p99 by send time", "ms"),
                             ("completed", "Completed per second", "req/s")):
        series = {name: b[key] for name, b in zip(names, bins)}
        charts.append(line_chart(times, series, unit, "send time since t0 (s)" if unit == "ms"
                                 else "time since t0 (s)", unit=unit, title=label))
    return charts

