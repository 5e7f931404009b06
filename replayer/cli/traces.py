"""`replayer inspect`, `synth`, `datasets` and `scenarios`: traces and workloads, no load sent."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from replayer.analysis.text import fit_lines, render_trace_stats
from replayer.cli.options import add_format_options, plot_path

INSPECT_EXAMPLES = """\
examples:
  replayer inspect sample:azure-2023-conv
  replayer inspect BurstGPT_1.csv --json > stats.json
  replayer inspect burstgpt:1 --plot burstgpt1.png
  replayer inspect qwen-bailian:thinking       # chat trees: depth, branching, 16-token prefix reuse
  replayer inspect my.jsonl --format jsonl --columns time=t,input=in,output=out --time-unit ms
"""


def add_inspect(commands: argparse._SubParsersAction) -> None:
    inspect = commands.add_parser(
        "inspect", help="statistics of a trace: rates, burstiness, lengths, failures, sessions",
        description="Read TRACE and report its rows, span, mean and peak rates, inter-arrival CV with a "
                    "maximum-likelihood Gamma fit (the BurstGPT burstiness model), token-length percentiles "
                    "(nearest rank) and their correlation, failure rows, per-model and per-log-type groups, "
                    "sessions and prefix-block reuse, and an arrival-rate sparkline. No load is sent.",
        epilog=INSPECT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    inspect.add_argument("trace", help="trace file, sample:NAME (bundled) or a public dataset such as azure-2023:code")
    add_format_options(inspect)
    inspect.add_argument("--json", action="store_true", help="print the statistics as JSON")
    inspect.add_argument("--plot", type=plot_path, metavar="FILE",
                         help="also draw arrival rate, inter-arrival fits and token lengths to FILE.png or "
                              "FILE.svg (needs: pip install 'replayer[plot]')")
    inspect.set_defaults(handler=_cmd_inspect)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from replayer.traces.formats import read_trace
    from replayer.traces.mapped import ColumnMap
    from replayer.traces.stats import trace_stats

    columns = ColumnMap.parse(args.columns, args.time_unit) if args.columns else None
    trace = read_trace(args.trace, args.format, columns, args.block_tokens)
    stats = trace_stats(trace)
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        render_trace_stats(stats, Console())
    for warning in trace.warnings:
        Console(stderr=True).print(f"[yellow]warning:[/] {warning}")
    if args.plot:
        from replayer.traces.plot import plot_trace

        plot_trace(trace, args.plot)
        Console(stderr=True).print(f"figure: {args.plot}")
    return 0


SYNTH_EXAMPLES = """\
SPEC is comma-separated KEY=VALUE pairs:
  arrivals=poisson|gamma|weibull|constant   inter-arrival law (default poisson)
  cv=X                 burstiness: coefficient of variation of the gaps, for gamma and weibull
                       (1 = Poisson; BurstGPT's traces are well above 1)
  shape=K[,scale=S]    instead of cv (and rate): the Gamma or Weibull parameters themselves
  rate=R | R@T/R@T/…   requests per second, constant or linear between RATE@SECONDS points
                       (ramps; a step is two points at the same time: 2@0/2@300/20@300)
                       (with --fit, Nx is N times the trace's mean rate: rate=1x@0/10x@1800)
  period=S             repeat the rate pattern every S seconds (daily cycle: period=86400)
  duration=S | requests=N   how much to generate (exactly one)
  input=MODEL, output=MODEL   token lengths: zipf:S:MIN:MAX, lognormal:MEDIAN:SIGMA, fixed:N,
                       empirical (drawn from the --fit trace), conditional (output only: outputs of
                       --fit requests of similar input length; the paper's request→response relation)
  seed=N               random seed (default 0: the same SPEC always gives the same workload)

With --fit TRACE the trace supplies every default: its mean rate and span, the better-fitting of
maximum-likelihood Gamma and Weibull arrivals (the fit and its KS distance are printed), and its
lengths (input=empirical, output=conditional). Override any key, e.g. rate=40 to model the trace at
a rate it never had ("modeled scaling" in the BurstGPT paper).

examples:
  replayer synth "arrivals=gamma,cv=3,rate=5,duration=3600,input=zipf:1.2:16:8192,output=lognormal:200:1" -o bursty.csv
  replayer synth "rate=2@0/20@600/2@1200,duration=1200" -o ramp.csv        # up and down again
  replayer synth "rate=40,duration=600" --fit sample:azure-2023-conv -o azure-at-40.csv
  replayer run --trace bursty.csv --base-url http://127.0.0.1:8000
"""


def add_synth(commands: argparse._SubParsersAction) -> None:
    synth = commands.add_parser(
        "synth", help="generate a synthetic BurstGPT-style workload into a trace file",
        description="Generate arrivals and token lengths from the BurstGPT paper's workload models and "
                    "write them as a CSV trace (timestamp,input_tokens,output_tokens; .gz compresses) "
                    "that 'replayer run --trace' reads back. 'run --synthetic SPEC' does both in one step.",
        epilog=SYNTH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    synth.add_argument("spec", metavar="SPEC", help="the workload, e.g. arrivals=gamma,cv=3,rate=5,duration=600")
    synth.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="trace file to write")
    synth.add_argument("--fit", metavar="TRACE", help="fit the defaults to this trace (file or sample:NAME)")
    add_format_options(synth)
    synth.set_defaults(handler=_cmd_synth)


def _cmd_synth(args: argparse.Namespace) -> int:
    from replayer.traces.formats import read_trace
    from replayer.traces.mapped import ColumnMap
    from replayer.traces.synthetic import parse_spec, synthesize, write_trace_csv

    console = Console(stderr=True)
    fit = None
    if args.fit:
        columns = ColumnMap.parse(args.columns, args.time_unit) if args.columns else None
        fit = read_trace(args.fit, args.format, columns, args.block_tokens)
        for line in fit_lines(fit):
            console.print(line, soft_wrap=True)
    spec = parse_spec(args.spec, fit)
    trace = synthesize(spec, fit)
    write_trace_csv(trace, args.output)
    console.print(f"spec: {spec.text}", soft_wrap=True)
    console.print(f"wrote {len(trace):,} requests over {trace.span_s:,.1f} s "
                  f"({len(trace) / max(trace.span_s, 1e-9):,.2f}/s mean) to {args.output}")
    return 0


DATASETS_EXAMPLES = """\
examples:
  replayer datasets                          # what is known, and what is already cached
  replayer datasets burstgpt:1 azure-2023:code   # fetch now (e.g. before going offline)
  replayer run --trace burstgpt:1 --busiest 600 --rate 10
  REPLAYER_DATASET_MIRROR=http://mirror.internal/traces replayer inspect azure-2024:conv

environment:
  REPLAYER_CACHE_DIR        where fetched traces are kept (default $XDG_CACHE_HOME/replayer or ~/.cache/replayer)
  REPLAYER_DATASET_MIRROR   fetch <mirror>/<file name> instead of the public location
"""


def add_scenarios(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "scenarios", help="list the ready-made scenarios ('replayer run NAME' runs one)",
        description="Scenarios are TOML files of replayer run options with a description: named, commented "
                    "workloads. They are found in $REPLAYER_SCENARIOS, ./scenarios and the scenarios shipped "
                    "with replayer. 'replayer run NAME --base-url URL' runs one; options given there override "
                    "the scenario's.")
    parser.set_defaults(handler=_cmd_scenarios)


def _cmd_scenarios(args: argparse.Namespace) -> int:
    from rich.table import Table

    from replayer.run.scenarios import list_scenarios, scenario_dirs

    table = Table(title="Scenarios (replayer run NAME \\[options]; files under " +
                  ", ".join(str(folder) for folder in scenario_dirs() if folder.is_dir()) + ")",
                  title_justify="left", box=None)
    table.add_column("name", no_wrap=True)
    table.add_column("what")
    for scenario in list_scenarios():
        table.add_row(scenario.name, scenario.description)
    Console().print(table)
    return 0


def add_datasets(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "datasets", help="list the public traces known by name, or fetch them into the cache",
        description="Public traces can be named wherever a trace is expected (--trace burstgpt:1). The first "
                    "use downloads the file once into the cache, with a progress bar, checks its size and "
                    "sha256 where known, and every later use works offline. With NAMEs, fetch them now.",
        epilog=DATASETS_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME", help="datasets to fetch now")
    parser.set_defaults(handler=_cmd_datasets)


def _cmd_datasets(args: argparse.Namespace) -> int:
    from rich.table import Table

    from replayer.traces import datasets

    for name in args.names:
        Console(stderr=True).print(f"{name}: {datasets.fetch(name)}")
    if args.names:
        return 0
    table = Table(title=f"Known traces (cache: {datasets.cache_dir()})", title_justify="left", box=None)
    table.add_column("name", no_wrap=True)
    table.add_column("what")
    for column in ("licence", "size", "cached"):
        table.add_column(column, no_wrap=True)
    for dataset in datasets.DATASETS.values():
        size = f"{dataset.size / 1e6:,.1f} MB" if dataset.size else "?"
        cached = "yes" if datasets.cached_path(dataset).is_file() else ""
        table.add_row(dataset.name, dataset.description, dataset.license, size, cached)
    Console().print(table)
    return 0


