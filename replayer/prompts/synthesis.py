"""Token-exact prompt synthesis and request bodies, built before the run starts.

A prompt for `n` tokens is a short header unique to the run and the request (so prefix caches only
hit where the trace says they should), followed by sentences of a bundled prose corpus.

Exactness without re-encoding: the corpus is cut into *pieces*, each one token on its own: a word
with its leading space (`" harbor"`) or one punctuation mark. The tokenizer's pre-tokenizer splits
text at exactly these boundaries (a space-led run of letters, a lone punctuation mark), and BPE never
merges across them, so a string of k pieces encodes to exactly k tokens. Pieces that are not a
single token are dropped when the synthesizer is built, and the property is checked by the tests.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

import numpy as np

from replayer.errors import ConfigError
from replayer.prompts.tokenizer import Tokenizer

_WORD_OR_MARK = re.compile(r"[A-Za-z]+|[.,;:]")
BLOCK_TOKENS = 512
"""Tokens per prefix block (Mooncake's `hash_ids` granularity)."""
_BLOCK_SALT = 0x5DEECE66D
"""Keeps block texts apart from request texts of the same number."""
_REPLY_SALT = 0x2545F4914F6CDD1D
"""Keeps synthetic assistant replies apart from the prompts of the same request."""
_PERMUTATIONS = 16
"""Distinct sentence orders; with every start sentence they give a few hundred different bodies."""


class _Cycle:
    """The corpus sentences in one order, repeated as often as the longest prompt needs."""

    def __init__(self, sentences: list[list[str]], order: np.ndarray):
        pieces = [p for i in order for p in sentences[i]]
        self.one_cycle = "".join(pieces)
        self.one_cycle_ends = np.cumsum([len(p) for p in pieces], dtype=np.int64)
        self.sentence_first_piece = np.cumsum([0] + [len(sentences[i]) for i in order[:-1]], dtype=np.int64)
        self.text, self.piece_ends = self.one_cycle, self.one_cycle_ends

    def slice(self, first_piece: int, pieces: int) -> str:
        """The text of `pieces` consecutive pieces starting at `first_piece`."""
        end = first_piece + pieces
        while end > len(self.piece_ends):
            repeats = len(self.piece_ends) // len(self.one_cycle_ends) + 1
            self.text = self.one_cycle * repeats
            self.piece_ends = np.concatenate(
                [self.one_cycle_ends + i * len(self.one_cycle) for i in range(repeats)])
        start_char = int(self.piece_ends[first_piece - 1]) if first_piece else 0
        return self.text[start_char:int(self.piece_ends[end - 1])]


def _sentences(corpus: str, is_single_token: Callable[[str], bool], marks: bool = True) -> list[list[str]]:
    """Split prose into sentences of single-token pieces; never two marks in a row (no marks at all
    when `marks` is false, for tokenizers that glue punctuation to the word before it)."""
    sentences: list[list[str]] = []
    current: list[str] = []
    for match in _WORD_OR_MARK.finditer(corpus):
        token = match.group()
        if token.isalpha():
            piece = " " + token
            if is_single_token(piece):
                current.append(piece)
        elif current and current[-1].startswith(" "):  # a mark only after a word
            if marks and is_single_token(token):
                current.append(token)
            if token == "." and current:
                sentences.append(current)
                current = []
    if current:
        sentences.append(current)
    return sentences


_ANCHOR = "Hello"
"""Text that a piece is counted after, so tokenizers that prefix the start of text (SentencePiece's
`▁`) count the piece as it appears mid-prompt."""

_SELF_CHECK_LENGTHS = (1, 2, 3, 4, 5, 6, 9, 17, 64, 511, 512, 513, 1500)


class PromptSynthesizer:
    """Makes prompts of an exact token count for a given tokenizer; deterministic per (seed, id).

    On construction it checks that concatenated pieces really add up for this tokenizer; if
    punctuation merges with the word before it, it falls back to words only, and if even that does
    not add up it refuses the tokenizer rather than send prompts of the wrong length."""

    def __init__(self, tokenizer: Tokenizer, seed: int = 0, corpus: str | None = None):
        if corpus is None:
            corpus = (resources.files("replayer") / "data" / "corpus.txt").read_text(encoding="utf-8")
        self.tokenizer = tokenizer
        self.seed = seed
        anchor_tokens = tokenizer.count(_ANCHOR)

        @functools.cache
        def is_single_token(piece: str) -> bool:
            return tokenizer.count(_ANCHOR + piece) - anchor_tokens == 1

        for marks in (True, False):
            self._build(_sentences(corpus, is_single_token, marks), is_single_token, tokenizer)
            if self._adds_up():
                return
        raise ConfigError(f"tokenizer {tokenizer.name}: concatenated words do not add up to exact token counts "
                          "(it merges across word boundaries), so exact prompts cannot be built")

    def _build(self, sentences: list[list[str]], is_single_token: Callable[[str], bool], tokenizer: Tokenizer) -> None:
        self.words = sorted({p for s in sentences for p in s if p.startswith(" ")})
        """The corpus words (with their leading space) that are one token each."""
        openers = [w.strip().capitalize() for w in self.words]
        self._openers = [w for w in openers if tokenizer.count(w) == 1] or self.words
        if len(self.words) < 16 or not sentences:
            raise ConfigError(f"tokenizer {tokenizer.name} leaves too few single-token words in the corpus")
        rng = np.random.default_rng(self.seed)
        self._salt = (int(rng.integers(len(self._openers))), int(rng.integers(len(self.words))))
        self._cycles = [_Cycle(sentences, rng.permutation(len(sentences))) for _ in range(_PERMUTATIONS)]
        self._sentence_count = len(sentences)

    def _adds_up(self) -> bool:
        """Whether prompts and block concatenations of assorted lengths encode to exactly their length."""
        blocks = np.arange(3)
        return all(self.tokenizer.count(self.prompt(n * 31, n)) == n and
                   self.tokenizer.count(self.prefixed_prompt(n, blocks, n + 600)) == n + 600
                   for n in _SELF_CHECK_LENGTHS)

    def header(self, request_id: int) -> list[str]:
        """Pieces unique to this run (the salt) and this request (its id in base-|alphabet| words)."""
        base = len(self.words)
        pieces = [self._openers[self._salt[0]], self.words[self._salt[1]]]
        digits = []
        value = request_id
        while True:
            value, digit = divmod(value, base)
            digits.append(self.words[digit])
            if value == 0:
                break
        digits.extend(self.words[0] for _ in range(3 - len(digits)))
        return pieces + digits  # least significant first: nearby ids differ at once

    def prompt(self, request_id: int, n_tokens: int) -> str:
        """A prompt that encodes to exactly `n_tokens` tokens (n_tokens >= 1)."""
        return self._text(self.header(request_id), _mix(self.seed, request_id), n_tokens)

    def reply(self, request_id: int, n_tokens: int) -> str:
        """A synthetic assistant reply of exactly `n_tokens` tokens, for session histories that do not
        use the server's actual replies; distinct from every prompt."""
        return self._text(self._space_led_header(request_id), _mix(self.seed ^ _REPLY_SALT, request_id), n_tokens)

    def block(self, block_id: int, n_tokens: int) -> str:
        """The text of one prefix block (or its first `n_tokens`): the same for the same id within a run,
        different from every other block's from its first words. It starts with a space-led word, so
        blocks concatenate without the tokenizer merging across their boundary."""
        return self._text(self._space_led_header(block_id), _mix(self.seed ^ _BLOCK_SALT, block_id), n_tokens)

    def prefixed_prompt(self, request_id: int, blocks: np.ndarray, n_tokens: int,
                        block_tokens: int = BLOCK_TOKENS) -> str:
        """A prompt made of the request's prefix blocks (Mooncake or Qwen-Bailian `hash_ids`, of
        `block_tokens` each), so requests that share leading block ids share exactly that many blocks of
        text; tokens beyond the blocks are request-unique."""
        parts, covered = [], 0
        for block_id in blocks[:-(-n_tokens // block_tokens)].tolist():
            size = min(block_tokens, n_tokens - covered)
            parts.append(self.block(block_id, size))
            covered += size
        if covered < n_tokens:
            header = self._space_led_header(request_id)
            parts.append(self._text(header, _mix(self.seed, request_id), n_tokens - covered))
        return "".join(parts)

    def _space_led_header(self, value: int) -> list[str]:
        """`header(value)` starting with a space, so it can follow other text without merging into it."""
        head = self.header(value)
        return [" " + head[0].lower(), *head[1:]]

    def _text(self, head: list[str], mix: int, n_tokens: int) -> str:
        """`head` followed by corpus prose chosen by `mix`, `n_tokens` pieces (tokens) in all."""
        if n_tokens <= len(head):
            return "".join(head[:n_tokens])
        cycle = self._cycles[mix % _PERMUTATIONS]
        first_sentence = (mix // _PERMUTATIONS) % self._sentence_count
        body = cycle.slice(int(cycle.sentence_first_piece[first_sentence]), n_tokens - len(head))
        return "".join(head) + body


def _mix(seed: int, value: int) -> int:
    """A cheap, well-spread 64-bit hash of (seed, value) (splitmix64 finalizer)."""
    x = (value * 0x9E3779B97F4A7C15 + seed * 0xBF58476D1CE4E5B9 + 1) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


@dataclass(frozen=True)
class TemplateOverhead:
    """Tokens the server adds around the message contents (chat template markers, BOS): `base` per
    request plus `per_message` for each message. Zero unless measured (`--count-template`)."""

    base: int = 0
    per_message: int = 0

    def of(self, messages: int) -> int:
        """The overhead of a request with `messages` messages."""
        return self.base + self.per_message * messages

    def content_tokens(self, request_tokens: int, messages: int = 1) -> int:
        """How many content tokens make a request of `request_tokens` as the server counts it (at
        least one token when any was asked for)."""
        return max(min(request_tokens, 1), request_tokens - self.of(messages))
