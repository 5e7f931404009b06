"""Command line: `replayer run | simulate | report | check | …`. The only place that prints errors and picks exit codes.

Exit codes: 0 success; 1 an SLO violated or a regression found; 2 bad input or options (one line on
stderr, no traceback, no load sent); 70 a `--workers` process died; 74 the run's output could not
be written (a full disk: it stopped at once); 130/143 interrupted by SIGINT/SIGTERM. Whenever a run
stops early, its records and summary are still written for what ran.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import sys
import tempfile
from pathlib import Path

from rich.console import Console

from replayer import __version__
from replayer.backends import BACKENDS
from replayer.client import ClientConfig, Timeouts, parse_header
from replayer.errors import ConfigError, ReplayerError
from replayer.metrics import CLIENT_LIMITED_LAG_MS, LAG_WINDOW_S
from replayer.prompts import TemplateOverhead
from replayer.records import read_records
from replayer.compare import DEFAULT_LIMITS
from replayer.report import (compare_table, describe_fit, junit_xml, markdown_report, render_summary,
                             render_trace_stats, slo_table, slo_verdict, with_vllm_keys)
from replayer.sessions import HISTORY_MODES
from replayer.shards import parse_shard, parse_start_at
from replayer.simulator import DEFAULT_MODEL, FAULT_NAMES, EngineModel, Faults, SimulatorConfig, rate_field
from replayer.tokenizer import DEFAULT_TOKENIZER
from replayer.trace import DEFAULT_TRACE, FORMATS, SAMPLES
from replayer.workload import Shaping

EXIT_INPUT = 2

RUN_EXAMPLES = """\
examples:
  # two minutes of the bundled Azure conversation trace, at 2x, against the built-in simulator
  replayer run --trace sample:azure-2023-conv --duration 120 --speedup 2

  # a ready-made scenario ('replayer scenarios' lists them), with its duration overridden
  replayer run burstgpt-conversation-peak --base-url http://127.0.0.1:8000 --busiest 600

  # the busiest 10 minutes of the Azure trace, prompts over 8k tokens dropped, at 4x
  replayer run --trace sample:azure-2023-conv --busiest 600 --max-input-tokens 8192 --speedup 4

  # the BurstGPT v3 sample compressed 2000x, against a vLLM server
  replayer run --trace sample:burstgpt-3 --speedup 2000 --base-url http://127.0.0.1:8000

  # check what would be sent, without sending: exact bodies and planned send offsets
  replayer run --trace sample:burstgpt-3 --dry-run --save-requests requests.jsonl

  # BurstGPT v3 sessions as growing chat histories, prompts counted with the model's own tokenizer
  replayer run --trace sample:burstgpt-3 --speedup 2000 --tokenizer ./Llama-3.1-8B/tokenizer.json --count-template

  # a Mooncake trace (prefix blocks kept), or any CSV with a column mapping
  replayer run --trace sample:mooncake-synthetic --max-requests 200
  replayer run --trace my.csv --format csv --columns time=ts,input=prompt_len,output=gen_len --time-unit ms

  # BurstGPT-like bursty load (Gamma arrivals, CV 3) ramping from 2 to 20 requests/s over 10 minutes
  replayer run --synthetic "arrivals=gamma,cv=3,rate=2@0/20@600,duration=600,input=zipf:1.2:16:4096"

  # the Azure trace's own burstiness and lengths, modeled and scaled to 40 requests/s for 5 minutes
  replayer run --synthetic "rate=40,duration=300" --fit sample:azure-2023-conv

  # your own BurstGPT file, GPT-4 conversation rows only, rescaled to 5 requests/s
  replayer run --trace BurstGPT_1.csv --trace-model GPT-4 --log-type "Conversation log" --rate 5 \\
      --base-url http://10.0.0.5:8000/v1 --api completions --model meta-llama/Llama-3.1-8B-Instruct

bundled samples: """ + ", ".join(f"sample:{name}" for name in SAMPLES)

SIMULATE_EXAMPLES = """\
examples:
  replayer simulate --port 8000
  replayer simulate --port 8000 --decode-base-ms 20 --kv-tokens 100000      # a slower, smaller engine
  replayer simulate --port 8000 --error-rate 429=0.05 --retry-after 1       # 5 % rate-limited answers
  replayer simulate --port 8000 --reset-rate 0.01 --malformed-rate 0.01     # broken streams
"""

REPORT_EXAMPLES = """\
examples:
  replayer report runs/20260101-120000
  replayer report runs/20260101-120000/records.jsonl --format json
  replayer report runs/nightly --format markdown -o report.md      # for a CI comment
  replayer report runs/nightly --timeseries series.csv --bin 10    # 10 s intervals
  replayer report shard-0 shard-1 shard-2 --merge-to runs/merged  # shards of one run (--shard K/N)
"""


class _Parser(argparse.ArgumentParser):
    """argparse reporting a bad option in one line (exit code 2) instead of the usage block."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _number(kind: type, minimum: float, *, strict: bool):
    """An argparse type: a finite number of `kind`, greater than (strict) or at least `minimum`."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
        if not math.isfinite(value) or value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum:g}, got {text}")
        return value

    return parse


_positive_float = _number(float, 0, strict=True)
_non_negative_float = _number(float, 0, strict=False)
_positive_int = _number(int, 0, strict=True)
_non_negative_int = _number(int, 0, strict=False)


def _number_list(parse_one, count: int | None = None):
    """An argparse type: comma-separated values, each checked by `parse_one` (exactly `count` if given)."""

    def parse(text: str) -> tuple:
        parts = text.split(",")
        if count is not None and len(parts) != count:
            raise argparse.ArgumentTypeError(f"expected {count} comma-separated numbers, got {text!r}")
        return tuple(parse_one(part) for part in parts)

    return parse


def _fraction(text: str) -> float:
    value = _positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], got {text}")
    return value


def _token_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition(":")
    try:
        bounds = (int(low) if low else 0, int(high) if high else 2**62)
    except ValueError:
        bounds = None
    if not sep or bounds is None or not 0 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX token counts (either may be empty), got {text!r}")
    return bounds


def _plot_path(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() not in (".png", ".svg"):
        raise argparse.ArgumentTypeError(f"the file name must end in .png or .svg, got {text!r}")
    return path


def _add_tokenizer_option(group) -> None:
    group.add_argument("--tokenizer", default=DEFAULT_TOKENIZER, metavar="NAME|PATH",
                       help="what prompt tokens are counted with: cl100k_base (default, offline) or the served "
                            "model's tokenizer.json, so lengths match the server's count (pip install 'replayer[hf]')")


def _add_simulator_options(parser: argparse.ArgumentParser, title: str) -> None:
    engine, faults = EngineModel(), Faults()
    group = parser.add_argument_group(title)
    group.add_argument("--sim-model", default=DEFAULT_MODEL, help="model id the simulator serves (default %(default)s)")
    group.add_argument("--prefill-tokens-per-ms", type=_positive_float, default=engine.prefill_tokens_per_ms,
                       help="prefill speed (default %(default)s tokens/ms)")
    group.add_argument("--decode-base-ms", type=_positive_float, default=engine.decode_base_ms,
                       help="time of one decode step with an empty batch (default %(default)s ms)")
    group.add_argument("--decode-ms-per-seq", type=_non_negative_float, default=engine.decode_ms_per_seq,
                       help="extra step time per running sequence (default %(default)s ms)")
    group.add_argument("--kv-tokens", type=_positive_int, default=engine.kv_tokens,
                       help="KV-cache budget in tokens; new requests wait when it is full (default %(default)s)")
    group.add_argument("--max-running", type=_positive_int, default=engine.max_running,
                       help="most sequences in one batch (default %(default)s)")
    group.add_argument("--max-prefill-tokens", type=_positive_int, default=engine.max_prefill_tokens_per_step,
                       help="prompt tokens prefilled per step (chunked prefill, default %(default)s)")
    group.add_argument("--max-model-len", type=_positive_int, default=engine.max_model_len,
                       help="context window; longer requests get HTTP 400 (default %(default)s)")
    group.add_argument("--truth-log", type=Path, metavar="FILE.jsonl",
                       help="write each streamed response's server-side timings (received, every chunk written), "
                            "the ground truth that replayer bench compares the client's records with")
    group.add_argument("--template-tokens", type=_template_tokens, default=TemplateOverhead(), metavar="BASE,PER_MSG",
                       help="chat-template tokens added to each prompt's count: BASE per request plus PER_MSG per "
                            "message, as a real chat template does (default 0,0)")
    group.add_argument("--error-rate", type=_error_rate, action="append", default=[], metavar="[STATUS=]RATE",
                       help="fraction of requests answered with an HTTP error, repeatable per status: 429=0.05 "
                            "(a bare RATE means 500)")
    group.add_argument("--retry-after", type=_non_negative_float, metavar="S",
                       help="send Retry-After: S with injected 429 and 503 answers")
    for fault in FAULT_NAMES:
        group.add_argument(f"--{fault}-rate", type=_non_negative_float, default=getattr(faults, rate_field(fault)),
                           metavar="F", help=f"fraction of {_FAULT_HELP[fault]}")
    group.add_argument("--stall-s", type=_non_negative_float, default=faults.stall_s, metavar="S",
                       help="length of an injected stall; inf stalls forever (default %(default)s)")
    group.add_argument("--drip-s", type=_non_negative_float, default=faults.drip_s, metavar="S",
                       help="the gap before each token of a dripping stream (default %(default)s)")
    group.add_argument("--huge-bytes", type=_positive_int, default=faults.huge_bytes, metavar="N",
                       help="size of a --huge-rate chunk (default %(default)s); each fault is drawn once per "
                            "request, and all fault rates together must not exceed 1")


_FAULT_HELP = {
    "refuse": "requests whose connection is dropped before any response",
    "reset": "streams whose connection is reset half way",
    "stall": "responses that stall before their first token, for --stall-s",
    "drip": "streams that send each token --drip-s after the previous one",
    "malformed": "streams with one chunk cut inside its JSON",
    "truncate": "streams cut after half their tokens, with no finish_reason or [DONE]",
    "huge": "streams carrying one content chunk of --huge-bytes",
    "wrong-type": "requests answered 200 with an HTML page",
}
"""What each simulator fault's --<fault>-rate option is a fraction of (one entry per name in FAULT_NAMES)."""


def _argument_type(parse, flag: str):
    """An argparse type from a parser that raises ConfigError naming `flag` (argparse names it itself)."""
    def convert(text: str):
        try:
            return parse(text)
        except ConfigError as exc:
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{flag}: ")) from None
    return convert


def _error_rate(text: str) -> tuple[int, float]:
    status, equals, rate = text.rpartition("=")
    try:
        pair = (int(status) if equals else 500, float(rate))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected [STATUS=]RATE such as 429=0.05, got {text!r}") from None
    if not 0.0 <= pair[1] <= 1.0:
        raise argparse.ArgumentTypeError(f"the rate must be in [0, 1], got {text!r}")
    return pair


def _simulator_config(args: argparse.Namespace) -> SimulatorConfig:
    engine = EngineModel(
        prefill_tokens_per_ms=args.prefill_tokens_per_ms, decode_base_ms=args.decode_base_ms,
        decode_ms_per_seq=args.decode_ms_per_seq, kv_tokens=args.kv_tokens, max_running=args.max_running,
        max_prefill_tokens_per_step=args.max_prefill_tokens, max_model_len=args.max_model_len)
    faults = Faults(error_rates=tuple(args.error_rate), retry_after_s=args.retry_after, stall_s=args.stall_s,
                    drip_s=args.drip_s, huge_bytes=args.huge_bytes,
                    **{rate_field(fault): getattr(args, rate_field(fault)) for fault in FAULT_NAMES})
    return SimulatorConfig(model=args.sim_model, engine=engine, faults=faults, tokenizer=args.tokenizer,
                           template=args.template_tokens, truth_log=args.truth_log)


def _template_tokens(text: str) -> TemplateOverhead:
    return TemplateOverhead(*_number_list(_non_negative_int, count=2)(text))


def _add_format_options(group) -> None:
    """--format, --columns and --time-unit: how to read a trace (shared by run and inspect)."""
    group.add_argument("--format", default="auto", choices=FORMATS,
                       help="trace format (default: sniffed from the header or first record)")
    group.add_argument("--columns", metavar="MAP",
                       help="for --format csv/jsonl: time=COL,input=COL,output=COL[,session=COL,model=COL]")
    group.add_argument("--time-unit", default="s", choices=["s", "ms", "us", "ns", "datetime"],
                       help="unit of the mapped time column (default %(default)s; datetime = ISO wall clock)")


def _add_run(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run", help="replay a trace against a server (the built-in simulator by default)",
        description="Replay a recorded trace open-loop: each request leaves at its recorded instant "
                    "(scaled), with a prompt of exactly its recorded token count, and every outcome is "
                    "written to OUT/records.jsonl; OUT/summary.json and a terminal report follow.",
        epilog=RUN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("scenario", nargs="?", metavar="SCENARIO",
                     help="a scenario file or name ('replayer scenarios' lists them): its options are the defaults, "
                          "and options given here override them")
    source = run.add_argument_group("trace")
    source.add_argument("--trace", help="trace file, sample:NAME (bundled) or a public dataset such as burstgpt:1, "
                                        f"fetched once ('replayer datasets'); default {DEFAULT_TRACE}")
    source.add_argument("--synthetic", metavar="SPEC",
                        help="replay a generated workload instead of a trace; see 'replayer synth --help'")
    source.add_argument("--fit", metavar="TRACE", help="with --synthetic: take its defaults from this trace")
    _add_format_options(source)
    shaping = run.add_argument_group("shaping (applied in this order)")
    shaping.add_argument("--start", type=_non_negative_float, default=0.0, metavar="S",
                         help="skip the first S seconds of trace time")
    shaping.add_argument("--duration", type=_positive_float, metavar="S", help="keep S seconds of trace time")
    shaping.add_argument("--from", dest="from_time", metavar="T",
                         help="start at this time of the trace's own clock (seconds, or a date-time for Azure)")
    shaping.add_argument("--until", dest="until_time", metavar="T", help="end before this trace time")
    shaping.add_argument("--busiest", type=_positive_float, metavar="S",
                         help="replay the S-second window with the most requests")
    shaping.add_argument("--trace-model", action="append", default=[], metavar="NAME",
                         help="keep rows of this Model column value (BurstGPT: ChatGPT, GPT-4); repeatable")
    shaping.add_argument("--log-type", action="append", default=[], metavar="TYPE",
                         help="keep rows of this Log Type (BurstGPT: 'Conversation log', 'API log'); repeatable")
    shaping.add_argument("--input-tokens", type=_token_range, metavar="MIN:MAX", help="keep rows in this input range")
    shaping.add_argument("--output-tokens", type=_token_range, metavar="MIN:MAX", help="keep rows in this output range")
    shaping.add_argument("--include-failed", action="store_true",
                         help="replay rows with zero request or response tokens (skipped and counted by default)")
    shaping.add_argument("--max-input-tokens", type=_positive_int, metavar="N",
                         help="rows with longer prompts are dropped (or clamped: --over-limit clamp)")
    shaping.add_argument("--over-limit", choices=["drop", "clamp"], default="drop",
                         help="what --max-input-tokens does to longer rows (default %(default)s)")
    shaping.add_argument("--sample", type=_fraction, metavar="F",
                         help="keep a random fraction F of rows at their recorded times (seeded by --seed)")
    shaping.add_argument("--max-requests", type=_positive_int, metavar="N", help="keep the first N requests")
    pace = shaping.add_mutually_exclusive_group()
    pace.add_argument("--speedup", type=_positive_float, metavar="X", help="compress trace time X-fold")
    pace.add_argument("--rate", type=_positive_float, metavar="R",
                      help="rescale time so the mean rate is R requests/s (burst shape kept)")
    target = run.add_argument_group("target")
    target.add_argument("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000 "
                                           "(default: start the built-in simulator on a free loopback port)")
    target.add_argument("--api", choices=["chat", "completions", "tgi-generate"], default="chat",
                        help="/v1/chat/completions, /v1/completions, or TGI's native /generate_stream (/generate "
                             "without --stream) with its token counts from details (default %(default)s)")
    target.add_argument("--backend", choices=["auto", *BACKENDS], default="auto",
                        help="serving engine dialect: the field that forces exact output lengths (ignore_eos for "
                             "vllm, sglang, llamacpp; min_tokens for llama-cpp-python; none for tgi, openai), usage "
                             "in streams, OpenAI's max_completion_tokens; auto: from /v1/models owned_by, else the "
                             "engines' own endpoints (/get_server_info, /props, /info, /version), and says which")
    target.add_argument("--model", help="model to request (default: the first id from /v1/models)")
    key = target.add_mutually_exclusive_group()
    key.add_argument("--api-key", help="Bearer token (default: $OPENAI_API_KEY); never written to any output")
    key.add_argument("--api-key-file", type=Path, metavar="FILE",
                     help="read the Bearer token from FILE (keeps it out of the process list and shell history)")
    target.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                        help="send this header with every request, repeatable; credential-like ones (auth, key, token, "
                             "secret, cookie...) are redacted in every output")
    target.add_argument("--insecure", action="store_true",
                        help="do not verify the server's TLS certificate (a warning is printed)")
    target.add_argument("--stream", action=argparse.BooleanOptionalAction, default=True,
                        help="stream responses (default on; TTFT, TPOT and ITL need streaming)")
    target.add_argument("--ignore-eos", action=argparse.BooleanOptionalAction, default=None,
                        help="send ignore_eos so outputs reach max_tokens exactly "
                             "(default: per --backend)")
    timeouts = Timeouts()
    target.add_argument("--connect-timeout", type=_positive_float, default=timeouts.connect_s, metavar="S",
                        help="a connection not open after S seconds fails as timeout_connect (default %(default)s)")
    target.add_argument("--first-token-timeout", type=_positive_float, default=timeouts.first_token_s, metavar="S",
                        help="no first token S seconds after sending (without --stream: no answer): "
                             "timeout_first_token (default %(default)s)")
    target.add_argument("--token-timeout", type=_positive_float, default=timeouts.between_tokens_s, metavar="S",
                        help="no token S seconds after the previous one: timeout_between_tokens (default %(default)s)")
    target.add_argument("--request-timeout", type=_positive_float, default=timeouts.total_s, metavar="S",
                        help="a request not finished S seconds after sending: timeout_total (default %(default)s)")
    target.add_argument("--retry-429", type=_non_negative_int, default=0, metavar="N",
                        help="re-send a request answered 429 up to N times, waiting as its Retry-After says; "
                             "retries are counted apart (default 0: a retry would hide a failure the trace "
                             "recorded as traffic)")
    target.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                        help="replay with N processes (one per core) for loads one core cannot drive; sessions "
                             "stay whole, all start at one instant, records are merged (default 1)")
    scale = run.add_argument_group("scale-out over machines")
    scale.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                       help="run the --workers shards as Ray actors on a cluster (ADDRESS, or $RAY_ADDRESS, or a "
                            "local one); all start at one instant, node clock offsets are measured and reported, "
                            "records are merged (pip install 'replayer[ray]')")
    scale.add_argument("--shard", type=_argument_type(parse_shard, "--shard"), metavar="K/N",
                       help="replay only shard K of N (from 0; sessions stay whole): one of N machines or pods, "
                            "merged afterwards with 'replayer report RUN RUN ...'")
    scale.add_argument("--start-at", type=_argument_type(parse_start_at, "--start-at"), metavar="EPOCH",
                       help="start at this wall-clock instant (seconds since the epoch, or a UTC date-time), the "
                            "same for every shard")
    prompts = run.add_argument_group("prompts")
    _add_tokenizer_option(prompts)
    prompts.add_argument("--prefix-cache", choices=["on", "off"], default="on",
                         help="on: rows sharing Mooncake hash_ids share those 512-token blocks of text, so prefix "
                              "caches hit as in the trace; off: every prompt is unique (default %(default)s)")
    prompts.add_argument("--session-history", choices=HISTORY_MODES, default="actual",
                         help="rows sharing a BurstGPT Session ID are sent as growing chat histories holding the "
                              "server's actual replies, or synthetic replies of the recorded length; each turn waits "
                              "for the previous one. off: every row on its own (default %(default)s)")
    prompts.add_argument("--count-template", action="store_true",
                         help="measure the chat template's tokens from the server's usage (two tiny requests before "
                              "the run) and subtract them, so served prompt tokens equal the trace's")
    prompts.add_argument("--seed", type=int, help="prompt seed (default random: no prefix-cache hits across runs)")
    output = run.add_argument_group("output")
    output.add_argument("--out", type=Path, metavar="DIR", help="run directory (default runs/<timestamp>)")
    output.add_argument("--overwrite", action="store_true", help="reuse a non-empty --out directory")
    output.add_argument("--drain-timeout", type=_non_negative_float, default=30.0, metavar="S",
                        help="after Ctrl-C, wait S seconds for in-flight requests (default %(default)s)")
    output.add_argument("--lag-limit", type=_positive_float, default=CLIENT_LIMITED_LAG_MS, metavar="MS",
                        help="schedule guard: if the client's send lag p99 over any %g s window exceeds MS, the live "
                             "display warns and summary.json says client_limited (default %%(default)s)" % LAG_WINDOW_S)
    output.add_argument("--scrape-metrics", default="auto", metavar="URL|auto|off",
                        help="sample the server's Prometheus metrics (running/waiting requests, KV-cache use, "
                             "preemptions; vLLM, SGLang and TGI names) every second into server_metrics.csv; auto: "
                             "the target's /metrics if it answers (default %(default)s)")
    output.add_argument("--slo", action="append", default=[], metavar="METRIC<=VALUE",
                        help="a service-level objective, repeatable: per request (ttft<=500ms, tpot<=50ms, e2e<=20s: "
                             "goodput and attainment) or for the run (ttft_p99<=500ms, tpot_p90<=50ms, error_rate<=1%%, "
                             "output_throughput>=2000, attainment>=90%%); the run exits 1 when one is violated")
    output.add_argument("--quiet", action="store_true", help="no progress display or report; for scripts")
    output.add_argument("--save-requests", type=Path, metavar="FILE.jsonl",
                        help="write every request body exactly as sent, with its planned send offset")
    output.add_argument("--dry-run", action="store_true",
                        help="prepare every request (and --save-requests them) but send nothing")
    _add_simulator_options(run, "built-in simulator (used when --base-url is not given)")
    run.set_defaults(handler=_cmd_run, run_parser=run)


def _api_key(args: argparse.Namespace) -> str | None:
    """The Bearer token from --api-key, --api-key-file or $OPENAI_API_KEY, in that order."""
    if args.api_key_file is not None:
        try:
            key = args.api_key_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--api-key-file {args.api_key_file}: cannot read it "
                              f"({getattr(exc, 'strerror', None) or 'not UTF-8 text'})") from None
        if not key or "\n" in key:
            raise ConfigError(f"--api-key-file {args.api_key_file}: expected one line holding the key")
        return key
    return args.api_key or os.environ.get("OPENAI_API_KEY") or None


def _with_scenario(args: argparse.Namespace) -> argparse.Namespace:
    """The run's options: the scenario's, then those given on the command line over them."""
    from replayer.scenarios import find_scenario, given_on_command_line, load_scenario, scenario_defaults

    parser = args.run_parser
    argv = args.argv[args.argv.index("run") + 1:]
    scenario = load_scenario(find_scenario(args.scenario))
    given = given_on_command_line(parser, argv)
    defaults = {dest: value for dest, value in scenario_defaults(scenario, parser).items() if dest not in given}
    if not args.quiet:
        Console(stderr=True).print(f"scenario {scenario.name}: {scenario.description}")
    return parser.parse_args(argv, namespace=argparse.Namespace(**defaults, argv=args.argv))


def _cmd_run(args: argparse.Namespace) -> int:
    from replayer.runner import RunConfig, execute

    if args.scenario:
        args = _with_scenario(args)
    shaping = Shaping(start_s=args.start, duration_s=args.duration, from_time=args.from_time,
                      until_time=args.until_time, busiest_s=args.busiest, models=tuple(args.trace_model),
                      log_types=tuple(args.log_type), input_range=args.input_tokens, output_range=args.output_tokens,
                      include_failed=args.include_failed, max_input_tokens=args.max_input_tokens,
                      over_limit=args.over_limit, sample_fraction=args.sample, sample_seed=args.seed or 0,
                      max_requests=args.max_requests, speedup=args.speedup, rate=args.rate)
    if args.synthetic and args.trace:
        raise ConfigError("--trace and --synthetic exclude each other; use --fit TRACE to model a synthetic "
                          "workload on a trace")
    if args.fit and not args.synthetic:
        raise ConfigError("--fit needs --synthetic SPEC (to replay the trace itself, use --trace)")
    config = RunConfig(
        trace=args.trace, synthetic=args.synthetic, fit=args.fit, format=args.format, columns=args.columns, time_unit=args.time_unit, shaping=shaping, base_url=args.base_url, api=args.api,
        model=args.model, api_key=_api_key(args), stream=args.stream,
        headers=tuple(parse_header(text) for text in args.header), verify_tls=not args.insecure,
        timeouts=Timeouts(connect_s=args.connect_timeout, first_token_s=args.first_token_timeout,
                          between_tokens_s=args.token_timeout, total_s=args.request_timeout),
        retry_429=args.retry_429, shard=args.shard, start_at_ns=args.start_at, ray=args.ray,
        ignore_eos=args.ignore_eos, backend=args.backend, prefix_cache=args.prefix_cache == "on",
        tokenizer=args.tokenizer, session_history=args.session_history, count_template=args.count_template,
        dry_run=args.dry_run, save_requests=args.save_requests,
        out_dir=args.out, overwrite=args.overwrite, seed=args.seed,
        drain_timeout_s=args.drain_timeout, quiet=args.quiet,
        lag_limit_ms=args.lag_limit, workers=args.workers, slos=tuple(args.slo), scrape_metrics=args.scrape_metrics,
        simulator=_simulator_config(args))
    if config.base_url is not None:
        ClientConfig(config.base_url, api=config.api)  # validates the URL before anything else happens
    if args.insecure:
        Console(stderr=True).print("[yellow]warning[/]: --insecure: the server's TLS certificate is not verified")
    result = execute(config)
    if result.summary is not None and not args.quiet:
        render_summary(result.summary, Console())
        if result.stop_reason:
            Console(stderr=True).print(f"[yellow]stopped early ({result.stop_reason})[/]: results cover what ran")
        Console(stderr=True).print(f"records: {result.out_dir / 'records.jsonl'}  summary: {result.out_dir / 'summary.json'}  "
                                   f"report: {result.out_dir / 'report.html'}")
    return result.exit_code


def _add_simulate(commands: argparse._SubParsersAction) -> None:
    simulate = commands.add_parser(
        "simulate", help="serve the built-in simulated OpenAI-compatible LLM server",
        description="An OpenAI-compatible server (/v1/models, /v1/completions, /v1/chat/completions, streaming "
                    "and not) whose latency follows a continuous-batching engine model: prefill time grows with "
                    "prompt tokens, decode steps slow down as the batch grows, and a KV-token budget queues new "
                    "requests when full. Runs until Ctrl-C.",
        epilog=SIMULATE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    simulate.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    simulate.add_argument("--port", type=int, default=8000, help="port to bind (default %(default)s)")
    _add_tokenizer_option(simulate)
    _add_simulator_options(simulate, "engine model and faults")
    simulate.set_defaults(handler=_cmd_simulate)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from replayer.simulator import serve

    config = _simulator_config(args)
    Console(stderr=True).print(f"replayer simulator serving {config.model} on http://{args.host}:{args.port}")
    serve(config, args.host, args.port)
    return 0


BENCH_EXAMPLES = """\
examples:
  replayer bench --quick                      # 128-token streams at 50..400 req/s, 6 s per step (~1 minute)
  replayer bench                              # the full ladder: 50..800 req/s of 128-token streams, 20 s per step
  replayer bench --tokens 512 --rates 25,50,100,200   # longer streams
  replayer bench --rates 100,200 --tokens 128 --duration 30 --out bench-runs
  replayer bench --rates 800,1200 --workers 4  # the client as 4 processes (needs 5+ cores to mean anything)
  replayer bench --hold 10000                 # can one process keep 10,000 streams open at once? (~40 s)
  replayer bench --soak 200000                # does memory stay flat over 200,000 requests? (~3.5 minutes)
"""


def _add_bench(commands: argparse._SubParsersAction) -> None:
    from replayer.bench import FULL

    bench = commands.add_parser(
        "bench", help="measure the client itself: timing inflation, schedule lag and CPU at a ladder of loads",
        description="Replays Poisson arrivals at a ladder of request rates and stream lengths against the built-in "
                    "simulator, run as its own process on another core. The simulator logs when it received each "
                    "request and wrote each chunk, so the client's TTFT and ITL are compared with the truth. Ends "
                    "with the load this machine can drive with < 1 ms inflation: is the client the bottleneck?",
        epilog=BENCH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_argument("--quick", action="store_true", help="a short ladder that finishes in about a minute")
    bench.add_argument("--rates", type=_number_list(_positive_float), metavar="R,R,...",
                       help=f"request rates per step (default {','.join(f'{r:g}' for r in FULL['rates'])})")
    bench.add_argument("--tokens", type=_number_list(_positive_int), metavar="N,N,...",
                       help=f"streamed output tokens per request (default {','.join(map(str, FULL['tokens']))})")
    bench.add_argument("--duration", type=_positive_float, metavar="S",
                       help=f"seconds of arrivals per step (default {FULL['duration_s']:g}; --quick 6)")
    bench.add_argument("--out", type=Path, metavar="DIR", help="keep every step's records and truth log here")
    bench.add_argument("--no-pin", action="store_true", help="do not pin the client and the simulator to cores")
    bench.add_argument("--workers", type=_positive_int, default=1, metavar="N",
                       help="run the client as N processes (run --workers), each pinned to its own core when "
                            "there are N+1 cores")
    bench.add_argument("--hold", type=_positive_int, metavar="N",
                       help="instead of the ladder: open N streams within 5 s, each lasting 30 s, and report "
                            "how many one client process held at once and whether all completed")
    bench.add_argument("--soak", type=_positive_int, metavar="N",
                       help="instead of the ladder: replay N short requests and print the client's resident memory "
                            "at 10 %% and 50 %% of them and at the end of the replay (flat means nothing grows per "
                            "request), then its peak with the final summary")
    bench.add_argument("--soak-rate", type=_positive_float, default=1000.0, metavar="R",
                       help="request rate of --soak (default %(default)s/s)")
    bench.set_defaults(handler=_cmd_bench)


def _cmd_bench(args: argparse.Namespace) -> int:
    from replayer.bench import FULL, QUICK, hold_streams, run_ladder, soak, split_cores, verdict, versus_raw
    from replayer.report import bench_table

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # logs and pipes: keep the table's rows whole
    pinned = not args.no_pin and split_cores(args.workers)[0] is not None
    pinning = "pinned to separate cores" if pinned else "not pinned (too few cores)" if not args.no_pin else "not pinned"
    if args.hold:
        console.print(f"bench --hold: {args.hold:,} streams opened within 5 s, 30 tokens each at 1 token/s; "
                      f"client and simulator {pinning}")
        with tempfile.TemporaryDirectory(prefix="replayer-hold-") as scratch:
            console.print(hold_streams(args.hold, args.out or Path(scratch), pin=not args.no_pin).line(), style="bold")
        return 0
    if args.soak:
        console.print(f"bench --soak: {args.soak:,} requests of 32 tokens in, 4 out at {args.soak_rate:g} req/s; "
                      f"client (its own process) and simulator {pinning}")
        with tempfile.TemporaryDirectory(prefix="replayer-soak-") as scratch:
            console.print(soak(args.soak, args.soak_rate, args.out or Path(scratch), pin=not args.no_pin).line(),
                          style="bold")
        return 0
    preset = QUICK if args.quick else FULL
    rates, tokens = args.rates or preset["rates"], args.tokens or preset["tokens"]
    duration_s = args.duration or preset["duration_s"]
    workers = f"{args.workers} client workers" if args.workers > 1 else "client"
    console.print(f"bench: {len(rates) * len(tokens)} steps of {duration_s:g} s (Poisson arrivals, "
                  f"{'/'.join(map(str, tokens))} tokens per stream); {workers} and simulator {pinning}")

    def show(result) -> None:
        console.print(f"  {result.rate:g} req/s x {result.tokens} tokens: done (replayer, then the raw client)")

    results = run_ladder(rates, tokens, duration_s, args.out, pin=not args.no_pin, on_step=show, workers=args.workers)
    console.print(bench_table(results))
    console.print(versus_raw(results))
    console.print(verdict(results), style="bold")
    return 0


def _add_report(commands: argparse._SubParsersAction) -> None:
    report = commands.add_parser(
        "report", help="summarize a finished run again from its records (no load is sent)",
        description="Read RUN (a run directory or its records.jsonl) and print its summary.",
        epilog=REPORT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    report.add_argument("run", type=Path, nargs="+",
                        help="run directory or records.jsonl; several are the shards of one run (--shard K/N), "
                             "merged on their shared start instant")
    report.add_argument("--merge-to", type=Path, metavar="DIR",
                        help="with several runs: also write the merged records.jsonl and summary.json into DIR")
    report.add_argument("--format", choices=["text", "json", "markdown", "html"], default="text",
                        help="text (the terminal table), json (summary.json's content, with vLLM bench serve's key "
                             "names too), markdown (for CI comments) or html (one self-contained file with the "
                             "plots, as run writes to report.html); default text")
    report.add_argument("-o", "--output", type=Path, metavar="FILE", help="write the report to FILE instead of stdout")
    report.add_argument("--timeseries", type=Path, metavar="FILE.csv",
                        help="also write per-interval series (sent, completed, in flight, tokens/s, latency, lag)")
    report.add_argument("--bin", type=_positive_float, default=1.0, metavar="S",
                        help="the series' interval in seconds (default %(default)s)")
    report.set_defaults(handler=_cmd_report)


def _cmd_report(args: argparse.Namespace) -> int:
    from replayer.runner import resummarize
    from replayer.shards import merge_record_files
    from replayer.timeseries import time_series, write_csv

    runs = [_read_run(run) for run in args.run]
    if len(runs) > 1:
        record_file = merge_record_files(runs)
        path = args.merge_to / "records.jsonl" if args.merge_to else runs[0][0]
        summary = resummarize(record_file)
        if args.merge_to:
            _write_merged(args.merge_to, record_file, summary)
    else:
        [(path, record_file)] = runs
        summary = resummarize(record_file, saved=path.parent / "summary.json")
    if args.format == "text" and args.output is None:
        render_summary(summary, Console(), title=f"replayer summary of {path}")
    else:
        title = f"replayer summary of {path}"
        text = (json.dumps(with_vllm_keys(summary), indent=2) + "\n" if args.format == "json" else
                markdown_report(summary, title) if args.format == "markdown" else
                _html_report(summary, record_file, path, title) if args.format == "html" else
                _rendered_text(summary, title))
        _write_or_print(text, args.output)
    if args.timeseries:
        streamed = record_file.header.get("target", {}).get("stream", True)
        try:
            write_csv(time_series(record_file.records, args.bin, streamed), args.timeseries)
        except OSError as exc:
            raise ConfigError(f"--timeseries {args.timeseries}: {exc.strerror}") from None
    if record_file.torn_last_line:
        Console(stderr=True).print("[yellow]note:[/] the last line of the records file was incomplete and was skipped")
    return 0


def _write_merged(folder: Path, record_file, summary: dict) -> None:
    """The merged run's records.jsonl and summary.json, as a single run would have left them."""
    from replayer.shards import write_record_file

    try:
        folder.mkdir(parents=True, exist_ok=True)
        write_record_file(folder / "records.jsonl", record_file)
        (folder / "summary.json").write_text(json.dumps(with_vllm_keys(summary), indent=2) + "\n")
    except OSError as exc:
        raise ConfigError(f"--merge-to {folder}: {exc.strerror}") from None
    Console(stderr=True).print(f"merged {len(record_file.header['merged_from'])} runs into {folder}")


def _html_report(summary: dict, record_file, path: Path, title: str) -> str:
    from replayer.htmlreport import render_html
    from replayer.scrape import read_csv
    from replayer.timeseries import time_series

    streamed = record_file.header.get("target", {}).get("stream", True)
    return render_html(summary, record_file.records, time_series(record_file.records, streamed=streamed), title,
                       read_csv(path.parent / "server_metrics.csv"), streamed)


def _rendered_text(summary: dict, title: str) -> str:
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
        raise ConfigError(f"-o {output}: {exc.strerror}") from None


def _read_run(run: Path):
    """(records path, its RecordFile) for a run directory or a records file."""
    path = run / "records.jsonl" if run.is_dir() else run
    return path, read_records(path)


COMPARE_EXAMPLES = """\
examples:
  replayer compare runs/release-1.4 runs/release-1.5          # default limits: latencies and throughputs 10%
  replayer compare base new --max-regression ttft_p99=5% --max-regression error_rate=0.5%
"""


def _add_compare(commands: argparse._SubParsersAction) -> None:
    compare = commands.add_parser(
        "compare", help="compare two finished runs side by side; exit 1 when NEW regressed beyond the limits",
        description="Recompute both runs' summaries from their records and show each metric's change. Latencies "
                    "and the error rate regress when they rise, throughputs, goodput and attainment when they fall. "
                    f"Without --max-regression the limits are {', '.join(f'{k}={v:.0%}' for k, v in DEFAULT_LIMITS.items())} "
                    "(error_rate in percentage points).",
        epilog=COMPARE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    compare.add_argument("base", type=Path, help="the reference run (directory or records.jsonl)")
    compare.add_argument("new", type=Path, help="the run to judge")
    compare.add_argument("--max-regression", action="append", default=[], metavar="METRIC=PCT",
                         help="largest tolerated worsening of a metric, repeatable (e.g. ttft_p99=10%%)")
    compare.add_argument("--format", choices=["text", "json"], default="text", help="output format (default text)")
    compare.set_defaults(handler=_cmd_compare)


def _cmd_compare(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from replayer.compare import compare_summaries, parse_limit
    from replayer.runner import resummarize

    limits = dict(parse_limit(text) for text in args.max_regression)
    (base_path, base), (new_path, new) = _read_run(args.base), _read_run(args.new)
    deltas = compare_summaries(resummarize(base, saved=base_path.parent / "summary.json"),
                               resummarize(new, saved=new_path.parent / "summary.json"), limits)
    regressed = [d.metric for d in deltas if d.regressed]
    if base.header.get("workload") != new.header.get("workload"):
        Console(stderr=True).print("[yellow]note:[/] the two runs replayed different workloads (trace, shaping or "
                                   "speedup), so throughputs are not comparable")
    if args.format == "json":
        print(json.dumps({"base": str(base_path), "new": str(new_path), "regressed": regressed,
                          "metrics": [asdict(d) for d in deltas]}, indent=2))
    else:
        console = Console()
        console.print(compare_table(deltas, str(args.base), str(args.new)))
        console.print(f"regressions: {', '.join(regressed)}" if regressed else "no regression beyond the limits",
                      style="bold red" if regressed else "bold green")
    return 1 if regressed else 0


CHECK_EXAMPLES = """\
examples:
  replayer check runs/nightly --slo ttft_p99<=500ms --slo error_rate<=1%
  replayer check runs/nightly --slo ttft<=500ms --slo tpot<=50ms --slo attainment>=90% --junit slo.xml
  replayer check runs/nightly                  # the SLOs the run was given with run --slo
"""


def _add_check(commands: argparse._SubParsersAction) -> None:
    check = commands.add_parser(
        "check", help="judge a finished run against SLOs (no load is sent); exit 1 on a violation",
        description="Evaluate service-level objectives on RUN's records, as run --slo does at the end of a run: "
                    "the same verdict from the same files, for CI gates.",
        epilog=CHECK_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    check.add_argument("run", type=Path, help="run directory or records.jsonl")
    check.add_argument("--slo", action="append", default=[], metavar="METRIC<=VALUE",
                       help="an objective, repeatable (see run --help); default: those the run was given")
    check.add_argument("--junit", type=Path, metavar="FILE.xml", help="also write the verdict as JUnit XML")
    check.set_defaults(handler=_cmd_check)


def _cmd_check(args: argparse.Namespace) -> int:
    from replayer.runner import EXIT_SLO_VIOLATED, resummarize

    path, record_file = _read_run(args.run)
    summary = resummarize(record_file, args.slo)
    if "slo" not in summary:
        raise ConfigError(f"{path}: the run was given no SLO; pass --slo METRIC<=VALUE")
    console = Console()
    console.print(slo_table(summary["slo"]))
    console.print(slo_verdict(summary["slo"]), style="bold green" if summary["slo"]["passed"] else "bold red")
    if args.junit:
        try:
            args.junit.write_text(junit_xml(summary["slo"], str(path)), encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"--junit {args.junit}: {exc.strerror}") from None
    return 0 if summary["slo"]["passed"] else EXIT_SLO_VIOLATED


INSPECT_EXAMPLES = """\
examples:
  replayer inspect sample:azure-2023-conv
  replayer inspect BurstGPT_1.csv --json > stats.json
  replayer inspect burstgpt:1 --plot burstgpt1.png
  replayer inspect my.jsonl --format jsonl --columns time=t,input=in,output=out --time-unit ms
"""


def _add_inspect(commands: argparse._SubParsersAction) -> None:
    inspect = commands.add_parser(
        "inspect", help="statistics of a trace: rates, burstiness, lengths, failures, sessions",
        description="Read TRACE and report its rows, span, mean and peak rates, inter-arrival CV with a "
                    "maximum-likelihood Gamma fit (the BurstGPT burstiness model), token-length percentiles "
                    "(nearest rank) and their correlation, failure rows, per-model and per-log-type groups, "
                    "sessions and prefix-block reuse, and an arrival-rate sparkline. No load is sent.",
        epilog=INSPECT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    inspect.add_argument("trace", help="trace file, sample:NAME (bundled) or a public dataset such as azure-2023:code")
    _add_format_options(inspect)
    inspect.add_argument("--json", action="store_true", help="print the statistics as JSON")
    inspect.add_argument("--plot", type=_plot_path, metavar="FILE",
                         help="also draw arrival rate, inter-arrival fits and token lengths to FILE.png or "
                              "FILE.svg (needs: pip install 'replayer[plot]')")
    inspect.set_defaults(handler=_cmd_inspect)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from replayer.stats import trace_stats
    from replayer.trace import ColumnMap, read_trace

    columns = ColumnMap.parse(args.columns, args.time_unit) if args.columns else None
    trace = read_trace(args.trace, args.format, columns)
    stats = trace_stats(trace)
    if args.json:
        print(json.dumps(stats, indent=2))
    else:
        render_trace_stats(stats, Console())
    for warning in trace.warnings:
        Console(stderr=True).print(f"[yellow]warning:[/] {warning}")
    if args.plot:
        from replayer.plot import plot_trace

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


def _add_synth(commands: argparse._SubParsersAction) -> None:
    synth = commands.add_parser(
        "synth", help="generate a synthetic BurstGPT-style workload into a trace file",
        description="Generate arrivals and token lengths from the BurstGPT paper's workload models and "
                    "write them as a CSV trace (timestamp,input_tokens,output_tokens; .gz compresses) "
                    "that 'replayer run --trace' reads back. 'run --synthetic SPEC' does both in one step.",
        epilog=SYNTH_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    synth.add_argument("spec", metavar="SPEC", help="the workload, e.g. arrivals=gamma,cv=3,rate=5,duration=600")
    synth.add_argument("-o", "--output", type=Path, required=True, metavar="FILE", help="trace file to write")
    synth.add_argument("--fit", metavar="TRACE", help="fit the defaults to this trace (file or sample:NAME)")
    _add_format_options(synth)
    synth.set_defaults(handler=_cmd_synth)


def _cmd_synth(args: argparse.Namespace) -> int:
    from replayer.stats import arrival_fits
    from replayer.synthetic import parse_spec, synthesize, write_csv
    from replayer.trace import ColumnMap, read_trace

    console = Console(stderr=True)
    fit = None
    if args.fit:
        columns = ColumnMap.parse(args.columns, args.time_unit) if args.columns else None
        fit = read_trace(args.fit, args.format, columns)
        for name, result in arrival_fits(fit.arrival_s[1:] - fit.arrival_s[:-1]).items():
            if result:
                console.print(f"{fit.source}: {name.capitalize()} fit {describe_fit(result)}", soft_wrap=True)
    spec = parse_spec(args.spec, fit)
    trace = synthesize(spec, fit)
    write_csv(trace, args.output)
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


def _add_scenarios(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "scenarios", help="list the ready-made scenarios ('replayer run NAME' runs one)",
        description="Scenarios are TOML files of replayer run options with a description: named, commented "
                    "workloads. They are found in $REPLAYER_SCENARIOS, ./scenarios and the scenarios shipped "
                    "with replayer. 'replayer run NAME --base-url URL' runs one; options given there override "
                    "the scenario's.")
    parser.set_defaults(handler=_cmd_scenarios)


def _cmd_scenarios(args: argparse.Namespace) -> int:
    from rich.table import Table

    from replayer.scenarios import list_scenarios, scenario_dirs

    table = Table(title="Scenarios (replayer run NAME \\[options]; files under " +
                  ", ".join(str(folder) for folder in scenario_dirs() if folder.is_dir()) + ")",
                  title_justify="left", box=None)
    table.add_column("name", no_wrap=True)
    table.add_column("what")
    for scenario in list_scenarios():
        table.add_row(scenario.name, scenario.description)
    Console().print(table)
    return 0


def _add_datasets(commands: argparse._SubParsersAction) -> None:
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

    from replayer import datasets

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


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="replayer",
        description="Replay recorded LLM production traces against OpenAI-compatible servers and measure "
                    "TTFT, TPOT, ITL, end-to-end latency, throughput and failures.",
        epilog="Run 'replayer COMMAND --help' for a command's options and examples.")
    parser.add_argument("--version", action="version", version=f"replayer {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(commands)
    _add_simulate(commands)
    _add_report(commands)
    _add_check(commands)
    _add_compare(commands)
    _add_inspect(commands)
    _add_synth(commands)
    _add_scenarios(commands)
    _add_datasets(commands)
    _add_bench(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return args.handler(args)
    except ReplayerError as exc:
        print(f"replayer: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:
        return 130
