"""The Python API: the same pipeline as the command line, as typed functions.

    import replayer
    config = replayer.RunConfig(workload=replayer.WorkloadSource(trace="sample:azure-2023-conv"),
                                shaping=replayer.Shaping(duration_s=20, speedup=2))
    result = replayer.run(config)
    print(result.summary["ttft_ms"]["p99"], result.slo_passed)

`run` replays (against the built-in simulator, or `TargetConfig(base_url=...)`) and returns the
run directory, its summary and the verdicts. `report`, `check` and `compare` work on finished run
directories and send no load. Errors a user can fix raise `ReplayerError` subclasses with one-line
messages; the CLI is a thin layer over these functions.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from replayer.analysis.compare import Delta, compare_runs, parse_limit
from replayer.analysis.runs import merge_record_files, read_run, summarize_run, trial_dirs
from replayer.analysis.summary import Summary
from replayer.errors import ConfigError
from replayer.records import RecordFile
from replayer.run.config import RunConfig
from replayer.run.pipeline import RunResult, execute


def run(config: RunConfig, console: Console | None = None) -> RunResult:
    """Replay `config`'s workload and write its run directory (records, summary, reports). Progress
    goes to `console` (stderr by default; nothing with `OutputConfig(quiet=True)`)."""
    return execute(config, console)


def report(*runs: Path | str, slos: Sequence[str] = ()) -> Summary:
    """The summary of a finished run (a run directory or its records.jsonl), computed again from
    its records alone; several runs are the shards of one (`--shard K/N`), merged on their shared
    start instant. `slos` replaces the SLOs the run was given."""
    return summarize_run(read_runs(*runs), tuple(slos) or None)


def read_runs(*runs: Path | str) -> RecordFile:
    """The records of one run, or of several shards of one run merged."""
    if not runs:
        raise ConfigError("name at least one run directory or records.jsonl")
    files = [read_run(Path(run)) for run in runs]
    return files[0][1] if len(files) == 1 else merge_record_files(files)


def check(run: Path | str, slos: Sequence[str] = ()) -> dict[str, Any]:
    """The SLO verdict of a finished run: `slos`, or the SLOs it was given with `run --slo`. The
    verdict's `passed` is False when an aggregate SLO was violated."""
    summary = report(run, slos=slos)
    if "slo" not in summary:
        raise ConfigError(f"{run}: the run was given no SLO; pass --slo 'METRIC<=VALUE'")
    return summary["slo"]


@dataclass(frozen=True)
class Comparison:
    """Two runs' metrics side by side: each metric's change and whether it regressed beyond its limit."""

    deltas: list[Delta]
    same_workload: bool
    """False when the runs replayed different workloads (trace, shaping, speedup): throughputs then differ
    by construction."""
    base_runs: tuple[RecordFile, ...] = field(default=(), repr=False)
    new_runs: tuple[RecordFile, ...] = field(default=(), repr=False)
    """Each side's records (several: the trials of a --trials directory), for the compare page."""

    @property
    def regressed(self) -> list[str]:
        return [delta.metric for delta in self.deltas if delta.regressed]


def compare(base: Path | str, new: Path | str, limits: Sequence[str] = ()) -> Comparison:
    """Compare the run `new` with the reference run `base` (either may be a `--trials` directory: its
    trials are pooled); `limits` are `METRIC=PCT` texts (the largest tolerated worsening of each),
    replacing the default limit of their metric; the other defaults stay. A change is a regression
    only when its whole 95 % interval lies beyond; throughputs of different workloads are not judged."""
    parsed = dict(parse_limit(text) for text in limits)
    base_files = [read_runs(run) for run in trial_dirs(Path(base))]
    new_files = [read_runs(run) for run in trial_dirs(Path(new))]
    workloads = {json.dumps(f.header.get("workload"), sort_keys=True) for f in (*base_files, *new_files)}
    same = len(workloads) == 1
    return Comparison(compare_runs(base_files, new_files, parsed, rates_comparable=same), same, tuple(base_files),
                      tuple(new_files))
