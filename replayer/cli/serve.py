"""`replayer simulate` and `replayer bench`: the built-in server, and the client's own benchmark."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.console import Console

from replayer.cli.options import (
    add_simulator_options,
    add_tokenizer_option,
    number_list,
    positive_float,
    positive_int,
    simulator_config,
)

SIMULATE_EXAMPLES = """\
examples:
  replayer simulate --port 8000
  replayer simulate --port 8000 --decode-base-ms 20 --kv-tokens 100000      # a slower, smaller engine
  replayer simulate --port 8000 --error-rate 429=0.05 --retry-after 1       # 5 % rate-limited answers
  replayer simulate --port 8000 --reset-rate 0.01 --malformed-rate 0.01     # broken streams
"""



def add_simulate(commands: argparse._SubParsersAction) -> None:
    simulate = commands.add_parser(
        "simulate", help="serve the built-in simulated OpenAI-compatible LLM server",
        description="An OpenAI-compatible server (/v1/models, /v1/completions, /v1/chat/completions, streaming "
                    "and not) whose latency follows a continuous-batching engine model: prefill time grows with "
                    "prompt tokens, decode steps slow down as the batch grows, and a KV-token budget queues new "
                    "requests when full. Runs until Ctrl-C.",
        epilog=SIMULATE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    simulate.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    simulate.add_argument("--port", type=int, default=8000, help="port to bind (default %(default)s)")
    add_tokenizer_option(simulate)
    add_simulator_options(simulate, "engine model and faults")
    simulate.set_defaults(handler=_cmd_simulate)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from replayer.sim.hosting import serve

    config = simulator_config(args)
    Console(stderr=True).print(f"replayer simulator serving {config.model} on http://{args.host}:{args.port}")
    serve(config, args.host, args.port)
    return 0


BENCH_EXAMPLES = """\
examples:
  replayer bench --quick                      # 128-token streams at 50..400 req/s, 6 s per step, both emission
                                              # modes (~2.5 minutes)
  replayer bench                              # the full ladder: 50..800 req/s of 128-token streams, 20 s per step
  replayer bench --quick --emission spread    # only the server that paces each stream on its own timer
  replayer bench --tokens 512 --rates 25,50,100,200   # longer streams
  replayer bench --rates 100,200 --tokens 128 --duration 30 --out bench-runs
  replayer bench --rates 800,1200 --workers 4  # the client as 4 processes (needs 5+ cores to mean anything)
  replayer bench --hold 10000                 # can one process keep 10,000 streams open at once? (~40 s)
  replayer bench --soak 200000                # does memory stay flat over 200,000 requests? (~3.5 minutes)
"""


def add_bench(commands: argparse._SubParsersAction) -> None:
    from replayer.bench.ladder import FULL, QUICK
    from replayer.bench.server import EMISSIONS

    bench = commands.add_parser(
        "bench", help="measure the client itself: timing inflation, schedule lag and CPU at a ladder of loads",
        description="Replays Poisson arrivals at a ladder of request rates and stream lengths against the bench's "
                    "stream server (one chunk per stream every 10 ms, vLLM's chunk shapes), run as its own process "
                    "on another core, then sends the same requests through a minimal raw-socket client. The server "
                    "logs when it received each request and wrote each chunk, so both clients' TTFT and ITL are "
                    "compared with the truth, and their CPU with each other. Ends with the targets against the raw "
                    "client and the load this machine can drive with < 1 ms inflation: is the client the bottleneck?",
        epilog=BENCH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("--quick", action="store_true",
                       help="a short ladder: about a minute per emission mode")
    bench.add_argument("--rates", type=number_list(positive_float), metavar="R,R,...",
                       help=f"request rates per step (default {','.join(f'{r:g}' for r in FULL.rates)})")
    bench.add_argument("--tokens", type=number_list(positive_int), metavar="N,N,...",
                       help=f"streamed output tokens per request (default {','.join(map(str, FULL.tokens))})")
    bench.add_argument("--duration", type=positive_float, metavar="S",
                       help=f"seconds of arrivals per step (default {FULL.duration_s:g}; --quick {QUICK.duration_s:g})")
    bench.add_argument("--out", type=Path, metavar="DIR", help="keep every step's records and truth log here")
    bench.add_argument("--emission", choices=("both", *EMISSIONS), default="both",
                       help="how the server times its writes: step (every stream's chunk in one engine step, as "
                            "vLLM does), spread (each stream on its own timer, as a server pacing streams apart "
                            "does), or both, one ladder each (default)")
    bench.add_argument("--no-pin", action="store_true", help="do not pin the client and the server to cores")
    bench.add_argument("--workers", type=positive_int, default=1, metavar="N",
                       help="run the client as N processes (run --workers), each pinned to its own core when "
                            "there are N+1 cores")
    bench.add_argument("--hold", type=positive_int, metavar="N",
                       help="instead of the ladder: open N streams within 5 s, each lasting 30 s, and report "
                            "how many one client process held at once and whether all completed")
    bench.add_argument("--soak", type=positive_int, metavar="N",
                       help="instead of the ladder: replay N short requests and print the client's resident memory "
                            "at 10 %% and 50 %% of them and at the end of the replay (flat means nothing grows per "
                            "request), then its peak with the final summary")
    bench.add_argument("--soak-rate", type=positive_float, default=1000.0, metavar="R",
                       help="request rate of --soak (default %(default)s/s)")
    bench.set_defaults(handler=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    from replayer.bench.endurance import hold_streams, soak
    from replayer.bench.harness import split_cores
    from replayer.bench.ladder import FULL, QUICK, StepResult, run_ladder, targets, verdict, versus_raw
    from replayer.bench.server import EMISSIONS
    from replayer.bench.tables import bench_table

    console = Console()
    if not console.is_terminal:
        console = Console(width=140)  # logs and pipes: keep the table's rows whole
    pinned = not args.no_pin and split_cores(args.workers)[0] is not None
    pinning = (
        "pinned to separate cores" if pinned else "not pinned (too few cores)" if not args.no_pin else "not pinned"
    )
    if args.hold:
        console.print(
            f"bench --hold: {args.hold:,} streams opened within 5 s, 30 tokens each at 1 token/s; "
            f"client and simulator {pinning}"
        )
        with tempfile.TemporaryDirectory(prefix="replayer-hold-") as scratch:
            console.print(hold_streams(args.hold, args.out or Path(scratch), pin=not args.no_pin).line(), style="bold")
        return 0
    if args.soak:
        console.print(
            f"bench --soak: {args.soak:,} requests of 32 tokens in, 4 out at {args.soak_rate:g} req/s; "
            f"client (its own process) and simulator {pinning}"
        )
        with tempfile.TemporaryDirectory(prefix="replayer-soak-") as scratch:
            console.print(
                soak(args.soak, args.soak_rate, args.out or Path(scratch), pin=not args.no_pin).line(), style="bold"
            )
        return 0
    preset = QUICK if args.quick else FULL
    rates, tokens = args.rates or preset.rates, args.tokens or preset.tokens
    duration_s = args.duration or preset.duration_s
    workers = f"{args.workers} client workers" if args.workers > 1 else "client"
    emissions = EMISSIONS if args.emission == "both" else (args.emission,)
    console.print(
        f"bench: {len(rates) * len(tokens)} steps of {duration_s:g} s (Poisson arrivals, "
        f"{'/'.join(map(str, tokens))} tokens per stream) per emission mode ({', '.join(emissions)}); "
        f"{workers} and stream server {pinning}"
    )

    def show(result: StepResult) -> None:
        console.print(f"  {result.emission}: {result.rate:g} req/s x {result.tokens} tokens: done "
                      "(replayer, then the raw client)")

    ladders = [run_ladder(rates, tokens, duration_s, args.out, pin=not args.no_pin, on_step=show,
                          workers=args.workers, emission=emission) for emission in emissions]
    for results in ladders:
        console.print(bench_table(results))
        console.print(versus_raw(results))
        for target, met in targets(results):
            console.print(f"target: {target}: {'met' if met else 'NOT met'}", style="bold" if met else "bold yellow")
        console.print(verdict(results), style="bold")
    return 0
