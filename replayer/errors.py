"""The error tree: every problem a user can fix is a `ReplayerError` with a one-line message.

The CLI turns these into `replayer: <message>` on stderr, never a traceback: exit code 2 for input
and config errors (raised before any load is sent), 74 for an `OutputError` (the run's output, or
a report's, could not be written, possibly after the load went out).
"""

from __future__ import annotations


class ReplayerError(Exception):
    """A problem with the user's input or environment, reported as one line."""


class InputError(ReplayerError):
    """Bad input data: names the file, the line (1-based, when known) and the field."""

    def __init__(self, source: str, message: str, *, line: int | None = None, field: str | None = None):
        self.source = source
        self.line = line
        self.field = field
        self.message = message
        where = source if line is None else f"{source}:{line}"
        what = message if field is None else f"{field}: {message}"
        super().__init__(f"{where}: {what}")


class ConfigError(ReplayerError):
    """An invalid option value or combination of options."""


class OutputError(ReplayerError):
    """Output cannot be written (a full disk, a missing directory): exit 74, since load may have been sent."""
