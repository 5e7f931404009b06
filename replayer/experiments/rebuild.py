"""`replayer report DIR` on an experiment: its JSON and report computed again from its runs' records
(the search's path is history, kept as it was; every verdict and figure is recomputed)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from replayer.errors import InputError
from replayer.experiments.capacity import Search, capacity_result, probe_entry
from replayer.experiments.outputs import experiment_kind, write_experiment
from replayer.experiments.points import point_entry
from replayer.experiments.sweep import Sweep, sweep_point, sweep_result
from replayer.experiments.trials import trials_result


def rebuild(out_dir: Path) -> dict[str, Any]:
    """Recompute and rewrite the experiment in `out_dir`; returns its new JSON content."""
    kind = experiment_kind(out_dir)
    path = out_dir / f"{kind}.json"
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        result = _REBUILDERS[str(kind)](out_dir, old)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(str(path), f"not a readable replayer {kind} result ({exc})") from None
    write_experiment(out_dir, result)
    return result


def _capacity(out_dir: Path, old: dict[str, Any]) -> dict[str, Any]:
    search = Search(tuple(old["slos"]), old["low"], old["high"], old["precision"], trials=old["trials"],
                    load=old.get("load", "speedup"))
    probes = []
    for probe in old["probes"]:
        entry = probe_entry(out_dir, search.load, probe[search.load], probe["runs"], search.slos)
        if probe.get("inconclusive"):
            entry["inconclusive"] = probe["inconclusive"]
        probes.append(entry)
    return capacity_result(old["config"], search, probes, old["stopped"], old["elapsed_s"])


def _sweep(out_dir: Path, old: dict[str, Any]) -> dict[str, Any]:
    plan = Sweep(tuple(old["speedups"]), tuple(old["rates"]), tuple(old["slos"]), old["trials"],
                 tuple(old.get("concurrencies") or ()))
    points = [sweep_point(out_dir, p["load"], p["value"], p["runs"], plan.slos) for p in old["points"]]
    return sweep_result(old["config"], plan, points, old["stopped"], old["elapsed_s"])


def _trials(out_dir: Path, old: dict[str, Any]) -> dict[str, Any]:
    slos = tuple((old["config"].get("output") or {}).get("slos") or ())
    return trials_result(old["config"], old["trials"], point_entry(out_dir, old["point"]["runs"], slos))


_REBUILDERS = {"capacity": _capacity, "sweep": _sweep, "trials": _trials}
