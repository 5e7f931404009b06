"""Trace files → `Trace`: one reader per public format, columnar (numpy) and streamed in chunks.

A `Trace` is what was recorded, untouched: every row of the file, in time order, with its row index
in the source as a stable request id. Shaping (windows, filters, scaling) happens in `workload.py`.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
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
    "mooncake-synthetic": "mooncake_synthetic_trace.jsonl",
}
"""Real trace samples bundled with the package (see `replayer/data/README.md` for attribution)."""

DEFAULT_TRACE = "sample:azure-2023-conv"
"""What `replayer run` replays when given neither --trace nor --synthetic."""


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
    prefix_blocks: np.ndarray | None = None
    """Per row, an int64 array of prefix-block ids (Mooncake `hash_ids`: 512-token blocks)."""
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
            prefix_blocks=None if self.prefix_blocks is None else self.prefix_blocks[index],
            warnings=self.warnings,
        )


@dataclass
class _Chunk:
    """Raw columns (bytes or str values) of a block of rows, with each row's line number in the file."""

    columns: dict[str, list]
    lines: np.ndarray


def resolve_path(spec: str) -> Path:
    """A trace argument → a file path: `sample:<name>` names a bundled sample, `family:variant` a public
    dataset (fetched into the cache on first use), anything else a file."""
    from replayer import datasets

    if datasets.is_dataset_name(spec) and not Path(spec).is_file():
        return datasets.fetch(spec)
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
                raise InputError(source, "missing column (header has: " + ", ".join(map(_shown, header)) + ")", line=1,
                                 field=name)
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
    except (ValueError, TypeError, OverflowError):
        convert = int if dtype is np.int64 else float
        for value, line in zip(values, chunk.lines):
            try:
                convert(value)
            except (ValueError, TypeError, OverflowError):
                kind = "an integer" if dtype is np.int64 else "a number"
                raise InputError(source, f"not {kind}: {_text(value)!r}", line=int(line), field=name) from None
        raise InputError(source, "values not readable as numbers", field=name) from None


def _shown(name: str) -> str:
    """A header name as an error message shows it: quoted when it holds control characters."""
    return name if name.isprintable() else repr(name)


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
              *, epoch_base_s: float | None = None, prefix_blocks: np.ndarray | None = None,
              **categoricals: Categorical | None) -> Trace:
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
        prefix_blocks = None if prefix_blocks is None else prefix_blocks[order]
        warnings = (f"{source}: rows were not in time order ({unsorted} steps backwards); sorted by timestamp",)
    first = float(times_s[0])
    return Trace(source=source, format=fmt, row_ids=row_ids, arrival_s=times_s - first,
                 input_tokens=inputs, output_tokens=outputs, origin_s=first + (epoch_base_s or 0.0),
                 origin_is_epoch=epoch_base_s is not None, prefix_blocks=prefix_blocks,
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


def _datetimes_ns(values: list, lines: np.ndarray, source: str, name: str) -> np.ndarray:
    """ISO-like wall-clock times (`2023-11-16 18:15:46.6805900`, optionally `+00:00`) → epoch ns (UTC)."""
    try:
        text = np.asarray(values).astype(str)
        utc = np.char.endswith(text, "+00:00")
        if utc.any():
            text = np.where(utc, np.char.replace(text, "+00:00", ""), text)
        return text.astype("datetime64[ns]").astype(np.int64)
    except ValueError:  # (a byte that is not ASCII, too)
        for value, line in zip(values, lines):
            shown = _text(value)
            try:
                np.datetime64(shown.removesuffix("+00:00"), "ns")
            except ValueError:
                raise InputError(source, f"not a timestamp: {shown!r}", line=int(line), field=name) from None
        raise InputError(source, "timestamps not readable", field=name) from None


def read_azure(path: Path) -> Trace:
    """Azure LLM inference traces 2023/2024 (`TIMESTAMP,ContextTokens,GeneratedTokens`, UTC wall clock)."""
    source = str(path)
    stamps, inputs, outputs = [], [], []
    for chunk in _csv_chunks(path, AZURE_COLUMNS):
        stamps.append(_datetimes_ns(chunk.columns["TIMESTAMP"], chunk.lines, source, "TIMESTAMP"))
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


TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
"""Numeric time units of the generic readers; `datetime` (ISO wall clock) is accepted too."""


@dataclass(frozen=True)
class ColumnMap:
    """Which source columns hold the time, input and output lengths (and optional session/model)."""

    time: str = "timestamp"
    input: str = "input_tokens"
    output: str = "output_tokens"
    session: str | None = None
    model: str | None = None
    time_unit: str = "s"

    @staticmethod
    def parse(text: str, time_unit: str = "s") -> ColumnMap:
        """`time=ts,input=prompt_len,output=gen_len[,session=conv,model=m]` → ColumnMap."""
        fields = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep or key.strip() not in ("time", "input", "output", "session", "model") or not value.strip():
                raise InputError("--columns", f"expected ROLE=COLUMN with ROLE in time, input, output, session, "
                                              f"model; got {part!r}")
            fields[key.strip()] = value.strip()
        if time_unit not in (*TIME_UNITS, "datetime"):
            raise InputError("--time-unit", f"expected one of {', '.join(TIME_UNITS)}, datetime; got {time_unit!r}")
        return ColumnMap(**fields, time_unit=time_unit)


def _times_s(values: list, lines: np.ndarray, source: str, name: str, unit: str) -> tuple[np.ndarray, float | None]:
    """A time column in seconds, and the epoch base when the times are wall-clock datetimes."""
    if unit == "datetime":
        epoch_ns = _datetimes_ns(values, lines, source, name)
        return epoch_ns.astype(np.float64), 0.0
    chunk = _Chunk({name: values}, lines)
    times = _numbers(chunk, name, source, np.float64)
    _check_times(times, chunk, name, source)
    return times * TIME_UNITS[unit], None


def _generic(source: str, fmt: str, chunks: Iterator[_Chunk], columns: ColumnMap) -> Trace:
    """Assemble a trace from chunks of mapped columns (shared by the generic CSV and JSONL readers)."""
    times, inputs, outputs, epoch = [], [], [], None
    builders = {role: _CategoryBuilder() for role in ("session", "model") if getattr(columns, role)}
    for chunk in chunks:
        chunk_times, epoch = _times_s(chunk.columns[columns.time], chunk.lines, source, columns.time,
                                      columns.time_unit)
        times.append(chunk_times)
        for name, out in ((columns.input, inputs), (columns.output, outputs)):
            values = _numbers(chunk, name, source, np.int64)
            _check_token_counts(values, chunk, name, source)
            out.append(values)
        for role, builder in builders.items():
            builder.add(chunk.columns[getattr(columns, role)])
    if not times:
        raise InputError(source, "no data rows")
    all_times = np.concatenate(times)
    epoch_base = None
    if epoch is not None:  # datetimes came as epoch ns: count from the first, in integers
        first_ns = float(all_times.min())
        all_times, epoch_base = (all_times - first_ns) / 1e9, first_ns / 1e9
    return _assemble(source, fmt, all_times, np.concatenate(inputs), np.concatenate(outputs),
                     epoch_base_s=epoch_base,
                     sessions=builders["session"].build() if "session" in builders else None,
                     models=builders["model"].build() if "model" in builders else None)


def read_csv(path: Path, columns: ColumnMap) -> Trace:
    """Any CSV with a header, its columns named by `columns`."""
    optional = [c for c in (columns.session, columns.model) if c]
    required = (columns.time, columns.input, columns.output, *optional)
    return _generic(str(path), "csv", _csv_chunks(path, required), columns)


BLOCK_ROWS_JSONL = 100_000
"""Rows of a JSON-lines file converted per chunk."""


def _jsonl_chunks(path: Path, names: Sequence[str], required: Sequence[str]) -> Iterator[_Chunk]:
    """Stream named fields of a JSON-lines file in chunks of rows, with line numbers."""
    source = str(path)
    values: dict[str, list] = {name: [] for name in names}
    lines: list[int] = []
    with _open_binary(path) as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except UnicodeDecodeError:
                raise InputError(source, "not UTF-8 text", line=number) from None
            except ValueError as exc:
                raise InputError(source, f"not valid JSON ({exc.msg})", line=number) from None
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
                yield _Chunk(values, np.asarray(lines))
                values, lines = {name: [] for name in names}, []
    if lines:
        yield _Chunk(values, np.asarray(lines))


def read_jsonl(path: Path, columns: ColumnMap) -> Trace:
    """Any JSON-lines file, its fields named by `columns`."""
    optional = [c for c in (columns.session, columns.model) if c]
    names = (columns.time, columns.input, columns.output, *optional)
    return _generic(str(path), "jsonl", _jsonl_chunks(path, names, names), columns)


MOONCAKE_FIELDS = ("timestamp", "input_length", "output_length")


def read_mooncake(path: Path) -> Trace:
    """Mooncake FAST'25 traces: JSONL with `timestamp` (ms), lengths and `hash_ids` (512-token blocks)."""
    source = str(path)
    times, inputs, outputs, blocks = [], [], [], []
    for chunk in _jsonl_chunks(path, (*MOONCAKE_FIELDS, "hash_ids"), MOONCAKE_FIELDS):
        chunk_times, _ = _times_s(chunk.columns["timestamp"], chunk.lines, source, "timestamp", "ms")
        times.append(chunk_times)
        for name, out in (("input_length", inputs), ("output_length", outputs)):
            values = _numbers(chunk, name, source, np.int64)
            _check_token_counts(values, chunk, name, source)
            out.append(values)
        for ids, line in zip(chunk.columns["hash_ids"], chunk.lines):
            if ids is None:
                ids = []
            if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
                raise InputError(source, "expected a list of integers", line=int(line), field="hash_ids")
            blocks.append(np.asarray(ids, dtype=np.int64))
    if not times:
        raise InputError(source, "no data rows")
    prefix_blocks = np.empty(len(blocks), dtype=object)
    prefix_blocks[:] = blocks
    return _assemble(source, "mooncake", np.concatenate(times), np.concatenate(inputs), np.concatenate(outputs),
                     prefix_blocks=prefix_blocks)


READERS: dict[str, Callable[[Path], Trace]] = {
    "burstgpt": read_burstgpt,
    "azure": read_azure,
    "mooncake": read_mooncake,
}
"""Readers of the known public formats, by name; `csv` and `jsonl` take a `ColumnMap` as well."""

GENERIC_READERS: dict[str, Callable[[Path, ColumnMap], Trace]] = {"csv": read_csv, "jsonl": read_jsonl}

FORMATS = ("auto", *READERS, *GENERIC_READERS)

_SIGNATURES: dict[str, tuple[str, ...]] = {
    "burstgpt": BURSTGPT_COLUMNS,
    "azure": AZURE_COLUMNS,
    "csv": (ColumnMap.time, ColumnMap.input, ColumnMap.output),  # what `replayer synth` writes
}


def sniff_format(path: Path) -> str:
    """Guess a file's format from its header row (CSV) or first record (JSON lines)."""
    with _open_binary(path) as handle:
        first = next((line for line in handle if line.strip()), b"")
    if not first:
        raise InputError(str(path), "empty file (no header row)")
    if first.lstrip().startswith(b"{"):
        try:
            keys = set(json.loads(first))
        except ValueError:
            raise InputError(str(path), "first line looks like JSON but does not parse", line=1) from None
        if keys.issuperset(MOONCAKE_FIELDS):
            return "mooncake"
        if keys.issuperset(_SIGNATURES["csv"]):
            return "jsonl"
        raise InputError(str(path), "JSON lines of unknown shape; pass --format jsonl --columns "
                                    "time=FIELD,input=FIELD,output=FIELD", line=1)
    header = {name.strip() for name in next(csv.reader([first.decode("utf-8", "replace")]))}
    for fmt, columns in _SIGNATURES.items():
        if header.issuperset(columns):
            return fmt
    raise InputError(str(path), "unrecognised trace format; pass --format (one of: " + ", ".join(FORMATS[1:]) +
                     "), with --columns for csv/jsonl", line=1)


def read_trace(spec: str, fmt: str = "auto", columns: ColumnMap | None = None) -> Trace:
    """Read a trace file or bundled sample; `auto` sniffs the format; `csv`/`jsonl` need `columns`."""
    path = resolve_path(spec)
    try:
        if fmt == "auto":
            fmt = sniff_format(path)
        if fmt in GENERIC_READERS:
            return GENERIC_READERS[fmt](path, columns or ColumnMap())
        if fmt not in READERS:
            raise InputError(spec, f"unknown format {fmt!r} (one of: " + ", ".join(FORMATS) + ")")
        return READERS[fmt](path)
    except (OSError, EOFError, zlib.error) as exc:  # unreadable, or a damaged gzip file
        raise InputError(str(path), f"cannot read the file ({getattr(exc, 'strerror', None) or exc})") from None
    except csv.Error as exc:  # a stray carriage return or NUL byte
        raise InputError(str(path), f"not readable as CSV ({exc})") from None
