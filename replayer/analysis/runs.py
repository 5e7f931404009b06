"""A run directory read back: its records, its summary, and the files a run leaves beside them.

The summary is a function of the records file alone (header, records, trailer), so `replayer
report RUN` reproduces a run's own summary even when `summary.json` is gone, and a run merged
from shards has the same sections as one replayed in one process.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from replayer.analysis.html import render_html
from replayer.analysis.json_report import summary_json
from replayer.analysis.slo import SLO_OUT_OF_REACH, evaluate, parse_slos
from replayer.analysis.summary import CLIENT_LIMITED_LAG_MS, Summary, measured, summarize
from replayer.analysis.timeseries import time_series, write_series_csv
from replayer.errors import InputError
from replayer.records import (
    RecordFile,
    append_trailer,
    read_records,
    read_server_metrics,
    record_to_json,
    write_record_lines,
)

_TIME_FIELDS = ("intended_ns", "sent_ns", "first_token_ns", "end_ns")


def records_path(run: Path) -> Path:
    """The records file of `run`, a run directory or the records file itself."""
    return run / "records.jsonl" if run.is_dir() else run


def trial_dirs(run: Path) -> list[Path]:
    """The runs of `run`: its trial directories when it holds `--trials` (a `trials.json`), else itself."""
    if (run / "trials.json").is_file():
        trials = sorted(run.glob("trial-*/"), key=lambda path: int(path.name.partition("-")[2] or 0))
        if trials:
            return trials
    return [run]


def read_run(run: Path) -> tuple[Path, RecordFile]:
    """(records path, its RecordFile) for a run directory or a records file."""
    path = records_path(run)
    return path, read_records(path)


def run_settings(record_file: RecordFile) -> dict[str, Any]:
    """The settings the summary depends on, from the records header: whether the run streamed, its
    lag limit, its SLOs and its warm-up (records of older versions kept these at the config's top level)."""
    header = record_file.header
    config = header.get("config") or {}
    output = config.get("output") or config
    return {"streamed": (header.get("target") or {}).get("stream", True),
            "lag_limit_ms": output.get("lag_limit_ms", CLIENT_LIMITED_LAG_MS),
            "slos": tuple(output.get("slos") or ()),
            "warmup_s": output.get("warmup_s") or 0.0}


def summarize_run(record_file: RecordFile, slos: tuple[str, ...] | list[str] | None = None) -> Summary:
    """A run's summary from its records file: the metrics with the settings it ran with, how it
    stopped and what only the run saw (from the trailer), and the SLO section for `slos`, or else
    for the SLOs the run was given."""
    settings = run_settings(record_file)
    summary = summarize(record_file.records, streamed=settings["streamed"],
                        client_limited_lag_ms=settings["lag_limit_ms"], warmup_s=settings["warmup_s"])
    trailer = record_file.trailer or {}
    summary["interrupted"] = trailer.get("stop_reason") if record_file.trailer is not None else "unfinished"
    summary["client_cpu_s"] = trailer.get("client_cpu_s")
    if trailer.get("server_metrics") is not None:
        summary["server_metrics"] = trailer["server_metrics"]
    if record_file.header.get("scale_out"):
        summary["scale_out"] = record_file.header["scale_out"]
    texts = slos or settings["slos"]
    if texts:
        verdict = evaluate(parse_slos(texts), measured(record_file.records), summary, streamed=settings["streamed"])
        if (summary["interrupted"] or "").startswith(SLO_OUT_OF_REACH):
            verdict["passed"] = False  # what ran may look fine, but the rest could not have saved it
            verdict["stopped_early"] = summary["interrupted"]
        summary["slo"] = verdict
    return summary


def write_run_outputs(out_dir: Path, record_file: RecordFile, summary: Summary) -> None:
    """summary.json, timeseries.csv and report.html beside a run's records (raises OSError)."""
    streamed = run_settings(record_file)["streamed"]
    series = time_series(record_file.records, streamed=streamed)
    write_series_csv(series, out_dir / "timeseries.csv")
    (out_dir / "summary.json").write_text(summary_json(summary))
    samples = read_server_metrics(out_dir / "server_metrics.csv")
    (out_dir / "report.html").write_text(render_html(summary, record_file.records, series, f"replayer run {out_dir}",
                                                     samples, streamed, record_file.header), encoding="utf-8")


def merge_record_files(files: list[tuple[Path, RecordFile]]) -> RecordFile:
    """One run from several shards' records (`--shard K/N`): times shifted onto the first file's t0
    (by the difference of their wall-clock t0s), ids checked to be disjoint, a header naming the
    shards (`shards`; `shard` None: the merged run is all of them) and their workers summed, and one
    trailer whose stop reason is the first shard's that stopped early and whose CPU time is the
    shards' sum."""
    base = files[0][1]
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
    shards = [record_file.header.get("shard") for _, record_file in files]
    header = {**base.header, "shard": None, "merged_from": [str(path) for path, _ in files], "shards": shards,
              "workers": sum(int(record_file.header.get("workers") or 1) for _, record_file in files),
              **shard_completeness(shards, [(str(path), record_file) for path, record_file in files])}
    return RecordFile(header, records, any(record_file.torn_last_line for _, record_file in files),
                      _merged_trailer([record_file.trailer for _, record_file in files]))


def shard_completeness(shards: list[Any], files: list[tuple[str, RecordFile]]) -> dict[str, list]:
    """Which of the N shards (`--shard K/N`) are not among the merged ones (`shards_missing`), and which
    merged ones did not finish (`shards_incomplete`: no trailer, or a last line cut short, as a killed
    pod leaves them; their finished records are all kept)."""
    counts = {int(shard[1]) for shard in shards if shard}
    present = {int(shard[0]) for shard in shards if shard}
    missing = sorted(set(range(max(counts))) - present) if counts else []
    incomplete = [path for path, record_file in files if record_file.trailer is None or record_file.torn_last_line]
    return {"shards_missing": missing, "shards_incomplete": incomplete}


def _merged_trailer(trailers: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    if any(trailer is None for trailer in trailers):
        return None  # a shard that never finished leaves the merged run unfinished too
    present = [trailer for trailer in trailers if trailer is not None]
    reasons = [trailer.get("stop_reason") for trailer in present if trailer.get("stop_reason")]
    return {"stop_reason": reasons[0] if reasons else None,
            "client_cpu_s": sum(trailer.get("client_cpu_s") or 0.0 for trailer in present),
            "server_metrics": present[0].get("server_metrics") if present else None}


def write_record_file(path: Path, record_file: RecordFile) -> None:
    """Write a (merged) run's records file, trailer included."""
    write_record_lines(path, record_file.header, map(record_to_json, record_file.records))
    if record_file.trailer is not None:
        append_trailer(path, record_file.trailer)
