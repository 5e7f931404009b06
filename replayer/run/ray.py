"""`replayer run --ray [ADDRESS] --workers N`: the workload's N shards replayed by Ray actors on a
cluster's nodes, for more load than one machine can generate.

The driver settles the target once (model, backend, template, seed) so every shard builds exactly
the bodies one process would, deals the shards (`replayer.workload.shards`), and starts one actor per shard
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
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from rich.console import Console

from replayer.errors import ConfigError
from replayer.prompts.bodies import RequestPlan
from replayer.records import RecordWriter, record_lines, write_record_lines
from replayer.run.replay import (
    WORKER_FAILED,
    Replay,
    RunOutcome,
    ShardJob,
    observing,
    prepare_shard,
    records_header,
    send_plan,
    start_instant,
    stop_signals,
)
from replayer.run.server_metrics import ServerMetrics
from replayer.send.dispatcher import Lookahead, Progress, StopControl
from replayer.send.eventloop import run as run_loop
from replayer.send.eventloop import settle_heap
from replayer.workload.shards import monotonic_t0, shard_positions

T = TypeVar("T")

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

    def __init__(self, index: int, job: ShardJob):
        self.index = index
        self.job = job
        self.plan: RequestPlan | None = None
        self.buffer: Lookahead | None = None
        self._stop: StopControl | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()

    def prepare(self) -> str:
        """Build the shard's request plan; returns the node's address."""
        import ray

        self.plan, self.buffer = prepare_shard(self.job)
        return ray.util.get_node_ip_address()

    def clock(self) -> int:
        """This node's wall clock (ns), for the driver's offset measurement."""
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
        assert self.plan is not None and self.buffer is not None, "prepare the shard first"
        self._stop, self._loop = StopControl(), asyncio.get_running_loop()
        self._ready.set()
        settle_heap()
        return await send_plan(self.job, self.plan, self.buffer, monotonic_t0(start_at_ns), writer, Progress(),
                               self._stop)

    def stop(self, reason: str) -> None:
        """The driver's Ctrl-C: the first call drains, the second aborts (as in one process)."""
        if self._ready.wait(timeout=30) and self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.request_stop, reason)


def _in_own_thread(work: Callable[[], T]) -> T:
    """`work()` on a fresh thread: Ray runs actor methods on threads that may already have an event
    loop, and the replay needs its own."""
    result: list[T] = []
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


def run_on_ray(replay: Replay, console: Console, server: ServerMetrics | None = None) -> RunOutcome:
    """Replay the workload as `scale.workers` shards on Ray; write the merged `records.jsonl`."""
    ray = _connect(replay.scale.ray)
    workload = replay.job.workload
    actor_class = ray.remote(num_cpus=1, max_concurrency=2)(ShardReplayer)
    actors = [actor_class.remote(index, replay.job.shard(workload.take(positions)))
              for index, positions in enumerate(shard_positions(workload, replay.scale.workers))]
    nodes = ray.get([actor.prepare.remote() for actor in actors])
    offsets = [_clock_offset(ray, actor) for actor in actors]
    if not replay.quiet:
        console.print(f"{len(actors)} Ray shards ready on {', '.join(sorted(set(nodes)))}; replaying "
                      f"{workload.span_s:,.1f} s at speedup {workload.speedup:g}")
    t0_ns, start_at_ns = start_instant(replay.scale.start_at_ns, START_LEAD_S)
    pending = [actor.replay.remote(start_at_ns + offset_ns) for actor, (offset_ns, _) in zip(actors, offsets)]
    collected = run_loop(_collect(ray, actors, pending, server, t0_ns))
    outcomes = [outcome if isinstance(outcome, ShardOutcome) else ShardOutcome(index, node, [], outcome, 0.0)
                for index, (node, outcome) in enumerate(zip(nodes, collected))]
    header = records_header(replay, t0_ns, start_at_ns, workers=len(actors))
    header["scale_out"] = {"backend": "ray", "shards": [
        {"index": outcome.index, "node": outcome.node, "requests": len(outcome.lines),
         "clock_offset_ms": round(offset_ns / 1e6, 3), "clock_rtt_ms": round(rtt_ns / 1e6, 3),
         "stop_reason": outcome.stop_reason}
        for outcome, (offset_ns, rtt_ns) in zip(outcomes, offsets)]}
    write_record_lines(replay.records_path, header, (line for outcome in outcomes for line in outcome.lines))
    failed = [outcome for outcome in outcomes if outcome.stop_reason and outcome.stop_reason.startswith(WORKER_FAILED)]
    reasons = [outcome.stop_reason for outcome in [*failed, *outcomes] if outcome.stop_reason]
    return RunOutcome(reasons[0] if reasons else None, sum(outcome.cpu_s for outcome in outcomes),
                      tuple(f"shard {outcome.index} on {outcome.node}: {outcome.stop_reason}" for outcome in failed))


def _connect(address: str | None) -> Any:
    """The `ray` module, connected to the cluster at `address` ("auto": RAY_ADDRESS, or a local one)."""
    try:
        import ray
    except ImportError:
        raise ConfigError("--ray needs Ray: pip install 'replayer[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=None if address == "auto" else address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
    return ray


def _clock_offset(ray: Any, actor: Any) -> tuple[int, int]:
    """(the actor's wall clock minus the driver's, the round trip it was read in), both ns."""
    best: tuple[int, int] | None = None
    for _ in range(CLOCK_PROBES):
        sent = time.time_ns()
        remote = ray.get(actor.clock.remote())
        received = time.time_ns()
        probe = (remote - (sent + received) // 2, received - sent)
        best = probe if best is None or probe[1] < best[1] else best
    assert best is not None
    return best


async def _collect(ray: Any, actors: list[Any], pending: list[Any], server: ServerMetrics | None,
                   t0_ns: int) -> list[ShardOutcome | str]:
    """Wait for every shard while sampling the server's metrics; SIGINT/SIGTERM are forwarded to each
    actor (a second one aborts), and their records still come back. A shard whose actor died gives
    the stop reason saying so instead of its outcome."""

    def forward(name: str) -> None:
        for actor in actors:
            actor.stop.remote(name)

    with stop_signals(forward):
        async with observing(server, t0_ns, None):
            while len(ray.wait(pending, num_returns=len(pending), timeout=0)[0]) < len(pending):
                await asyncio.sleep(_POLL_S)
    outcomes: list[ShardOutcome | str] = []
    for reference in pending:
        try:
            outcomes.append(ray.get(reference))
        except ray.exceptions.RayError as exc:  # the actor (or its node) died: its records are lost
            outcomes.append(f"{WORKER_FAILED}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
    return outcomes
