"""`replayer run --trials N`: one configuration replayed N times with fresh prompt seeds, into
`OUT/trial-1 … trial-N`, and `OUT/trials.json`: every metric's mean and 95 % interval across them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from rich.console import Console

from replayer.experiments.outputs import write_experiment
from replayer.experiments.points import Point, point_entry, run_point
from replayer.run.config import RunConfig
from replayer.run.preflight import default_out_dir, prepare_out_dir


def run_trials(config: RunConfig, trials: int, console: Console | None = None) -> tuple[Path, Point, dict[str, Any]]:
    """Replay `config` `trials` times; (the experiment directory, its runs, the trials.json content)."""
    out_dir = config.output.out_dir or default_out_dir()
    prepare_out_dir(out_dir, config.output.overwrite)
    point = run_point(replace(config, output=replace(config.output, overwrite=True)), trials, out_dir, console)
    runs = point.run_dirs(out_dir)
    result = trials_result(config.public(), trials, point_entry(out_dir, runs, config.output.slos))
    write_experiment(out_dir, result)
    return out_dir, point, result


def trials_result(config: dict[str, Any], trials: int, point: dict[str, Any]) -> dict[str, Any]:
    """`trials.json`: the runs, each one's verdict, and every metric's spread across them."""
    return {"kind": "trials", "workload": config.get("workload"),
            "target": (config.get("target") or {}).get("base_url") or "built-in simulator",
            "slos": list((config.get("output") or {}).get("slos") or ()), "trials": trials, "point": point,
            "config": config}
