"""Reading trace files in blocks: CSV through Arrow's multithreaded C reader, or in blocks split at
C speed where the rows are plain, JSON lines in chunks of rows, each with its line numbers, and the
checks and conversions (times, datetimes, durations) every reader applies to a column.

Arrow reads a whole CSV into columns without line numbers. Whatever it refuses, and any check that
fails on what it read, sends the reader back to the block path (`LinesNeeded`), which finds the
offending line and names it. Measured on the 2-core development VM, a 1.43 M-row BurstGPT-format
file took 4.4 s through the blocks and 0.30 s through Arrow, pyarrow's import included.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from replayer.errors import InputError
from replayer.traces.model import Categorical

BLOCK_BYTES = 8 << 20
"""Bytes of CSV parsed per block: bounds the memory of the Python-object stage of parsing."""


@dataclass
class Chunk:
    """Raw columns (bytes or str values) of a block of rows, with each row's line number in the file;
    or, read by Arrow, the whole file's columns already typed, with no line numbers (`lines` None)."""

    columns: dict[str, Any]
    lines: np.ndarray | None


class LinesNeeded(Exception):
    """A check failed on columns read without line numbers: read again in blocks to name the line."""


@dataclass(frozen=True)
class Labels:
    """A label column as Arrow read it: codes into labels (`CategoryBuilder.add` takes it whole)."""

    codes: np.ndarray
    labels: list[str]


def arrow_chunk(path: Path, required: Sequence[str], optional: Sequence[str],
                kinds: dict[str, type]) -> Chunk | None:
    """The named columns of a whole CSV file, read by Arrow: numbers as numpy arrays of their kind
    (`np.int64`, `np.float64`), `str` columns as `Labels`, `bytes` columns as text (an object array of
    str, for the readers that parse it further). None when Arrow cannot read the file as
    plainly typed columns (a missing column, a bad value, a ragged row): then read it in blocks."""
    try:
        import pyarrow as pa
        import pyarrow.csv as pa_csv
    except ImportError:  # (an installation without it still reads every trace, more slowly)
        return None
    with open_binary(path) as probe:
        header = header_names(probe.readline())
    present = {name.strip(): name for name in header}
    if any(name not in present for name in required):
        return None
    wanted = [name for name in (*required, *optional) if name in present]
    types = {np.int64: pa.int64(), np.float64: pa.float64(), str: pa.dictionary(pa.int32(), pa.string()),
             bytes: pa.string()}
    try:
        with open_binary(path) as handle:
            table = pa_csv.read_csv(handle, convert_options=pa_csv.ConvertOptions(
                include_columns=[present[name] for name in wanted],
                column_types={present[name]: types[kinds[name]] for name in wanted}))
    except (pa.ArrowException, ValueError, UnicodeDecodeError):
        return None
    if not table.num_rows:
        return None
    columns: dict[str, Any] = {}
    for name in wanted:
        column = table.column(present[name])
        if column.null_count:
            return None  # an empty cell: the blocks name its line
        if kinds[name] is str:
            combined = column.unify_dictionaries().combine_chunks()
            columns[name] = Labels(combined.indices.to_numpy(zero_copy_only=False).astype(np.int32),
                                   combined.dictionary.to_pylist())
        else:
            columns[name] = column.to_numpy()
    return Chunk(columns, None)



def header_names(line: bytes) -> list[str]:
    """The column names of a CSV header line, as written (the readers match them stripped)."""
    return next(csv.reader([line.decode("utf-8", "replace")]), [])


def open_binary(path: Path) -> io.BufferedIOBase:
    """Open a trace for reading bytes, transparently un-gzipping."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def _blocks(handle: io.BufferedIOBase) -> Iterator[bytes]:
    """The rest of the file in blocks of whole lines (each block ends at a line break)."""
    carry = b""
    while True:
        block = handle.read(BLOCK_BYTES)
        if not block:
            if carry:
                yield carry
            return
        data = carry + block
        cut = data.rfind(b"\n")
        if cut < 0:
            carry = data
            continue
        carry = data[cut + 1:]
        yield data[:cut + 1]


def _split_fast(block: bytes, width: int) -> list[bytes] | None:
    """All fields of a block of plain CSV rows, row-major, split in C; None when the block needs the
    full CSV grammar (quotes, blank lines, a row of the wrong width): the slow path then names the line."""
    if b'"' in block or b"\n\n" in block or block.startswith(b"\n"):
        return None
    body = block[:-1] if block.endswith(b"\n") else block
    fields = body.replace(b"\n", b",").split(b",")
    rows = body.count(b"\n") + 1
    return fields if len(fields) == rows * width else None


def _split_slow(block: bytes, width: int, first_line: int, source: str) -> tuple[list[list[str]], np.ndarray]:
    """Rows of a block parsed with the csv module (quotes, blank lines), with their line numbers."""
    reader = csv.reader(io.StringIO(block.decode("utf-8", "replace"), newline=""))
    rows, lines = [], []
    for row in reader:
        line = first_line + reader.line_num - 1
        if not row:
            continue
        if len(row) != width:
            raise InputError(source, f"expected {width} fields, found {len(row)}", line=line)
        rows.append(row)
        lines.append(line)
    return rows, np.asarray(lines, dtype=np.int64)


def csv_chunks(path: Path, required: Sequence[str], optional: Sequence[str] = (),
               kinds: dict[str, type] | None = None) -> Iterator[Chunk]:
    """Stream the named columns of a CSV file block by block; columns are found by name, not position.
    Given every column's kind (see `arrow_chunk`), the whole file comes as one typed chunk from Arrow
    when Arrow can read it."""
    if kinds is not None:
        chunk = arrow_chunk(path, required, optional, kinds)
        if chunk is not None:
            yield chunk
            return
    source = str(path)
    with open_binary(path) as handle:
        first = handle.readline()
        if not first.strip():
            raise InputError(source, "empty file (no header row)")
        header = header_names(first)
        position = {name.strip(): i for i, name in enumerate(header)}
        for name in required:
            if name not in position:
                raise InputError(source, "missing column (header has: " + ", ".join(map(shown, header)) + ")", line=1,
                                 field=name)
        wanted = [name for name in (*required, *optional) if name in position]
        width = len(header)
        line = 2
        for block in _blocks(handle):
            if b"\r" in block:
                block = block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            lines_in_block = block.count(b"\n") + (not block.endswith(b"\n"))
            fields = _split_fast(block, width)
            columns: dict[str, list[bytes] | list[str]]
            if fields is not None:
                columns = {name: fields[position[name]::width] for name in wanted}
                lines = np.arange(line, line + lines_in_block, dtype=np.int64)
            else:
                rows, lines = _split_slow(block, width, line, source)
                columns = {name: [row[position[name]] for row in rows] for name in wanted}
            line += lines_in_block
            if len(lines):
                yield Chunk(columns, lines)


def numbers(chunk: Chunk, name: str, source: str, dtype: type) -> np.ndarray:
    """Convert one string column to numbers, naming the first bad row's line on failure."""
    values = chunk.columns[name]
    if chunk.lines is None:  # (typed already)
        return values
    try:
        return np.asarray(values).astype(dtype)
    except (ValueError, TypeError, OverflowError):
        convert = int if dtype is np.int64 else float
        for value, line in zip(values, chunk.lines):
            try:
                convert(value)
            except (ValueError, TypeError, OverflowError):
                kind = "an integer" if dtype is np.int64 else "a number"
                raise InputError(source, f"not {kind}: {cell_text(value)!r}", line=int(line), field=name) from None
        raise InputError(source, "values not readable as numbers", field=name) from None


def shown(name: str) -> str:
    """A header name as an error message shows it: quoted when it holds control characters."""
    return name if name.isprintable() else repr(name)


def cell_text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def check_token_counts(values: np.ndarray, chunk: Chunk, name: str, source: str) -> None:
    check_counts(values, chunk, name, source, "token count")


def check_counts(values: np.ndarray, chunk: Chunk, name: str, source: str, what: str) -> None:
    """A count column (`what`: token count, image count) has no negative value, else name its line."""
    bad = np.flatnonzero(values < 0)
    if bad.size:
        if chunk.lines is None:
            raise LinesNeeded(name)
        i = int(bad[0])
        raise InputError(source, f"negative {what}: {values[i]}", line=int(chunk.lines[i]), field=name)


def check_times(values: np.ndarray, chunk: Chunk, name: str, source: str) -> None:
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        if chunk.lines is None:
            raise LinesNeeded(name)
        i = int(bad[0])
        raise InputError(source, f"timestamp must be a finite number >= 0, got {cell_text(chunk.columns[name][i])!r}",
                         line=int(chunk.lines[i]), field=name)



BLOCK_ROWS_JSONL = 100_000
"""Rows of a JSON-lines file converted per chunk."""


def jsonl_chunks(path: Path, names: Sequence[str], required: Sequence[str]) -> Iterator[Chunk]:
    """Stream named fields of a JSON-lines file in chunks of rows, with line numbers."""
    source = str(path)
    values: dict[str, list] = {name: [] for name in names}
    lines: list[int] = []
    with open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except UnicodeDecodeError:
                raise InputError(source, "not UTF-8 text", line=number) from None
            except ValueError as exc:
                raise InputError(source, f"not valid JSON ({getattr(exc, 'msg', exc)})", line=number) from None
            if not isinstance(row, dict):
                raise InputError(source, "expected a JSON object per line", line=number)
            for name in names:
                if name not in row and name in required:
                    raise InputError(source, "missing field", line=number, field=name)
                value = row.get(name)
                if name in required and isinstance(value, (list, dict)):
                    raise InputError(source, f"expected a single value, got {type(value).__name__}", line=number,
                                     field=name)
                values[name].append(value if isinstance(value, (list, str)) or value is None else str(value))
            lines.append(number)
            if len(lines) >= BLOCK_ROWS_JSONL:
                yield Chunk(values, np.asarray(lines))
                values, lines = {name: [] for name in names}, []
    if lines:
        yield Chunk(values, np.asarray(lines))


class CategoryBuilder:
    """Accumulates a string column block by block into a `Categorical` (labels in first-seen order)."""

    def __init__(self) -> None:
        self._index: dict[bytes | str, int] = {}
        self._codes: list[np.ndarray] = []

    def add(self, values: list | Labels) -> None:
        index = self._index
        if isinstance(values, Labels):
            if not index:  # (Arrow's unified dictionary is unique: its codes are ours as they are)
                index.update(zip(values.labels, range(len(values.labels))))
                self._codes.append(values.codes)
                return
            codes = np.asarray([index.setdefault(label, len(index)) for label in values.labels], dtype=np.int32)
            self._codes.append(codes[values.codes] if codes.size else values.codes)
            return
        self._codes.append(np.fromiter((index.setdefault(v, len(index)) for v in values), np.int32, len(values)))

    def build(self) -> Categorical:
        codes = np.concatenate(self._codes) if self._codes else np.zeros(0, np.int32)
        try:
            labels = tuple(map(str.strip, self._index))  # type: ignore[arg-type]  # (text, from Arrow or JSON)
        except TypeError:  # (bytes, from the block reader)
            labels = tuple(cell_text(label).strip() for label in self._index)
        return Categorical(codes, labels)


TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
TIME_UNIT_CHOICES = (*TIME_UNITS, "datetime")
"""Units a time column can be in (`datetime`: ISO wall-clock times)."""


def datetimes_ns(values: list, lines: np.ndarray | None, source: str, name: str) -> np.ndarray:
    """ISO-like wall-clock times (`2023-11-16 18:15:46.6805900`, `2026-06-01T09:30:00Z`, optionally
    `+00:00`) → epoch ns (UTC)."""
    try:
        text = np.asarray(values).astype(str)
        for suffix in UTC_SUFFIXES:
            utc = np.char.endswith(text, suffix)
            if utc.any():
                text = np.where(utc, np.char.replace(text, suffix, ""), text)
        return text.astype("datetime64[ns]").astype(np.int64)
    except ValueError:  # (a byte that is not ASCII, too)
        if lines is None:
            raise LinesNeeded(name) from None
        for value, line in zip(values, lines):
            shown = cell_text(value)
            try:
                np.datetime64(_without_utc_suffix(shown), "ns")
            except ValueError:
                raise InputError(source, f"not a timestamp: {shown!r}", line=int(line), field=name) from None
        raise InputError(source, "timestamps not readable", field=name) from None


UTC_SUFFIXES = ("+00:00", "Z")
"""How an ISO time says it is UTC; any other zone offset is refused (numpy reads naive times only)."""


def _without_utc_suffix(text: str) -> str:
    for suffix in UTC_SUFFIXES:
        text = text.removesuffix(suffix)
    return text


def times_s(values: list, lines: np.ndarray | None, source: str, name: str,
             unit: str) -> tuple[np.ndarray, float | None]:
    """A time column in seconds, and the epoch base when the times are wall-clock datetimes."""
    if unit == "datetime":
        epoch_ns = datetimes_ns(values, lines, source, name)
        return epoch_ns.astype(np.float64), 0.0
    chunk = Chunk({name: values}, lines)
    times = numbers(chunk, name, source, np.float64)
    check_times(times, chunk, name, source)
    return times * TIME_UNITS[unit], None


def durations_s(chunk: Chunk, name: str, source: str, scale: float) -> np.ndarray:
    """A recorded-duration column in seconds (`scale` per unit); a negative one is an error naming its line."""
    values = numbers(chunk, name, source, np.float64)
    bad = np.flatnonzero(~(values >= 0))
    if bad.size:
        if chunk.lines is None:
            raise LinesNeeded(name)
        raise InputError(source, f"not a duration: {values[bad[0]]}", line=int(chunk.lines[bad[0]]), field=name)
    return values * scale
