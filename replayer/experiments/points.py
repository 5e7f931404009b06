"""One point of an experiment: a config replayed `trials` times with fresh prompt seeds, and what
its runs say, computed again from their records (so `replayer report DIR` rebuilds it exactly).

`--trials N` on `replayer run` is one point on its own: `OUT/trial-1 … trial-N` and `OUT/trials.json`
with every metric's mean and 95 % interval across the trials.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from rich.console import Console

from replayer.analysis.noise import spread
from replayer.analysis.runs import read_run, summarize_run
from replayer.analysis.slo import LATENCIES, SLO_OUT_OF_REACH, parse_slo, summary_value
from replayer.analysis.summary import Summary
from replayer.run.config import RunConfig
from replayer.run.pipeline import RunResult, execute

METRICS = (*(f"{latency}_{statistic}" for latency in LATENCIES for statistic in ("mean", "p50", "p90", "p99", "max")),
           "sent_rate", "request_throughput", "output_throughput", "input_throughput", "error_rate", "goodput",
           "attainment")
"""The metrics an experiment keeps per point (names as in SLOs), each with its spread over trials."""


@dataclass(frozen=True)
class Point:
    """The runs of one point, in trial order (fewer than asked when a failed trial ended it early)."""

    runs: tuple[RunResult, ...]

    @property
    def passed(self) -> bool:
        return all(run.slo_passed for run in self.runs)

    def run_dirs(self, experiment_dir: Path) -> list[str]:
        """The runs' directories, relative to the experiment's (as its JSON names them)."""
        return [str(run.out_dir.relative_to(experiment_dir)) for run in self.runs if run.out_dir is not None]

    @property
    def stop_reason(self) -> str | None:
        """Why a run of the point stopped early, other than its SLOs going out of reach."""
        reasons = [run.stop_reason for run in self.runs if run.stop_reason]
        return next((reason for reason in reasons if not reason.startswith(SLO_OUT_OF_REACH)), None)


def run_point(config: RunConfig, trials: int, out_dir: Path, console: Console | None = None,
              until_failure: bool = False) -> Point:
    """Replay `config` `trials` times into `out_dir` (or `out_dir/trial-K` with several), each trial
    with a fresh prompt seed (`--seed S` gives S, S+1, …); with `until_failure`, stop at the first
    trial that fails its SLOs or stops early."""
    runs: list[RunResult] = []
    for trial in range(1, trials + 1):
        seed = config.prompts.seed
        trial_config = replace(
            config,
            prompts=replace(config.prompts, seed=None if seed is None else seed + trial - 1),
            output=replace(config.output, out_dir=out_dir / f"trial-{trial}" if trials > 1 else out_dir),
        )
        result = execute(trial_config, console)
        runs.append(result)
        if result.stop_reason and not result.stop_reason.startswith(SLO_OUT_OF_REACH):
            break  # interrupted or out of time: the rest would not be asked for
        if until_failure and not result.slo_passed:
            break
    return Point(tuple(runs))


def point_entry(experiment_dir: Path, run_dirs: list[str], slos: tuple[str, ...] = ()) -> dict[str, Any]:
    """What a point's runs say, from their records: each trial's verdict and SLO values, the rate
    the workload was to be sent at (as `sent_rate` measures it, for runs that stopped early), every
    metric's mean over the trials (with its spread when there are several), and the worst value of
    each SLO check across the trials (the one that decides)."""
    files = [read_run(experiment_dir / run)[1] for run in run_dirs]
    summaries = [summarize_run(record_file, slos or None) for record_file in files]
    trials = [_trial(run, summary) for run, summary in zip(run_dirs, summaries)]
    workload = files[0].header.get("workload") or {} if files else {}
    requests, span_s = workload.get("requests") or 0, workload.get("span_s") or 0
    metrics = {name: [summary_value(name, summary) for summary in summaries] for name in METRICS}
    entry: dict[str, Any] = {
        "runs": run_dirs,
        "trials": trials,
        "passed": all(trial["passed"] for trial in trials) if slos else None,
        "stopped_early": next((t["stopped_early"] for t in trials if t["stopped_early"]), None),
        "stop_reason": next((t["stop_reason"] for t in trials if t["stop_reason"]), None),
        "planned_rate": (requests - 1) / span_s if requests > 1 and span_s > 0 else None,
        "metrics": {name: _mean(values) for name, values in metrics.items()},
        "slo_values": _worst_checks(summaries),
    }
    if len(summaries) > 1:
        entry["spread"] = {name: asdict(s) for name, values in metrics.items() if (s := spread(values)) is not None}
    return entry


def _trial(run: str, summary: Summary) -> dict[str, Any]:
    slo = summary.get("slo") or {}
    reason = summary.get("interrupted")
    return {"run": run, "passed": slo.get("passed", True), "stopped_early": slo.get("stopped_early"),
            "stop_reason": reason if reason and not reason.startswith(SLO_OUT_OF_REACH) else None,
            "sent_rate": summary.get("sent_rate"), "requests_sent": summary.get("requests_sent"),
            "slo_values": {check["slo"]: check["value"] for check in slo.get("checks", ())}}


def _worst_checks(summaries: list[Summary]) -> dict[str, dict[str, Any]]:
    """Per aggregate SLO: the check of the trial where it did worst (a failed one first)."""
    worst: dict[str, dict[str, Any]] = {}
    for summary in summaries:
        for check in (summary.get("slo") or {}).get("checks", ()):
            held = worst.get(check["slo"])
            if held is None or _worse(check, held):
                worst[check["slo"]] = check
    return worst


def _worse(check: dict[str, Any], held: dict[str, Any]) -> bool:
    if check["passed"] != held["passed"]:
        return not check["passed"]
    if check["value"] is None or held["value"] is None:
        return check["value"] is None and held["value"] is not None
    upper_bound = parse_slo(check["slo"]).op in ("<=", "<")
    return check["value"] > held["value"] if upper_bound else check["value"] < held["value"]


def _mean(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return sum(present) / len(present) if present else None
