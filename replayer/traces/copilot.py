"""The GitHub Copilot coding-agent traces 2026 (Azure/AzurePublicDataset, CC-BY-4.0): one agentic
session per JSON line, its user `turns` each holding the LLM calls the agent made (`llm_calls`, with
`timestamp`, `duration_ms`, `initiator_type`, `model` and `tokens.prompt/completion/cached`) and its
tool batches, which take the time between the calls.

Each LLM call becomes one request of the session, in recorded order, so a call waits for the one
before it, and think-time timing replays the tool time between them. The trace records how many of a
call's prompt tokens the server had cached, not which ones: they are taken as the leading tokens of
the session's previous prompt, which is how prompt caching serves an agent's growing context. That
becomes shared prefix blocks, which `inspect` reports as prefix reuse and which a call's prompt is
built from where it is not part of its session's conversation (its first call, or `--api completions`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from replayer.errors import InputError
from replayer.traces.chunks import CategoryBuilder, datetimes_ns, jsonl_chunks
from replayer.traces.model import Categorical, Trace, assemble

COPILOT_FIELDS = ("session_id", "turns")
COPILOT_BLOCK_TOKENS = 16
"""The prefix-block size the cached counts are turned into (vLLM's default KV block)."""


class _Calls:
    """The trace's columns, one entry per LLM call, built session by session."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.stamps: list[str] = []
        self.lines: list[int] = []
        self.prompts: list[int] = []
        self.completions: list[int] = []
        self.durations_s: list[float] = []
        self.positions: list[int] = []
        self.blocks: list[np.ndarray] = []
        self.sessions: list[str] = []
        self.models: list[str] = []
        self.initiators: list[str] = []
        self._next_block = 0

    def add_session(self, session: Any, turns: Any, line: int) -> None:
        if not isinstance(session, str):
            raise InputError(self.source, "expected a string", line=line, field="session_id")
        if not isinstance(turns, list):
            raise InputError(self.source, "expected a list of turns", line=line, field="turns")
        previous = np.zeros(0, dtype=np.int64)
        position = 0
        for t, turn in enumerate(turns):
            calls = turn.get("llm_calls") if isinstance(turn, dict) else None
            if not isinstance(calls, list):
                raise InputError(self.source, "expected an object with a list", line=line,
                                 field=f"turns[{t}].llm_calls")
            for c, call in enumerate(calls):
                where = f"turns[{t}].llm_calls[{c}]"
                if not isinstance(call, dict):
                    raise InputError(self.source, "expected an object", line=line, field=where)
                previous = self._add_call(call, previous, where, line)
                self.sessions.append(session)
                self.positions.append(position)
                position += 1

    def _add_call(self, call: dict, previous: np.ndarray, where: str, line: int) -> np.ndarray:
        tokens = call.get("tokens")
        if not isinstance(tokens, dict):
            raise InputError(self.source, "expected an object with prompt and completion", line=line,
                             field=f"{where}.tokens")
        prompt = self._count(tokens, "prompt", f"{where}.tokens", line)
        cached = self._count(tokens, "cached", f"{where}.tokens", line, default=0)
        if cached > prompt:
            raise InputError(self.source, f"{cached} cached tokens of a {prompt}-token prompt", line=line,
                             field=f"{where}.tokens.cached")
        self.completions.append(self._count(tokens, "completion", f"{where}.tokens", line))
        duration = call.get("duration_ms")
        if isinstance(duration, bool) or not isinstance(duration, (int, float)) or not duration >= 0:
            raise InputError(self.source, f"not a duration in ms: {duration!r}", line=line,
                             field=f"{where}.duration_ms")
        stamp = call.get("timestamp")
        if not isinstance(stamp, str):
            raise InputError(self.source, f"not a timestamp: {stamp!r}", line=line, field=f"{where}.timestamp")
        self.stamps.append(stamp)
        self.lines.append(line)
        self.prompts.append(prompt)
        self.durations_s.append(duration / 1000)
        self.models.append(_label(call.get("model")))
        self.initiators.append(_label(call.get("initiator_type")))
        blocks = self._prefix_blocks(previous, prompt, cached)
        self.blocks.append(blocks)
        return blocks

    def _count(self, tokens: dict, name: str, where: str, line: int, default: int | None = None) -> int:
        value = tokens.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise InputError(self.source, f"not a token count: {value!r}", line=line, field=f"{where}.{name}")
        return value

    def _prefix_blocks(self, previous: np.ndarray, prompt: int, cached: int) -> np.ndarray:
        """The call's prompt as block ids: its cached whole blocks are the previous prompt's first ones."""
        shared = min(cached // COPILOT_BLOCK_TOKENS, len(previous))
        fresh = -(-prompt // COPILOT_BLOCK_TOKENS) - shared
        new_ids = np.arange(self._next_block, self._next_block + fresh, dtype=np.int64)
        self._next_block += fresh
        return np.concatenate([previous[:shared], new_ids])

    def trace(self) -> Trace:
        """The calls in time order (sessions overlap, so the file's order is not time order)."""
        if not self.stamps:
            raise InputError(self.source, "no LLM calls")
        epoch_ns = datetimes_ns(self.stamps, np.asarray(self.lines), self.source, "llm_calls[].timestamp")
        order = np.argsort(epoch_ns, kind="stable")
        first_ns = int(epoch_ns[order[0]])
        blocks = np.empty(len(self.blocks), dtype=object)
        blocks[:] = self.blocks

        def column(values: list, dtype: type) -> np.ndarray:
            return np.asarray(values, dtype)[order]

        return assemble(self.source, "copilot", (epoch_ns[order] - first_ns) / 1e9, column(self.prompts, np.int64),
                        column(self.completions, np.int64), epoch_base_s=first_ns / 1e9,
                        durations_s=column(self.durations_s, np.float64), turns=column(self.positions, np.int64),
                        prefix_blocks=blocks[order], block_tokens=COPILOT_BLOCK_TOKENS,
                        sessions=_categories(self.sessions).take(order), models=_categories(self.models).take(order),
                        request_types=_categories(self.initiators).take(order))


def _categories(labels: list[str]) -> Categorical:
    builder = CategoryBuilder()
    builder.add(labels)
    return builder.build()


def _label(value: Any) -> str:
    return value if isinstance(value, str) else ""


def read_copilot(path: Path, fast: bool = True) -> Trace:
    """One request per LLM call of every session, grouped by session, typed by `initiator_type` (`user`
    opens a turn, `agent` follows up); read with line numbers whatever `fast` says."""
    calls = _Calls(str(path))
    for chunk in jsonl_chunks(path, COPILOT_FIELDS, ()):
        assert chunk.lines is not None  # (JSON lines are read with their line numbers)
        for session, turns, line in zip(chunk.columns["session_id"], chunk.columns["turns"], chunk.lines.tolist()):
            calls.add_session(session, turns, line)
    return calls.trace()
