"""The error tree: every problem a user can fix is a `ReplayerError` with a one-line message.

The CLI turns these into `replayer: <message>` on stderr and exit code 2, never a traceback.
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
    """The run's output cannot be written (an unwritable directory, a full disk)."""
