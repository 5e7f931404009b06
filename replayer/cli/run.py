"""`replayer run`: its options, and their translation into a `RunConfig` for the pipeline."""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from replayer.analysis.summary import CLIENT_LIMITED_LAG_MS, LAG_WINDOW_S
from replayer.analysis.text import render_summary, trials_table
from replayer.api import run as replayer_run
from replayer.cli.options import (
    EXIT_FAILED_VERDICT,
    EXIT_OUTPUT_FAILED,
    ArgumentGroup,
    add_format_options,
    add_shaping_options,
    add_simulator_options,
    add_tokenizer_option,
    argument_type,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    shaping_from_args,
    simulator_config,
)
from replayer.errors import ConfigError
from replayer.experiments.trials import run_trials
from replayer.prompts.backends import BACKENDS
from replayer.prompts.bodies import API_PATHS
from replayer.prompts.sessions import HISTORY_MODES
from replayer.run.config import OutputConfig, PromptConfig, RunConfig, ScaleConfig, TargetConfig, WorkloadSource
from replayer.run.pipeline import RunResult
from replayer.run.replay import OUTPUT_FAILED, WORKER_FAILED
from replayer.send.addressing import parse_header
from replayer.send.client import Timeouts
from replayer.traces.formats import DEFAULT_TRACE, SAMPLES
from replayer.workload.shards import parse_shard, parse_start_at

EXIT_WORKER_FAILED = 70
"""A `--workers` process or a Ray shard died (sysexits' EX_SOFTWARE): the other shards' records are kept."""
EXIT_SIGNALS = {"SIGINT": 130, "SIGTERM": 143}

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

  # Qwen-Bailian's to-C chat trace: follow-ups wait for their parent chat and carry its conversation
  replayer run --trace qwen-bailian:traceA --busiest 600 --base-url http://127.0.0.1:8000

  # BurstGPT v3 as its users behaved: each turn leaves its recorded think time after the previous
  # answer, half the sessions, night-time silences cut to a minute; E2E compared with production's
  replayer run --trace burstgpt:3 --session-timing think-time --sample-sessions 0.5 --max-idle-gap 60 \\
      --include-failed --base-url http://127.0.0.1:8000

  # a closed loop of 32 users sending the Azure trace's requests back to back (the peers' concurrency mode)
  replayer run --trace sample:azure-2023-conv --max-requests 2000 --concurrency 32 --base-url http://127.0.0.1:8000

  # the Azure trace with at most 64 requests in flight (due requests queue for a slot)
  replayer run --trace sample:azure-2023-conv --busiest 600 --max-concurrency 64 --base-url http://127.0.0.1:8000

  # a Mooncake trace (prefix blocks kept), or any CSV with a column mapping
  replayer run --trace sample:mooncake-synthetic --max-requests 200
  replayer run --trace my.csv --format csv --columns time=ts,input=prompt_len,output=gen_len --time-unit ms

  # your agent's log as a session graph: each call waits for the call that made it
  replayer run --trace agent.jsonl --format jsonl --columns time=t,input=in,output=out,id=call,parent=caller

  # BurstGPT-like bursty load (Gamma arrivals, CV 3) ramping from 2 to 20 requests/s over 10 minutes
  replayer run --synthetic "arrivals=gamma,cv=3,rate=2@0/20@600,duration=600,input=zipf:1.2:16:4096"

  # the Azure trace's own burstiness and lengths, modeled and scaled to 40 requests/s for 5 minutes
  replayer run --synthetic "rate=40,duration=300" --fit sample:azure-2023-conv

  # your own BurstGPT file, GPT-4 conversation rows only, rescaled to 5 requests/s
  replayer run --trace BurstGPT_1.csv --trace-model GPT-4 --log-type "Conversation log" --rate 5 \\
      --base-url http://10.0.0.5:8000/v1 --api completions --model meta-llama/Llama-3.1-8B-Instruct

bundled samples: """ + ", ".join(f"sample:{name}" for name in SAMPLES)



def add_run(commands: argparse._SubParsersAction) -> None:
    run = commands.add_parser(
        "run", help="replay a trace against a server (the built-in simulator by default)",
        description="Replay a recorded trace open-loop: each request leaves at its recorded instant "
                    "(scaled), with a prompt of exactly its recorded token count, and every outcome is "
                    "written to OUT/records.jsonl; OUT/summary.json and a terminal report follow.",
        epilog=RUN_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("scenario", nargs="?", metavar="SCENARIO",
                     help="a scenario file or name ('replayer scenarios' lists them): its options are the defaults, "
                          "and options given here override them")
    add_run_options(run, single_run=True)
    run.set_defaults(handler=_cmd_run, run_parser=run)


def add_run_options(parser: argparse.ArgumentParser, single_run: bool) -> None:
    """Every `run` option that chooses a workload, a target, prompts and output; experiments
    (`single_run=False`) set the pace and the scale themselves, and send no dry run."""
    source = parser.add_argument_group("trace")
    source.add_argument("--trace", help="trace file, sample:NAME (bundled) or a public dataset such as burstgpt:1, "
                                        f"fetched once ('replayer datasets'); default {DEFAULT_TRACE}")
    source.add_argument("--synthetic", metavar="SPEC",
                        help="replay a generated workload instead of a trace; see 'replayer synth --help'")
    source.add_argument("--fit", metavar="TRACE", help="with --synthetic: take its defaults from this trace")
    add_format_options(source)
    add_shaping_options(parser, single_run)
    target = parser.add_argument_group("target")
    target.add_argument("--base-url", help="OpenAI-compatible server, e.g. http://127.0.0.1:8000 "
                                           "(default: start the built-in simulator on a free loopback port)")
    target.add_argument("--api", choices=list(API_PATHS), default="chat",
                        help="/v1/chat/completions, /v1/completions, OpenAI's Responses API /v1/responses, "
                             "Anthropic's Messages API /v1/messages (vLLM serves both), or TGI's native "
                             "/generate_stream (/generate without --stream) with its token counts from details, "
                             "or /v1/embeddings (never streamed; latency and throughput only) "
                             "(default %(default)s)")
    target.add_argument("--embedding-batch", type=positive_int, default=1, metavar="N",
                        help="with --api embeddings: N inputs per request, each of the row's input length "
                             "(default %(default)s)")
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
    target.add_argument("--connect-timeout", type=positive_float, default=timeouts.connect_s, metavar="S",
                        help="a connection not open after S seconds fails as timeout_connect (default %(default)s)")
    target.add_argument("--first-token-timeout", type=positive_float, default=timeouts.first_token_s, metavar="S",
                        help="no first token S seconds after sending (without --stream: no answer): "
                             "timeout_first_token (default %(default)s)")
    target.add_argument("--token-timeout", type=positive_float, default=timeouts.between_tokens_s, metavar="S",
                        help="no token S seconds after the previous one: timeout_between_tokens (default %(default)s)")
    target.add_argument("--request-timeout", type=positive_float, default=timeouts.total_s, metavar="S",
                        help="a request not finished S seconds after sending: timeout_total (default %(default)s)")
    target.add_argument("--retry-429", type=non_negative_int, default=0, metavar="N",
                        help="re-send a request answered 429 up to N times, waiting as its Retry-After says; "
                             "retries are counted apart (default 0: a retry would hide a failure the trace "
                             "recorded as traffic)")
    target.add_argument("--max-concurrency", type=positive_int, metavar="N",
                        help="at most N requests in flight (as vllm bench serve's flag): a request due while N are "
                             "in flight waits for a slot, keeps its intended time, and reports the wait as cap wait "
                             "(in its lag and user-view latencies, not counted against the client)")
    if single_run:
        target.add_argument("--concurrency", type=positive_int, metavar="N",
                            help="closed loop, as the peers' concurrency benchmarks: N virtual users send the "
                                 "trace's requests in order, each as soon as its previous one has finished "
                                 "(the trace's timestamps are not used; a request's intended time is when its "
                                 "user took it)")
        _add_scale_options(target, parser.add_argument_group("scale-out over machines"))
    else:
        parser.set_defaults(speedup=None, rate=None, concurrency=None, workers=1, ray=None, shard=None,
                            start_at=None)
    prompts = parser.add_argument_group("prompts")
    add_tokenizer_option(prompts)
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
    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, metavar="DIR", help="run directory (default runs/<timestamp>)")
    output.add_argument("--overwrite", action="store_true", help="reuse a non-empty --out directory")
    output.add_argument("--drain-timeout", type=non_negative_float, default=30.0, metavar="S",
                        help="after Ctrl-C, wait S seconds for in-flight requests (default %(default)s)")
    output.add_argument(
        "--lag-limit",
        type=positive_float,
        default=CLIENT_LIMITED_LAG_MS,
        metavar="MS",
        help=f"schedule guard: if the client's send lag p99 over any {LAG_WINDOW_S:g} s window exceeds MS, the live "
        "display warns and summary.json says client_limited (default %(default)s)",
    )
    output.add_argument(
        "--scrape-metrics",
        default="auto",
        metavar="URL|auto|off",
        help="sample the server's Prometheus metrics (running/waiting requests, KV-cache use, "
        "preemptions; vLLM, SGLang and TGI names) every second into server_metrics.csv; auto: "
        "the target's /metrics if it answers (default %(default)s)",
    )
    output.add_argument(
        "--slo",
        action="append",
        default=[],
        metavar="METRIC<=VALUE",
        help="a service-level objective, repeatable: per request (ttft<=500ms, tpot<=50ms, e2e<=20s: "
        "goodput and attainment) or for the run (ttft_p99<=500ms, tpot_p90<=50ms, error_rate<=1%%, "
        "output_throughput>=2000, attainment>=90%%); the run exits 1 when one is violated. Quote it in a "
        "shell: --slo 'ttft_p99<=500ms' (unquoted, <= is a redirection)",
    )
    output.add_argument("--warmup", type=non_negative_float, default=0.0, metavar="S",
                        help="requests due in the first S seconds are sent and recorded (marked warmup) but kept out "
                             "of every statistic and SLO, so a cold cache does not decide a verdict (default 0)")
    output.add_argument("--trials", type=positive_int, default=1, metavar="N",
                        help="replay each point N times with fresh prompt seeds (--seed S: S, S+1, ...) and report "
                             "every metric's mean and 95%% interval across them (default 1)")
    output.add_argument("--quiet", action="store_true", help="no progress display or report; for scripts")
    if single_run:
        _add_single_run_outputs(output)
    else:
        parser.set_defaults(save_requests=None, dry_run=False, stop_early=False, max_time=None)
    add_simulator_options(parser, "built-in simulator (used when --base-url is not given)")


def _add_single_run_outputs(output: ArgumentGroup) -> None:
    """What only a single run offers: an early stop, a time limit, saved bodies and a dry run."""
    output.add_argument("--stop-early", action="store_true",
                        help="stop as soon as the aggregate SLOs can no longer all hold, whatever the rest of the "
                             "trace would do (in-flight requests are cancelled); the run then fails them")
    output.add_argument("--max-time", type=positive_float, metavar="S",
                        help="stop S seconds after the first send, keeping what finished")
    output.add_argument(
        "--save-requests",
        type=Path,
        metavar="FILE.jsonl",
        help="write every request body exactly as sent, with its planned send offset",
    )
    output.add_argument(
        "--dry-run", action="store_true", help="prepare every request (and --save-requests them) but send nothing"
    )


def _add_scale_options(target: ArgumentGroup, scale: ArgumentGroup) -> None:
    """--workers, --ray, --shard and --start-at: more senders than one process."""
    target.add_argument("--workers", type=positive_int, default=1, metavar="N",
                        help="replay with N processes (one per core) for loads one core cannot drive; sessions "
                             "stay whole, all start at one instant, records are merged (default 1)")
    scale.add_argument("--ray", nargs="?", const="auto", metavar="ADDRESS",
                       help="run the --workers shards as Ray actors on a cluster (ADDRESS, or $RAY_ADDRESS, or a "
                            "local one); all start at one instant, node clock offsets are measured and reported, "
                            "records are merged (pip install 'replayer[ray]')")
    scale.add_argument("--shard", type=argument_type(parse_shard, "--shard"), metavar="K/N",
                       help="replay only shard K of N (from 0; sessions stay whole): one of N machines or pods, "
                            "merged afterwards with 'replayer report RUN RUN ...'")
    scale.add_argument("--start-at", type=argument_type(parse_start_at, "--start-at"), metavar="EPOCH",
                       help="start at this wall-clock instant (seconds since the epoch, or a UTC date-time), the "
                            "same for every shard")


def _api_key(args: argparse.Namespace) -> str | None:
    """The Bearer token from --api-key, --api-key-file or $OPENAI_API_KEY, in that order."""
    if args.api_key_file is not None:
        try:
            key = args.api_key_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"--api-key-file {args.api_key_file}: cannot read it "
                f"({getattr(exc, 'strerror', None) or 'not UTF-8 text'})"
            ) from None
        if not key or "\n" in key:
            raise ConfigError(f"--api-key-file {args.api_key_file}: expected one line holding the key")
        return key
    return args.api_key or os.environ.get("OPENAI_API_KEY") or None


def with_scenario(args: argparse.Namespace) -> argparse.Namespace:
    """The run's options: the scenario's, then those given on the command line over them."""
    from replayer.run.scenarios import find_scenario, given_on_command_line, load_scenario, scenario_defaults

    parser = args.run_parser
    argv = args.argv[args.argv.index(args.command) + 1 :]
    scenario = load_scenario(find_scenario(args.scenario))
    given = given_on_command_line(parser, argv)
    defaults = {dest: value for dest, value in scenario_defaults(scenario, parser).items() if dest not in given}
    if not args.quiet:
        Console(stderr=True).print(f"scenario {scenario.name}: {scenario.description}")
    return parser.parse_args(argv, namespace=argparse.Namespace(**defaults, argv=args.argv))


def run_config(args: argparse.Namespace) -> RunConfig:
    """The `RunConfig` that `replayer run`'s options (after any scenario's) ask for."""
    return RunConfig(
        workload=WorkloadSource(
            trace=args.trace,
            synthetic=args.synthetic,
            fit=args.fit,
            format=args.format,
            columns=args.columns,
            time_unit=args.time_unit,
            block_tokens=args.block_tokens,
        ),
        shaping=shaping_from_args(args),
        target=TargetConfig(
            base_url=args.base_url,
            api=args.api,
            backend=args.backend,
            model=args.model,
            api_key=_api_key(args),
            stream=args.stream,
            ignore_eos=args.ignore_eos,
            retry_429=args.retry_429,
            verify_tls=not args.insecure,
            embedding_batch=args.embedding_batch,
            headers=tuple(parse_header(text) for text in args.header),
            timeouts=Timeouts(
                connect_s=args.connect_timeout,
                first_token_s=args.first_token_timeout,
                between_tokens_s=args.token_timeout,
                total_s=args.request_timeout,
            ),
        ),
        prompts=PromptConfig(
            tokenizer=args.tokenizer,
            seed=args.seed,
            prefix_cache=args.prefix_cache == "on",
            session_history=args.session_history,
            count_template=args.count_template,
        ),
        output=OutputConfig(
            out_dir=args.out,
            overwrite=args.overwrite,
            drain_timeout_s=args.drain_timeout,
            lag_limit_ms=args.lag_limit,
            scrape_metrics=args.scrape_metrics,
            slos=tuple(args.slo),
            warmup_s=args.warmup,
            stop_early=args.stop_early,
            time_limit_s=args.max_time,
            quiet=args.quiet,
            dry_run=args.dry_run,
            save_requests=args.save_requests,
        ),
        scale=ScaleConfig(workers=args.workers, ray=args.ray, shard=args.shard, start_at_ns=args.start_at,
                          max_concurrency=args.max_concurrency, concurrency=args.concurrency),
        simulator=simulator_config(args),
    )


def run_exit_code(result: RunResult) -> int:
    """130/143 for an interrupted run, 74 when its output failed, 70 when a worker died, 1 when an SLO
    was violated or no request succeeded, else 0."""
    reason = result.stop_reason or ""
    for prefix, code in (
        *EXIT_SIGNALS.items(),
        (OUTPUT_FAILED, EXIT_OUTPUT_FAILED),
        (WORKER_FAILED, EXIT_WORKER_FAILED),
    ):
        if reason.startswith(prefix):
            return code
    return 0 if result.slo_passed and not result.nothing_succeeded else EXIT_FAILED_VERDICT


def points_exit_code(results: Sequence[RunResult]) -> int:
    """The exit code of several runs (trials, probes, points): the first stop's (signal, output,
    worker), else 1 if any failed its SLOs, else 0."""
    codes = [run_exit_code(result) for result in results]
    return next((code for code in codes if code not in (0, EXIT_FAILED_VERDICT)), max(codes, default=0))


def _cmd_run(args: argparse.Namespace) -> int:
    if args.scenario:
        args = with_scenario(args)
    config = run_config(args)
    errors = Console(stderr=True)
    if args.insecure:
        errors.print("[yellow]warning[/]: --insecure: the server's TLS certificate is not verified")
    if args.trials > 1 and not args.dry_run:
        return _run_trials(config, args.trials, args.quiet)
    result = replayer_run(config)
    for failure in result.failures:
        errors.print(f"[red]error:[/] {failure} (the other records are kept)")
    if result.summary is not None and not args.quiet:
        render_summary(result.summary, Console())
        if result.stop_reason:
            errors.print(f"[yellow]stopped early ({result.stop_reason})[/]: results cover what ran")
        assert result.out_dir is not None
        errors.print(
            f"records: {result.out_dir / 'records.jsonl'}  summary: {result.out_dir / 'summary.json'}  "
            f"report: {result.out_dir / 'report.html'}"
        )
    if result.nothing_succeeded:
        assert result.summary is not None
        kinds = ", ".join(f"{kind} {count:,}" for kind, count in result.summary["failures"].items())
        errors.print(f"[red]error:[/] none of the {result.summary['requests_sent']:,} requests sent succeeded "
                     f"({kinds}): check --base-url, --model and --api (exit 1)")
    return run_exit_code(result)


def _run_trials(config: RunConfig, trials: int, quiet: bool) -> int:
    out_dir, point, result = run_trials(config, trials)
    if not quiet:
        Console().print(trials_table(result))
        Console(stderr=True).print(f"trials: {out_dir / 'trials.json'}  report: {out_dir / 'report.html'}")
    return points_exit_code(point.runs)
