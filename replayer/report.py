"""Summary → what a person reads: the terminal table (and the JSON that `summary.json` holds)."""

from __future__ import annotations

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
)
_GLOSSARY = ("TTFT (user) counts from the intended send time; sched. lag = actual - intended send. "
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
        digits = 2 if key in ("schedule_lag_ms", "itl_ms", "tpot_ms") else 1
        table.add_row(label, *(_fmt(dist.get(name), digits, grouping="") for name in columns))
    return table


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
        ("duration", f"{_fmt(summary['duration_s'], 2)} s"),
        ("request throughput", f"{_fmt(summary['request_throughput'], 2)} req/s"),
        ("output throughput", f"{_fmt(summary['output_throughput'])} tok/s"),
        ("input throughput", f"{_fmt(summary['input_throughput'])} tok/s"),
    ]
    for side in ("input", "output"):
        check = summary["token_mismatch"][side]
        if check["checked"]:
            rows.append((f"served {side} tokens", f"{check['checked'] - check['mismatched']:,}/{check['checked']:,} "
                                                  f"as planned (max error {check['max_abs_error']})"))
    if summary.get("output_tokens_counted"):
        rows.append(("output tokens counted", f"{summary['output_tokens_counted']:,} responses had no usage"))
    for label, value in rows:
        table.add_row(label, value)
    return table


def render_summary(summary: dict, console: Console, title: str = "replayer summary") -> None:
    """Print the summary as the terminal report."""
    parts = [Text(title, style="bold underline"), totals_table(summary), Text(""), latency_table(summary)]
    for kind, message in summary.get("failure_examples", {}).items():
        parts.append(Text(f"{kind}: {message}", style="red"))
    if summary.get("client_limited"):
        parts.append(Text(
            f"WARNING: schedule lag p99 {summary['schedule_lag_ms']['p99']:.1f} ms exceeds "
            f"{summary['client_limited_threshold_ms']:g} ms: the client, not the server, limited this run.",
            style="bold yellow"))
    console.print(Group(*parts))
