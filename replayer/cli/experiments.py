"""`replayer capacity` and `replayer sweep`: many runs of one workload, answered in one verdict or
one curve (`replayer.experiments`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from replayer.analysis.text import sweep_table
from replayer.cli.options import EXIT_FAILED_VERDICT, EXIT_OUTPUT_FAILED, argument_type, positive_float
from replayer.cli.run import EXIT_SIGNALS, add_run_options, run_config, with_scenario
from replayer.errors import ConfigError
from replayer.experiments.capacity import Search, capacity, found_capacity
from replayer.experiments.sweep import Sweep, parse_loads, sweep
from replayer.run.preflight import default_out_dir, prepare_out_dir
from replayer.run.replay import OUTPUT_FAILED

CAPACITY_EXAMPLES = """\
examples:
  # how fast can the bundled Azure conversation trace come before TTFT p99 passes 2 s (built-in simulator)?
  replayer capacity --trace sample:azure-2023-conv --duration 300 --slo 'ttft_p99<=2s' --max-time 600

  # the acceptance workload: Poisson at 1 req/s for 30 s, its rate multiplied per probe
  replayer capacity --synthetic "arrivals=poisson,rate=1,duration=30,input=fixed:100,output=fixed:100" \\
      --slo 'ttft_p99<=1s' --max-running 8 --decode-base-ms 10 --decode-ms-per-seq 0

  # a vLLM server, 95% of requests within TTFT 500 ms and TPOT 50 ms, three trials per probe
  replayer capacity --trace sample:burstgpt-3 --low 500 --base-url http://127.0.0.1:8000 \\
      --slo 'ttft<=500ms' --slo 'tpot<=50ms' --slo 'attainment>=95%' --trials 3 --out runs/capacity

  # how many closed-loop users (--concurrency) hold TTFT p99 under 1 s, 120 requests per probe
  replayer capacity --trace sample:azure-2023-conv --max-requests 120 --vary concurrency --low 4 \\
      --max-running 8 --decode-base-ms 2 --slo 'ttft_p99<=1s'
"""

SWEEP_EXAMPLES = """\
examples:
  replayer sweep --trace sample:azure-2023-conv --duration 120 --speedups 1,2,4,8 --slo 'ttft<=1s'
  replayer sweep --synthetic "rate=1,duration=60" --rates 2:32:5 --base-url http://127.0.0.1:8000
  replayer sweep --trace sample:azure-2023-conv --max-requests 500 --concurrencies 1,4,16,64 --slo 'ttft<=1s'
"""


def add_capacity(commands: argparse._SubParsersAction) -> None:
    capacity_parser = commands.add_parser(
        "capacity", help="find the largest speedup of a trace at which every SLO holds (bursts kept)",
        description="Search the largest speedup of the workload (for --synthetic: the multiple of its rates) at "
                    "which every --slo holds, keeping the trace's own shape: bracket by doubling from --low, then "
                    "bisect to --precision. Each probe is a run directory under OUT/probes/ and stops early once "
                    "its SLOs are out of reach. Writes OUT/capacity.json (max_speedup, max_rate, every probe, a "
                    "one-sentence verdict) and OUT/report.html. With --vary concurrency it searches the most "
                    "closed-loop users instead (--concurrency N: each user sends the trace's next request as "
                    "soon as its previous one is done; bound a probe with --max-requests), and writes "
                    "max_concurrency. Exit 0 when a capacity was found, 1 when even "
                    "--low fails, 2 on bad input.",
        epilog=CAPACITY_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_scenario(capacity_parser)
    search = capacity_parser.add_argument_group("search")
    search.add_argument("--vary", choices=["speedup", "concurrency"], default="speedup",
                        help="the load searched: the trace's speedup (default), or the number of closed-loop users")
    search.add_argument("--low", type=positive_float, default=1.0, metavar="X",
                        help="the first speedup (or number of users) probed (default %(default)s: the recorded pace)")
    search.add_argument("--high", type=positive_float, default=1024.0, metavar="X",
                        help="the largest speedup (or number of users) probed (default %(default)s)")
    search.add_argument("--precision", type=argument_type(_percent, "--precision"), default=0.05, metavar="PCT",
                        help="stop when the failing speedup is within PCT above the passing one (default 5%%)")
    search.add_argument("--max-time", dest="search_time", type=positive_float, metavar="S",
                        help="bound the whole search to S seconds; the probe running then is cut short and ignored")
    search.add_argument("--cooldown", type=positive_float, metavar="S",
                        help="pause between probes so the server finishes what a stopped probe left (default: 0 with "
                             "the built-in simulator, which is fresh per probe; 5 against --base-url)")
    add_run_options(capacity_parser, single_run=False)
    capacity_parser.set_defaults(handler=_cmd_capacity, run_parser=capacity_parser)


def add_sweep(commands: argparse._SubParsersAction) -> None:
    sweep_parser = commands.add_parser(
        "sweep", help="replay a workload at several loads: latency and goodput versus load, knee marked",
        description="Replay the same workload at each of --speedups (or --rates, or closed loops of "
                    "--concurrencies users), one run directory per point "
                    "under OUT/points/, and write OUT/sweep.json (each point's metrics, with goodput and attainment "
                    "under --slo) and OUT/report.html with latency-versus-load and goodput-versus-load curves. The "
                    "knee is the first point where TTFT p99 grows faster than the load.",
        epilog=SWEEP_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_scenario(sweep_parser)
    loads = sweep_parser.add_argument_group("loads").add_mutually_exclusive_group()
    loads.add_argument("--speedups", type=argument_type(lambda text: parse_loads(text, "--speedups"), "--speedups"),
                       metavar="LIST", help="speedups (for --synthetic: multiples of its rates): 1,2,4,8, or "
                                            "START:STOP:N for N geometric steps")
    loads.add_argument("--rates", type=argument_type(lambda text: parse_loads(text, "--rates"), "--rates"),
                       metavar="LIST", help="mean rates in requests/s, each point rescaled to it (shape kept): 2,4,8 "
                                            "or START:STOP:N")
    loads.add_argument("--concurrencies", type=argument_type(_users, "--concurrencies"), metavar="LIST",
                       help="closed loops of this many virtual users (run --concurrency), as the peers' "
                            "concurrency sweeps: 1,4,16 or START:STOP:N")
    add_run_options(sweep_parser, single_run=False)
    sweep_parser.set_defaults(handler=_cmd_sweep, run_parser=sweep_parser)


def _users(text: str) -> tuple[int, ...]:
    """`--concurrencies`: whole numbers of users, as `parse_loads` reads loads (rounded, each once)."""
    return tuple(sorted({max(1, round(load)) for load in parse_loads(text, "--concurrencies")}))


def _add_scenario(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", nargs="?", metavar="SCENARIO",
                        help="a scenario file or name ('replayer scenarios'): its options are the defaults")


def _percent(text: str) -> float:
    value = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    if not 0 < value < 1:
        raise ConfigError(f"expected a fraction like 5% or 0.05, got {text!r}")
    return value


def _cmd_capacity(args: argparse.Namespace) -> int:
    args = with_scenario(args) if args.scenario else args
    config = run_config(args)
    cooldown = args.cooldown if args.cooldown is not None else 0.0 if config.builtin_simulator else 5.0
    search = Search(tuple(args.slo), args.low, args.high, args.precision, args.search_time, args.trials, cooldown,
                    args.vary)
    out_dir = _experiment_dir(config.output.out_dir, args.overwrite)
    result = capacity(config, search, out_dir)
    _print_result(args, result, out_dir)
    return _exit_code(result, found=found_capacity(result))


def _cmd_sweep(args: argparse.Namespace) -> int:
    args = with_scenario(args) if args.scenario else args
    config = run_config(args)
    plan = Sweep(args.speedups or (), args.rates or (), tuple(args.slo), args.trials, args.concurrencies or ())
    out_dir = _experiment_dir(config.output.out_dir, args.overwrite)
    result = sweep(config, plan, out_dir)
    _print_result(args, result, out_dir)
    return _exit_code(result, found=all(point["passed"] is not False for point in result["points"]))


def _experiment_dir(out_dir: Path | None, overwrite: bool) -> Path:
    folder = out_dir or default_out_dir()
    prepare_out_dir(folder, overwrite)
    return folder


def _print_result(args: argparse.Namespace, result: dict[str, Any], out_dir: Path) -> None:
    if args.quiet:
        return
    if result["kind"] == "capacity":
        Console().print(result["verdict"], style="bold green" if found_capacity(result) else "bold red")
    else:
        knee = result["knee"]
        Console().print(sweep_table(result))
        Console().print(f"knee at {knee['load']} {knee['value']:.4g} ({knee['sent_rate']:.3g} req/s): TTFT p99 grew "
                        f"faster than the load" if knee else "no knee: TTFT p99 never grew faster than the load")
    if result["stopped"]:
        Console(stderr=True).print(f"[yellow]stopped early ({result['stopped']})[/]: results cover what ran")
    Console(stderr=True).print(f"{result['kind']}: {out_dir / (result['kind'] + '.json')}  "
                               f"report: {out_dir / 'report.html'}")


def _exit_code(result: dict[str, Any], found: bool) -> int:
    """130/143 when interrupted, 74 when a run's output failed, 1 when no capacity was found (or a
    sweep point failed its SLOs), else 0 (a search cut short by --max-time answers with what it found)."""
    stopped = result["stopped"] or ""
    if stopped in EXIT_SIGNALS:
        return EXIT_SIGNALS[stopped]
    if stopped.startswith(OUTPUT_FAILED):
        return EXIT_OUTPUT_FAILED
    return 0 if found else EXIT_FAILED_VERDICT
