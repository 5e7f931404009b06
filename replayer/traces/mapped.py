"""Any CSV or JSON-lines trace, its columns named by a `--columns` mapping (`ColumnMap`): the three
a replay needs, and optionally sessions, turn order, parent links and recorded durations, so a
user's own chat and agent logs replay as session graphs."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from replayer.errors import InputError
from replayer.traces.chunks import (
    TIME_UNITS,
    CategoryBuilder,
    Chunk,
    LinesNeeded,
    cell_text,
    check_token_counts,
    csv_chunks,
    durations_s,
    jsonl_chunks,
    numbers,
    times_s,
)
from replayer.traces.model import Categorical, Trace, assemble

COLUMN_ROLES = ("time", "input", "output", "session", "model", "id", "parent", "turn", "duration")
"""What a `--columns` entry can name: the three required columns, then the optional ones."""


@dataclass(frozen=True)
class ColumnMap:
    """Which source columns hold the time and the input and output lengths, and optionally a request's
    session, model, id, the id of the request it follows up (`parent`), its turn number and its
    recorded duration (in the time unit; seconds for datetimes)."""

    time: str = "timestamp"
    input: str = "input_tokens"
    output: str = "output_tokens"
    session: str | None = None
    model: str | None = None
    id: str | None = None
    parent: str | None = None
    turn: str | None = None
    duration: str | None = None
    time_unit: str = "s"

    @staticmethod
    def parse(text: str, time_unit: str = "s") -> ColumnMap:
        """`time=ts,input=prompt_len,output=gen_len[,session=conv,parent=parent_id,id=req_id,...]` → ColumnMap."""
        fields = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            if not sep or key.strip() not in COLUMN_ROLES or not value.strip():
                raise InputError("--columns", f"expected ROLE=COLUMN with ROLE in {', '.join(COLUMN_ROLES)}; "
                                              f"got {part!r}")
            fields[key.strip()] = value.strip()
        if time_unit not in (*TIME_UNITS, "datetime"):
            raise InputError("--time-unit", f"expected one of {', '.join(TIME_UNITS)}, datetime; got {time_unit!r}")
        if ("parent" in fields) != ("id" in fields):
            raise InputError("--columns", "parent=COLUMN and id=COLUMN go together: a parent names another row's id")
        return ColumnMap(**fields, time_unit=time_unit)

    @property
    def optional(self) -> tuple[str, ...]:
        """The optional columns this map names."""
        return tuple(name for role in COLUMN_ROLES[3:] if (name := getattr(self, role)))


def _generic(source: str, fmt: str, chunks: Iterator[Chunk], columns: ColumnMap) -> Trace:
    """Assemble a trace from chunks of mapped columns (shared by the generic CSV and JSONL readers)."""
    times: list[np.ndarray] = []
    inputs: list[np.ndarray] = []
    outputs: list[np.ndarray] = []
    turns: list[np.ndarray] = []
    durations: list[np.ndarray] = []
    links: dict[str, list[str]] = {"id": [], "parent": []}
    lines: list[np.ndarray] = []
    epoch = None
    builders = {role: CategoryBuilder() for role in ("session", "model") if getattr(columns, role)}
    for chunk in chunks:
        chunk_times, epoch = times_s(chunk.columns[columns.time], chunk.lines, source, columns.time,
                                      columns.time_unit)
        times.append(chunk_times)
        for name, out in ((columns.input, inputs), (columns.output, outputs)):
            values = numbers(chunk, name, source, np.int64)
            check_token_counts(values, chunk, name, source)
            out.append(values)
        for role, builder in builders.items():
            builder.add(chunk.columns[getattr(columns, role)])
        if columns.turn:
            turns.append(numbers(chunk, columns.turn, source, np.int64))
        if columns.duration:
            durations.append(durations_s(chunk, columns.duration, source, TIME_UNITS.get(columns.time_unit, 1.0)))
        if columns.id and columns.parent:
            for role in links:
                links[role].extend(_id_text(value) for value in chunk.columns[getattr(columns, role)])
            lines.append(chunk.lines if chunk.lines is not None else np.zeros(0, np.int64))
    if not times:
        raise InputError(source, "no data rows")
    all_times = np.concatenate(times)
    epoch_base = None
    if epoch is not None:  # datetimes came as epoch ns: count from the first, in integers
        first_ns = float(all_times.min())
        all_times, epoch_base = (all_times - first_ns) / 1e9, first_ns / 1e9
    sessions = builders["session"].build() if "session" in builders else None
    parents: np.ndarray | None = None
    warnings: tuple[str, ...] = ()
    if columns.id and columns.parent:
        parents, roots, warnings = _id_tree(links["id"], links["parent"], np.concatenate(lines), source, columns)
        sessions = sessions or root_sessions(roots, np.asarray(links["id"], dtype=object))
    return assemble(source, fmt, all_times, np.concatenate(inputs), np.concatenate(outputs),
                    epoch_base_s=epoch_base, parents=parents, warnings=warnings,
                    turns=np.concatenate(turns) if turns else None,
                    durations_s=np.concatenate(durations) if durations else None,
                    sessions=sessions, models=builders["model"].build() if "model" in builders else None)


def _id_text(value: object) -> str:
    """A request id as text (JSON gives numbers or strings); missing, empty, null or -1: no id."""
    text = "" if value is None else cell_text(value).strip() if isinstance(value, (bytes, str)) else str(value)
    return "" if text in ("-1", "null", "None") else text


def _id_tree(ids: list[str], parents: list[str], lines: np.ndarray, source: str,
             columns: ColumnMap) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Parent rows and root rows (see `chat_tree`) from the mapped id and parent columns, and a warning
    when some parents are not in the file."""
    assert columns.id and columns.parent
    codes = {text: code for code, text in enumerate(dict.fromkeys(ids))}
    chat_codes = np.fromiter((codes[text] for text in ids), np.int64, len(ids))
    if (empty := codes.get("")) is not None:
        row = int(np.flatnonzero(chat_codes == empty)[0])
        raise InputError(source, "a row without an id", line=line_of(lines, row, columns.id), field=columns.id)
    unknown = len(codes)  # a parent not in the file gets a code no row has, so it is counted as missing
    parent_codes = np.fromiter((codes.get(text, unknown) if text else -1 for text in parents), np.int64, len(ids))
    parent_rows, roots, orphans = chat_tree(chat_codes, parent_codes, lines, source, (columns.id, columns.parent))
    warnings = (f"{source}: {orphans:,} rows follow up an id that is not in the file; they start their "
                "sessions",) if orphans else ()
    return parent_rows, roots, warnings


def root_sessions(roots: np.ndarray, ids: np.ndarray) -> Categorical:
    """Sessions named by their root's id (`roots` from `chat_tree`): every row of a tree shares one."""
    root_rows, codes = np.unique(roots, return_inverse=True)
    return Categorical(codes.astype(np.int32), tuple(str(name) for name in ids[root_rows]))


def read_generic_csv(path: Path, columns: ColumnMap, fast: bool = True) -> Trace:
    """Any CSV with a header, its columns named by `columns`."""
    required = (columns.time, columns.input, columns.output, *columns.optional)
    kinds: dict[str, type] | None = None
    if fast:
        kinds = {columns.time: bytes if columns.time_unit == "datetime" else np.float64, columns.input: np.int64,
                 columns.output: np.int64, **{name: str for name in columns.optional}}
        for name, kind in ((columns.turn, np.int64), (columns.duration, np.float64), (columns.id, bytes),
                           (columns.parent, bytes)):
            if name:
                kinds[name] = kind
    return _generic(str(path), "csv", csv_chunks(path, required, (), kinds), columns)


def read_generic_jsonl(path: Path, columns: ColumnMap, fast: bool = True) -> Trace:
    """Any JSON-lines file, its fields named by `columns` (read with line numbers whatever `fast` says)."""
    names = (columns.time, columns.input, columns.output, *columns.optional)
    return _generic(str(path), "jsonl", jsonl_chunks(path, names, names), columns)


def chat_tree(chats: np.ndarray, parents: np.ndarray, lines: np.ndarray, source: str,
              fields: tuple[str, str] = ("chat_id", "parent_chat_id")) -> tuple[np.ndarray, np.ndarray, int]:
    """Per row (file order), from each row's id and its parent's (negative for a root): the row of its
    parent (-1 for a root, or a parent not in the file), the row of its tree's root, and how many rows
    named a parent not in the file. A repeated id or a cycle is an error naming a line (`lines` empty:
    read without line numbers, so `LinesNeeded`); `fields` names the id and parent columns."""
    order = np.argsort(chats, kind="stable")
    ordered = chats[order]
    repeated = np.flatnonzero(ordered[1:] == ordered[:-1])
    if repeated.size:
        line = line_of(lines, order[repeated[0] + 1], fields[0])
        raise InputError(source, "repeats the id of an earlier row", line=line, field=fields[0])
    where = np.minimum(np.searchsorted(ordered, parents), len(chats) - 1)
    found = (parents >= 0) & (ordered[where] == parents)
    parent_rows = np.where(found, order[where], -1)
    rows = np.arange(len(chats))
    if (loops := np.flatnonzero(parent_rows == rows)).size:
        raise InputError(source, "a row follows up itself", line=line_of(lines, loops[0], fields[1]), field=fields[1])
    roots = np.where(parent_rows >= 0, parent_rows, rows)
    for _ in range(64):  # pointer jumping: a tree of depth 2**64 settles within 64 passes
        above = roots[roots]
        if np.array_equal(above, roots):
            break
        roots = above
    if (cyclic := np.flatnonzero(parent_rows[roots] >= 0)).size:  # (a cycle settles on a row with a parent, or never)
        raise InputError(source, "the parent links form a cycle", line=line_of(lines, cyclic[0], fields[1]),
                         field=fields[1])
    return parent_rows, roots, int(np.count_nonzero((parents >= 0) & ~found))


def line_of(lines: np.ndarray, row: int, field: str) -> int:
    """The line number of `row`, or `LinesNeeded` when the file was read without them."""
    if not lines.size:
        raise LinesNeeded(field)
    return int(lines[row])
