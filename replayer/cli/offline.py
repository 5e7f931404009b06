"""`replayer report`, `check` and `compare`: verdicts and reports on finished runs, no load sent."""

from __future__ import annotations

import argparse
import io
import json
import sys
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from replayer.analysis.compare import DEFAULT_LIMITS
from replayer.analysis.compare_html import render_compare
from replayer.analysis.html import render_html
from replayer.analysis.json_report import summary_json
from replayer.analysis.markdown import junit_xml, markdown_report
from replayer.analysis.openmetrics import openmetrics_text, run_labels
from replayer.analysis.runs import records_path, run_settings, summarize_run, write_record_file, write_run_outputs
from replayer.analysis.summary import Summary
from replayer.analysis.text import compare_table, render_summary, slo_table, sweep_table, trials_table
from replayer.analysis.timeseries import time_series, write_series_csv
from replayer.analysis.wording import slo_verdict
from replayer.api import check, compare, read_runs
from replayer.cli.options import EXIT_FAILED_VERDICT, positive_float
from replayer.errors import OutputError
from replayer.experiments.outputs import experiment_kind
from replayer.experiments.rebuild import rebuild
from replayer.records import RecordFile, read_server_metrics

REPORT_EXAMPLES = """\
examples:
  replayer report runs/20260101-120000
  replayer report runs/20260101-120000/records.jsonl --format json
  replayer report runs/nightly --format markdown -o report.md      # for a CI comment
  replayer report runs/nightly --format prometheus -o /var/lib/node_exporter/replayer.prom
  replayer report runs/nightly --timeseries series.csv --bin 10    # 10 s intervals
  replayer report shard-0 shard-1 shard-2 --merge-to runs/merged  # shards of one run (--shard K/N)
  replayer report runs/capacity        # an experiment (capacity, sweep, --trials): JSON and report rebuilt
"""



def add_report(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "report", help="summarize a finished run again from its records (no load is sent)",
        description="Read RUN (a run directory or its records.jsonl) and print its summary. On an experiment's "
                    "directory (capacity, sweep, run --trials), recompute its JSON and report.html from the records "
                    "of its runs.",
        epilog=REPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_argument("run", type=Path, nargs="+",
                        help="run directory or records.jsonl; several are the shards of one run (--shard K/N), "
                             "merged on their shared start instant")
    report.add_argument("--merge-to", type=Path, metavar="DIR",
                        help="with several runs: also write the merged records.jsonl, summary.json, timeseries.csv "
                             "and report.html into DIR")
    report.add_argument("--format", choices=["text", "json", "markdown", "html", "prometheus"], default="text",
                        help="text (the terminal table), json (summary.json's content, with vLLM bench serve's key "
                             "names too), markdown (for CI comments), html (one self-contained file with the "
                             "plots, as run writes to report.html) or prometheus (OpenMetrics text with the run's "
                             "labels, for a textfile collector or a pushgateway); default text")
    report.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the report to FILE instead of stdout")
    report.add_argument("--timeseries", type=Path, metavar="FILE.csv",
                        help="also write per-interval series (sent, completed, in flight, tokens/s, latency, lag)")
    report.add_argument("--bin", type=positive_float, default=1.0, metavar="S",
                        help="the series' interval in seconds (default %(default)s)")
    report.set_defaults(handler=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    if len(args.run) == 1 and experiment_kind(args.run[0]) is not None:
        return _report_experiment(args.run[0])
    record_file = read_runs(*args.run)
    summary = summarize_run(record_file)
    path = records_path(args.run[0])
    if args.merge_to:
        path = args.merge_to / "records.jsonl"
        _write_merged(args.merge_to, record_file, summary)
    title = f"replayer summary of {path}"
    if args.format == "text" and args.output is None:
        render_summary(summary, Console(), title=title)
    else:
        text = _report_text(args.format, summary, record_file, path, title)
        _write_or_print(text, args.output)
    if args.timeseries:
        try:
            write_series_csv(time_series(record_file.records, args.bin, run_settings(record_file)["streamed"]),
                             args.timeseries)
        except OSError as exc:
            raise OutputError(f"--timeseries {args.timeseries}: {exc.strerror}") from None
    if record_file.torn_last_line:
        Console(stderr=True).print("[yellow]note:[/] the last line of the records file was incomplete and was skipped")
    return 0


def _report_text(fmt: str, summary: Summary, record_file: RecordFile, path: Path, title: str) -> str:
    """The report of one run in `fmt` (any --format)."""
    if fmt == "json":
        return summary_json(summary)
    if fmt == "markdown":
        return markdown_report(summary, title)
    if fmt == "html":
        return _html_report(summary, record_file, path, title)
    if fmt == "prometheus":
        return openmetrics_text(summary, run_labels(record_file.header, str(path.parent)))
    return _rendered_text(summary, title)


def _report_experiment(folder: Path) -> int:
    """An experiment's JSON and report.html, rebuilt from its runs' records."""
    result = rebuild(folder)
    console = Console()
    if result["kind"] == "trials":
        console.print(trials_table(result))
    elif result["kind"] == "capacity":
        console.print(result["verdict"])
    else:
        console.print(sweep_table(result))
    Console(stderr=True).print(f"rebuilt {folder / (result['kind'] + '.json')} and {folder / 'report.html'} "
                               "from the runs' records")
    return 0


def _write_merged(folder: Path, record_file: RecordFile, summary: Summary) -> None:
    """The merged run's records.jsonl, summary.json, timeseries.csv and report.html, as a single run
    would have left them."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_record_file(folder / "records.jsonl", record_file)
        write_run_outputs(folder, record_file, summary)
    except OSError as exc:
        raise OutputError(f"--merge-to {folder}: {exc.strerror}") from None
    console = Console(stderr=True)
    console.print(f"merged {len(record_file.header['merged_from'])} runs into {folder}")
    missing = record_file.header.get("shards_missing") or []
    incomplete = record_file.header.get("shards_incomplete") or []
    if missing:
        console.print(f"[yellow]warning:[/] shards {', '.join(map(str, missing))} of "
                      f"{max(int(s[1]) for s in record_file.header['shards'] if s)} are missing from the merge")
    for path in incomplete:
        console.print(f"[yellow]warning:[/] {path} did not finish (no trailer or a cut last line): its finished "
                      "records are kept, its in-flight requests are not in them")


def _html_report(summary: Summary, record_file: RecordFile, path: Path, title: str) -> str:
    streamed = run_settings(record_file)["streamed"]
    return render_html(summary, record_file.records, time_series(record_file.records, streamed=streamed), title,
                       read_server_metrics(path.parent / "server_metrics.csv"), streamed, record_file.header)


def _rendered_text(summary: Summary, title: str) -> str:
    console = Console(record=True, width=120, file=io.StringIO())
    render_summary(summary, console, title=title)
    return console.export_text()


def _write_or_print(text: str, output: Path | None) -> None:
    if output is None:
        sys.stdout.write(text)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"-o {output}: {exc.strerror}") from None


COMPARE_EXAMPLES = """\
examples:
  replayer compare runs/release-1.4 runs/release-1.5          # default limits: latencies and throughputs 10%
  replayer compare base new --max-regression ttft_p99=5% --max-regression error_rate=0.5%
  replayer compare runs/release-1.4 runs/release-1.5 --format html -o compare.html
"""


def add_compare(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser(
        "compare",
        help="compare two finished runs side by side; exit 1 when NEW regressed beyond the limits",
        description="Recompute both runs' metrics from their records and show each metric's change with its 95% "
        "bootstrap interval (resampling requests, and trials when BASE or NEW is a --trials directory). Latencies "
        "and the error rate regress when they rise, throughputs, goodput and attainment when they fall; a change "
        "is a regression only when its whole interval lies beyond the limit, else it is within noise. "
        f"The default limits are {', '.join(f'{k}={v:.0%}' for k, v in DEFAULT_LIMITS.items())} "
        "(error_rate in percentage points); each --max-regression replaces its metric's limit or adds one, and "
        "the other defaults stay. Runs of different workloads (trace, shaping or speedup) have throughputs "
        "that differ by construction: those are marked not comparable and never regress.",
        epilog=COMPARE_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("base", type=Path,
                         help="the reference run (directory, records.jsonl, or a --trials directory)")
    compare.add_argument("new", type=Path, help="the run to judge (the same kinds)")
    compare.add_argument(
        "--max-regression",
        action="append",
        default=[],
        metavar="METRIC=PCT",
        help="largest tolerated worsening of a metric, repeatable (e.g. ttft_p99=10%%)",
    )
    compare.add_argument("--format", choices=["text", "json", "html"], default="text",
                         help="text (the table), json (for scripts) or html (a self-contained page: both runs' "
                              "curves and CDFs overlaid, and the changes with their verdicts); default text")
    compare.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the comparison to FILE instead "
                                                                           "of stdout")
    compare.set_defaults(handler=_cmd_compare)


def _cmd_compare(args: argparse.Namespace) -> int:
    comparison = compare(args.base, args.new, args.max_regression)
    regressed = comparison.regressed
    if not comparison.same_workload:
        Console(stderr=True).print(
            "[yellow]note:[/] the two runs replayed different workloads (trace, shaping or "
            "speedup), so throughputs are not comparable and are not judged"
        )
    if args.format == "json":
        _write_or_print(json.dumps({"base": str(args.base), "new": str(args.new), "regressed": regressed,
                                    "metrics": [asdict(d) for d in comparison.deltas]}, indent=2) + "\n",
                        args.output)
    elif args.format == "html":
        _write_or_print(render_compare(str(args.base), str(args.new), comparison.deltas, comparison.base_runs,
                                       comparison.new_runs, comparison.same_workload), args.output)
    else:
        console = Console()
        console.print(compare_table(comparison.deltas, str(args.base), str(args.new)))
        console.print(
            f"regressions: {', '.join(regressed)} (the whole 95% interval beyond the limit)" if regressed else
            "no regression beyond the limits: every limited change is within noise or better",
            style="bold red" if regressed else "bold green",
        )
    return EXIT_FAILED_VERDICT if regressed else 0


CHECK_EXAMPLES = """\
examples:
  replayer check runs/nightly --slo 'ttft_p99<=500ms' --slo 'error_rate<=1%'
  replayer check runs/nightly --slo 'ttft<=500ms' --slo 'tpot<=50ms' --slo 'attainment>=90%' --junit slo.xml
  replayer check runs/nightly                  # the SLOs the run was given with run --slo
"""


def add_check(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check",
        help="judge a finished run against SLOs (no load is sent); exit 1 on a violation",
        description="Evaluate service-level objectives on RUN's records, as run --slo does at the end of a run: "
        "the same verdict from the same files, for CI gates.",
        epilog=CHECK_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("run", type=Path, help="run directory or records.jsonl")
    check.add_argument(
        "--slo",
        action="append",
        default=[],
        metavar="METRIC<=VALUE",
        help="an objective, repeatable (see run --help); default: those the run was given",
    )
    check.add_argument("--junit", type=Path, metavar="FILE.xml", help="also write the verdict as JUnit XML")
    check.set_defaults(handler=_cmd_check)


def _cmd_check(args: argparse.Namespace) -> int:
    verdict = check(args.run, args.slo)
    console = Console()
    console.print(slo_table(verdict))
    console.print(slo_verdict(verdict), style="bold green" if verdict["passed"] else "bold red")
    if args.junit:
        try:
            args.junit.write_text(junit_xml(verdict, str(args.run)), encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"--junit {args.junit}: {exc.strerror}") from None
    return 0 if verdict["passed"] else EXIT_FAILED_VERDICT
