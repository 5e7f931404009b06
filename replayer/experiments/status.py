"""The live line of an experiment: what it is doing now and for how long it has been at it.

The runs of an experiment are quiet; this line says which probe or point is running, the state of
the search (the bracket), and the elapsed time, refreshed by rich's own timer. Without a terminal
(CI logs), each step is printed as a line instead.
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.text import Text


def elapsed_text(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class Status:
    """A context manager holding the experiment's live line; `step` changes it, `note` prints a line."""

    def __init__(self, console: Console, quiet: bool = False):
        self.console = console
        self.quiet = quiet
        self.started = time.monotonic()
        self.current = ""
        self._live: Live | None = None

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    def __rich__(self) -> Text:
        return Text(f"{self.current} · {elapsed_text(self.elapsed_s)} elapsed", style="bold")

    def __enter__(self) -> Status:
        if not self.quiet and self.console.is_terminal:
            self._live = Live(self, console=self.console, refresh_per_second=2, transient=True)
            self._live.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        if self._live is not None:
            self._live.__exit__(kind, error, trace)

    def step(self, text: str) -> None:
        """What the experiment is doing now (printed as a line without a terminal)."""
        self.current = text
        if not self.quiet and self._live is None:
            self.console.print(f"{text} · {elapsed_text(self.elapsed_s)} elapsed")

    def note(self, text: str) -> None:
        """A line that stays: the result of a step."""
        if not self.quiet:
            self.console.print(text)
