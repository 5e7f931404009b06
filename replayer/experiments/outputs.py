"""An experiment's own files beside its runs: `<kind>.json` (capacity, sweep or trials) and `report.html`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from replayer.analysis.experiment_html import render_experiment
from replayer.errors import OutputError

KINDS = ("capacity", "sweep", "trials")
"""Experiment kinds, each named by its JSON file."""


def experiment_kind(folder: Path) -> str | None:
    """The kind of experiment `folder` holds (by its JSON file), None for a plain run."""
    return next((kind for kind in KINDS if (folder / f"{kind}.json").is_file()), None) if folder.is_dir() else None


def write_experiment(out_dir: Path, result: dict[str, Any]) -> None:
    """`<kind>.json` and `report.html` of an experiment."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / f"{result['kind']}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
        (out_dir / "report.html").write_text(render_experiment(result, str(out_dir)), encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot write the experiment's results ({exc.strerror or exc})") from None
