"""The run directory's files, the contract between the online half (a run) and the offline half
(every report): `RequestRecord` and `records.jsonl`, and the server's `server_metrics.csv`.

`records.jsonl` starts with one header line (`{"header": {...}}`: tool version, config, workload,
target, t0), holds one line per finished request, written and flushed as it finishes, and ends with
one trailer line (`{"trailer": {...}}`: how the run stopped, the client's CPU, what the server's
metrics endpoint gave) once the run is over. Everything a summary needs is in these lines, so a
summary computed from the file alone equals the run's own. An interrupted run leaves a valid file;
the reader tolerates a torn last line (a crash mid-write) and a missing trailer (a killed process).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import msgspec

from replayer.errors import InputError, OutputError

OK = "ok"
CONNECT, DNS, TLS = "connect", "dns", "tls"
TIMEOUT_CONNECT, TIMEOUT_FIRST_TOKEN = "timeout_connect", "timeout_first_token"
TIMEOUT_BETWEEN_TOKENS, TIMEOUT_TOTAL = "timeout_between_tokens", "timeout_total"
STREAM, EMPTY, CANCELLED = "stream", "empty", "cancelled"
"""The failure kinds a record's `status` can take besides `ok` and `http_<status>` (see `http_failure`)."""
LABEL_KINDS = ("model", "log_type", "type", "recorded")
"""The trace labels a record's `labels` may hold, in the order breakdowns show them: the row's model
and log type (BurstGPT), its request type (Qwen-Bailian: text, search, image, file), and, with
`--include-failed`, whether the recording's system answered it (`answered`) or failed it (`failed`)."""
SERVER_METRICS_SERIES = ("running", "waiting", "kv_cache_usage", "preemptions")
"""The columns of `server_metrics.csv` after `t_s`."""


def http_failure(status: int) -> str:
    """The failure kind of an HTTP error answer, e.g. `http_429`."""
    return f"http_{status}"


@dataclass(slots=True)
class RequestRecord:
    """What happened to one request. Times are integer nanoseconds from the run's t0.

    `first_token_ns` / `end_ns` are the arrivals of the first and last output-bearing chunks (for a
    failure, `end_ns` is when it was detected); `itl_us` holds the gaps between consecutive
    output-bearing chunks in whole microseconds (the precision every ITL statistic reports).
    `served_*_tokens` come from the server's `usage`; `output_counted` is true when the server gave
    none and output chunks were counted instead.
    `turn` is the turn number within a session (0 outside sessions); `session_wait_ns` is how long
    the turn waited past its instant for its session's previous turn to finish (part of its
    schedule lag, `sent_ns - intended_ns`); `cap_wait_ns` is how long it then waited for a slot under
    `--max-concurrency` (part of the lag too, and of the user-view latencies). `retries` counts
    re-sends after 429 answers (only with `--retry-429`); the times still run from the first send.
    `labels` holds the trace's labels of the row (`LABEL_KINDS`: model, log type, request type, recorded
    outcome), when the trace has more than one of them. `warmup` marks a
    request sent within the run's warm-up.
    """

    id: int
    intended_ns: int
    input_tokens: int
    output_tokens: int
    sent_ns: int | None = None
    first_token_ns: int | None = None
    end_ns: int | None = None
    status: str = OK
    error: str | None = None
    served_input_tokens: int | None = None
    served_output_tokens: int | None = None
    output_counted: bool = False
    itl_us: list[int] = field(default_factory=list)
    turn: int = 0
    session_wait_ns: int = 0
    cap_wait_ns: int = 0
    retries: int = 0
    labels: dict[str, str] | None = None
    """The trace's labels of this request (BurstGPT's model and log type) for the summary's breakdowns."""
    recorded_e2e_ms: float | None = None
    """How long this request took on the recording's production system (BurstGPT v3 `Elapsed time`),
    to set the served end-to-end latency beside."""
    warmup: bool = False
    """Sent within the run's `--warmup` seconds: recorded, but kept out of every statistic and SLO."""

    @property
    def ok(self) -> bool:
        return self.status == OK

    @property
    def client_lag_ns(self) -> int:
        """The schedule lag the client itself caused: the lag less the waits for a session's earlier
        turn and for a `--max-concurrency` slot (0 for a request never sent)."""
        if self.sent_ns is None:
            return 0
        return self.sent_ns - self.intended_ns - self.session_wait_ns - self.cap_wait_ns

    def fail(self, kind: str, message: str | None, at_ns: int) -> None:
        """Mark the request failed, keeping whatever timings and counts it had gathered."""
        self.status = kind
        self.error = message
        self.end_ns = at_ns


_TRAILER_PREFIX = '{"trailer":'
_ENCODE = msgspec.json.Encoder().encode
_DECODE = msgspec.json.Decoder(RequestRecord).decode
_LEGACY_ITL = '"itl_ms":'
"""Records written before ITL went to integer microseconds carry `itl_ms`, floats in ms."""


def record_to_json(record: RequestRecord) -> str:
    """One record as its `records.jsonl` line (without the newline)."""
    return _ENCODE(record).decode()


def record_from_json(line: str) -> RequestRecord:
    """One `records.jsonl` line back as a record; raises ValueError (naming the field) if it is not one."""
    if _LEGACY_ITL in line:
        data = json.loads(line)
        if isinstance(data, dict) and isinstance(data.get("itl_ms"), list):
            data["itl_us"] = [round(gap * 1000) for gap in data.pop("itl_ms")]
            line = json.dumps(data)
    try:
        return _DECODE(line)
    except msgspec.DecodeError as exc:  # (a ValidationError too: a field of the wrong type)
        raise ValueError(str(exc)) from None


def _meta_line(key: str, value: dict) -> str:
    return json.dumps({key: value}, separators=(",", ":")) + "\n"


class RecordWriter:
    """Writes the header and then one line per record, each flushed to the OS as it is written."""

    def __init__(self, path: Path, header: dict):
        self.path = path
        try:
            self._file: IO[bytes] = open(path, "wb")
            self._append(_meta_line("header", header).encode())
        except OSError as exc:
            raise OutputError(f"{path}: cannot write records ({exc.strerror or exc})") from None
        self.count = 0

    def write(self, record: RequestRecord) -> None:
        """Append one finished request."""
        self._append(_ENCODE(record) + b"\n")
        self.count += 1

    def write_line(self, line: str) -> None:
        """Append one record already serialized (as read back from a worker's file)."""
        self._append(line.encode() + b"\n")
        self.count += 1

    def _append(self, data: bytes) -> None:
        self._file.write(data)
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def write_record_lines(path: Path, header: dict, lines: Iterable[str]) -> int:
    """Write a records file from a header and serialized record lines (merged shards, a worker's
    part files); returns how many lines were written."""
    writer = RecordWriter(path, header)
    try:
        for line in lines:
            writer.write_line(line)
    finally:
        writer.close()
    return writer.count


def append_trailer(path: Path, trailer: dict) -> None:
    """End a finished run's records file with its trailer: how the run stopped and what only the
    run itself saw (its CPU time, the server's metrics endpoint). Raises OSError when it cannot."""
    with open(path, "a", encoding="utf-8") as out:
        out.write(_meta_line("trailer", trailer))


def record_lines(path: Path) -> list[str]:
    """The complete record lines of a records file, header and trailer left out; a torn last line
    (a writer killed mid-line) is dropped."""
    lines = path.read_text(encoding="utf-8").split("\n")[1:-1]
    return [line for line in lines if not line.startswith(_TRAILER_PREFIX)]


@dataclass
class RecordFile:
    """A read `records.jsonl`: its header, its records, its trailer (None when the run never ended
    normally) and whether its last line was torn."""

    header: dict
    records: list[RequestRecord]
    torn_last_line: bool = False
    trailer: dict | None = None


def read_records(path: Path) -> RecordFile:
    """Read a records file; a malformed line other than a torn last one is an InputError."""
    source = str(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(source, f"cannot read records: {getattr(exc, 'strerror', None) or exc}") from None
    if lines and lines[-1] == "":
        lines.pop()
        torn_possible = False
    else:
        torn_possible = True  # no final newline: the last line may be a partial write
    if not lines:
        raise InputError(source, "empty records file")
    try:
        header = json.loads(lines[0])["header"]
    except (ValueError, KeyError, TypeError):
        raise InputError(source, "first line is not a replayer records header", line=1) from None
    trailer = _trailer(lines, source)
    if trailer is not None:
        lines.pop()
    records: list[RequestRecord] = []
    torn = False
    for number, line in enumerate(lines[1:], start=2):
        try:
            records.append(record_from_json(line))
        except ValueError as exc:
            if torn_possible and number == len(lines):
                torn = True
                break
            raise InputError(source, f"malformed record: {exc}", line=number) from None
    return RecordFile(header, records, torn, trailer)


def _trailer(lines: list[str], source: str) -> dict | None:
    """The trailer on the last line, if the file has one."""
    if len(lines) < 2 or not lines[-1].startswith(_TRAILER_PREFIX):
        return None
    try:
        trailer = json.loads(lines[-1])["trailer"]
    except (ValueError, KeyError):
        raise InputError(source, "malformed trailer", line=len(lines)) from None
    if not isinstance(trailer, dict):
        raise InputError(source, "malformed trailer", line=len(lines))
    return trailer


ServerSample = tuple[float, dict[str, float]]
"""One sample of the server's metrics: seconds from t0, and the value of each series it exposed."""


def write_server_metrics(samples: Iterable[ServerSample], path: Path) -> None:
    """`server_metrics.csv`: one row per sample, an empty cell where the server gave no value."""
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(("t_s", *SERVER_METRICS_SERIES))
        for t_s, values in samples:
            writer.writerow((round(t_s, 3), *("" if values.get(name) is None else values[name]
                                              for name in SERVER_METRICS_SERIES)))


def read_server_metrics(path: Path) -> list[ServerSample]:
    """Samples back from a run's `server_metrics.csv` (none if the file is absent)."""
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as source:
        return [(float(row["t_s"]), {name: float(row[name]) for name in SERVER_METRICS_SERIES if row.get(name)})
                for row in csv.DictReader(source)]
