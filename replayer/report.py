"""Summary → what a person reads: the terminal table (and the JSON that `summary.json` holds)."""

from __future__ import annotations

from xml.etree import ElementTree

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from replayer.metrics import PERCENTILES

_ROWS = (
    ("TTFT", "ttft_ms"),
    ("TPOT", "tpot_ms"),
    ("ITL", "itl_ms"),
    ("E2E", "e2e_ms"),
    ("TTFT (user)", "user_ttft_ms"),
    ("sched. lag", "schedule_lag_ms"),
    ("session wait", "session_wait_ms"),
)
_GLOSSARY = ("TTFT (user) counts from the intended send time; sched. lag = actual - intended send, including "
             "a session turn's wait for its previous turn (session wait, shown when the trace has sessions). "
             "TPOT excludes the first token (vLLM's definition; AIPerf and GuideLLM call it ITL).")


def _fmt(value: float | None, digits: int = 1, grouping: str = ",") -> str:
    return "–" if value is None else f"{value:{grouping}.{digits}f}"


def latency_table(summary: dict) -> Table:
    """One row per latency distribution: mean and percentiles, in milliseconds."""
    table = Table(title="Latency (ms)", title_justify="left", show_edge=False, pad_edge=False,
                  collapse_padding=True, caption=_GLOSSARY, caption_justify="left")
    table.add_column("metric", no_wrap=True)
    columns = ("mean", *(name for name, _ in PERCENTILES), "max")
    for name in columns:
        table.add_column(name.replace("p999", "p99.9"), justify="right", no_wrap=True)
    for label, key in _ROWS:
        dist = summary.get(key) or {}
        if key == "session_wait_ms" and not dist.get("count"):
            continue
        digits = 2 if key in ("schedule_lag_ms", "session_wait_ms", "itl_ms", "tpot_ms") else 1
        table.add_row(label, *(_fmt(dist.get(name), digits, grouping="") for name in columns))
    return table


def _retry_rows(summary: dict) -> list[tuple[str, str]]:
    """A row for 429 retries, when the run made any (`--retry-429`)."""
    retried = summary.get("retries_429") or {}
    if not retried.get("retries"):
        return []
    return [("429 retries", f"{retried['retries']:,} (over {retried['requests']:,} requests)")]


def totals_table(summary: dict) -> Table:
    """Counts, duration and throughputs."""
    table = Table(show_header=False, show_edge=False, pad_edge=False, box=None)
    table.add_column(style="bold")
    table.add_column(justify="right")
    failures = ", ".join(f"{kind} {count}" for kind, count in summary["failures"].items()) or "none"
    rows = [
        ("requests sent", f"{summary['requests_sent']:,}"),
        ("completed", f"{summary['completed']:,}"),
        ("failed", f"{summary['failed']:,} ({failures})"),
        *_retry_rows(summary),
        ("duration", f"{_fmt(summary['duration_s'], 2)} s"),
        ("request throughput", f"{_fmt(summary['request_throughput'], 2)} req/s"),
        ("output throughput", f"{_fmt(summary['output_throughput'])} tok/s"),
        ("input throughput", f"{_fmt(summary['input_throughput'])} tok/s"),
    ]
    for side in ("input", "output"):
        check = summary["token_mismatch"][side]
        if check["checked"]:
            detail = (f" ({check['fewer']:,} fewer, {check['more']:,} more; mean error "
                      f"{check['mean_abs_error']:.2f}, max {check['max_abs_error']:,})" if check["mismatched"] else "")
            rows.append((f"served {side} tokens",
                         f"{check['checked'] - check['mismatched']:,}/{check['checked']:,} as planned{detail}"))
    if summary.get("output_tokens_counted"):
        rows.append(("output tokens counted", f"{summary['output_tokens_counted']:,} responses had no usage"))
    for label, value in rows:
        table.add_row(label, value)
    return table


def render_summary(summary: dict, console: Console, title: str = "replayer summary") -> None:
    """Print the summary as the terminal report."""
    parts = [Text(title, style="bold underline"), totals_table(summary), Text(""), latency_table(summary)]
    breakdown = breakdown_table(summary)
    if breakdown is not None:
        parts += [Text(""), breakdown]
    for kind, message in summary.get("failure_examples", {}).items():
        parts.append(Text(f"{kind}: {message}", style="red"))
    books = summary.get("accounting")
    if books and not books["balanced"]:
        parts.append(Text(f"WARNING: the records do not balance ({books['sent']:,} sent, {books['ok']:,} ok, "
                          f"{books['failed']:,} failed, ids unique: {books['unique_ids']})", style="bold red"))
    if summary.get("client_limited"):
        parts.append(Text(client_behind_warning(summary), style="bold yellow"))
    if "server_metrics" in summary:
        parts.append(Text(server_metrics_line(summary["server_metrics"])))
    if summary.get("scale_out"):
        parts.append(Text(scale_out_line(summary["scale_out"])))
    if "slo" in summary:
        parts += [Text(""), slo_table(summary["slo"]), Text(slo_verdict(summary["slo"]),
                                                             style="bold green" if summary["slo"]["passed"] else "bold red")]
    console.print(Group(*parts))


_GROUP_KINDS = {"turns": "turns", "input_tokens": "input tokens", "model": "model", "log_type": "log type"}


def breakdown_table(summary: dict) -> Table | None:
    """Requests and key percentiles per group, for the kinds of grouping with more than one group."""
    kinds = {kind: groups for kind, groups in (summary.get("breakdowns") or {}).items() if len(groups) > 1}
    if not kinds:
        return None
    table = Table(title="By group (ms)", title_justify="left", show_edge=False, pad_edge=False, collapse_padding=True)
    for name in ("group", "requests", "failed", "TTFT p50", "TTFT p99", "TPOT p99", "E2E p99"):
        table.add_column(name, justify="left" if name == "group" else "right", no_wrap=True)
    for kind, groups in kinds.items():
        for name, stats in groups.items():
            table.add_row(f"{_GROUP_KINDS.get(kind, kind)} {name}", f"{stats['requests']:,}", f"{stats['failed']:,}",
                          _fmt(stats["ttft_ms"]["p50"], grouping=""), _fmt(stats["ttft_ms"]["p99"], grouping=""),
                          _fmt(stats["tpot_ms"]["p99"], 2, grouping=""), _fmt(stats["e2e_ms"]["p99"], grouping=""))
    return table


def slo_table(slo: dict) -> Table:
    """One row per aggregate SLO with its measured value; goodput and attainment above them."""
    table = Table(title="SLOs", title_justify="left", show_edge=False, pad_edge=False, collapse_padding=True)
    for name, justify in (("objective", "left"), ("measured", "right"), ("", "left")):
        table.add_column(name, justify=justify, no_wrap=True)
    if slo["per_request"]:
        table.add_row(f"per request: {', '.join(slo['per_request'])}",
                      f"{slo['good_requests']:,} good, attainment {_fmt((slo['attainment'] or 0) * 100)}%, "
                      f"goodput {_fmt(slo['goodput'], 2)} req/s", "")
    for check in slo["checks"]:
        table.add_row(check["slo"], slo_value(check), "[green]pass[/]" if check["passed"] else "[red]FAIL[/]")
    return table


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


_VLLM_METRICS = {"ttft": "ttft_ms", "tpot": "tpot_ms", "itl": "itl_ms", "e2el": "e2e_ms"}


def with_vllm_keys(summary: dict) -> dict:
    """The summary plus the flat keys of vLLM's `bench serve` result JSON (`mean_ttft_ms`, `median_tpot_ms`,
    `p99_e2el_ms`, `total_token_throughput`, …), so dashboards that ingest those read ours unchanged."""
    flat = dict(summary)
    flat["duration"] = summary["duration_s"]
    output, total = summary["output_throughput"], summary["input_throughput"]
    flat["total_token_throughput"] = None if output is None or total is None else output + total
    for vllm_name, ours in _VLLM_METRICS.items():
        dist = summary.get(ours) or {}
        flat[f"mean_{vllm_name}_ms"] = dist.get("mean")
        flat[f"median_{vllm_name}_ms"] = dist.get("p50")
        for name in ("p90", "p95", "p99"):
            flat[f"{name}_{vllm_name}_ms"] = dist.get(name)
    if (summary.get("slo") or {}).get("goodput") is not None:
        flat["request_goodput"] = summary["slo"]["goodput"]
    return flat


def markdown_report(summary: dict, title: str) -> str:
    """The report as Markdown (for CI comments and pull requests): totals, latencies, SLOs, groups."""
    lines = [f"### {title}", "",
             f"**{summary['completed']:,}** of {summary['requests_sent']:,} requests completed, "
             f"{summary['failed']:,} failed" + (f" ({', '.join(f'{k} {v}' for k, v in summary['failures'].items())})"
                                                 if summary["failures"] else "") +
             f"; {_fmt(summary['request_throughput'], 2)} req/s, {_fmt(summary['output_throughput'])} output tok/s "
             f"over {_fmt(summary['duration_s'], 1)} s.", ""]
    columns = ("mean", *(name for name, _ in PERCENTILES), "max")
    lines += ["| metric (ms) | " + " | ".join(c.replace("p999", "p99.9") for c in columns) + " |",
              "|---|" + "---:|" * len(columns)]
    for label, key in _ROWS:
        dist = summary.get(key) or {}
        if dist.get("count"):
            lines.append(f"| {label} | " + " | ".join(_fmt(dist.get(c), 2, grouping="") for c in columns) + " |")
    slo = summary.get("slo")
    if slo:
        lines += ["", f"**{slo_verdict(slo)}**", "", "| SLO | measured | |", "|---|---:|---|"]
        lines += [f"| `{c['slo']}` | {slo_value(c)} | {'pass' if c['passed'] else '**FAIL**'} |" for c in slo["checks"]]
        if slo["per_request"]:
            lines.append(f"\nPer-request SLOs {', '.join(f'`{t}`' for t in slo['per_request'])}: "
                         f"attainment {_fmt((slo['attainment'] or 0) * 100)}%, goodput {_fmt(slo['goodput'], 2)} req/s.")
    if summary.get("client_limited"):
        lines += ["", f"> {client_behind_warning(summary)}"]
    return "\n".join(lines) + "\n"


def junit_xml(slo: dict, run: str) -> str:
    """The SLO verdict as JUnit XML: one test case per aggregate SLO, for CI systems' test reports."""
    suite = ElementTree.Element("testsuite", name=f"replayer SLOs of {run}", tests=str(len(slo["checks"])),
                                failures=str(sum(not check["passed"] for check in slo["checks"])))
    for check in slo["checks"]:
        case = ElementTree.SubElement(suite, "testcase", classname="replayer.slo", name=check["slo"])
        if not check["passed"]:
            failure = ElementTree.SubElement(case, "failure", message=f"measured {slo_value(check)}")
            failure.text = f"{check['slo']}: measured {slo_value(check)}"
    return ElementTree.tostring(suite, encoding="unicode", xml_declaration=True) + "\n"


def compare_table(deltas: list, base_name: str, new_name: str) -> Table:
    """`replayer compare`: base, new, change and verdict per metric (`replayer.compare.Delta`)."""
    table = Table(title=f"{base_name} -> {new_name}", title_justify="left", show_edge=False, pad_edge=False,
                  collapse_padding=True)
    for name, justify in (("metric", "left"), ("base", "right"), ("new", "right"), ("change", "right"),
                          ("limit", "right"), ("", "left")):
        table.add_column(name, justify=justify, no_wrap=True)
    for d in deltas:
        fraction = d.metric in ("error_rate", "attainment")
        shown = (lambda v: "–" if v is None else f"{v * 100:.2f}%") if fraction else (lambda v: _fmt(v, 2))
        change = "–" if d.change is None else f"{d.change * 100:+.2f}{' pt' if fraction else '%'}"
        limit = "" if d.limit is None else f"{d.limit * 100:g}{' pt' if fraction else '%'}"
        table.add_row(d.metric, shown(d.base), shown(d.new), change, limit,
                      "[red]REGRESSION[/]" if d.regressed else "", style=None)
    return table


def server_metrics_line(server: dict) -> str:
    """One line on the server's own metrics: their peaks, or why there were none."""
    if not server["available"]:
        return f"server metrics: unavailable at {server['url']} ({server['last_error'] or 'no sample'})"
    peak = server["peak"]
    parts = [f"{name.replace('_', ' ')} {peak[name]:,.3g}" for name in ("running", "waiting", "kv_cache_usage",
                                                                        "preemptions") if peak.get(name) is not None]
    errors = f", {server['errors']} failed samples" if server["errors"] else ""
    return f"server metrics ({server['url']}, {server['samples']} samples{errors}): peak {', '.join(parts)}"


def scale_out_line(scale_out: dict) -> str:
    """Which node sent how much, and how far its clock was from the driver's (`--ray`)."""
    shards = ", ".join(f"shard {shard['index']} on {shard['node']}: {shard['requests']:,} requests "
                       f"(clock {shard['clock_offset_ms']:+.2f} ms)" for shard in scale_out["shards"])
    return f"load per node ({scale_out['backend']}): {shards}"


def client_behind_warning(summary: dict) -> str:
    """Why the run is marked client-limited: the windows where the client fell behind its schedule."""
    windows = summary.get("client_behind_windows") or []
    worst = max(windows, key=lambda w: w["lag_p99_ms"], default=None)
    where = (f"in {len(windows)} window(s) of the schedule, worst {worst['start_s']:g}-{worst['end_s']:g} s "
             f"with lag p99 {worst['lag_p99_ms']:.1f} ms" if worst else
             f"overall lag p99 {summary.get('client_lag_p99_ms') or 0:.1f} ms")
    return (f"WARNING: the client fell behind its schedule {where} (limit {summary['client_limited_threshold_ms']:g} ms, "
            "session waits excluded): there the client, not the server, limited this run.")


def _lengths_row(label: str, values: dict) -> tuple[str, ...]:
    return (label, _fmt(values["mean"], 0), *(f"{values[k]:,}" if values[k] is not None else "–"
                                               for k in ("p50", "p90", "p99", "max")))


def describe_fit(fit: dict) -> str:
    """One line for a fitted arrival model: its parameters, CV and goodness of fit."""
    return (f"shape {fit['shape']:.3g}, scale {fit['scale']:.3g} s, CV {fit['cv']:.3g} "
            f"(KS distance {fit['ks_statistic']:.3f} over {fit['samples']:,} non-zero gaps)")


def render_trace_stats(stats: dict, console: Console) -> None:
    """Print `inspect`'s statistics of a trace."""
    rate, gaps = stats["rate"], stats["interarrival"]
    overview = Table(show_header=False, show_edge=False, pad_edge=False, box=None)
    overview.add_column(style="bold")
    overview.add_column()
    overview.add_row("rows", f"{stats['rows']:,} over {stats['span_s']:,.1f} s ({stats['format']})")
    overview.add_row("rate", f"mean {_fmt(rate['mean_per_s'], 2)}/s, peak {rate['peak_per_s']:,} in one second, "
                             f"{rate['peak_per_min']:,} in one minute")
    overview.add_row("burstiness", f"inter-arrival CV {_fmt(gaps['cv'], 2)}")
    for name in ("gamma", "weibull"):
        if gaps[name]:
            overview.add_row(f"{name.capitalize()} fit", describe_fit(gaps[name]))
    overview.add_row("failed rows", f"{stats['failed_rows']:,} ({stats['failed_fraction']:.2%}) with zero tokens")
    if stats["input_output_correlation"] is not None:
        overview.add_row("in/out correlation", f"{stats['input_output_correlation']:.3f}")
    if stats["sessions"]:
        sessions = stats["sessions"]
        overview.add_row("sessions", f"{sessions['sessions']:,} sessions, {sessions['requests_in_sessions']:,} "
                                     f"requests, {sessions['turns_mean']:.1f} turns mean, {sessions['turns_max']} max")
    if stats["prefix_reuse"]:
        reuse = stats["prefix_reuse"]
        overview.add_row("prefix reuse", f"{reuse['reuse_ratio']:.1%} of {reuse['blocks']:,} 512-token blocks "
                                         f"seen before ({reuse['distinct_blocks']:,} distinct)")
    overview.add_row("arrivals", stats["sparkline"])
    tokens = Table(title="Tokens (nearest rank, failed rows excluded)", title_justify="left",
                   show_edge=False, pad_edge=False, collapse_padding=True)
    for name in ("", "mean", "p50", "p90", "p99", "max"):
        tokens.add_column(name, justify="right" if name else "left")
    tokens.add_row(*_lengths_row("input", stats["input_tokens"]))
    tokens.add_row(*_lengths_row("output", stats["output_tokens"]))
    parts = [Text(f"trace {stats['source']}", style="bold underline"), overview, Text(""), tokens]
    for key, title in (("models", "By model"), ("log_types", "By log type")):
        if stats[key]:
            table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, collapse_padding=True)
            for name in ("", "requests", "input mean", "output mean"):
                table.add_column(name, justify="right" if name else "left")
            for label, group in stats[key].items():
                table.add_row(label, f"{group['requests']:,}", _fmt(group["input_tokens_mean"], 0),
                              _fmt(group["output_tokens_mean"], 0))
            parts += [Text(""), table]
    console.print(Group(*parts))


def bench_table(results: list) -> Table:
    """`replayer bench`: one row per ladder step (`replayer.bench.StepResult`); yellow rows missed a limit."""
    table = Table(title="Client bench (ms)", title_justify="left", box=None, pad_edge=False,
                  caption="req/s: intended -> achieved. TTFT inflation = client TTFT - simulator truth; ITL error = "
                          "|client - truth| per gap. CPU: client seconds per 1k requests / per 100k tokens. "
                          "raw: a minimal raw-socket client on the same requests (TTFT inflation p50/p99, CPU).",
                  caption_justify="left")
    for name in ("step", "req/s", "done", "lag p50/p99/max", "TTFT infl. p50/p99", "ITL err. p50/p99", "CPU",
                 "raw infl.", "raw CPU"):
        table.add_column(name, justify="right", no_wrap=True)

    def values(*numbers: float) -> str:
        return "/".join(f"{v:.1f}" if v >= 10 else f"{v:.2f}" for v in numbers)

    for r in results:
        table.add_row(f"{r.rate:g}x{r.tokens}", f"{r.intended_rate:.0f}->{r.achieved_rate:.0f}",
                      f"{r.completed}/{r.planned}", values(*r.lag_ms), values(*r.ttft_inflation_ms),
                      values(*r.itl_error_ms), f"{r.cpu_per_1k_requests_s:.2f}/{r.cpu_per_100k_tokens_s:.2f}",
                      values(*r.raw_ttft_inflation_ms), f"{r.raw_cpu_per_1k_requests_s:.2f}", style=None if r.faithful else "yellow")
    return table
