"""Summary → what a person reads in the terminal: totals, latencies, breakdowns, SLOs, comparisons, trace statistics."""

from __future__ import annotations

from rich.console import Console, Group, JustifyMethod, RenderableType
from rich.table import Table
from rich.text import Text

from replayer.analysis.summary import PERCENTILES, Summary, summary_entry
from replayer.analysis.wording import (
    GLOSSARY,
    LATENCY_ROWS,
    client_behind_warning,
    delta_cells,
    fmt,
    group_name,
    recorded_e2e_line,
    slo_value,
    slo_verdict,
)
from replayer.traces.model import Trace
from replayer.traces.stats import arrival_fits

SECONDS_FROM_MS = 10_000.0
"""A latency row whose largest value reaches this many ms is shown in seconds, so no cell is cut."""


def latency_table(summary: Summary) -> Table:
    """One row per latency distribution: mean and percentiles, in milliseconds, or in seconds for a
    row that reaches 10 s (its label says so)."""
    table = Table(title="Latency (ms)", title_justify="left", show_edge=False, pad_edge=False,
                  collapse_padding=True, caption=GLOSSARY, caption_justify="left")
    table.add_column("metric", overflow="fold")
    columns = ("mean", *(name for name, _ in PERCENTILES), "max")
    for name in columns:
        table.add_column(name.replace("p999", "p99.9"), justify="right", overflow="fold")
    answered = bool((summary_entry(summary, "e2e_ms") or {}).get("count"))
    for label, key in LATENCY_ROWS:
        dist = summary_entry(summary, key) or {}
        if not dist.get("count") and (answered or key in ("session_wait_ms", "cap_wait_ms")):
            continue  # (a metric this run has no samples of while it has answers: it does not apply)
        digits = 2 if key in ("schedule_lag_ms", "session_wait_ms", "cap_wait_ms", "itl_ms", "tpot_ms") else 1
        values = [dist.get(name) for name in columns]
        if max((v for v in values if v is not None), default=0.0) >= SECONDS_FROM_MS:
            label, digits, values = f"{label} (s)", 2, [None if v is None else v / 1000 for v in values]
        table.add_row(label, *(fmt(value, digits, grouping="") for value in values))
    return table


def _retry_rows(summary: Summary) -> list[tuple[str, str]]:
    """A row for 429 retries, when the run made any (`--retry-429`)."""
    retried = summary.get("retries_429") or {}
    if not retried.get("retries"):
        return []
    return [("429 retries", f"{retried['retries']:,} (over {retried['requests']:,} requests)")]


def totals_table(summary: Summary) -> Table:
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
        ("duration", f"{fmt(summary['duration_s'], 2)} s"),
        ("request throughput", f"{fmt(summary['request_throughput'], 2)} req/s"),
        ("output throughput", f"{fmt(summary['output_throughput'])} tok/s"),
        ("input throughput", f"{fmt(summary['input_throughput'])} tok/s"),
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


def render_summary(summary: Summary, console: Console, title: str = "replayer summary") -> None:
    """Print the summary as the terminal report."""
    parts: list[RenderableType] = [Text(title, style="bold underline"), totals_table(summary), Text(""),
                                   latency_table(summary)]
    if (recorded := recorded_e2e_line(summary)) is not None:
        parts.append(Text(recorded))
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
        parts += [
            Text(""),
            slo_table(summary["slo"]),
            Text(slo_verdict(summary["slo"]), style="bold green" if summary["slo"]["passed"] else "bold red"),
        ]
    console.print(Group(*parts))


def breakdown_table(summary: Summary) -> Table | None:
    """Requests and key percentiles per group, for the kinds of grouping with more than one group."""
    kinds = {kind: groups for kind, groups in (summary.get("breakdowns") or {}).items() if len(groups) > 1}
    if not kinds:
        return None
    table = Table(title="By group (ms)", title_justify="left", show_edge=False, pad_edge=False, collapse_padding=True)
    recorded = any("e2e_vs_recorded" in stats for groups in kinds.values() for stats in groups.values())
    for name in ("group", "requests", "failed", "TTFT p50", "TTFT p99", "TPOT p99", "E2E p99",
                 *(("E2E/rec",) if recorded else ())):
        table.add_column(name, justify="left" if name == "group" else "right", overflow="fold")
    for kind, groups in kinds.items():
        for name, stats in groups.items():
            ratio = (stats.get("e2e_vs_recorded") or {}).get("p50")
            table.add_row(
                group_name(kind, name),
                f"{stats['requests']:,}",
                f"{stats['failed']:,}",
                fmt(stats["ttft_ms"]["p50"], grouping=""),
                fmt(stats["ttft_ms"]["p99"], grouping=""),
                fmt(stats["tpot_ms"]["p99"], 2, grouping=""),
                fmt(stats["e2e_ms"]["p99"], grouping=""),
                *((fmt(ratio, 2, grouping="") + ("x" if ratio is not None else ""),) if recorded else ()),
            )
    return table


def slo_table(slo: dict) -> Table:
    """One row per aggregate SLO with its measured value; goodput and attainment above them."""
    table = Table(title="SLOs", title_justify="left", show_edge=False, pad_edge=False, collapse_padding=True)
    table.add_column("objective", overflow="fold")
    table.add_column("measured", justify="right", overflow="fold")
    table.add_column("", no_wrap=True, min_width=4)  # (the verdict: never cut)
    if slo["per_request"]:
        table.add_row(
            f"per request: {', '.join(slo['per_request'])}",
            f"{slo['good_requests']:,} good, attainment {fmt((slo['attainment'] or 0) * 100)}%, "
            f"goodput {fmt(slo['goodput'], 2)} req/s",
            "",
        )
    for check in slo["checks"]:
        table.add_row(check["slo"], slo_value(check), "[green]pass[/]" if check["passed"] else "[red]FAIL[/]")
    return table


def compare_table(deltas: list, base_name: str, new_name: str) -> Table:
    """`replayer compare`: base, new, change, its 95 % interval and verdict per metric
    (`replayer.analysis.compare.Delta`)."""
    table = Table(
        title=f"{base_name} -> {new_name}", title_justify="left", show_edge=False, pad_edge=False, collapse_padding=True
    )
    columns: tuple[tuple[str, JustifyMethod], ...] = (
        ("metric", "left"), ("base", "right"), ("new", "right"), ("change", "right"), ("95% interval", "right"),
        ("limit", "right"), ("verdict", "left"),
    )
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")
    styles = {"regression": "[red]REGRESSION[/]", "improvement": "[green]improvement[/]", "worse": "[yellow]worse[/]"}
    for d in deltas:
        table.add_row(d.metric, *delta_cells(d), styles.get(d.verdict, d.verdict))
    return table


TRIALS_SHOWN = ("ttft_p50", "ttft_p99", "tpot_p50", "tpot_p99", "itl_p99", "e2e_p50", "e2e_p99", "sent_rate",
                "request_throughput", "output_throughput", "error_rate", "goodput", "attainment")


def trials_table(result: dict) -> Table:
    """`run --trials`: each key metric's mean across the trials, its 95 % interval, min and max."""
    point = result["point"]
    table = Table(title=f"{len(point['trials'])} trials", title_justify="left", show_edge=False, pad_edge=False)
    for name in ("metric", "mean", "95% interval", "min", "max"):
        table.add_column(name, justify="left" if name == "metric" else "right", overflow="fold")
    for name in TRIALS_SHOWN:
        spread = (point.get("spread") or {}).get(name)
        if spread:
            table.add_row(name, fmt(spread["mean"], 2), f"{fmt(spread['low'], 2)} .. {fmt(spread['high'], 2)}",
                          fmt(spread["min"], 2), fmt(spread["max"], 2))
    if point.get("passed") is not None:
        held = sum(1 for trial in point["trials"] if trial["passed"])
        table.caption = f"SLOs held in {held} of {len(point['trials'])} trials"
    return table


def sweep_table(result: dict) -> Table:
    """`replayer sweep`: each point's load, sent rate, latency percentiles, goodput and errors."""
    knee = result.get("knee") or {}
    table = Table(title="sweep", title_justify="left", show_edge=False, pad_edge=False)
    for name in ("load", "req/s", "TTFT p50", "p99", "TPOT p99", "E2E p99", "goodput", "errors"):
        table.add_column(name, justify="left" if name == "load" else "right", overflow="fold")
    for index, point in enumerate(result["points"]):
        m = point["metrics"]
        load = {"speedup": f"{point['value']:.4g}x", "rate": f"{point['value']:.4g}/s"}.get(
            point["load"], f"{point['value']:.0f} users")
        load += " *" if knee.get("point") == index else ""
        table.add_row(load, fmt(m["sent_rate"], 2), fmt(m["ttft_p50"]),
                      fmt(m["ttft_p99"]), fmt(m["tpot_p99"]), fmt(m["e2e_p99"]), fmt(m.get("goodput"), 2),
                      "–" if m["error_rate"] is None else f"{m['error_rate'] * 100:.1f}%")
    if knee:
        table.caption = "* the knee: from here TTFT p99 grew faster than the load"
    return table


def server_metrics_line(server: dict) -> str:
    """One line on the server's own metrics: their peaks, or why there were none."""
    if not server["available"]:
        return f"server metrics: unavailable at {server['url']} ({server['last_error'] or 'no sample'})"
    peak = server["peak"]
    parts = [
        f"{name.replace('_', ' ')} {peak[name]:,.3g}"
        for name in ("running", "waiting", "kv_cache_usage", "preemptions")
        if peak.get(name) is not None
    ]
    errors = f", {server['errors']} failed samples" if server["errors"] else ""
    return f"server metrics ({server['url']}, {server['samples']} samples{errors}): peak {', '.join(parts)}"


def scale_out_line(scale_out: dict) -> str:
    """Which node sent how much, and how far its clock was from the driver's (`--ray`)."""
    shards = ", ".join(
        f"shard {shard['index']} on {shard['node']}: {shard['requests']:,} requests "
        f"(clock {shard['clock_offset_ms']:+.2f} ms)"
        for shard in scale_out["shards"]
    )
    return f"load per node ({scale_out['backend']}): {shards}"


def _lengths_row(label: str, values: dict) -> tuple[str, ...]:
    return (
        label,
        fmt(values["mean"], 0),
        *(f"{values[k]:,}" if values[k] is not None else "–" for k in ("p50", "p90", "p99", "max")),
    )


def describe_fit(fit: dict) -> str:
    """One line for a fitted arrival model: its parameters, CV and goodness of fit."""
    return (
        f"shape {fit['shape']:.3g}, scale {fit['scale']:.3g} s, CV {fit['cv']:.3g} "
        f"(KS distance {fit['ks_statistic']:.3f} over {fit['samples']:,} non-zero gaps)"
    )


def fit_lines(trace: Trace) -> list[str]:
    """The Gamma and Weibull fits of a trace's gaps, a line each, as `--fit` prints them."""
    fits = arrival_fits(trace.arrival_s[1:] - trace.arrival_s[:-1])
    return [f"{trace.source}: {name.capitalize()} fit {describe_fit(fit)}" for name, fit in fits.items() if fit]


def render_trace_stats(stats: dict, console: Console) -> None:
    """Print `inspect`'s statistics of a trace."""
    rate, gaps = stats["rate"], stats["interarrival"]
    overview = Table(show_header=False, show_edge=False, pad_edge=False, box=None)
    overview.add_column(style="bold")
    overview.add_column()
    overview.add_row("rows", f"{stats['rows']:,} over {stats['span_s']:,.1f} s ({stats['format']})")
    overview.add_row(
        "rate",
        f"mean {fmt(rate['mean_per_s'], 2)}/s, peak {rate['peak_per_s']:,} in one second, "
        f"{rate['peak_per_min']:,} in one minute",
    )
    overview.add_row("burstiness", f"inter-arrival CV {fmt(gaps['cv'], 2)}")
    for name in ("gamma", "weibull"):
        if gaps[name]:
            overview.add_row(f"{name.capitalize()} fit", describe_fit(gaps[name]))
    overview.add_row("failed rows", f"{stats['failed_rows']:,} ({stats['failed_fraction']:.2%}) with zero tokens")
    if stats["input_output_correlation"] is not None:
        overview.add_row("in/out correlation", f"{stats['input_output_correlation']:.3f}")
    if stats["sessions"]:
        sessions = stats["sessions"]
        overview.add_row(
            "sessions",
            f"{sessions['sessions']:,} sessions, {sessions['requests_in_sessions']:,} "
            f"requests, {sessions['turns_mean']:.1f} turns mean, {sessions['turns_max']} max"
            + (f", trees up to {sessions['depth_max']} turns deep, {sessions['branching_turns']:,} turns "
               "followed up more than once" if "depth_max" in sessions else ""),
        )
    if stats["prefix_reuse"]:
        reuse = stats["prefix_reuse"]
        overview.add_row(
            "prefix reuse",
            f"{reuse['reuse_ratio']:.1%} of {reuse['blocks']:,} {reuse['block_tokens']}-token blocks "
            f"seen before ({reuse['distinct_blocks']:,} distinct)",
        )
    overview.add_row("arrivals", stats["sparkline"])
    tokens = Table(
        title="Tokens (nearest rank, failed rows excluded)",
        title_justify="left",
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    for name in ("", "mean", "p50", "p90", "p99", "max"):
        tokens.add_column(name, justify="right" if name else "left")
    tokens.add_row(*_lengths_row("input", stats["input_tokens"]))
    tokens.add_row(*_lengths_row("output", stats["output_tokens"]))
    parts: list[RenderableType] = [Text(f"trace {stats['source']}", style="bold underline"), overview, Text(""), tokens]
    for key, title in (("models", "By model"), ("log_types", "By log type"), ("request_types", "By request type")):
        if stats[key]:
            table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, collapse_padding=True)
            for name in ("", "requests", "input mean", "output mean"):
                table.add_column(name, justify="right" if name else "left")
            for label, group in stats[key].items():
                table.add_row(
                    label,
                    f"{group['requests']:,}",
                    fmt(group["input_tokens_mean"], 0),
                    fmt(group["output_tokens_mean"], 0),
                )
            parts += [Text(""), table]
    console.print(Group(*parts))
