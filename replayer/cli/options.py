"""Option types and option groups that several commands share: numbers, token ranges, the
tokenizer, trace formats, and the simulator's engine model and faults."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from replayer.errors import ConfigError
from replayer.prompts.synthesis import TemplateOverhead
from replayer.prompts.tokenizer import DEFAULT_TOKENIZER
from replayer.sim.engine import EngineModel
from replayer.sim.faults import FAULT_NAMES, Faults, rate_field
from replayer.sim.server import DEFAULT_MODEL, SimulatorConfig
from replayer.traces.formats import FORMATS
from replayer.workload.shaping import SESSION_TIMINGS, Shaping

N = TypeVar("N", int, float)
T = TypeVar("T")
ArgumentGroup = argparse._ArgumentGroup

EXIT_FAILED_VERDICT = 1
"""An SLO was violated (run, check) or a regression found (compare)."""
EXIT_INPUT = 2
"""Bad input or options: one line on stderr, no traceback, no load sent."""
EXIT_OUTPUT_FAILED = 74
"""The output could not be written (sysexits' EX_IOERR): a run stops at once, keeping what was written."""


class Parser(argparse.ArgumentParser):
    """argparse reporting a bad option in one line (exit code 2) instead of the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message} (see --help)\n")


def _number(kind: Callable[[str], N], minimum: float, *, strict: bool, infinite: bool = False) -> Callable[[str], N]:
    """An argparse type: a finite number of `kind` (or `inf`, where `infinite`), greater than (strict)
    or at least `minimum`."""

    def parse(text: str) -> N:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {'an integer' if kind is int else 'a number'}: {text!r}") from None
        if math.isnan(value) or (math.isinf(value) and not (infinite and value > 0)):
            raise argparse.ArgumentTypeError(f"must be a finite number{' or inf' if infinite else ''}, got {text}")
        if value < minimum or (strict and value == minimum):
            raise argparse.ArgumentTypeError(f"must be {'>' if strict else '>='} {minimum:g}, got {text}")
        return value

    return parse


positive_float = _number(float, 0, strict=True)
non_negative_float = _number(float, 0, strict=False)
seconds_or_forever = _number(float, 0, strict=False, infinite=True)
positive_int = _number(int, 0, strict=True)
non_negative_int = _number(int, 0, strict=False)


def number_list(parse_one: Callable[[str], Any], count: int | None = None) -> Callable[[str], tuple]:
    """An argparse type: comma-separated values, each checked by `parse_one` (exactly `count` if given)."""

    def parse(text: str) -> tuple:
        parts = text.split(",")
        if count is not None and len(parts) != count:
            raise argparse.ArgumentTypeError(f"expected {count} comma-separated numbers, got {text!r}")
        return tuple(parse_one(part) for part in parts)

    return parse


def fraction(text: str) -> float:
    value = positive_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must be a fraction in (0, 1], got {text}")
    return value


def token_range(text: str) -> tuple[int, int]:
    low, sep, high = text.partition(":")
    try:
        bounds = (int(low) if low else 0, int(high) if high else 2**62)
    except ValueError:
        bounds = None
    if not sep or bounds is None or not 0 <= bounds[0] <= bounds[1]:
        raise argparse.ArgumentTypeError(f"expected MIN:MAX token counts (either may be empty), got {text!r}")
    return bounds


def plot_path(text: str) -> Path:
    path = Path(text)
    if path.suffix.lower() not in (".png", ".svg"):
        raise argparse.ArgumentTypeError(f"the file name must end in .png or .svg, got {text!r}")
    return path


def add_tokenizer_option(group: ArgumentGroup) -> None:
    """--tokenizer: what prompt tokens are counted with (run and simulate)."""
    group.add_argument("--tokenizer", default=DEFAULT_TOKENIZER, metavar="NAME|PATH",
                       help="what prompt tokens are counted with: cl100k_base (default, offline) or the served "
                            "model's tokenizer.json, so lengths match the server's count (pip install 'replayer[hf]')")


def add_simulator_options(parser: argparse.ArgumentParser, title: str) -> None:
    engine, faults = EngineModel(), Faults()
    group = parser.add_argument_group(title)
    group.add_argument("--sim-model", default=DEFAULT_MODEL, help="model id the simulator serves (default %(default)s)")
    group.add_argument("--prefill-tokens-per-ms", type=positive_float, default=engine.prefill_tokens_per_ms,
                       help="prefill speed (default %(default)s tokens/ms)")
    group.add_argument("--decode-base-ms", type=positive_float, default=engine.decode_base_ms,
                       help="time of one decode step with an empty batch (default %(default)s ms)")
    group.add_argument("--decode-ms-per-seq", type=non_negative_float, default=engine.decode_ms_per_seq,
                       help="extra step time per running sequence (default %(default)s ms)")
    group.add_argument("--kv-tokens", type=positive_int, default=engine.kv_tokens,
                       help="KV-cache budget in tokens; new requests wait when it is full (default %(default)s)")
    group.add_argument("--max-running", type=positive_int, default=engine.max_running,
                       help="most sequences in one batch (default %(default)s)")
    group.add_argument("--max-prefill-tokens", type=positive_int, default=engine.max_prefill_tokens_per_step,
                       help="prompt tokens prefilled per step (chunked prefill, default %(default)s)")
    group.add_argument("--max-model-len", type=positive_int, default=engine.max_model_len,
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
    group.add_argument("--retry-after", type=non_negative_float, metavar="S",
                       help="send Retry-After: S with injected 429 and 503 answers")
    for fault in FAULT_NAMES:
        group.add_argument(f"--{fault}-rate", type=non_negative_float, default=getattr(faults, rate_field(fault)),
                           metavar="F", help=f"fraction of {_FAULT_HELP[fault]}")
    group.add_argument("--stall-s", type=seconds_or_forever, default=faults.stall_s, metavar="S",
                       help="length of an injected stall; inf stalls forever (default %(default)s)")
    group.add_argument("--drip-s", type=non_negative_float, default=faults.drip_s, metavar="S",
                       help="the gap before each token of a dripping stream (default %(default)s)")
    group.add_argument("--huge-bytes", type=positive_int, default=faults.huge_bytes, metavar="N",
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


def argument_type(parse: Callable[[str], T], flag: str) -> Callable[[str], T]:
    """An argparse type from a parser that raises ConfigError naming `flag` (argparse names it itself)."""
    def convert(text: str) -> T:
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


def simulator_config(args: argparse.Namespace) -> SimulatorConfig:
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
    return TemplateOverhead(*number_list(non_negative_int, count=2)(text))


def add_format_options(group: ArgumentGroup) -> None:
    """--format, --columns, --time-unit and --block-tokens: how to read a trace (shared by run and inspect)."""
    group.add_argument("--format", default="auto", choices=FORMATS,
                       help="trace format (default: sniffed from the header or first record): burstgpt, azure "
                            "(2023-2025, NumImages too), mooncake, qwen-bailian, copilot (Copilot coding-agent "
                            "sessions), or csv/jsonl with --columns")
    group.add_argument("--columns", metavar="MAP",
                       help="for --format csv/jsonl: time=COL,input=COL,output=COL, optionally session=COL (turns "
                            "of a conversation), turn=COL (their order), id=COL,parent=COL (a request follows up "
                            "the row whose id its parent names: agent and tool-call graphs), duration=COL (recorded "
                            "end-to-end time, in --time-unit) and model=COL")
    group.add_argument("--time-unit", default="s", choices=["s", "ms", "us", "ns", "datetime"],
                       help="unit of the mapped time column (default %(default)s; datetime = ISO wall clock)")
    group.add_argument("--block-tokens", type=positive_int, metavar="N",
                       help="tokens per prefix block of the trace's hash_ids (default: the format's own, 512 for "
                            "Mooncake, 16 for Qwen-Bailian and Copilot)")


def add_shaping_options(parser: argparse.ArgumentParser, single_run: bool) -> None:
    """Which rows of the trace to replay and when (see `replayer.workload.shaping`); experiments
    (`single_run=False`) set the pace themselves."""
    shaping = parser.add_argument_group("shaping (applied in this order)")
    shaping.add_argument("--start", type=non_negative_float, default=0.0, metavar="S",
                         help="skip the first S seconds of trace time")
    shaping.add_argument("--duration", type=positive_float, metavar="S", help="keep S seconds of trace time")
    shaping.add_argument("--from", dest="from_time", metavar="T",
                         help="start at this time of the trace's own clock (seconds, or a date-time for Azure)")
    shaping.add_argument("--until", dest="until_time", metavar="T", help="end before this trace time")
    shaping.add_argument("--busiest", type=positive_float, metavar="S",
                         help="replay the S-second window with the most requests")
    shaping.add_argument("--trace-model", action="append", default=[], metavar="NAME",
                         help="keep rows of this Model column value (BurstGPT: ChatGPT, GPT-4); repeatable")
    shaping.add_argument("--log-type", action="append", default=[], metavar="TYPE",
                         help="keep rows of this Log Type (BurstGPT: 'Conversation log', 'API log'); repeatable")
    shaping.add_argument("--input-tokens", type=token_range, metavar="MIN:MAX", help="keep rows in this input range")
    shaping.add_argument("--output-tokens", type=token_range, metavar="MIN:MAX", help="keep rows in this output range")
    shaping.add_argument("--include-failed", action="store_true",
                         help="replay rows with zero request or response tokens, BurstGPT's failed requests "
                              "(skipped and counted by default): each is sent with its recorded input asking for "
                              "one token, and they form the group 'recorded as failed', so the served failure "
                              "rate reads against the recorded one")
    shaping.add_argument("--max-input-tokens", type=positive_int, metavar="N",
                         help="rows with longer prompts are dropped (or clamped: --over-limit clamp)")
    shaping.add_argument("--over-limit", choices=["drop", "clamp"], default="drop",
                         help="what --max-input-tokens does to longer rows (default %(default)s)")
    shaping.add_argument("--sample", type=fraction, metavar="F",
                         help="keep a random fraction F of rows at their recorded times (seeded by --seed)")
    shaping.add_argument("--sample-sessions", type=fraction, metavar="F",
                         help="keep a random fraction F of whole sessions (rows outside sessions one by one; "
                              "seeded by --seed); --sample splits sessions")
    shaping.add_argument("--max-requests", type=positive_int, metavar="N", help="keep the first N requests")
    shaping.add_argument("--max-idle-gap", type=positive_float, metavar="S",
                         help="shorten every silence between arrivals longer than S trace seconds to S (and, with "
                              "--session-timing think-time, every think time), to replay a day's busy parts")
    shaping.add_argument("--session-timing", choices=SESSION_TIMINGS, default="recorded",
                         help="recorded: a session turn leaves at its timestamp, once the turn it follows has "
                              "finished; think-time: it leaves its recorded think time (the recorded gap less the "
                              "previous turn's recorded duration, e.g. BurstGPT v3 Elapsed time) after that turn "
                              "finished, so a faster server gets the next turn sooner (default %(default)s)")
    if single_run:
        pace = shaping.add_mutually_exclusive_group()
        pace.add_argument("--speedup", type=positive_float, metavar="X", help="compress trace time X-fold")
        pace.add_argument("--rate", type=positive_float, metavar="R",
                          help="rescale time so the mean rate is R requests/s (burst shape kept)")


def shaping_from_args(args: argparse.Namespace) -> Shaping:
    """The `Shaping` the shaping options ask for."""
    return Shaping(
        start_s=args.start,
        duration_s=args.duration,
        from_time=args.from_time,
        until_time=args.until_time,
        busiest_s=args.busiest,
        models=tuple(args.trace_model),
        log_types=tuple(args.log_type),
        input_range=args.input_tokens,
        output_range=args.output_tokens,
        include_failed=args.include_failed,
        max_input_tokens=args.max_input_tokens,
        over_limit=args.over_limit,
        sample_fraction=args.sample,
        sample_sessions=args.sample_sessions,
        sample_seed=args.seed or 0,
        max_requests=args.max_requests,
        max_idle_gap_s=args.max_idle_gap,
        session_timing=args.session_timing,
        speedup=args.speedup,
        rate=args.rate,
    )
