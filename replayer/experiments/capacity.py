"""`replayer capacity`: the largest speedup of a workload at which every SLO holds, the trace's own
shape kept (bursts come faster, never smoothed); or, with `load="concurrency"`, the most closed-loop
users (`--concurrency`) it holds for, the number the peers' concurrency benchmarks report.

The search brackets geometrically (doubling from `low` until a probe fails), then bisects
geometrically until the bracket is within `precision`. Each probe is a complete run directory
under `OUT/probes/`. A probe stops early once its SLOs are out of reach and counts as failed; with
`trials`, a probe passes only if every trial does (and stops at the first failing one).

Noise: the workload of every probe is the same one (the trace, or the synthetic spec's seed) at
another speed, and each probe against the built-in simulator gets a fresh one, so a probe differs
from the previous only by its load and its prompts. The bracket never reopens: a probe is only
placed inside it, so a noisy verdict near the edge moves the answer by at most the bracket's width
and never makes the search wander. Use `--trials` where the edge is noisy: the answer is then the
largest speedup that held in every trial.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from replayer.analysis.slo import aggregate_slos, parse_slo, parse_slos
from replayer.analysis.wording import slo_value
from replayer.errors import ConfigError
from replayer.experiments.loads import at_concurrency, at_speedup
from replayer.experiments.outputs import write_experiment
from replayer.experiments.points import point_entry, run_point
from replayer.experiments.status import Status
from replayer.run.config import RunConfig

Probe = Callable[[float], "bool | None"]
"""Runs the workload at a load: True if every SLO held, False if not, None if it could not say."""

LOADS = {"speedup": at_speedup, "concurrency": at_concurrency}
"""What a search can vary: the trace's pace, or the number of closed-loop users."""


@dataclass(frozen=True)
class Search:
    """What the capacity search looks for and how far it may go."""

    slos: tuple[str, ...]
    low: float = 1.0
    """The first load probed."""
    high: float = 1024.0
    """The largest load probed: a workload that passes there is reported as sustained up to it."""
    precision: float = 0.05
    """The search stops when the failing load is within this fraction above the passing one (or, for
    users, one user above it)."""
    max_time_s: float | None = None
    trials: int = 1
    cooldown_s: float = 0.0
    """Pause between probes, so a real server finishes what a stopped probe left."""
    load: str = "speedup"
    """What is varied: `speedup`, or `concurrency` (whole numbers of closed-loop users)."""

    def __post_init__(self) -> None:
        parse_slos(self.slos)  # (the set's own checks: goodput and attainment need a per-request SLO)
        if not aggregate_slos(self.slos):
            raise ConfigError("capacity needs at least one aggregate --slo to hold (e.g. ttft_p99<=2s or "
                              "attainment>=95% with ttft<=2s)")
        if not 0 < self.low < self.high:
            raise ConfigError(f"--low must be > 0 and below --high, got {self.low:g} and {self.high:g}")
        if not 0 < self.precision < 1:
            raise ConfigError(f"--precision must be between 0 and 1 (5% is 0.05), got {self.precision:g}")
        if self.max_time_s is not None and not self.max_time_s > 0:
            raise ConfigError(f"--max-time must be > 0 seconds, got {self.max_time_s:g}")
        if self.trials < 1:
            raise ConfigError(f"--trials must be >= 1, got {self.trials}")
        if self.load not in LOADS:
            raise ConfigError(f"--vary must be one of {', '.join(LOADS)}, got {self.load!r}")
        if self.load == "concurrency" and not (float(self.low).is_integer() and float(self.high).is_integer()):
            raise ConfigError(f"users are whole numbers: --low and --high must be, got {self.low:g} and {self.high:g}")

    def between(self, passing: float, failing: float) -> float | None:
        """The next load to probe inside the bracket, or None when the bracket is as narrow as it gets."""
        if failing / passing <= 1 + self.precision:
            return None
        middle = math.sqrt(passing * failing)
        if self.load == "speedup":
            return middle
        users = min(max(round(middle), int(passing) + 1), int(failing) - 1)
        return float(users) if passing < users < failing else None


def bracket_and_bisect(probe: Probe, search: Search) -> tuple[float | None, float | None]:
    """(largest passing speedup, smallest failing one above it) found by doubling from `low`, then by
    geometric bisection to `precision`; either is None when no probe gave it. Stops at the first
    probe that cannot say."""
    passing: float | None = None
    speedup = search.low
    while True:
        verdict = probe(speedup)
        if verdict is None:
            return passing, None
        if not verdict:
            failing = speedup
            break
        passing = speedup
        if speedup >= search.high:
            return passing, None
        speedup = min(speedup * 2, search.high)
    if passing is None:
        return None, failing
    while (middle := search.between(passing, failing)) is not None:
        verdict = probe(middle)
        if verdict is None:
            break
        if verdict:
            passing = middle
        else:
            failing = middle
    return passing, failing


def capacity(config: RunConfig, search: Search, out_dir: Path, console: Console | None = None) -> dict[str, Any]:
    """Search, one run directory per probe under `out_dir/probes/`, writing `out_dir/capacity.json`
    and its report after every probe (an interrupted search keeps what it learned)."""
    console = console or Console(stderr=True)
    probes: list[dict[str, Any]] = []
    stopped: list[str] = []
    with Status(console, config.output.quiet) as status:
        def probe(value: float) -> bool | None:
            remaining = None if search.max_time_s is None else search.max_time_s - status.elapsed_s
            if remaining is not None and remaining <= 1:
                stopped.append("max time")
                return None
            if probes and search.cooldown_s:
                time.sleep(search.cooldown_s)
            name = f"probes/{len(probes) + 1:02d}-{search.load}-{value:.4g}"
            status.step(f"probe {len(probes) + 1}: {load_text(search.load, value)} · bracket "
                        f"{_bracket_text(probes, search.load)}")
            point = run_point(_probe_config(config, search, value, out_dir / name, remaining), search.trials,
                              out_dir / name, Console(stderr=True, quiet=True), until_failure=True)
            runs = point.run_dirs(out_dir)
            entry = probe_entry(out_dir, search.load, value, runs, search.slos)
            probes.append(entry)
            if point.stop_reason:
                entry["inconclusive"] = point.stop_reason
                stopped.append(point.stop_reason)
            else:
                status.note(probe_line(entry, len(probes), search.load))
            write_experiment(out_dir, capacity_result(config.public(), search, probes, None, status.elapsed_s))
            return None if point.stop_reason else bool(entry["passed"])

        try:
            bracket_and_bisect(probe, search)
        except KeyboardInterrupt:
            stopped.append("SIGINT")
        result = capacity_result(config.public(), search, probes, stopped[0] if stopped else None, status.elapsed_s)
    write_experiment(out_dir, result)
    return result


def probe_entry(out_dir: Path, load: str, value: float, runs: list[str], slos: tuple[str, ...]) -> dict[str, Any]:
    """One probe in `capacity.json`: its load (`speedup` or `concurrency`, by name), the rate it ran
    at, and what its runs say."""
    entry = point_entry(out_dir, runs, slos)
    rate = entry["metrics"]["sent_rate"] if load == "concurrency" else probe_rate(entry)
    return {load: value, "rate": rate, **entry}


def _probe_config(config: RunConfig, search: Search, value: float, out_dir: Path,
                  remaining_s: float | None) -> RunConfig:
    """A probe: the workload at load `value`, watched so it stops once its SLOs are out of reach (or
    the search's time is up), quiet, and not draining after a stop."""
    probe = LOADS[search.load](config, value)
    output = replace(config.output, out_dir=out_dir, overwrite=True, slos=search.slos, stop_early=True,
                     time_limit_s=remaining_s, drain_timeout_s=0.0, quiet=True)
    return replace(probe, output=output)


def capacity_result(config: dict[str, Any], search: Search, probes: list[dict[str, Any]], stopped: str | None,
                    elapsed_s: float) -> dict[str, Any]:
    """`capacity.json`: the search's settings, every probe, and the answer they give (`max_speedup`
    and `failing_speedup`, or `max_concurrency` and `failing_concurrency`, after `load`)."""
    load = search.load
    decided = [probe for probe in probes if not probe.get("inconclusive")]
    failing = min((p for p in decided if not p["passed"]), key=lambda p: p[load], default=None)
    passing = max((p for p in decided if p["passed"] and (failing is None or p[load] < failing[load])),
                  key=lambda p: p[load], default=None)
    best_rate = passing["metrics"]["sent_rate"] if passing else None
    return {
        "kind": "capacity",
        "load": load,
        "workload": config.get("workload"),
        "target": (config.get("target") or {}).get("base_url") or "built-in simulator",
        "slos": list(search.slos),
        "precision": search.precision,
        "low": search.low,
        "high": search.high,
        "trials": search.trials,
        f"max_{load}": passing[load] if passing else None,
        "max_rate": best_rate,
        f"failing_{load}": failing[load] if failing else None,
        "failing_rate": failing["rate"] if failing else None,
        "stopped": stopped,
        "elapsed_s": elapsed_s,
        "probes": probes,
        "verdict": capacity_verdict(passing, failing, search, config.get("workload") or {}),
        "config": config,
    }


def capacity_verdict(passing: dict | None, failing: dict | None, search: Search, workload: dict) -> str:
    """One sentence: what the workload sustains under the SLOs and what fails just above it."""
    what = "this workload" if workload.get("synthetic") else "this trace"
    slos = ", ".join(search.slos)
    failure = f"fails at {_rate_and_load(failing, search.load)}: {failure_reason(failing)}" if failing else None
    if passing is None:
        return f"does not sustain {what} with {slos}: even the lowest probe " + (failure or "failed")
    sustained = f"sustains {_rate_and_load(passing, search.load)} of {what} with {slos}"
    if failure is None:
        return f"{sustained}, the largest load probed"
    return f"{sustained}; {failure}"


def failure_reason(probe: dict) -> str:
    """Which SLOs a failing probe broke, with their values; for a probe stopped early, the one that went
    out of reach (the others were judged on a cut-short run whose cancelled requests count as failures)."""
    checks = probe["slo_values"]
    if probe.get("stopped_early"):
        text, _, detail = probe["stopped_early"].partition(": ")[2].partition(" (")
        value = f"{parse_slo(text).metric} {_value_text(checks[text])} " if text in checks else ""
        return f"{value}(stopped early: {detail.rstrip(')')})"
    broken = [check for check in checks.values() if not check["passed"]]
    return "; ".join(f"{parse_slo(check['slo']).metric} {_value_text(check)}" for check in broken)


def _value_text(check: dict) -> str:
    """A check's value, latencies in seconds from one second up."""
    value = check["value"]
    if check["unit"] == "ms" and value is not None:
        return f"{value / 1000:.3g} s" if value >= 1000 else f"{value:.3g} ms"
    return slo_value(check)


def probe_line(probe: dict, number: int, load: str = "speedup") -> str:
    """The line printed when a probe ends."""
    verdict = "[green]pass[/]" if probe["passed"] else "[red]fail[/]"
    why = "" if probe["passed"] else f" ({failure_reason(probe)})"
    return f"probe {number}: {load_text(load, probe[load])} at {_rate(probe)}: {verdict}{why}"


def load_text(load: str, value: float) -> str:
    """`speedup 2x` or `8 users`."""
    return f"speedup {value:.3g}x" if load == "speedup" else f"{value:.0f} user{'s' if value != 1 else ''}"


def found_capacity(result: dict) -> bool:
    """Whether a `capacity.json` names a load that held."""
    return result[f"max_{result.get('load', 'speedup')}"] is not None


def _rate_and_load(probe: dict, load: str) -> str:
    return f"{_rate(probe)} ({load_text(load, probe[load])})"


def probe_rate(probe: dict) -> float | None:
    """The rate a probe ran at: as sent, or as planned for one that stopped early (its sends cover
    only the start of the trace)."""
    return probe["planned_rate"] if probe.get("stopped_early") else probe["metrics"]["sent_rate"]


def _rate(probe: dict) -> str:
    rate = probe["rate"]
    return "? req/s" if rate is None else f"{rate:.3g} req/s"


def _bracket_text(probes: list[dict[str, Any]], load: str) -> str:
    passed = [p[load] for p in probes if p.get("passed") and not p.get("inconclusive")]
    failed = [p[load] for p in probes if p.get("passed") is False and not p.get("inconclusive")]
    unit = "x" if load == "speedup" else ""
    low = f"{max(passed):.3g}{unit}" if passed else "?"
    high = f"{min(failed):.3g}{unit}" if failed else "?"
    return f"{low}–{high}{'' if unit else ' users'}"
