"""Trace files → `Trace`: one reader per public format, columnar (numpy) and streamed in chunks.

Each reader turns one format into a `Trace` (`replayer.traces.model`), reading the file in blocks
(`replayer.traces.chunks`); `read_trace` sniffs the format when it is not given.
"""

from __future__ import annotations

import csv
import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from importlib import resources
from pathlib import Path

import numpy as np

from replayer.errors import InputError
from replayer.traces.chunks import (
    CategoryBuilder,
    Chunk,
    LinesNeeded,
    check_counts,
    check_times,
    check_token_counts,
    csv_chunks,
    datetimes_ns,
    durations_s,
    header_names,
    jsonl_chunks,
    numbers,
    open_binary,
    times_s,
)
from replayer.traces.copilot import COPILOT_FIELDS, read_copilot
from replayer.traces.mapped import ColumnMap, chat_tree, read_generic_csv, read_generic_jsonl, root_sessions
from replayer.traces.model import Categorical, Trace, assemble

SAMPLES = {
    "burstgpt-1": "BurstGPT_1_first400.csv",
    "burstgpt-3": "BurstGPT_3_first400.csv",
    "azure-2023-conv": "AzureLLMInferenceTrace_conv.csv",
    "mooncake-synthetic": "mooncake_synthetic_trace.jsonl",
}
"""Real trace samples bundled with the package (see `replayer/data/README.md` for attribution)."""

DEFAULT_TRACE = "sample:azure-2023-conv"
"""What `replayer run` replays when given neither --trace nor --synthetic."""


def resolve_path(spec: str) -> Path:
    """A trace argument → a file path: `sample:<name>` names a bundled sample, `family:variant` a public
    dataset (fetched into the cache on first use), anything else a file."""
    from replayer.traces import datasets

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



BURSTGPT_COLUMNS = ("Timestamp", "Request tokens", "Response tokens")
BURSTGPT_ELAPSED = "Elapsed time"
"""BurstGPT v3: seconds from submission to the final response on the production system."""


def read_burstgpt(path: Path, fast: bool = True) -> Trace:
    """BurstGPT v1/v2 (`Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type`) and v3
    (adds `Session ID,Elapsed time`, the production end-to-end seconds); columns are matched by name.
    Times are seconds. `fast` lets Arrow read the columns (see `replayer.traces.chunks`)."""
    source = str(path)
    kinds: dict[str, type] | None = {"Timestamp": np.float64, "Request tokens": np.int64, "Response tokens": np.int64,
                                     "Model": str, "Log Type": str, "Session ID": str,
                                     BURSTGPT_ELAPSED: np.float64} if fast else None
    times: list[np.ndarray] = []
    inputs: list[np.ndarray] = []
    outputs: list[np.ndarray] = []
    elapsed: list[np.ndarray] = []
    models, log_types, sessions = CategoryBuilder(), CategoryBuilder(), CategoryBuilder()
    has: set[str] = set()
    for chunk in csv_chunks(path, BURSTGPT_COLUMNS, ("Model", "Log Type", "Session ID", BURSTGPT_ELAPSED), kinds):
        chunk_times = numbers(chunk, "Timestamp", source, np.float64)
        check_times(chunk_times, chunk, "Timestamp", source)
        times.append(chunk_times)
        for name, out in (("Request tokens", inputs), ("Response tokens", outputs)):
            values = numbers(chunk, name, source, np.int64)
            check_token_counts(values, chunk, name, source)
            out.append(values)
        if BURSTGPT_ELAPSED in chunk.columns:
            elapsed.append(durations_s(chunk, BURSTGPT_ELAPSED, source, 1.0))
        for name, builder in (("Model", models), ("Log Type", log_types), ("Session ID", sessions)):
            if name in chunk.columns:
                has.add(name)
                builder.add(chunk.columns[name])
    if not times:
        raise InputError(source, "no data rows")
    return assemble(
        source, "burstgpt", np.concatenate(times), np.concatenate(inputs), np.concatenate(outputs),
        durations_s=np.concatenate(elapsed) if elapsed else None,
        models=models.build() if "Model" in has else None,
        log_types=log_types.build() if "Log Type" in has else None,
        sessions=sessions.build() if "Session ID" in has else None,
    )


AZURE_COLUMNS = ("TIMESTAMP", "ContextTokens", "GeneratedTokens")
AZURE_IMAGES = "NumImages"
"""Azure LMM inference trace 2025 (ModServe, SoCC'25): the number of images beside the token counts."""


def read_azure(path: Path, fast: bool = True) -> Trace:
    """Azure LLM inference traces 2023/2024 (`TIMESTAMP,ContextTokens,GeneratedTokens`, UTC wall clock)
    and the multimodal 2025 one, whose `NumImages` becomes each request's type (`text`, `1 image`,
    `3 images`): the images themselves are not sent, so the groups show what the text part costs."""
    source = str(path)
    kinds: dict[str, type] | None = {"TIMESTAMP": bytes, "ContextTokens": np.int64, "GeneratedTokens": np.int64,
                                     AZURE_IMAGES: np.int64} if fast else None
    stamps: list[np.ndarray] = []
    inputs: list[np.ndarray] = []
    outputs: list[np.ndarray] = []
    images: list[np.ndarray] = []
    for chunk in csv_chunks(path, AZURE_COLUMNS, (AZURE_IMAGES,), kinds):
        stamps.append(datetimes_ns(chunk.columns["TIMESTAMP"], chunk.lines, source, "TIMESTAMP"))
        for name, out in (("ContextTokens", inputs), ("GeneratedTokens", outputs)):
            values = numbers(chunk, name, source, np.int64)
            check_token_counts(values, chunk, name, source)
            out.append(values)
        if AZURE_IMAGES in chunk.columns:
            counts = numbers(chunk, AZURE_IMAGES, source, np.int64)
            check_counts(counts, chunk, AZURE_IMAGES, source, "image count")
            images.append(counts)
    if not stamps:
        raise InputError(source, "no data rows")
    epoch_ns = np.concatenate(stamps)
    # Seconds relative to the first row are computed in integers, so 100 ns ticks survive float conversion.
    first_ns = int(epoch_ns.min())
    return assemble(source, "azure", (epoch_ns - first_ns) / 1e9, np.concatenate(inputs),
                     np.concatenate(outputs), epoch_base_s=first_ns / 1e9,
                     request_types=_image_groups(np.concatenate(images)) if images else None)


def _image_groups(counts: np.ndarray) -> Categorical:
    """Per request, `text`, `1 image` or `N images`, as a breakdown group."""
    values, codes = np.unique(counts, return_inverse=True)
    labels = tuple("text" if n == 0 else "1 image" if n == 1 else f"{n} images" for n in values.tolist())
    return Categorical(codes.astype(np.int32), labels)


MOONCAKE_FIELDS = ("timestamp", "input_length", "output_length")


def read_mooncake(path: Path, fast: bool = True) -> Trace:
    """Mooncake FAST'25 traces: JSONL with `timestamp` (ms), lengths and `hash_ids` (512-token blocks),
    read with line numbers whatever `fast` says."""
    source = str(path)
    times: list[np.ndarray] = []
    inputs: list[np.ndarray] = []
    outputs: list[np.ndarray] = []
    blocks: list = []
    for chunk in jsonl_chunks(path, (*MOONCAKE_FIELDS, "hash_ids"), MOONCAKE_FIELDS):
        chunk_times, _ = times_s(chunk.columns["timestamp"], chunk.lines, source, "timestamp", "ms")
        times.append(chunk_times)
        for name, out in (("input_length", inputs), ("output_length", outputs)):
            values = numbers(chunk, name, source, np.int64)
            check_token_counts(values, chunk, name, source)
            out.append(values)
        blocks.extend(_block_ids(chunk, source))
    if not times:
        raise InputError(source, "no data rows")
    return assemble(source, "mooncake", np.concatenate(times), np.concatenate(inputs), np.concatenate(outputs),
                     prefix_blocks=_object_column(blocks))


def _block_ids(chunk: Chunk, source: str) -> Iterator[np.ndarray]:
    """Each row's `hash_ids` (prefix-block ids; absent or null: none) as an int64 array."""
    assert chunk.lines is not None  # (JSON lines are read with their line numbers)
    for ids, line in zip(chunk.columns["hash_ids"], chunk.lines):
        if ids is None:
            ids = []
        if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            raise InputError(source, "expected a list of integers", line=int(line), field="hash_ids")
        yield np.asarray(ids, dtype=np.int64)


def _object_column(arrays: list[np.ndarray]) -> np.ndarray:
    column = np.empty(len(arrays), dtype=object)
    column[:] = arrays
    return column


QWEN_BAILIAN_FIELDS = ("chat_id", "parent_chat_id", "timestamp", "input_length", "output_length")
QWEN_BAILIAN_BLOCK_TOKENS = 16


def read_qwen_bailian(path: Path, fast: bool = True) -> Trace:
    """Qwen-Bailian (Alibaba Cloud, USENIX ATC'25): JSONL with `chat_id`, `parent_chat_id` (-1 for a
    root), `timestamp` (s), `input_length`, `output_length`, `type` (text/search/image/file), `turn` and
    `hash_ids` (16-token blocks). A request's parent is the chat it follows up, so a session is the tree
    under a root and each turn waits for its parent. Read with line numbers whatever `fast` says."""
    source = str(path)
    times: list[np.ndarray] = []
    inputs: list[np.ndarray] = []
    outputs: list[np.ndarray] = []
    chats: list[np.ndarray] = []
    parents: list[np.ndarray] = []
    lines: list[np.ndarray] = []
    blocks: list[np.ndarray] = []
    types = CategoryBuilder()
    for chunk in jsonl_chunks(path, (*QWEN_BAILIAN_FIELDS, "type", "hash_ids"), QWEN_BAILIAN_FIELDS):
        times.append(times_s(chunk.columns["timestamp"], chunk.lines, source, "timestamp", "s")[0])
        for name, out in (("input_length", inputs), ("output_length", outputs)):
            values = numbers(chunk, name, source, np.int64)
            check_token_counts(values, chunk, name, source)
            out.append(values)
        chats.append(numbers(chunk, "chat_id", source, np.int64))
        parents.append(numbers(chunk, "parent_chat_id", source, np.int64))
        types.add([kind or "" for kind in chunk.columns["type"]])
        blocks.extend(_block_ids(chunk, source))
        assert chunk.lines is not None
        lines.append(chunk.lines)
    if not times:
        raise InputError(source, "no data rows")
    chat_ids = np.concatenate(chats)
    parent_rows, roots, orphans = chat_tree(chat_ids, np.concatenate(parents), np.concatenate(lines), source)
    warnings = (f"{source}: {orphans:,} rows follow up a chat that is not in the file; they start their "
                "sessions",) if orphans else ()
    return assemble(source, "qwen-bailian", np.concatenate(times), np.concatenate(inputs), np.concatenate(outputs),
                     prefix_blocks=_object_column(blocks), block_tokens=QWEN_BAILIAN_BLOCK_TOKENS,
                     parents=parent_rows, warnings=warnings, request_types=types.build(),
                     sessions=root_sessions(roots, chat_ids))


READERS: dict[str, Callable[[Path, bool], Trace]] = {
    "burstgpt": read_burstgpt,
    "azure": read_azure,
    "mooncake": read_mooncake,
    "qwen-bailian": read_qwen_bailian,
    "copilot": read_copilot,
}
"""Readers of the known public formats, by name; `csv` and `jsonl` take a `ColumnMap` as well."""

GENERIC_READERS: dict[str, Callable[[Path, ColumnMap, bool], Trace]] = {"csv": read_generic_csv,
                                                                         "jsonl": read_generic_jsonl}

FORMATS = ("auto", *READERS, *GENERIC_READERS)

_SIGNATURES: dict[str, tuple[str, ...]] = {
    "burstgpt": BURSTGPT_COLUMNS,
    "azure": AZURE_COLUMNS,
    "csv": (ColumnMap.time, ColumnMap.input, ColumnMap.output),  # what `replayer synth` writes
}


def sniff_format(path: Path) -> str:
    """Guess a file's format from its header row (CSV) or first record (JSON lines)."""
    with open_binary(path) as handle:
        first = next((line for line in handle if line.strip()), b"")
    if not first:
        raise InputError(str(path), "empty file (no header row)")
    if first.lstrip().startswith(b"{"):
        try:
            keys = set(json.loads(first))
        except ValueError:
            raise InputError(str(path), "first line looks like JSON but does not parse", line=1) from None
        if keys.issuperset(COPILOT_FIELDS):
            return "copilot"
        if keys.issuperset(QWEN_BAILIAN_FIELDS):  # (before Mooncake: its fields are a subset)
            return "qwen-bailian"
        if keys.issuperset(MOONCAKE_FIELDS):
            return "mooncake"
        if keys.issuperset(_SIGNATURES["csv"]):
            return "jsonl"
        raise InputError(str(path), "JSON lines of unknown shape; pass --format jsonl --columns "
                                    "time=FIELD,input=FIELD,output=FIELD", line=1)
    header = {name.strip() for name in header_names(first)}
    for fmt, columns in _SIGNATURES.items():
        if header.issuperset(columns):
            return fmt
    raise InputError(str(path), "unrecognised trace format; pass --format (one of: " + ", ".join(FORMATS[1:]) +
                     "), with --columns for csv/jsonl", line=1)


def _read_with_lines(read: Callable[[bool], Trace]) -> Trace:
    """Read fast; when a check failed where no line numbers are known, again in blocks to name the line."""
    try:
        return read(True)
    except LinesNeeded:
        return read(False)


def read_trace(spec: str, fmt: str = "auto", columns: ColumnMap | None = None,
               block_tokens: int | None = None) -> Trace:
    """Read a trace file or bundled sample; `auto` sniffs the format; `csv`/`jsonl` need `columns`.
    `block_tokens` replaces the format's own prefix-block size (`--block-tokens`)."""
    trace = _read(spec, fmt, columns)
    return trace if block_tokens is None else replace(trace, block_tokens=block_tokens)


def _read(spec: str, fmt: str, columns: ColumnMap | None) -> Trace:
    path = resolve_path(spec)
    try:
        if fmt == "auto":
            fmt = sniff_format(path)
        if fmt in GENERIC_READERS:
            return _read_with_lines(lambda fast: GENERIC_READERS[fmt](path, columns or ColumnMap(), fast))
        if fmt not in READERS:
            raise InputError(spec, f"unknown format {fmt!r} (one of: " + ", ".join(FORMATS) + ")")
        return _read_with_lines(lambda fast: READERS[fmt](path, fast))
    except (OSError, EOFError, zlib.error) as exc:  # unreadable, or a damaged gzip file
        raise InputError(str(path), f"cannot read the file ({getattr(exc, 'strerror', None) or exc})") from None
    except csv.Error as exc:  # a stray carriage return or NUL byte
        raise InputError(str(path), f"not readable as CSV ({exc})") from None
