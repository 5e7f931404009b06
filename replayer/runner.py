"""`replayer run`: the pipeline from trace file to records, summary and report.

Order matters for fidelity: everything slow (reading, shaping, opening the output, and the first
10,000 request bodies) happens before t0; during the run the dispatcher, the client and the record
writer work, and further bodies are built only in the slack before the next send.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import secrets
import shutil
import signal
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from rich.console import Console

from replayer import __version__
from replayer.backends import BACKENDS, backend_from_models
from replayer.bodies import RequestOptions, RequestPlan, save_requests
from replayer.client import (Client, ClientConfig, Timeouts, list_models, measure_template, probe_backend, redact_headers,
                             redact_url, root_url)
from replayer.dispatcher import Lookahead, Progress, StopControl, dispatch
from replayer.errors import ConfigError, OutputError
from replayer.eventloop import raise_fd_limit, reserve_fd_table, run as run_loop, settle_heap
from replayer.htmlreport import render_html
from replayer.live import LiveDisplay
from replayer.metrics import CLIENT_LIMITED_LAG_MS, summarize
from replayer.prompts import PromptSynthesizer, TemplateOverhead
from replayer.records import RecordFile, RecordWriter, read_records
from replayer.report import with_vllm_keys
from replayer.scrape import ServerMetrics, prepare as prepare_scraping, scrape
from replayer.shards import monotonic_t0, shard_positions
from replayer.simulator import SimulatorConfig, SimulatorThread
from replayer.slo import evaluate, parse_slos
from replayer.tokenizer import DEFAULT_TOKENIZER, load_tokenizer
from replayer.synthetic import parse_spec, synthesize
from replayer.timeseries import time_series, write_csv
from replayer.trace import DEFAULT_TRACE, ColumnMap, read_trace
from replayer.workload import NOMINAL_MS_PER_TOKEN, Shaping, Workload, peak_concurrency, shape

START_LEAD_S = 0.05
"""t0 is set this far after the last preparation step, so the first send is on time too."""

EXIT_SIGNALS = {"SIGINT": 130, "SIGTERM": 143}
EXIT_SLO_VIOLATED = 1
EXIT_OUTPUT_FAILED = 74
"""The run's output could not be written (sysexits' EX_IOERR): it stopped at once, keeping what was written."""
OUTPUT_FAILED = "output failed"
"""The start of the stop reason of a run whose records could not be written (a full disk)."""
EXIT_WORKER_FAILED = 70
"""A `--workers` process died (sysexits' EX_SOFTWARE): its shard is incomplete, the others' records are kept."""
WORKER_FAILED = "worker failed"
RECORD_BYTES = 400
"""Bytes a request's record takes, roughly, besides 8 per output token (its ITL list): for the free-space check."""


@dataclass(frozen=True)
class RunConfig:
    """Everything `replayer run` was asked to do; `api_key` is never written anywhere, credential-like
    `headers` only redacted."""

    trace: str | None = None
    synthetic: str | None = None
    fit: str | None = None
    format: str = "auto"
    columns: str | None = None
    time_unit: str = "s"
    shaping: Shaping = field(default_factory=Shaping)
    base_url: str | None = None
    api: str = "chat"
    backend: str = "auto"
    model: str | None = None
    api_key: str | None = field(default=None, repr=False)
    stream: bool = True
    ignore_eos: bool | None = None
    out_dir: Path | None = None
    overwrite: bool = False
    seed: int | None = None
    tokenizer: str = DEFAULT_TOKENIZER
    prefix_cache: bool = True
    session_history: str = "actual"
    count_template: bool = False
    timeouts: Timeouts = field(default_factory=Timeouts)
    retry_429: int = 0
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    """`-H` headers; written into outputs only through `redact_headers`."""
    verify_tls: bool = True
    drain_timeout_s: float = 30.0
    lag_limit_ms: float = CLIENT_LIMITED_LAG_MS
    workers: int = 1
    scrape_metrics: str = "auto"
    """Server metrics to sample during the run: "auto" (the target's /metrics if it answers), a URL, or "off"."""
    slos: tuple[str, ...] = ()
    """`--slo` texts (parsed and checked by `replayer.slo`); the run exits 1 when one is violated."""
    shard: tuple[int, int] | None = None
    """(K, N): replay only shard K of N of the workload (`--shard K/N`)."""
    start_at_ns: int | None = None
    """The wall-clock instant (epoch ns) of t0 (`--start-at`), shared by shards on several machines."""
    ray: str | None = None
    """Run the `workers` shards as Ray actors: "auto" (a local or RAY_ADDRESS cluster) or an address."""
    quiet: bool = False
    dry_run: bool = False
    save_requests: Path | None = None
    simulator: SimulatorConfig = field(default_factory=SimulatorConfig)

    def public(self) -> dict:
        """The config as written into the run's metadata: no credentials."""
        data = asdict(self)
        data.pop("api_key")
        data["headers"] = redact_headers(self.headers)
        data["base_url"] = redact_url(self.base_url) if self.base_url else None
        data["out_dir"] = str(self.out_dir) if self.out_dir else None
        data["save_requests"] = str(self.save_requests) if self.save_requests else None
        if self.base_url is not None:
            data.pop("simulator")
        return data


@dataclass
class RunResult:
    """What a run left behind; a dry run has neither a directory nor a summary."""

    out_dir: Path | None
    summary: dict | None
    exit_code: int
    stop_reason: str | None


def default_out_dir() -> Path:
    return Path("runs") / dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def prepare_out_dir(path: Path, overwrite: bool) -> None:
    """Create the output directory before any load is sent; refuse to clobber an earlier run."""
    if path.exists() and any(path.iterdir()) and not overwrite:
        raise ConfigError(f"{path}: output directory exists and is not empty (pass --overwrite or another --out)")
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the run's output ({exc.strerror})") from None


def check_disk_space(out_dir: Path, workload: Workload) -> None:
    """Refuse a run whose records would not fit on the output's disk, before any load is sent."""
    needed = len(workload) * RECORD_BYTES * 2 + int(workload.trace.output_tokens.sum()) * 8  # records, then the report
    free = shutil.disk_usage(out_dir).free
    if free < needed:
        raise ConfigError(f"{out_dir}: {free / 1e6:,.1f} MB free on its disk, but the run's output needs about "
                          f"{needed / 1e6:,.1f} MB")


async def _target(config: RunConfig, base_url: str) -> tuple[str, str, str]:
    """The model to ask for, the backend serving it, and how that backend was known (`/v1/models`
    and the engines' own endpoints are asked only when needed)."""
    backend = None if config.backend == "auto" else config.backend
    if config.model and backend:
        return config.model, backend, "--backend"
    client = client_config(config, base_url)
    try:
        models = await list_models(client)
    except ConfigError:
        if not config.model and config.api != "tgi-generate":  # (TGI's native API names no model)
            raise
        models = []
    if not models and not config.model and config.api != "tgi-generate":
        raise ConfigError(f"{redact_url(base_url)}: /v1/models lists no model; pass --model")
    model = config.model or (str(models[0].get("id")) if models else "tgi")
    if backend:
        return model, backend, "--backend"
    named = backend_from_models(models)
    if named:
        return model, named, f"/v1/models owned_by {models[0].get('owned_by')!r}"
    probed = await probe_backend(client)
    return (model, *probed) if probed else (model, "openai", "not recognised, so plain OpenAI fields")


def dry_run_target(config: RunConfig) -> tuple[str, str]:
    """Model and backend for a dry run, which contacts no server."""
    if config.base_url is None:
        return config.model or config.simulator.model, "replayer" if config.backend == "auto" else config.backend
    return config.model or "default", "openai" if config.backend == "auto" else config.backend


def request_options(config: RunConfig, model: str, backend: str) -> RequestOptions:
    """Request fields in the backend's dialect (see `replayer.backends`)."""
    dialect = BACKENDS[backend]
    ignore_eos = config.ignore_eos if config.ignore_eos is not None else dialect.forces_length
    return RequestOptions(api=config.api, model=model, stream=config.stream, ignore_eos=ignore_eos,
                          force_with=dialect.force_with or "ignore_eos", stream_usage=dialect.stream_usage,
                          length_field=dialect.chat_length_field if config.api == "chat" else "max_tokens")


def run_header(config: RunConfig, workload: Workload, target: Target, plan: RequestPlan, t0_ns: int,
               t0_wall_ns: int, workers: int = 1) -> dict:
    """The first line of `records.jsonl`: what was replayed, against what, from which instant."""
    options = plan.options
    return {
        "tool": "replayer",
        "version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "t0_wall_ns": t0_wall_ns,
        "t0_monotonic_ns": t0_ns,
        "workers": workers,
        "shard": list(config.shard) if config.shard else None,
        "config": config.public(),
        "workload": workload.describe(),
        "target": {"base_url": redact_url(target.base_url), "builtin_simulator": config.base_url is None, "api": options.api,
                   "model": target.model, "backend": target.backend, "backend_source": target.backend_source,
                   "stream": options.stream,
                   "ignore_eos": options.ignore_eos},
        "seed": plan.synthesizer.seed,
        "tokenizer": config.tokenizer,
        "template_overhead": asdict(plan.template),
        "sessions": plan.history if plan.has_sessions else None,
    }


def make_synthesizer(config: RunConfig, seed: int | None = None) -> PromptSynthesizer:
    """The prompt synthesizer for the run's tokenizer and `seed` (else --seed, else a random one)."""
    if seed is None:
        seed = config.seed if config.seed is not None else secrets.randbits(32)
    return PromptSynthesizer(load_tokenizer(config.tokenizer), seed=seed)


def plan_requests(config: RunConfig, workload: Workload, synthesizer: PromptSynthesizer, options: RequestOptions,
                  template: TemplateOverhead = TemplateOverhead()) -> RequestPlan:
    """The plan of every request body (built lazily, in send order)."""
    return RequestPlan(workload, synthesizer, options, prefix_cache=config.prefix_cache,
                       history=config.session_history, template=template)


def save_plan(plan: RequestPlan, path: Path, console: Console) -> None:
    """Write every body to `path` ahead of the run (see `RequestPlan.built_ahead` for session turns)."""
    ahead = plan.built_ahead()
    if ahead is not plan:
        console.print(f"note: in {path}, later session turns carry synthetic replies where the run sends the "
                      "server's actual ones")
    save_requests(ahead, plan.options, path)


@dataclass(frozen=True)
class Target:
    """What every request goes to and how it is built, settled once before any load is sent (and
    shared by all `--workers`, so their bodies are exactly those of a single process)."""

    base_url: str
    model: str
    backend: str
    options: RequestOptions
    template: TemplateOverhead
    seed: int
    backend_source: str = "--backend"
    """How the backend was known: the flag, `/v1/models`, or an engine endpoint that answered."""

    def client_config(self, config: RunConfig) -> ClientConfig:
        return client_config(config, self.base_url)


def client_config(config: RunConfig, base_url: str) -> ClientConfig:
    """How the run's requests reach `base_url`."""
    return ClientConfig(base_url, api=config.api, stream=config.stream, api_key=config.api_key,
                        timeouts=config.timeouts, retry_429=config.retry_429, extra_headers=config.headers,
                        verify_tls=config.verify_tls)


async def resolve_target(config: RunConfig, base_url: str) -> Target:
    """Ask the server what it serves (and, with --count-template, how its template counts)."""
    model, backend, source = await _target(config, base_url)
    options = request_options(config, model, backend)
    seed = config.seed if config.seed is not None else secrets.randbits(32)
    target = Target(base_url, model, backend, options, TemplateOverhead(), seed, source)
    if config.count_template:
        template = await measure_template(target.client_config(config), model, make_synthesizer(config, seed))
        target = replace(target, template=template)
    return target


def plan_for(config: RunConfig, workload: Workload, target: Target) -> RequestPlan:
    """The run's request plan for `workload` (a whole workload, or one worker's shard of it)."""
    return plan_requests(config, workload, make_synthesizer(config, target.seed), target.options, target.template)


def prepare_shard(config: RunConfig, target: Target, workload: Workload) -> tuple[RequestPlan, Lookahead]:
    """In a process that replays one shard (a worker, a Ray actor): room for its sockets, its plan, and
    the first bodies built ahead."""
    raise_fd_limit()
    reserve_fd_table(max(files_needed(workload), MIN_FD_TABLE))
    plan = plan_for(config, workload, target)
    buffer = Lookahead(plan)
    buffer.fill()
    return plan, buffer


async def _replay(config: RunConfig, workload: Workload, base_url: str, out_dir: Path,
                  console: Console, server: ServerMetrics | None = None) -> tuple[str | None, float]:
    """Prepare bodies, then dispatch at the recorded instants; returns the stop reason (if any) and the
    CPU seconds the client process spent from t0 to the last response."""
    target = await resolve_target(config, base_url)
    plan = plan_for(config, workload, target)
    if config.save_requests is not None:
        save_plan(plan, config.save_requests, console)
    buffer = Lookahead(plan)
    buffer.fill()
    if not config.quiet:
        describe_plan(console, plan, target)
        console.print(f"{len(buffer):,} of {len(plan):,} requests prepared; replaying "
                      f"{workload.describe()['span_s']:,.1f} s at speedup {workload.speedup:g}")
    settle_heap()
    t0_ns, t0_wall_ns = start_instant(config)
    writer = RecordWriter(out_dir / "records.jsonl", run_header(config, workload, target, plan, t0_ns, t0_wall_ns))
    progress = Progress()
    live = None if config.quiet else LiveDisplay(console, progress, t0_ns, workload.describe()["span_s"],
                                                 workload.speedup, config.lag_limit_ms)
    async with sampling(server, t0_ns):
        return await send_plan(config, target, plan, buffer, t0_ns, writer, progress, live)


def start_instant(config: RunConfig, lead_s: float = START_LEAD_S) -> tuple[int, int]:
    """The run's t0 on this machine's monotonic clock and on the wall clock: `--start-at` if given
    (shards on other machines start then too), else `lead_s` from now."""
    if config.start_at_ns is not None:
        return monotonic_t0(config.start_at_ns), config.start_at_ns
    return time.perf_counter_ns() + int(lead_s * 1e9), time.time_ns() + int(lead_s * 1e9)


@contextlib.asynccontextmanager
async def sampling(server: ServerMetrics | None, t0_ns: int):
    """Sample the server's metrics (if any) while the block runs."""
    task = asyncio.get_running_loop().create_task(scrape(server, t0_ns)) if server else None
    try:
        yield
    finally:
        if task:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def send_plan(config: RunConfig, target: Target, plan: RequestPlan, buffer: Lookahead, t0_ns: int,
                    writer: RecordWriter, progress: Progress, live: LiveDisplay | None,
                    stop: StopControl | None = None) -> tuple[str | None, float]:
    """Dispatch a prepared plan from `t0_ns` on, writing each record as it finishes; Ctrl-C/SIGTERM
    stop it in two stages. Returns the stop reason (if any) and the CPU seconds spent from t0 on.
    A caller that passes its own `stop` (off the main thread, where signals cannot be caught) stops it."""
    own_signals = stop is None
    stop = stop or StopControl()
    loop = asyncio.get_running_loop()
    for name in EXIT_SIGNALS if own_signals else ():
        loop.add_signal_handler(getattr(signal, name), stop.request_stop, name)
    live_task = loop.create_task(live.run()) if live else None

    writing = True

    def on_record(record) -> None:
        nonlocal writing
        if writing:
            try:
                writer.write(record)
            except OSError as exc:  # a full disk: no more lines are attempted
                writing = False
                stop.abort(f"{OUTPUT_FAILED}: {writer.path}: {exc.strerror or exc}")
        if live:
            live.observe(record)

    cpu_at_t0 = time.process_time()
    try:
        async with Client(target.client_config(config), t0_ns=t0_ns) as client:
            await dispatch(buffer, client, on_record, t0_ns, total=len(plan),
                           sessions=plan if plan.has_sessions else None, stop=stop,
                           drain_timeout_s=config.drain_timeout_s, progress=progress)
    finally:
        cpu_s = time.process_time() - cpu_at_t0
        with contextlib.suppress(OSError):  # a full disk was reported as the stop reason
            writer.close()
        for name in EXIT_SIGNALS if own_signals else ():
            loop.remove_signal_handler(getattr(signal, name))
        if live_task:
            live_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await live_task
    return stop.reason, cpu_s


def describe_plan(console: Console, plan: RequestPlan, target: Target) -> None:
    """Tell the user what is about to be sent: target, API, template, sessions, and any notes."""
    options = plan.options
    console.print(f"target {redact_url(target.base_url)} model {target.model} (backend {target.backend}, from "
                  f"{target.backend_source}), api {options.api}, "
                  f"{'streaming' if options.stream else 'not streaming'}, ignore_eos {options.ignore_eos}")
    if plan.template != TemplateOverhead():
        console.print(f"template overhead measured: {plan.template.base} + {plan.template.per_message} per message "
                      "tokens, subtracted from each prompt")
    if plan.has_sessions:
        turns = int((plan.links.previous >= 0).sum())
        console.print(f"sessions: {turns:,} later turns sent as growing histories ({plan.history} replies), each "
                      "after its previous turn has finished")
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {note}")


def load_workload(config: RunConfig, console: Console) -> Workload:
    """Read (or synthesize) and shape the trace, telling the user what was skipped and why."""
    columns = ColumnMap.parse(config.columns, config.time_unit) if config.columns else None
    if config.synthetic is None:
        trace = read_trace(config.trace or DEFAULT_TRACE, config.format, columns)
    else:
        fit = read_trace(config.fit, config.format, columns) if config.fit else None
        trace = synthesize(parse_spec(config.synthetic, fit), fit)
    for warning in trace.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    workload = shape(trace, config.shaping)
    if not config.quiet:
        skipped = ", ".join(f"{reason.replace('_', ' ')} {count:,}" for reason, count in workload.skipped.items())
        how = "generated" if config.synthetic else "sniffed" if config.format == "auto" else "forced"
        console.print(f"trace {trace.source} (format {trace.format}, {how}; {len(trace):,} rows); "
                      f"replaying {len(workload):,}" + (f" (skipped: {skipped})" if skipped else ""))
    return workload


def _dry_run(config: RunConfig, workload: Workload, console: Console) -> RunResult:
    """Build (and save, with --save-requests) every request body without contacting any server."""
    model, backend = dry_run_target(config)
    options = request_options(config, model, backend)
    plan = plan_requests(config, workload, make_synthesizer(config), options)
    if config.save_requests is not None:
        save_plan(plan, config.save_requests, console)
    else:
        for _ in plan:  # build every body anyway: a dry run proves the whole trace can be prepared
            pass
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"dry run: {len(plan):,} requests prepared for model {model} (backend {backend}, ignore_eos "
                  f"{options.ignore_eos}); nothing was sent" +
                  (f"; bodies in {config.save_requests}" if config.save_requests else "") +
                  ("; --count-template is measured only when sending" if config.count_template else ""))
    return RunResult(None, None, 0, None)


_RESERVED_FILES = 64
"""Open files a run needs besides its sockets (records, libraries, the event loop's own)."""
MIN_FD_TABLE = 4096
"""The descriptor table is grown to at least this before t0 (it costs 8 bytes an entry)."""


def files_needed(workload: Workload, builtin_simulator: bool = False, peak: int | None = None) -> int:
    """Open files one process replaying `workload` likely needs at its peak (the built-in simulator,
    in the same process, holds the other end of every connection); `peak` if its concurrency is known."""
    peak = peak_concurrency(workload) if peak is None else peak
    return peak * (2 if builtin_simulator else 1) + _RESERVED_FILES


def _check_open_files(config: RunConfig, workload: Workload, console: Console) -> None:
    """Raise the open-files limit and grow the descriptor table before t0; warn when the trace's likely
    peak concurrency would still exceed the limit (such requests would fail to connect, which would
    be counted against the server)."""
    limit = raise_fd_limit()
    peak = peak_concurrency(workload)
    needed = -(-files_needed(workload, config.base_url is None, peak) // config.workers)
    reserve_fd_table(max(needed, MIN_FD_TABLE))
    if limit and needed > limit:
        console.print(f"[yellow]warning:[/] about {peak:,} requests may be in flight at once (at "
                      f"{NOMINAL_MS_PER_TOKEN:g} ms per output token), which needs about {needed:,} open files per "
                      f"process, but the limit is {limit:,}: raise it (ulimit -n) or use --workers")


def execute(config: RunConfig, console: Console | None = None) -> RunResult:
    """Run the whole pipeline and write `records.jsonl` and `summary.json` into the output directory."""
    console = console or Console(stderr=True, quiet=config.quiet)
    parse_slos(config.slos)  # a bad --slo is refused before any load
    workload = load_workload(config, console)
    if config.shard is not None:
        index, count = config.shard
        workload = workload.take(shard_positions(workload, count)[index])
    if config.dry_run:
        return _dry_run(config, workload, console)
    out_dir = config.out_dir or default_out_dir()
    prepare_out_dir(out_dir, config.overwrite)
    check_disk_space(out_dir, workload)
    _check_open_files(config, workload, console)
    with contextlib.ExitStack() as stack:
        base_url = config.base_url
        if base_url is None:
            base_url = stack.enter_context(SimulatorThread(config.simulator)).base_url
        server = run_loop(prepare_scraping(config.scrape_metrics, root_url(base_url)))
        if config.ray is not None:
            from replayer.raycluster import run_on_ray  # (it builds on this module)
            stop_reason, cpu_s = run_on_ray(config, workload, base_url, out_dir, console, server)
        elif config.workers > 1:
            from replayer.workers import run_workers  # (it builds on this module)
            stop_reason, cpu_s = run_workers(config, workload, base_url, out_dir, console, server)
        else:
            stop_reason, cpu_s = run_loop(_replay(config, workload, base_url, out_dir, console, server))
    record_file = read_records(out_dir / "records.jsonl")
    summary = summarize(record_file.records, streamed=config.stream, client_limited_lag_ms=config.lag_limit_ms,
                        labels=workload.labels())
    summary["interrupted"] = stop_reason
    summary["client_cpu_s"] = cpu_s
    _scale_out(summary, record_file)
    if config.slos:
        summary["slo"] = evaluate(parse_slos(config.slos), record_file.records, summary, streamed=config.stream)
    try:
        _write_results(config, out_dir, summary, record_file, server)
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot write the run's results ({exc.strerror or exc}); records.jsonl "
                          f"keeps the {len(record_file.records):,} requests recorded") from None
    return RunResult(out_dir, summary, run_exit_code(stop_reason, summary), stop_reason)


def _write_results(config: RunConfig, out_dir: Path, summary: dict, record_file: RecordFile,
                   server: ServerMetrics | None) -> None:
    """summary.json, timeseries.csv, server_metrics.csv and report.html, from the finished records."""
    series = time_series(record_file.records, streamed=config.stream)
    write_csv(series, out_dir / "timeseries.csv")
    if server is not None:
        summary["server_metrics"] = server.describe()
        if server.samples:
            server.write_csv(out_dir / "server_metrics.csv")
    (out_dir / "summary.json").write_text(json.dumps(with_vllm_keys(summary), indent=2) + "\n")
    (out_dir / "report.html").write_text(render_html(summary, record_file.records, series, f"replayer run {out_dir}",
                                                     server.samples if server else (), config.stream), encoding="utf-8")


_NOT_IN_RECORDS = ("interrupted", "client_cpu_s", "server_metrics")
"""Summary entries that only the run itself saw; `resummarize` takes them from its summary.json."""
_LABEL_KINDS = ("model", "log_type")
"""Breakdowns by trace labels, which records do not carry; `resummarize` keeps them from summary.json."""


def _scale_out(summary: dict, record_file: RecordFile) -> None:
    """Where the load came from, when shards on several nodes generated it (from the records header)."""
    shards = record_file.header.get("scale_out")
    if shards:
        summary["scale_out"] = shards


def resummarize(record_file: RecordFile, slos: Sequence[str] | None = None, saved: Path | None = None) -> dict:
    """A finished run's summary, computed again from its records with the settings it ran with (plus
    what only the run saw, from its `saved` summary.json if there is one); the SLO section uses
    `slos`, or else those the run was given."""
    header = record_file.header
    config = header.get("config", {})
    streamed = header.get("target", {}).get("stream", True)
    summary = summarize(record_file.records, streamed=streamed,
                        client_limited_lag_ms=config.get("lag_limit_ms", CLIENT_LIMITED_LAG_MS))
    _scale_out(summary, record_file)
    if saved is not None and saved.is_file():
        try:
            previous = json.loads(saved.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            previous = {}
        summary.update({key: previous[key] for key in _NOT_IN_RECORDS if key in previous})
        summary["breakdowns"].update({kind: groups for kind, groups in (previous.get("breakdowns") or {}).items()
                                      if kind in _LABEL_KINDS})
    texts = slos if slos else config.get("slos") or ()
    if texts:
        summary["slo"] = evaluate(parse_slos(texts), record_file.records, summary, streamed=streamed)
    return summary


def run_exit_code(stop_reason: str | None, summary: dict) -> int:
    """130/143 for an interrupted run, 74 when its output failed, 70 when a worker died, 1 when an SLO
    was violated, else 0."""
    if stop_reason in EXIT_SIGNALS:
        return EXIT_SIGNALS[stop_reason]
    for reason, code in ((OUTPUT_FAILED, EXIT_OUTPUT_FAILED), (WORKER_FAILED, EXIT_WORKER_FAILED)):
        if stop_reason and stop_reason.startswith(reason):
            return code
    return EXIT_SLO_VIOLATED if not summary.get("slo", {}).get("passed", True) else 0

