"""The `Trace` model: what a trace file recorded, untouched, as numpy columns.

Every row of the file, in time order, with its row index in the source as a stable request id.
Shaping (windows, filters, scaling) happens in `replayer.workload`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from replayer.errors import InputError


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
    request_types: Categorical | None = None
    """Per row, the kind of request (Qwen-Bailian `type`: text, search, image, file)."""
    parents: np.ndarray | None = None
    """Per row, the row id of the request it follows up (Qwen-Bailian `parent_chat_id`), -1 for none:
    its session is then a tree, and each turn waits for its parent, not for the session's previous row."""
    turns: np.ndarray | None = None
    """Per row, its turn number within its session as the trace recorded it (a mapped `turn` column):
    the order of a session's turns, where it differs from their time order."""
    durations_s: np.ndarray | None = None
    """Per row, how long the request took on the recording's system, submission to final response, in
    seconds (BurstGPT v3 `Elapsed time`, a mapped `duration` column): what think times are measured
    from, and what the served end-to-end latency is compared with."""
    prefix_blocks: np.ndarray | None = None
    """Per row, an int64 array of prefix-block ids (Mooncake and Qwen-Bailian `hash_ids`)."""
    block_tokens: int = 512
    """Tokens per prefix block: the format's own (512 for Mooncake, 16 for Qwen-Bailian)."""
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
            request_types=pick(self.request_types),
            parents=None if self.parents is None else self.parents[index],
            turns=None if self.turns is None else self.turns[index],
            durations_s=None if self.durations_s is None else self.durations_s[index],
            prefix_blocks=None if self.prefix_blocks is None else self.prefix_blocks[index],
            block_tokens=self.block_tokens,
            warnings=self.warnings,
        )


def assemble(source: str, fmt: str, times_s: np.ndarray, inputs: np.ndarray, outputs: np.ndarray,
              *, epoch_base_s: float | None = None, prefix_blocks: np.ndarray | None = None,
              parents: np.ndarray | None = None, turns: np.ndarray | None = None,
              durations_s: np.ndarray | None = None, block_tokens: int = 512, warnings: tuple[str, ...] = (),
              **categoricals: Categorical | None) -> Trace:
    """Sort rows by time (stably, with a warning when the file was out of order) and make times relative.

    `epoch_base_s`, when given, says `times_s` count from that Unix time. Row ids are the rows' order in
    the file, which is what `parents` refers to.
    """
    if len(times_s) == 0:
        raise InputError(source, "no data rows")
    row_ids = np.arange(len(times_s), dtype=np.int64)
    unsorted = int(np.count_nonzero(np.diff(times_s) < 0))
    if unsorted:
        order = np.argsort(times_s, kind="stable")
        times_s, inputs, outputs, row_ids = times_s[order], inputs[order], outputs[order], row_ids[order]
        categoricals = {k: None if v is None else v.take(order) for k, v in categoricals.items()}
        prefix_blocks, parents, turns, durations_s = (None if column is None else column[order]
                                                      for column in (prefix_blocks, parents, turns, durations_s))
        warnings = (*warnings,
                    f"{source}: rows were not in time order ({unsorted} steps backwards); sorted by timestamp")
    first = float(times_s[0])
    return Trace(source=source, format=fmt, row_ids=row_ids, arrival_s=times_s - first,
                 input_tokens=inputs, output_tokens=outputs, origin_s=first + (epoch_base_s or 0.0),
                 origin_is_epoch=epoch_base_s is not None, prefix_blocks=prefix_blocks, parents=parents,
                 turns=turns, durations_s=durations_s,
                 block_tokens=block_tokens, warnings=warnings, **categoricals)


def parent_positions(row_ids: np.ndarray, parent_ids: np.ndarray) -> np.ndarray:
    """Per row, the position of the row it follows up (`Trace.parents` holds row ids), or -1: for a
    root, and for a parent that is not among these rows (shaped out) or comes later in time."""
    if not len(row_ids):
        return np.zeros(0, dtype=np.int64)
    by_id = np.argsort(row_ids)
    parent = by_id[np.minimum(np.searchsorted(row_ids, parent_ids, sorter=by_id), len(row_ids) - 1)]
    kept = (parent_ids >= 0) & (row_ids[parent] == parent_ids) & (parent < np.arange(len(row_ids)))
    return np.where(kept, parent, -1)


def tree_depths(previous: np.ndarray) -> np.ndarray:
    """Per row, how many follow-up links lead from its root to it (0 for a root), from each row's
    parent position (-1 for a root; parents come first): by pointer jumping, in log(depth) passes."""
    depth = (previous >= 0).astype(np.int64)  # the distance to the row `above`
    above = previous.copy()
    while (climbing := np.flatnonzero(above >= 0)).size:
        ancestors = above[climbing]
        depth[climbing] += depth[ancestors]
        above[climbing] = above[ancestors]
    return depth
