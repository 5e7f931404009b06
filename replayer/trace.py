"""Trace files → `Trace`: one reader per public format, columnar (numpy) and streamed in chunks.

A `Trace` is what was recorded, untouched: every row of the file, in time order, with its row index
in the source as a stable request id. Shaping (windows, filters, scaling) happens in `workload.py`.
"""

from __future__ import annotations

import csv
import gzip
import io
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from replayer.errors import InputError

BLOCK_BYTES = 8 << 20
"""Bytes of CSV parsed per block: bounds the memory of the Python-object stage of parsing."""

SAMPLES = {
    "burstgpt-1": "BurstGPT_1_first400.csv",
    "burstgpt-3": "BurstGPT_3_first400.csv",
    "azure-2023-conv": "AzureLLMInferenceTrace_conv.csv",
}
"""Real trace samples bundled with the package (see `replayer/data/README.md` for attribution)."""


@dataclass(frozen=True)
class Categorical:
    """A string column stored as integer codes into a small label table."""

    codes: np.ndarray
    labels: tuple[str, ...]

    def take(self, index: np.ndarray) -> Categorical:
        return Categorical(self.codes[index], self.labels)

    def values(self) -> np.ndarray:
        """The label of every row, as an object array."""
        return np.asarray(self.labels, dtype=object)[self.codes]

    def code_of(self, label: str) -> int | None:
        """The code of `label`, or None when no row has it."""
        return self.labels.index(label) if label in self.labels else None


@dataclass(frozen=True)
class Trace:
    """A recorded trace: one entry per request, sorted by arrival time.

    `arrival_s` is relative to the first arrival; `origin_s` is the first arrival in the file's own
    time base (seconds), an epoch time when `origin_is_epoch`.
    """

    source: str
    format: str
    row_ids: np.ndarray
    arrival_s: np.ndarray
    input_tokens: np.ndarray
    output_tokens: np.ndarray
    origin_s: float = 0.0
    origin_is_epoch: bool = False
    models: Categorical | None = None
    log_types: Categorical | None = None
    sessions: Categorical | None = None
    warnings: tuple[str, ...] = field(default=())

    def __len__(self) -> int:
        return len(self.row_ids)

    @property
    def span_s(self) -> float:
        return float(self.arrival_s[-1]) if len(self) else 0.0

    def take(self, index: np.ndarray) -> Trace:
        """The rows selected by a boolean mask or an index array, keeping ids and time base."""

        def pick(column: Categorical | None) -> Categorical | None:
            return None if column is None else column.take(index)

        return Trace(
            source=self.source,
            format=self.format,
            row_ids=self.row_ids[index],
            arrival_s=self.arrival_s[index],
            input_tokens=self.input_tokens[index],
            output_tokens=self.output_tokens[index],
            origin_s=self.origin_s,
            origin_is_epoch=self.origin_is_epoch,
            models=pick(self.models),
            log_types=pick(self.log_types),
            sessions=pick(self.sessions),
            warnings=self.warnings,
        )


@dataclass
class _Chunk:
    """Raw columns (bytes or str values) of a block of rows, with each row's line number in the file."""

    columns: dict[str, list]
    lines: np.ndarray


def resolve_path(spec: str) -> Path:
    """A trace argument → a file path: `sample:<name>` names a bundled sample, anything else a file."""
    if spec.startswith("sample:"):
        name = spec.removeprefix("sample:")
        if name not in SAMPLES:
            known = ", ".join(f"sample:{n}" for n in SAMPLES)
            raise InputError(spec, f"unknown sample (known: {known})")
        return Path(str(resources.files("replayer") / "data" / SAMPLES[name]))
    path = Path(spec)
    if not path.is_file():
        raise InputError(spec, "no such file")
    return path


def _open_binary(path: Path) -> io.BufferedIOBase:
    """Open a trace for reading bytes, transparently un-gzipping."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_header(path: Path) -> list[str]:
    """The first CSV row of a file (the column names), or [] for an empty file."""
    with _open_binary(path) as handle:
        first = handle.readline().decode("utf-8", "replace")
    return next(csv.reader([first]), []) if first.strip() else []


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


def _csv_chunks(path: Path, required: Sequence[str], optional: Sequence[str] = ()) -> Iterator[_Chunk]:
    """Stream the named columns of a CSV file block by block; columns are found by name, not position."""
    source = str(path)
    with _open_binary(path) as handle:
        first = handle.readline()
        if not first.strip():
            raise InputError(source, "empty file (no header row)")
        header = next(csv.reader([first.decode("utf-8", "replace")]))
        position = {name.strip(): i for i, name in enumerate(header)}
        for name in required:
            if name not in position:
                raise InputError(source, "missing column (header has: " + ", ".join(header) + ")", line=1, field=name)
        wanted = [name for name in (*required, *optional) if name in position]
        width = len(header)
        line = 2
        for block in _blocks(handle):
            if b"\r" in block:
                block = block.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            lines_in_block = block.count(b"\n") + (not block.endswith(b"\n"))
            fields = _split_fast(block, width)
            if fields is not None:
                columns = {name: fields[position[name]::width] for name in wanted}
                lines = np.arange(line, line + lines_in_block, dtype=np.int64)
            else:
                rows, lines = _split_slow(block, width, line, source)
                columns = {name: [row[position[name]] for row in rows] for name in wanted}
            line += lines_in_block
            if len(lines):
                yield _Chunk(columns, lines)


def _numbers(chunk: _Chunk, name: str, source: str, dtype: type) -> np.ndarray:
    """Convert one string column to numbers, naming the first bad row's line on failure."""
    values = chunk.columns[name]
    try:
        return np.asarray(values).astype(dtype)
    except ValueError:
        convert = int if dtype is np.int64 else float
        for value, line in zip(values, chunk.lines):
            try:
                convert(value)
            except ValueError:
                kind = "an integer" if dtype is np.int64 else "a number"
                raise InputError(source, f"not {kind}: {_text(value)!r}", line=int(line), field=name) from None
        raise


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _check_token_counts(values: np.ndarray, chunk: _Chunk, name: str, source: str) -> None:
    bad = np.flatnonzero(values < 0)
    if bad.size:
        i = int(bad[0])
        raise InputError(source, f"negative token count: {values[i]}", line=int(chunk.lines[i]), field=name)


def _check_times(values: np.ndarray, chunk: _Chunk, name: str, source: str) -> None:
    bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
    if bad.size:
        i = int(bad[0])
        raise InputError(source, f"timestamp must be a finite number >= 0, got {_text(chunk.columns[name][i])!r}",
                         line=int(chunk.lines[i]), field=name)


class _CategoryBuilder:
    """Accumulates a string column block by block into a `Categorical` (labels in first-seen order)."""

    def __init__(self) -> None:
        self._index: dict[bytes | str, int] = {}
        self._codes: list[np.ndarray] = []

    def add(self, values: list) -> None:
        index = self._index
        self._codes.append(np.fromiter((index.setdefault(v, len(index)) for v in values), np.int32, len(values)))

    def build(self) -> Categorical:
        codes = np.concatenate(self._codes) if self._codes else np.zeros(0, np.int32)
        return Categorical(codes, tuple(_text(label).strip() for label in self._index))


def _assemble(source: str, fmt: str, times_s: np.ndarray, inputs: np.ndarray, outputs: np.ndarray,
              *, epoch_base_s: float | None = None, **categoricals: Categorical | None) -> Trace:
    """Sort rows by time (stably, with a warning when the file was out of order) and make times relative.

    `epoch_base_s`, when given, says `times_s` count from that Unix time.
    """
    if len(times_s) == 0:
        raise InputError(source, "no data rows")
    row_ids = np.arange(len(times_s), dtype=np.int64)
    warnings: tuple[str, ...] = ()
    unsorted = int(np.count_nonzero(np.diff(times_s) < 0))
    if unsorted:
        order = np.argsort(times_s, kind="stable")
        times_s, inputs, outputs, row_ids = times_s[order], inputs[order], outputs[order], row_ids[order]
        categoricals = {k: None if v is None else v.take(order) for k, v in categoricals.items()}
        warnings = (f"{source}: rows were not in time order ({unsorted} steps backwards); sorted by timestamp",)
    first = float(times_s[0])
    return Trace(source=source, format=fmt, row_ids=row_ids, arrival_s=times_s - first,
                 input_tokens=inputs, output_tokens=outputs, origin_s=first + (epoch_base_s or 0.0),
                 origin_is_epoch=epoch_base_s is not None,
                 warnings=warnings, **categoricals)


BURSTGPT_COLUMNS = ("Timestamp", "Request tokens", "Response tokens")


def read_burstgpt(path: Path) -> Trace:
    """BurstGPT v1/v2 (`Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type`) and v3
    (adds `Session ID,Elapsed time`); columns are matched by name. Times are seconds."""
    source = str(path)
    times, inputs, outputs = [], [], []
    models, log_types, sessions = _CategoryBuilder(), _CategoryBuilder(), _CategoryBuilder()
    has: set[str] = set()
    for chunk in _csv_chunks(path, BURSTGPT_COLUMNS, ("Model", "Log Type", "Session ID")):
        chunk_times = _numbers(chunk, "Timestamp", source, np.float64)
        _check_times(chunk_times, chunk, "Timestamp", source)
        times.append(chunk_times)
        for name, out in (("Request tokens", inputs), ("Response tokens", outputs)):
            values = _numbers(chunk, name, source, np.int64)
            _check_token_counts(values, chunk, name, source)
            out.append(values)
        for name, builder in (("Model", models), ("Log Type", log_types), ("Session ID", sessions)):
            if name in chunk.columns:
                has.add(name)
                builder.add(chunk.columns[name])
    if not times:
        raise InputError(source, "no data rows")
    return _assemble(
        source, "burstgpt", np.concatenate(times), np.concatenate(inputs), np.concatenate(outputs),
        models=models.build() if "Model" in has else None,
        log_types=log_types.build() if "Log Type" in has else None,
        sessions=sessions.build() if "Session ID" in has else None,
    )


AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")


def _parse_azure_times(chunk: _Chunk, source: str) -> np.ndarray:
    """`2023-11-16 18:15:46.6805900` (2023) or `2024-05-10 00:00:00.009930+00:00` (2024) → epoch ns."""
    values = np.asarray(chunk.columns["TIMESTAMP"]).astype(str)
    utc = np.char.endswith(values, "+00:00")
    if utc.any():
        values = np.where(utc, np.char.replace(values, "+00:00", ""), values)
    try:
        return values.astype("datetime64[ns]").astype(np.int64)
    except ValueError:
        for value, line in zip(values, chunk.lines):
            try:
                np.datetime64(str(value), "ns")
            except ValueError:
                raise InputError(source, f"not a timestamp: {str(value)!r}", line=int(line), field="TIMESTAMP") from None
        raise


def read_azure(path: Path) -> Trace:
    """Azure LLM inference traces 2023/2024 (`TIMESTAMP,ContextTokens,GeneratedTokens`, UTC wall clock)."""
    source = str(path)
    stamps, inputs, outputs = [], [], []
    for chunk in _csv_chunks(path, AZURE_COLUMNS):
        stamps.append(_parse_azure_times(chunk, source))
        for name, out in (("ContextTokens", inputs), ("GeneratedTokens", outputs)):
            values = _numbers(chunk, name, source, np.int64)
            _check_token_counts(values, chunk, name, source)
            out.append(values)
    if not stamps:
        raise InputError(source, "no data rows")
    epoch_ns = np.concatenate(stamps)
    # Seconds relative to the first row are computed in integers, so 100 ns ticks survive float conversion.
    first_ns = int(epoch_ns.min())
    return _assemble(source, "azure", (epoch_ns - first_ns) / 1e9, np.concatenate(inputs),
                     np.concatenate(outputs), epoch_base_s=first_ns / 1e9)


READERS: dict[str, Callable[[Path], Trace]] = {
    "burstgpt": read_burstgpt,
    "azure": read_azure,
}
"""Trace readers by format name."""

_SIGNATURES: dict[str, tuple[str, ...]] = {
    "burstgpt": BURSTGPT_COLUMNS,
    "azure": AZURE_COLUMNS,
}


def sniff_format(path: Path) -> str:
    """Guess a file's format from its header row."""
    header = {name.strip() for name in read_header(path)}
    if not header:
        raise InputError(str(path), "empty file (no header row)")
    for fmt, columns in _SIGNATURES.items():
        if header.issuperset(columns):
            return fmt
    raise InputError(str(path), "unrecognised trace format; pass --format (one of: " + ", ".join(READERS) + ")",
                     line=1)


def read_trace(spec: str, fmt: str = "auto") -> Trace:
    """Read a trace file or bundled sample in the given format (`auto` sniffs it from the header)."""
    path = resolve_path(spec)
    if fmt == "auto":
        fmt = sniff_format(path)
    if fmt not in READERS:
        raise InputError(spec, f"unknown format {fmt!r} (one of: auto, " + ", ".join(READERS) + ")")
    return READERS[fmt](path)
