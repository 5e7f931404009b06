"""One shard replayed in one process, and what the three shard runners (local, workers, Ray) share.

Everything slow happens before t0: the plan's first 10,000 bodies are built, the heap is frozen and
the descriptor table grown. From t0 on the dispatcher, the client and the record writer work, and
later bodies are built only in the slack before the next send. A runner receives a `Replay` (the
product of the run's prologue, settled once) and returns a `RunOutcome`; it never prints errors or
picks exit codes, which are the CLI's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from replayer.analysis.slo import SloWatch, parse_slos
from replayer.prompts.bodies import RequestPlan, save_requests
from replayer.prompts.synthesis import PromptSynthesizer, TemplateOverhead
from replayer.prompts.tokenizer import load_tokenizer
from replayer.records import RecordWriter, RequestRecord
from replayer.run.config import PromptConfig, RunConfig, ScaleConfig
from replayer.run.live import LiveDisplay
from replayer.run.preflight import make_room_for_sockets
from replayer.run.server_metrics import ServerMetrics, scrape
from replayer.run.target import Target
from replayer.send.addressing import redact_url
from replayer.send.client import Client
from replayer.send.dispatcher import Lookahead, Progress, StopControl, dispatch
from replayer.version import __version__
from replayer.workload.shaping import Workload
from replayer.workload.shards import monotonic_t0

START_LEAD_S = 0.05
"""t0 is set this far after the last preparation step, so the first send is on time too."""
STOP_SIGNALS = ("SIGINT", "SIGTERM")
OUTPUT_FAILED = "output failed"
"""The start of the stop reason of a run whose records could not be written (a full disk)."""
WORKER_FAILED = "worker failed"
"""The start of the stop reason of a run that lost a worker process or a Ray actor."""


@dataclass(frozen=True)
class ShardJob:
    """What one process needs to replay one shard: the settled target, how prompts are made, the
    shard's workload, how long to drain after a stop, and until when requests are warm-up."""

    target: Target
    prompts: PromptConfig
    workload: Workload
    drain_timeout_s: float
    warmup_ns: int = 0
    """Requests due before this offset from t0 are recorded as `warmup`."""
    max_concurrency: int | None = None
    """At most this many requests in flight (None: the open loop is never capped)."""
    concurrency: int | None = None
    """A closed loop of this many virtual users instead of the trace's clock (None: the open loop)."""

    def shard(self, workload: Workload) -> ShardJob:
        """The same job for one shard of the workload."""
        return replace(self, workload=workload)


@dataclass(frozen=True)
class Replay:
    """The run's prologue, settled once, that every shard runner receives."""

    job: ShardJob
    """The whole workload's job; runners deal shards of it."""
    plan: RequestPlan
    """The whole workload's request plan (what a single process sends)."""
    out_dir: Path
    header: dict[str, Any]
    """The records header without its start instants (see `records_header`)."""
    scale: ScaleConfig
    lag_limit_ms: float
    quiet: bool
    watched_slos: tuple[str, ...] = ()
    """With `--stop-early`: the SLOs whose reach the run watches (see `replayer.analysis.slo.SloWatch`)."""
    time_limit_s: float | None = None
    """Stop this many seconds after t0 (`--max-time`)."""

    @property
    def records_path(self) -> Path:
        return self.out_dir / "records.jsonl"


@dataclass(frozen=True)
class RunOutcome:
    """How a runner's replay ended: the stop reason (None: it ran to the end), the CPU seconds the
    senders spent from t0 on, and what failed (one message per lost worker or shard)."""

    stop_reason: str | None
    cpu_s: float
    failures: tuple[str, ...] = ()


ShardRunner = Callable[[Replay, Console, ServerMetrics | None], RunOutcome]
"""The one signature of the local, workers and Ray runners: replay, write `records.jsonl`, report."""


def plan_for(prompts: PromptConfig, workload: Workload, target: Target) -> RequestPlan:
    """The request plan of `workload` (a whole workload, or one shard of it) for the settled target."""
    synthesizer = PromptSynthesizer(load_tokenizer(prompts.tokenizer), seed=target.seed)
    return RequestPlan(workload, synthesizer, target.options, prefix_cache=prompts.prefix_cache,
                       history=prompts.session_history, template=target.template)


def prepare_shard(job: ShardJob) -> tuple[RequestPlan, Lookahead]:
    """In a process that replays one shard (a worker, a Ray actor): room for its sockets, its plan, and
    the first bodies built ahead."""
    make_room_for_sockets(job.workload)  # (the parent has already warned if the limit is too low)
    plan = plan_for(job.prompts, job.workload, job.target)
    buffer = Lookahead(plan)
    buffer.fill()
    return plan, buffer


def run_header(config: RunConfig, workload: Workload, target: Target, plan: RequestPlan) -> dict[str, Any]:
    """The records header of a run, but for its start instants: what was replayed, against what."""
    options = plan.options
    return {
        "tool": "replayer",
        "version": __version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "shard": list(config.scale.shard) if config.scale.shard else None,
        "config": config.public(),
        "workload": workload.describe(),
        "target": {"base_url": redact_url(target.base_url), "builtin_simulator": config.builtin_simulator,
                   "api": options.api, "model": target.model, "backend": target.backend,
                   "backend_source": target.backend_source, "stream": options.stream,
                   "ignore_eos": options.ignore_eos},
        "seed": target.seed,
        "tokenizer": config.prompts.tokenizer,
        "template_overhead": asdict(plan.template),
        "sessions": plan.history if plan.has_sessions else None,
    }


def records_header(replay: Replay, t0_ns: int, t0_wall_ns: int, workers: int = 1) -> dict[str, Any]:
    """The first line of `records.jsonl`: the run's header with its start instants."""
    return {**replay.header, "t0_wall_ns": t0_wall_ns, "t0_monotonic_ns": t0_ns, "workers": workers}


def start_instant(start_at_ns: int | None, lead_s: float = START_LEAD_S) -> tuple[int, int]:
    """The run's t0 on this machine's monotonic clock and on the wall clock: `start_at_ns` if given
    (shards on other machines start then too), else `lead_s` from now."""
    if start_at_ns is not None:
        return monotonic_t0(start_at_ns), start_at_ns
    return time.perf_counter_ns() + int(lead_s * 1e9), time.time_ns() + int(lead_s * 1e9)


def announce_start(console: Console, start_at_ns: int | None) -> None:
    """For `--start-at`, say when the replay will begin (a shard waits silently otherwise)."""
    if start_at_ns is None:
        return
    wait_s = (start_at_ns - time.time_ns()) / 1e9
    when = dt.datetime.fromtimestamp(start_at_ns / 1e9, dt.timezone.utc).isoformat(timespec="milliseconds")
    console.print(f"waiting for --start-at {when.replace('+00:00', 'Z')}: starts in {wait_s:,.1f} s" if wait_s > 0
                  else f"--start-at {when.replace('+00:00', 'Z')} passed {-wait_s:,.1f} s ago: starting at once, "
                       "late by that much")


def save_plan(plan: RequestPlan, path: Path, console: Console) -> None:
    """Write every body to `path` ahead of the run (see `RequestPlan.built_ahead` for session turns)."""
    ahead = plan.built_ahead()
    if ahead is not plan:
        console.print(f"note: in {path}, later session turns carry synthetic replies where the run sends the "
                      "server's actual ones")
    save_requests(ahead, plan.options, path)


def describe_plan(console: Console, plan: RequestPlan, target: Target) -> None:
    """Tell the user what is about to be sent: target, API, template, sessions, and any notes."""
    options = plan.options
    console.print(f"target {redact_url(target.base_url)} model {target.model} (backend {target.backend}, from "
                  f"{target.backend_source}), api {options.api}, "
                  f"{'streaming' if options.stream else 'not streaming'}, " +
                  (f"{options.embedding_batch} inputs a request" if options.api == "embeddings" else
                   f"ignore_eos {options.ignore_eos}"))
    if plan.template != TemplateOverhead():
        console.print(f"template overhead measured: {plan.template.base} + {plan.template.per_message} per message "
                      "tokens, subtracted from each prompt")
    if plan.links is not None:
        turns = int((plan.links.previous >= 0).sum())
        console.print(f"sessions: {turns:,} later turns sent as growing histories ({plan.history} replies), each "
                      "after its previous turn has finished")
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {note}")


TIME_LIMIT = "time limit"
"""The stop reason of a run stopped by `--max-time`."""


def slo_watch(replay: Replay) -> SloWatch | None:
    """The watch over the run's SLOs with `--stop-early` (None without it)."""
    if not replay.watched_slos:
        return None
    job = replay.job
    planned = int((job.workload.offsets_ns >= job.warmup_ns).sum())
    return SloWatch(parse_slos(replay.watched_slos), planned, replay.plan.options.stream)


def live_display(replay: Replay, console: Console, progress: Progress, t0_ns: int,
                 lag_p99: Callable[[], float | None] | None = None) -> LiveDisplay | None:
    """The run's status line (None with `--quiet`)."""
    if replay.quiet:
        return None
    workload = replay.job.workload
    span_s = 0.0 if replay.job.concurrency else workload.span_s  # (a closed loop follows no clock: by sends)
    return LiveDisplay(console, progress, t0_ns, span_s, workload.speedup, replay.lag_limit_ms, lag_p99)


@contextlib.contextmanager
def stop_signals(on_signal: Callable[[str], None]) -> Iterator[None]:
    """While the block runs on this thread's loop, SIGINT and SIGTERM call `on_signal(name)` (a
    runner stops its senders: the first drains, a second aborts) instead of killing the process."""
    loop = asyncio.get_running_loop()
    for name in STOP_SIGNALS:
        loop.add_signal_handler(getattr(signal, name), on_signal, name)
    try:
        yield
    finally:
        for name in STOP_SIGNALS:
            loop.remove_signal_handler(getattr(signal, name))


@contextlib.asynccontextmanager
async def observing(server: ServerMetrics | None, t0_ns: int, live: LiveDisplay | None) -> AsyncIterator[None]:
    """While the block runs: sample the server's metrics (if any) and refresh the live display (if any)."""
    loop = asyncio.get_running_loop()
    tasks = [loop.create_task(work) for work in (scrape(server, t0_ns) if server else None,
                                                 live.run() if live else None) if work is not None]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def send_plan(job: ShardJob, plan: RequestPlan, buffer: Lookahead, t0_ns: int, writer: RecordWriter,
                    progress: Progress, stop: StopControl, live: LiveDisplay | None = None,
                    watch: SloWatch | None = None) -> tuple[str | None, float]:
    """Dispatch a prepared plan from `t0_ns` on, writing each record as it finishes (marked if it was
    warm-up), until it ends or `stop` stops it, or `watch` finds the SLOs out of reach. Returns the
    stop reason (if any) and the CPU seconds spent from t0 on."""
    writing = True
    warmup_ns = job.warmup_ns

    def on_record(record: RequestRecord) -> None:
        nonlocal writing
        record.warmup = record.intended_ns < warmup_ns
        if watch is not None and (reason := watch.observe(record)) is not None:
            stop.abort(reason)
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
        async with Client(job.target.client, t0_ns=t0_ns) as client:
            await dispatch(buffer, client, on_record, t0_ns, total=len(plan),
                           sessions=plan if plan.has_sessions else None, stop=stop,
                           drain_timeout_s=job.drain_timeout_s, progress=progress, max_in_flight=job.max_concurrency,
                           users=job.concurrency)
    finally:
        cpu_s = time.process_time() - cpu_at_t0
        with contextlib.suppress(OSError):  # a full disk was reported as the stop reason
            writer.close()
    return stop.reason, cpu_s
