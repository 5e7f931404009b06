"""The typed-decode stream parser against the regex scan it replaced (issue 18), kept here as the oracle:
on every engine's fixture, whole and split at hundreds of random places, both find the same output
arrivals, finish, [DONE], token counts and errors."""

import json
import random
import re
from array import array
from pathlib import Path

import pytest

from replayer.records import RequestRecord
from replayer.send.sse import SSEParser
from replayer.send.stream import StreamState, apply_usage, usage_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sse"
SPLITS_PER_FIXTURE = 40

_KEYS = re.compile(rb'"(content|reasoning_content|reasoning|text|finish_reason|usage|details|error)"\s*:\s*(?=(.?.?))')
_OUTPUT_KEYS = frozenset((b"content", b"reasoning_content", b"reasoning", b"text"))


class RegexStreamState:
    """replayer's stream parser before issue 18: a regex finds which keys carry values, and only the
    braces around an event are checked."""

    def __init__(self) -> None:
        self.parser = SSEParser()
        self.arrivals = array("q")
        self.usage_payload: bytes | None = None
        self.finished = self.done = False
        self.error: str | None = None

    def __call__(self, data: bytes, now_ns: int) -> None:
        for _, payload in self.parser.feed(data):
            self.take(payload, now_ns)

    def close(self, now_ns: int) -> None:
        for _, payload in self.parser.close():
            self.take(payload, now_ns)

    def take(self, payload: bytes, now_ns: int) -> None:
        if payload == b"[DONE]":
            self.done = True
            return
        if payload[:1] != b"{" or not payload.rstrip().endswith(b"}"):
            self.error = self.error or "malformed"
            return
        has_output = False
        for key, value in _KEYS.findall(payload):
            if key in _OUTPUT_KEYS:
                has_output = has_output or (value[:1] == b'"' and value[1:2] != b'"')
            elif key == b"finish_reason":
                self.finished = self.finished or value[:1] == b'"'
            elif key in (b"usage", b"details"):
                if value[:1] == b"{":
                    self.usage_payload = payload
            elif value[:1] in (b"{", b'"'):
                self.error = "error"
        if has_output:
            self.arrivals.append(now_ns)

    @property
    def usage(self) -> dict:
        return usage_of(json.loads(self.usage_payload)) if self.usage_payload else {}


def outcome(state, pieces: list[bytes]) -> tuple:
    """Feed the pieces (piece n received at time n) and return what a record is made of."""
    for n, piece in enumerate(pieces):
        state(piece, n)
    state.close(len(pieces))
    record = RequestRecord(id=1, intended_ns=0, input_tokens=1, output_tokens=1)
    apply_usage(record, state.usage or {}, len(state.arrivals))
    return (list(state.arrivals), state.finished, state.done, state.error is None,
            record.served_input_tokens, record.served_output_tokens, record.output_counted)


def random_splits(raw: bytes, rng: random.Random) -> list[bytes]:
    cuts = sorted(rng.sample(range(1, len(raw)), rng.randint(1, min(12, len(raw) - 1))))
    return [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]


@pytest.mark.parametrize("name", sorted(path.name for path in FIXTURES.glob("*.sse")
                                        if b"\nevent: " not in b"\n" + path.read_bytes()))  # (typed events came later)
def test_the_typed_parser_matches_the_regex_one_on_every_fixture_and_split(name):
    raw = (FIXTURES / name).read_bytes()
    rng = random.Random(name)
    splits = [[raw], *(random_splits(raw, rng) for _ in range(SPLITS_PER_FIXTURE))]
    for pieces in splits:
        new, old = outcome(StreamState(), pieces), outcome(RegexStreamState(), pieces)
        assert new == old, (name, [len(piece) for piece in pieces])
        assert new[3], name  # and none of the fixtures is malformed


@pytest.mark.parametrize("chunk", [
    b'{"choices":[{"delta":{"content":"a"}},]}',  # braces in place, but a trailing comma
    b'{"choices":[{"delta":{"content":"a"}}]} }',  # a stray brace after a whole object
    b'{"choices":[{"delta":{"content":"a\xff"}}]}',  # not UTF-8
])
def test_chunks_the_regex_let_through_are_malformed_now(chunk):
    stream = b"data: " + chunk + b"\n\ndata: [DONE]\n\n"
    assert outcome(RegexStreamState(), [stream])[3]
    assert not outcome(StreamState(), [stream])[3]
