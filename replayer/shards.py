"""One workload split over processes or machines: shards, a wall-clock start, and merging records.

A workload is dealt into N disjoint shards in send order, a session (all its turns) at a time, so
each shard is as bursty as the trace and every conversation stays in one shard. Shards on other
machines start at one agreed wall-clock instant (`--start-at`), each converted once to its own
monotonic clock, and their records files are merged afterwards (`replayer report RUN RUN...`):
each file's times are shifted by the difference of its t0 from the first one's, so a shard whose
start was late still lands at its true place in time.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from replayer.errors import ConfigError, InputError
from replayer.records import RecordFile, record_to_json, write_record_lines
from replayer.workload import Workload

LATE_START_LIMIT_S = 1.0
"""A shard ready later than this after its `--start-at` instant is refused rather than run late."""
_TIME_FIELDS = ("intended_ns", "sent_ns", "first_token_ns", "end_ns")


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
            raise ConfigError(f"--start-at: expected seconds since the epoch or a UTC date-time, got {text!r}") from None
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
        raise ConfigError(f"--start-at: that instant passed {late_s:,.1f} s before this shard was ready; "
                          "give every shard a later one")
    return now + (start_at_ns - now_wall)


def merge_record_files(files: list[tuple[Path, RecordFile]]) -> RecordFile:
    """One run from several shards' records: times shifted onto the first file's t0 (by the
    difference of their wall-clock t0s), ids checked to be disjoint."""
    base_path, base = files[0]
    base_t0 = base.header.get("t0_wall_ns")
    records, seen = [], set()
    for path, record_file in files:
        t0 = record_file.header.get("t0_wall_ns")
        if base_t0 is None or t0 is None:
            raise InputError(str(path), "records header has no t0_wall_ns; cannot place it beside other shards")
        shift = t0 - base_t0
        for record in record_file.records:
            if record.id in seen:
                raise InputError(str(path), f"request id {record.id} is in another shard too; these are not "
                                            "shards of one run")
            seen.add(record.id)
            for name in _TIME_FIELDS:
                value = getattr(record, name)
                if value is not None:
                    setattr(record, name, value + shift)
            records.append(record)
    records.sort(key=lambda record: record.intended_ns)
    header = {**base.header, "merged_from": [str(path) for path, _ in files],
              "shards": [record_file.header.get("shard") for _, record_file in files]}
    return RecordFile(header, records, any(record_file.torn_last_line for _, record_file in files))


def write_record_file(path: Path, record_file: RecordFile) -> None:
    """Write a (merged) run's records file."""
    write_record_lines(path, record_file.header, map(record_to_json, record_file.records))
