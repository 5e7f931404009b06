"""Command line: `replayer run | simulate | report | check | …`, a thin layer over the Python API
(`import replayer`), one module per command group. The only place that prints errors and picks
exit codes.

Exit codes: 0 success; 1 an SLO violated or a regression found; 2 bad input or options (one line on
stderr, no traceback, no load sent); 70 a `--workers` process or Ray shard died; 74 the output
could not be written (a full disk: a run stops at once); 130/143 interrupted by SIGINT/SIGTERM.
Whenever a run stops early, its records and summary are still written for what ran.
"""

from __future__ import annotations

import argparse
import sys

from replayer.cli import experiments, offline, run, serve, traces
from replayer.cli.options import EXIT_INPUT, EXIT_OUTPUT_FAILED, Parser
from replayer.errors import OutputError, ReplayerError
from replayer.version import __version__


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: every command's options, help and examples."""
    parser = Parser(
        prog="replayer",
        description="Replay recorded LLM production traces against OpenAI-compatible servers and measure "
                    "TTFT, TPOT, ITL, end-to-end latency, throughput and failures.",
        epilog="Run 'replayer COMMAND --help' for a command's options and examples. The same pipeline is a "
               "Python library: import replayer; replayer.run(replayer.RunConfig(...)) (README: Use from Python).")
    parser.add_argument("--version", action="version", version=f"replayer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run.add_run(commands)
    serve.add_simulate(commands)
    offline.add_report(commands)
    offline.add_check(commands)
    offline.add_compare(commands)
    experiments.add_capacity(commands)
    experiments.add_sweep(commands)
    traces.add_inspect(commands)
    traces.add_synth(commands)
    traces.add_scenarios(commands)
    traces.add_datasets(commands)
    serve.add_bench(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    """`replayer ...`: parse, run the command's handler, and turn its outcome into an exit code."""
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.handler(args)
    except OutputError as exc:  # (before ReplayerError: its subclass)
        print(f"replayer: {exc}", file=sys.stderr)
        return EXIT_OUTPUT_FAILED
    except ReplayerError as exc:
        print(f"replayer: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        return 130
