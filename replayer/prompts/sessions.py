"""Multi-turn sessions: each turn is sent as the whole conversation so far.

A turn follows up one earlier turn: the session's previous row (BurstGPT v3 `Session ID`, a mapped
`session` column, in `turn` order where one is mapped), or the request the trace names as its parent
(Qwen-Bailian `parent_chat_id`, a mapped `parent` column; there a session is a tree, and a turn may
have several follow-ups). A turn carries its predecessor's conversation (the user messages
and assistant replies up to it), then a new user message sized so that the message contents add up
to exactly the trace's request tokens: the recorded count is the whole context the model saw. When
the history alone leaves no room (the source's chat front-end trimmed its context), the oldest
exchanges are dropped, as such front-ends do.

The replies in a history are the server's actual replies (`actual`: the server sees real multi-turn
prefix reuse, so a turn's body is built once the previous turn has finished) or synthetic text of
the recorded output length (`synthetic`: every body is known before the run). A failed turn's reply
is synthetic in both modes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from replayer.errors import ConfigError
from replayer.prompts.synthesis import BLOCK_TOKENS, PromptSynthesizer, TemplateOverhead
from replayer.traces.model import parent_positions, tree_depths
from replayer.workload.shaping import Workload

HISTORY_MODES = ("actual", "synthetic", "off")
"""`--session-history`: whose replies fill the history, or `off` to send every row on its own."""


@dataclass(frozen=True)
class SessionLinks:
    """How the workload's rows (by send position) chain into sessions."""

    previous: np.ndarray
    """Position of the turn this one follows up (the session's previous turn, or its parent chat); -1
    for first turns and rows outside sessions."""
    turn: np.ndarray
    """1-based turn number within the replayed session (a tree's depth); 0 for rows outside any session."""
    follow_ups: np.ndarray
    """How many later turns follow this one up (its conversation is kept until they are all built)."""


def link_sessions(workload: Workload) -> SessionLinks | None:
    """The session links of the workload, or None when no row belongs to a session."""
    trace = workload.trace
    if trace.parents is not None:  # a tree of follow-ups (Qwen-Bailian)
        previous = parent_positions(trace.row_ids, trace.parents)
        return SessionLinks(previous, tree_depths(previous) + 1, _follow_ups(previous))
    sessions = trace.sessions
    if sessions is None:
        return None
    codes = sessions.codes
    empty = sessions.code_of("")
    members = np.flatnonzero(codes != empty) if empty is not None else np.arange(codes.size)
    if members.size == 0:
        return None
    if trace.turns is None:
        order = members[np.argsort(codes[members], kind="stable")]  # grouped by session, send order inside
    else:  # grouped by session, in the recorded turn order inside (then send order)
        order = members[np.lexsort((members, trace.turns[members], codes[members]))]
    same = (codes[order[1:]] == codes[order[:-1]]) & (order[:-1] < order[1:])  # (a turn sent earlier starts afresh)
    previous = np.full(codes.size, -1, dtype=np.int64)
    previous[order[1:][same]] = order[:-1][same]
    starts = np.flatnonzero(np.r_[True, ~same])
    turn = np.zeros(codes.size, dtype=np.int64)
    turn[order] = np.arange(order.size) - np.repeat(starts, np.diff(np.r_[starts, order.size])) + 1
    return SessionLinks(previous, turn, _follow_ups(previous))


def think_times_ns(workload: Workload, previous: np.ndarray) -> np.ndarray:
    """Per row, its think time in replay nanoseconds: how long after the turn it follows up (`previous`)
    has finished it leaves, as the recording's user waited: the recorded gap between the two arrivals
    less the earlier turn's recorded duration, floored at 0, capped by `--max-idle-gap` and divided by
    the speedup. -1 for rows that follow no turn (they leave at their instant)."""
    trace = workload.trace
    if trace.durations_s is None:
        raise ConfigError(f"--session-timing think-time: {trace.source} records no request durations to "
                          "subtract from the gaps (BurstGPT v3 has Elapsed time; map a CSV's with "
                          "--columns ...,duration=COL)")
    think = np.full(len(previous), -1, dtype=np.int64)
    turns = np.flatnonzero(previous >= 0)
    before = previous[turns]
    gaps_s = np.maximum(trace.arrival_s[turns] - trace.arrival_s[before] - trace.durations_s[before], 0.0)
    if workload.shaping.max_idle_gap_s is not None:
        gaps_s = np.minimum(gaps_s, workload.shaping.max_idle_gap_s)
    think[turns] = np.rint(gaps_s * (1e9 / workload.speedup)).astype(np.int64)
    return think


def _follow_ups(previous: np.ndarray) -> np.ndarray:
    return np.bincount(previous[previous >= 0], minlength=previous.size)


@dataclass(frozen=True, slots=True)
class _Message:
    role: str
    content: str
    tokens: int


class Conversations:
    """The histories of the sessions in progress; builds each turn's messages.

    A conversation is kept only while a later turn that follows it up is still to be built, so memory
    follows the number of open sessions, not the length of the trace. A session's first turn is made of
    its prefix blocks where the trace has them (`blocks`, of `block_tokens` each), so sessions that
    open alike (one system prompt) share that text too."""

    def __init__(self, links: SessionLinks, synthesizer: PromptSynthesizer, history: str,
                 template: TemplateOverhead = TemplateOverhead(), blocks: np.ndarray | None = None,
                 block_tokens: int = BLOCK_TOKENS):
        if history not in ("actual", "synthetic"):
            raise ValueError(f"unknown session history {history!r}")
        self.links = links
        self.synthesizer = synthesizer
        self.history = history
        self.template = template
        self.blocks = blocks
        self.block_tokens = block_tokens
        self._open: dict[int, list[_Message]] = {}
        self._follow_ups_left: dict[int, int] = {}

    def messages(self, position: int, request_id: int, request_tokens: int, output_tokens: int) -> list[dict]:
        """The messages of the turn at `position`: the conversation up to the turn it follows up (which
        must have finished, in `actual` mode), then a new user message completing `request_tokens`."""
        previous = int(self.links.previous[position])
        history = self._history(previous) if previous >= 0 else []
        history, used = self._fit(history, request_tokens)
        room = request_tokens - used
        user_tokens = self.template.content_tokens(room, len(history) + 1)
        if previous < 0 and self.blocks is not None:
            prompt = self.synthesizer.prefixed_prompt(request_id, self.blocks[position], user_tokens, self.block_tokens)
        else:
            prompt = self.synthesizer.prompt(request_id, user_tokens)
        conversation = [*history, _Message("user", prompt, user_tokens)]
        messages = [{"role": m.role, "content": m.content} for m in conversation]
        if self.links.follow_ups[position]:
            if self.history == "synthetic":
                conversation.append(self._synthetic_reply(request_id, output_tokens))
            self._open[position] = conversation
            self._follow_ups_left[position] = int(self.links.follow_ups[position])
        return messages

    def _history(self, previous: int) -> list[_Message]:
        """The conversation up to `previous`, forgotten once its last follow-up has taken it."""
        left = self._follow_ups_left.get(previous, 1) - 1
        if left > 0:
            self._follow_ups_left[previous] = left
            return self._open.get(previous, [])
        self._follow_ups_left.pop(previous, None)
        return self._open.pop(previous, [])

    def _fit(self, history: list[_Message], request_tokens: int) -> tuple[list[_Message], int]:
        """Drop the oldest exchanges until the new user message has at least one token of room; returns
        the kept history and its content tokens."""
        used = sum(m.tokens for m in history)
        start = 0
        while start < len(history) and used + self.template.of(len(history) - start + 1) >= request_tokens:
            dropped = history[start:start + 2]  # one user message and its reply
            used -= sum(m.tokens for m in dropped)
            start += len(dropped)
        return history[start:], used

    def wants_reply(self, position: int) -> bool:
        """Whether the server's reply to this turn goes into its session's history."""
        return self.history == "actual" and bool(self.links.follow_ups[position])

    def add_reply(self, position: int, request_id: int, output_tokens: int, reply: str | None) -> None:
        """Close the turn at `position` with the server's reply (None when it failed: a synthetic reply
        of the recorded length stands in)."""
        conversation = self._open.get(position)
        if conversation is None or self.history != "actual":
            return
        if reply:
            conversation.append(_Message("assistant", reply, self.synthesizer.tokenizer.count(reply)))
        else:
            conversation.append(self._synthetic_reply(request_id, output_tokens))

    def _synthetic_reply(self, request_id: int, output_tokens: int) -> _Message:
        return _Message("assistant", self.synthesizer.reply(request_id, output_tokens), output_tokens)
