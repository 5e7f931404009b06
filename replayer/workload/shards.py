"""One workload split over processes or machines: shards, and a wall-clock start.

A workload is dealt into N disjoint shards in send order, a session (all its turns) at a time, so
each shard is as bursty as the trace and every conversation stays in one shard. Shards on other
machines start at one agreed wall-clock instant (`--start-at`), each converted once to its own
monotonic clock; their records files are merged afterwards (`replayer.analysis.runs`).
"""

from __future__ import annotations

import time

import numpy as np

from replayer.errors import ConfigError
from replayer.workload.shaping import Workload

LATE_START_LIMIT_S = 1.0
"""A shard ready later than this after its `--start-at` instant is refused rather than run late."""


def parse_shard(text: str) -> tuple[int, int]:
    """`--shard K/N` → (K, N), shard K of N counted from 0."""
    index, slash, count = text.partition("/")
    try:
        shard = (int(index), int(count))
    except ValueError:
        shard = (-1, 0)
    if not slash or not 0 <= shard[0] < shard[1]:
        raise ConfigError(f"--shard: expected K/N with 0 <= K < N, such as 0/4; got {text!r}")
    return shard


def parse_start_at(text: str) -> int:
    """`--start-at` (seconds since the Unix epoch, or an ISO date-time in UTC) → epoch nanoseconds."""
    try:
        seconds = float(text)
    except ValueError:
        try:
            return int(np.datetime64(text.removesuffix("Z").replace("+00:00", ""), "ns").astype(np.int64))
        except ValueError:
            raise ConfigError(
                f"--start-at: expected seconds since the epoch or a UTC date-time, got {text!r}"
            ) from None
    if not np.isfinite(seconds) or seconds <= 0:
        raise ConfigError(f"--start-at: expected seconds since the epoch, got {text!r}")
    return int(seconds * 1e9)


def shard_positions(workload: Workload, n: int) -> list[np.ndarray]:
    """Row positions of each of `n` shards: units (a row on its own, or a whole session) are dealt
    round-robin in the order of their first row, so shards share the trace's rate and burstiness."""
    rows = len(workload)
    keys = np.arange(rows, dtype=np.int64)
    sessions = workload.trace.sessions
    if sessions is not None:
        empty = sessions.code_of("")
        in_session = sessions.codes != empty if empty is not None else np.ones(rows, dtype=bool)
        keys[in_session] = rows + sessions.codes[in_session]
    _, first, unit = np.unique(keys, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    shard = rank[unit.reshape(-1)] % n
    return [np.flatnonzero(shard == k) for k in range(n)]


def monotonic_t0(start_at_ns: int) -> int:
    """This machine's monotonic time (perf_counter ns) at the wall-clock instant `start_at_ns`;
    refused when that instant passed more than LATE_START_LIMIT_S ago."""
    now_wall, now = time.time_ns(), time.perf_counter_ns()
    late_s = (now_wall - start_at_ns) / 1e9
    if late_s > LATE_START_LIMIT_S:
        raise ConfigError(
            f"--start-at: that instant passed {late_s:,.1f} s before this shard was ready; give every shard a later one"
        )
    return now + (start_at_ns - now_wall)
