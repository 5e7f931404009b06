"""`replayer run --ray [ADDRESS] --workers N`: the workload's N shards replayed by Ray actors on a
cluster's nodes, for more load than one machine can generate.

The driver settles the target once (model, backend, template, seed) so every shard builds exactly
the bodies one process would, deals the shards (`replayer.shards`), and starts one actor per shard
wherever Ray places it. Each actor prepares its requests and says which node it is on. The driver
then measures each actor's wall-clock offset from its own (the reading with the shortest of a few
round trips, offset = remote time − midpoint), picks one start instant a little ahead, and hands
each actor that instant in the actor's own clock. So all shards start together even when the
nodes' clocks disagree, and the offsets are reported. Each actor returns its record lines; the
driver merges them into `records.jsonl`, whose header says how many requests each node sent.

Ctrl-C (or SIGTERM) on the driver stops every actor the way it stops one process (drain, then
abort on a second one), and the records of what ran still come back. The driver samples the
server's metrics meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from replayer.dispatcher import Lookahead, Progress, StopControl
from replayer.errors import ConfigError
from replayer.eventloop import run as run_loop, settle_heap
from replayer.records import RecordWriter, record_lines, write_record_lines
from replayer.runner import (EXIT_SIGNALS, WORKER_FAILED, RunConfig, Target, describe_plan, plan_for, prepare_shard,
                             resolve_target, run_header, sampling, save_plan, send_plan, start_instant)
from replayer.scrape import ServerMetrics
from replayer.shards import monotonic_t0, shard_positions
from replayer.workload import Workload

START_LEAD_S = 1.0
"""Between the driver handing out the start instant and that instant (a round trip to every actor)."""
CLOCK_PROBES = 5
"""Round trips per actor to measure its clock offset; the shortest one is used."""
_POLL_S = 0.1
"""How often the driver checks whether every shard has finished."""


@dataclass(frozen=True)
class ShardOutcome:
    """What one actor sent back: its record lines, where it ran, and how its replay ended."""

    index: int
    node: str
    lines: list[str]
    stop_reason: str | None
    cpu_s: float


class ShardReplayer:
    """One shard on one node (a Ray actor): prepares its requests, tells the time, replays from an
    instant, and can be asked to stop from another thread while it replays."""

    def __init__(self, index: int, config: RunConfig, target: Target, workload: Workload):
        self.index = index
        self.config = config
        self.target = target
        self.workload = workload
        self.plan = None
        self.buffer: Lookahead | None = None
        self._stop: StopControl | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()

    def prepare(self) -> str:
        """Build the shard's request plan; returns the node's address."""
        import ray

        self.plan, self.buffer = prepare_shard(self.config, self.target, self.workload)
        return ray.util.get_node_ip_address()

    def clock(self) -> int:
        return time.time_ns()

    def replay(self, start_at_ns: int) -> ShardOutcome:
        """Replay the shard from `start_at_ns` (this node's wall clock); its record lines at the end."""
        import ray

        with tempfile.TemporaryDirectory(prefix="replayer-shard-") as folder:
            path = Path(folder) / "records.jsonl"
            writer = RecordWriter(path, {"shard": self.index, "t0_wall_ns": start_at_ns})
            stop_reason, cpu_s = _in_own_thread(lambda: run_loop(self._send(start_at_ns, writer)))
            lines = record_lines(path)
        return ShardOutcome(self.index, ray.util.get_node_ip_address(), lines, stop_reason, cpu_s)

    async def _send(self, start_at_ns: int, writer: RecordWriter) -> tuple[str | None, float]:
        self._stop, self._loop = StopControl(), asyncio.get_running_loop()
        self._ready.set()
        settle_heap()
        return await send_plan(self.config, self.target, self.plan, self.buffer, monotonic_t0(start_at_ns), writer,
                               Progress(), live=None, stop=self._stop)

    def stop(self, reason: str) -> None:
        """The driver's Ctrl-C: the first call drains, the second aborts (as in one process)."""
        if self._ready.wait(timeout=30) and self._loop is not None:
            self._loop.call_soon_threadsafe(self._stop.request_stop, reason)


def _in_own_thread(work):
    """`work()` on a fresh thread: Ray runs actor methods on threads that may already have an event
    loop, and the replay needs its own."""
    result: list = []
    failure: list[BaseException] = []

    def target() -> None:
        try:
            result.append(work())
        except BaseException as exc:  # re-raised on the calling thread
            failure.append(exc)

    thread = threading.Thread(target=target, name="replayer-shard")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def run_on_ray(config: RunConfig, workload: Workload, base_url: str, out_dir: Path, console: Console,
               server: ServerMetrics | None = None) -> tuple[str | None, float]:
    """Replay `workload` as `config.workers` shards on Ray; write the merged `records.jsonl`.
    Returns the stop reason (if any) and the CPU seconds all shards spent from t0 on."""
    ray = _connect(config.ray)
    target = run_loop(resolve_target(config, base_url))
    plan = plan_for(config, workload, target)
    if config.save_requests is not None:
        save_plan(plan, config.save_requests, console)
    actor_class = ray.remote(num_cpus=1, max_concurrency=2)(ShardReplayer)
    actors = [actor_class.remote(index, config, target, workload.take(positions))
              for index, positions in enumerate(shard_positions(workload, config.workers))]
    nodes = ray.get([actor.prepare.remote() for actor in actors])
    offsets = [_clock_offset(ray, actor) for actor in actors]
    if not config.quiet:
        describe_plan(console, plan, target)
        console.print(f"{len(actors)} Ray shards ready on {', '.join(sorted(set(nodes)))}; replaying "
                      f"{workload.describe()['span_s']:,.1f} s at speedup {workload.speedup:g}")
    t0_ns, start_at_ns = start_instant(config, START_LEAD_S)
    pending = [actor.replay.remote(start_at_ns + offset_ns) for actor, (offset_ns, _) in zip(actors, offsets)]
    outcomes = [outcome if isinstance(outcome, ShardOutcome) else ShardOutcome(index, node, [], outcome, 0.0)
                for index, (node, outcome) in enumerate(zip(nodes, run_loop(_collect(ray, actors, pending, server,
                                                                                       t0_ns))))]
    header = run_header(config, workload, target, plan, t0_ns, start_at_ns, workers=len(actors))
    header["scale_out"] = {"backend": "ray", "shards": [
        {"index": outcome.index, "node": outcome.node, "requests": len(outcome.lines),
         "clock_offset_ms": round(offset_ns / 1e6, 3), "clock_rtt_ms": round(rtt_ns / 1e6, 3),
         "stop_reason": outcome.stop_reason}
        for outcome, (offset_ns, rtt_ns) in zip(outcomes, offsets)]}
    write_record_lines(out_dir / "records.jsonl", header, (line for outcome in outcomes for line in outcome.lines))
    failed = [outcome for outcome in outcomes if outcome.stop_reason and outcome.stop_reason.startswith(WORKER_FAILED)]
    for outcome in failed:
        console.print(f"[red]error:[/] shard {outcome.index} on {outcome.node}: {outcome.stop_reason} "
                      "(the other shards' records are kept)")
    reasons = [outcome.stop_reason for outcome in [*failed, *outcomes] if outcome.stop_reason]
    return (reasons[0] if reasons else None), sum(outcome.cpu_s for outcome in outcomes)


def _connect(address: str | None):
    """The `ray` module, connected to the cluster at `address` ("auto": RAY_ADDRESS, or a local one)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'replayer[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=None if address == "auto" else address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
    return ray


def _clock_offset(ray, actor) -> tuple[int, int]:
    """(the actor's wall clock minus the driver's, the round trip it was read in), both ns."""
    best = None
    for _ in range(CLOCK_PROBES):
        sent = time.time_ns()
        remote = ray.get(actor.clock.remote())
        received = time.time_ns()
        probe = (remote - (sent + received) // 2, received - sent)
        best = probe if best is None or probe[1] < best[1] else best
    return best


async def _collect(ray, actors: list, pending: list, server: ServerMetrics | None,
                   t0_ns: int) -> list[ShardOutcome | str]:
    """Wait for every shard while sampling the server's metrics; SIGINT/SIGTERM are forwarded to each
    actor (a second one aborts), and their records still come back. A shard whose actor died gives
    the stop reason saying so instead of its outcome."""
    loop = asyncio.get_running_loop()

    def forward(name: str) -> None:
        for actor in actors:
            actor.stop.remote(name)

    for name in EXIT_SIGNALS:
        loop.add_signal_handler(getattr(signal, name), forward, name)
    try:
        async with sampling(server, t0_ns):
            while len(ray.wait(pending, num_returns=len(pending), timeout=0)[0]) < len(pending):
                await asyncio.sleep(_POLL_S)
    finally:
        for name in EXIT_SIGNALS:
            loop.remove_signal_handler(getattr(signal, name))
    outcomes: list[ShardOutcome | str] = []
    for reference in pending:
        try:
            outcomes.append(ray.get(reference))
        except ray.exceptions.RayError as exc:  # the actor (or its node) died: its records are lost
            outcomes.append(f"{WORKER_FAILED}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    return outcomes
