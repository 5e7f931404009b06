"""Checks and preparations before any load is sent: the output directory, its free space, and
room for the run's sockets. A run that would fail for one of these fails here, with one line."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

from replayer.errors import ConfigError
from replayer.send.eventloop import raise_fd_limit, reserve_fd_table
from replayer.workload.shaping import NOMINAL_MS_PER_TOKEN, Workload, peak_concurrency

RECORD_BYTES = 400
"""Bytes a request's record takes, roughly, besides 8 per output token (its ITL list): for the free-space check."""
_RESERVED_FILES = 64
"""Open files a run needs besides its sockets (records, libraries, the event loop's own)."""
MIN_FD_TABLE = 4096
"""The descriptor table is grown to at least this before t0 (it costs 8 bytes an entry)."""


def default_out_dir() -> Path:
    """runs/<local date-time>, the directory of a run not given `--out`."""
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


def files_needed(workload: Workload, builtin_simulator: bool = False, peak: int | None = None) -> int:
    """Open files one process replaying `workload` likely needs at its peak (the built-in simulator,
    in the same process, holds the other end of every connection); `peak` if its concurrency is known."""
    peak = peak_concurrency(workload) if peak is None else peak
    return peak * (2 if builtin_simulator else 1) + _RESERVED_FILES


def make_room_for_sockets(workload: Workload, builtin_simulator: bool = False, processes: int = 1) -> str | None:
    """Raise the open-files limit and grow the descriptor table before t0 (growing it mid-run stalls
    the loop). Returns a warning when the trace's likely peak concurrency would still exceed the
    limit: such requests would fail to connect, which would be counted against the server."""
    limit = raise_fd_limit()
    peak = peak_concurrency(workload)
    needed = -(-files_needed(workload, builtin_simulator, peak) // processes)
    reserve_fd_table(max(needed, MIN_FD_TABLE))
    if limit and needed > limit:
        return (f"about {peak:,} requests may be in flight at once (at {NOMINAL_MS_PER_TOKEN:g} ms per output "
                f"token), which needs about {needed:,} open files per process, but the limit is {limit:,}: raise it "
                "(ulimit -n) or use --workers")
    return None
