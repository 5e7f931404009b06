"""Scenario files: a named, commented workload (`scenarios/*.toml`) that `replayer run` (or
`capacity`, `sweep`) starts from; a capacity scenario keeps its search under `[search]`, a sweep
its loads under `[loads]`.

A scenario holds `replayer run` options under readable sections, with the long option names as
keys (`busiest = 3600` for `--busiest 3600`), plus a `description` and an `slo` list:

    description = "BurstGPT conversation logs, busiest hour"
    slo = ["ttft_p99<=2s", "error_rate<=1%"]
    [workload]
    trace = "burstgpt:1-without-fails"
    [shaping]
    log-type = ["Conversation log"]
    busiest = 3600

Every value goes through the same parsing and checks as on the command line, so a bad one is a
one-line error naming the file and the option. Options given on the command line override the
scenario's (a repeatable one such as `--slo` replaces the scenario's list rather than adding to it).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replayer.errors import InputError, ReplayerError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover (Python 3.10)
    import tomli as tomllib

SECTIONS = ("workload", "shaping", "target", "prompts", "output", "scale", "simulator", "search", "loads")
"""Tables a scenario may have; they group options for the reader, any option may sit in any of them."""
_NOT_IN_FILES = {"api-key": "a key in a file that may be shared; use --api-key-file or $OPENAI_API_KEY",
                 "help": "not an option to keep in a file"}
_ALTERNATIVES = ({"trace", "synthetic"},)
"""Destinations that exclude each other besides argparse's groups: giving one drops the scenario's other."""
_FILE_OPTIONS = ("trace", "fit", "api-key-file", "tokenizer")
"""Options naming files, resolved against the scenario's directory when the file is there."""


@dataclass(frozen=True)
class Scenario:
    """A parsed scenario file: its name (the file's stem), description and `replayer run` options."""

    name: str
    path: Path
    description: str
    options: dict[str, Any]
    """Long option name (without dashes) → value as written in the file."""


def scenario_dirs() -> list[Path]:
    """Where scenarios are looked up by name: $REPLAYER_SCENARIOS, ./scenarios, then the ones shipped
    next to the package in a source checkout."""
    dirs = [Path(os.environ["REPLAYER_SCENARIOS"])] if os.environ.get("REPLAYER_SCENARIOS") else []
    return [*dirs, Path("scenarios"), Path(__file__).resolve().parents[2] / "scenarios"]


def find_scenario(spec: str) -> Path:
    """A scenario argument → its file: a path, or the name of one in `scenario_dirs()`."""
    path = Path(spec)
    if path.is_file():
        return path
    for folder in scenario_dirs():
        candidate = folder / f"{spec}.toml"
        if candidate.is_file():
            return candidate
    raise InputError(spec, "no such scenario file or name (replayer scenarios lists them)")


def list_scenarios() -> list[Scenario]:
    """Every scenario found by name, the first of each name winning, sorted by name."""
    found: dict[str, Scenario] = {}
    for folder in scenario_dirs():
        for path in sorted(folder.glob("*.toml")) if folder.is_dir() else ():
            if path.stem not in found:
                found[path.stem] = load_scenario(path)
    return [found[name] for name in sorted(found)]


def load_scenario(path: Path) -> Scenario:
    """Read and check the shape of a scenario file (values are checked by `scenario_defaults`)."""
    source = str(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(source, f"cannot read the scenario ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(source, f"not valid TOML ({exc})") from None
    description = data.pop("description", "")
    if not isinstance(description, str):
        raise InputError(source, "description must be a string")
    options: dict[str, Any] = {}
    if "slo" in data:
        options["slo"] = data.pop("slo")
    for section, table in data.items():
        if section not in SECTIONS or not isinstance(table, dict):
            raise InputError(source, f"unknown entry {section!r} (expected description, slo, or the tables "
                                     f"[{'], ['.join(SECTIONS)}])")
        for name, value in table.items():
            if name in options:
                raise InputError(source, "set twice", field=name)
            options[name] = value
    return Scenario(path.stem, path, description, options)


def scenario_defaults(scenario: Scenario, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The scenario's options as `parser` would have parsed them: destination → value."""
    values: dict[str, Any] = {}
    for name, value in scenario.options.items():
        action = parser._option_string_actions.get(f"--{name}")
        if name in _NOT_IN_FILES or action is None:
            command = parser.prog.rpartition(" ")[2]
            reason = _NOT_IN_FILES.get(name, f"not a `replayer {command}` option (see replayer {command} --help)")
            raise InputError(str(scenario.path), reason, field=name)
        if name in _FILE_OPTIONS and isinstance(value, str) and (scenario.path.parent / value).exists():
            value = str(scenario.path.parent / value)
        values[action.dest] = _parsed(scenario, name, action, value)
    return values


def _parsed(scenario: Scenario, name: str, action: argparse.Action, value: Any) -> Any:
    source = str(scenario.path)
    if action.nargs == 0:  # a switch (--quiet, --stream/--no-stream)
        if not isinstance(value, bool):
            raise InputError(source, "expected true or false", field=name)
        return value
    if isinstance(action, argparse._AppendAction):
        items = value if isinstance(value, list) else [value]
        return [_converted(source, name, action, item) for item in items]
    if isinstance(value, (list, dict)):
        raise InputError(source, "expected a single value", field=name)
    return _converted(source, name, action, value)


def _converted(source: str, name: str, action: argparse.Action, value: Any) -> Any:
    """One value through the option's own type and choices, as if typed on the command line."""
    if isinstance(value, bool) or isinstance(value, (list, dict)):
        raise InputError(source, f"expected a value like on the command line, got {value!r}", field=name)
    text = str(value)
    convert = action.type
    try:
        converted = convert(text) if callable(convert) else text
    except (argparse.ArgumentTypeError, ValueError, TypeError, ReplayerError) as exc:
        raise InputError(source, str(exc) or f"invalid value {text!r}", field=name) from None
    if action.choices is not None and converted not in action.choices:
        raise InputError(source, f"{text!r} is not one of {', '.join(map(str, action.choices))}", field=name)
    return converted


def given_on_command_line(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """Destinations of the options `argv` sets, and of those excluded with them (mutually exclusive
    ones): the scenario's values for these give way."""
    given = set()
    for option, action in parser._option_string_actions.items():
        long = option.startswith("--")
        if any(token == option or (long and token.startswith(option + "=")) or (not long and token.startswith(option))
               for token in argv):
            given.add(action.dest)
    groups = [{action.dest for action in group._group_actions} for group in parser._mutually_exclusive_groups]
    for dests in [*groups, *_ALTERNATIVES]:
        if dests & given:
            given |= dests
    return given
