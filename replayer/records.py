"""`RequestRecord` and the `records.jsonl` file: the contract between the run and every report.

The file starts with one header line (`{"header": {...}}`: tool version, config, trace, t0 wall time)
and then holds one line per finished request, written and flushed as it finishes, so an interrupted
run leaves a valid file. The reader tolerates a torn last line (a crash mid-write).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO

from replayer.errors import InputError, OutputError

OK = "ok"
FAILURE_KINDS = ("connect", "dns", "tls", "timeout_connect", "timeout_first_token", "timeout_between_tokens",
                 "timeout_total", "http_<status>", "stream", "empty", "cancelled")
"""Failure kinds a record's `status` can take besides `ok` (`http_<status>` e.g. `http_429`)."""


@dataclass(slots=True)
class RequestRecord:
    """What happened to one request. Times are integer nanoseconds from the run's t0.

    `first_token_ns` / `end_ns` are the arrivals of the first and last output-bearing chunks (for a
    failure, `end_ns` is when it was detected). `served_*_tokens` come from the server's `usage`;
    `output_counted` is true when the server gave none and output chunks were counted instead.
    `turn` is the turn number within a session (0 outside sessions); `session_wait_ns` is how long
    the turn waited past its instant for its session's previous turn to finish (part of its
    schedule lag, `sent_ns - intended_ns`). `retries` counts re-sends after 429 answers (only with
    `--retry-429`); the times still run from the first send.
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
    itl_ms: list[float] = field(default_factory=list)
    turn: int = 0
    session_wait_ns: int = 0
    retries: int = 0

    @property
    def ok(self) -> bool:
        return self.status == OK

    def fail(self, kind: str, message: str | None, at_ns: int) -> None:
        """Mark the request failed, keeping whatever timings and counts it had gathered."""
        self.status = kind
        self.error = message
        self.end_ns = at_ns


_FIELDS = tuple(f.name for f in fields(RequestRecord))


def record_to_json(record: RequestRecord) -> str:
    return json.dumps({name: getattr(record, name) for name in _FIELDS}, separators=(",", ":"))


class RecordWriter:
    """Writes the header and then one line per record, each flushed to the OS as it is written."""

    def __init__(self, path: Path, header: dict):
        self.path = path
        try:
            self._file: IO[str] = open(path, "w", encoding="utf-8", buffering=1)
            self._file.write(json.dumps({"header": header}, separators=(",", ":")) + "\n")
        except OSError as exc:
            raise OutputError(f"{path}: cannot write records ({exc.strerror or exc})") from None
        self.count = 0

    def write(self, record: RequestRecord) -> None:
        self.write_line(record_to_json(record))

    def write_line(self, line: str) -> None:
        """One record already serialized (as read back from a worker's file)."""
        self._file.write(line + "\n")
        self.count += 1

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


def record_lines(path: Path) -> list[str]:
    """The complete record lines of a records file, header left out; a torn last line (a writer
    killed mid-line) is dropped."""
    return path.read_text(encoding="utf-8").split("\n")[1:-1]


@dataclass
class RecordFile:
    """A read `records.jsonl`: its header, its records, and whether its last line was torn."""

    header: dict
    records: list[RequestRecord]
    torn_last_line: bool = False


def read_records(path: Path) -> RecordFile:
    """Read a records file; a malformed line other than a torn last one is an InputError."""
    source = str(path)
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except OSError as exc:
        raise InputError(source, f"cannot read records: {exc.strerror}") from None
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
    records: list[RequestRecord] = []
    torn = False
    for number, line in enumerate(lines[1:], start=2):
        try:
            data = json.loads(line)
            records.append(RequestRecord(**data))
        except (ValueError, TypeError) as exc:
            if torn_possible and number == len(lines):
                torn = True
                break
            raise InputError(source, f"malformed record: {exc}", line=number) from None
    return RecordFile(header, records, torn)
