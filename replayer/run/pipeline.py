"""`replayer run` as one function: from a `RunConfig` to a run directory and its summary.

The stages in order, each given only its own section of the config: read or synthesize the trace,
shape it, check the output and make room for sockets, settle the target, plan the bodies, then
hand the prologue's product to one shard runner (this process, `--workers` processes or Ray
actors). Once the load is over the records get their trailer and the summary is computed from
the records file alone, by the same function that `replayer report` uses.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from replayer.analysis.runs import summarize_run, write_run_outputs
from replayer.analysis.summary import Summary
from replayer.analysis.text import fit_lines
from replayer.errors import OutputError
from replayer.records import append_trailer, read_records, write_server_metrics
from replayer.run.config import RunConfig, ScaleConfig, WorkloadSource
from replayer.run.local import run_local
from replayer.run.preflight import check_disk_space, default_out_dir, make_room_for_sockets, prepare_out_dir
from replayer.run.ray import run_on_ray
from replayer.run.replay import (
    Replay,
    RunOutcome,
    ShardJob,
    ShardRunner,
    describe_plan,
    plan_for,
    run_header,
    save_plan,
)
from replayer.run.server_metrics import ServerMetrics
from replayer.run.server_metrics import prepare as prepare_scraping
from replayer.run.target import dry_run_target, resolve_target
from replayer.run.workers import run_workers
from replayer.send.addressing import root_url
from replayer.send.eventloop import run as run_loop
from replayer.sim.hosting import SimulatorThread
from replayer.traces.formats import read_trace
from replayer.traces.mapped import ColumnMap
from replayer.traces.synthetic import parse_spec, synthesize
from replayer.workload.shaping import Shaping, Workload, shape
from replayer.workload.shards import shard_positions


@dataclass(frozen=True)
class RunResult:
    """What a run left behind. A dry run has neither a directory nor a summary."""

    out_dir: Path | None
    summary: Summary | None
    stop_reason: str | None = None
    """Why the run stopped early (a signal's name, an output or worker failure), or None."""
    failures: tuple[str, ...] = ()
    """One message per worker process or Ray shard that died (their records are kept)."""

    @property
    def slo_passed(self) -> bool:
        """False when an aggregate SLO was violated (True without SLOs)."""
        return self.summary is None or self.summary.get("slo", {}).get("passed", True)

    @property
    def nothing_succeeded(self) -> bool:
        """True when requests were sent and not one succeeded: a wrong URL, model or API, most likely."""
        return self.summary is not None and self.summary["requests_sent"] > 0 and self.summary["completed"] == 0


def execute(config: RunConfig, console: Console | None = None) -> RunResult:
    """Run the whole pipeline and write `records.jsonl`, `summary.json` and the reports."""
    output = config.output
    console = console or Console(stderr=True, quiet=output.quiet)
    workload = load_workload(config.workload, config.shaping, console, output.quiet)
    if config.scale.shard is not None:
        index, count = config.scale.shard
        workload = workload.take(shard_positions(workload, count)[index])
    if output.dry_run:
        return _dry_run(config, workload, console)
    out_dir = output.out_dir or default_out_dir()
    prepare_out_dir(out_dir, output.overwrite)
    check_disk_space(out_dir, workload)
    warning = make_room_for_sockets(workload, config.builtin_simulator, config.scale.workers)
    if warning:
        console.print(f"[yellow]warning:[/] {warning}")
    with contextlib.ExitStack() as stack:
        base_url = config.target.base_url
        if base_url is None:
            base_url = stack.enter_context(SimulatorThread(config.simulator)).base_url
        server = run_loop(prepare_scraping(output.scrape_metrics, root_url(base_url)))
        replay = _prologue(config, workload, base_url, out_dir, console)
        outcome = choose_runner(config.scale)(replay, console, server)
    return _finish(replay, outcome, server)


def choose_runner(scale: ScaleConfig) -> ShardRunner:
    """Ray actors with `--ray`, worker processes with `--workers N`, else this process."""
    if scale.ray is not None:
        return run_on_ray
    return run_workers if scale.workers > 1 else run_local


def load_workload(source: WorkloadSource, shaping: Shaping, console: Console, quiet: bool = False) -> Workload:
    """Read (or synthesize) and shape the trace, telling the user what was skipped and why."""
    columns = ColumnMap.parse(source.columns, source.time_unit) if source.columns else None
    if source.synthetic is None:
        trace = read_trace(source.trace_or_default, source.format, columns, source.block_tokens)
    else:
        fit = read_trace(source.fit, source.format, columns, source.block_tokens) if source.fit else None
        if fit is not None and not quiet:
            for line in fit_lines(fit):
                console.print(line, soft_wrap=True)
        trace = synthesize(parse_spec(source.synthetic, fit), fit)
    for warning in trace.warnings:
        console.print(f"[yellow]warning:[/] {warning}")
    workload = shape(trace, shaping)
    if not quiet:
        skipped = ", ".join(f"{reason.replace('_', ' ')} {count:,}" for reason, count in workload.skipped.items())
        how = "generated" if source.synthetic else "sniffed" if source.format == "auto" else "forced"
        console.print(f"trace {trace.source} (format {trace.format}, {how}; {len(trace):,} rows); "
                      f"replaying {len(workload):,}" + (f" (skipped: {skipped})" if skipped else ""))
    return workload


def _prologue(config: RunConfig, workload: Workload, base_url: str, out_dir: Path, console: Console) -> Replay:
    """What every shard runner shares, settled once: the target, the plan, the records header."""
    target = run_loop(resolve_target(config.target, config.prompts, base_url))
    plan = plan_for(config.prompts, workload, target)
    if config.output.save_requests is not None:
        save_plan(plan, config.output.save_requests, console)
    if not config.output.quiet:
        describe_plan(console, plan, target)
    output = config.output
    job = ShardJob(target, config.prompts, workload, output.drain_timeout_s, int(output.warmup_s * 1e9),
                   config.scale.max_concurrency, config.scale.concurrency)
    return Replay(job, plan, out_dir, run_header(config, workload, target, plan), config.scale, output.lag_limit_ms,
                  output.quiet, output.slos if output.stop_early else (), output.time_limit_s)


def _finish(replay: Replay, outcome: RunOutcome, server: ServerMetrics | None) -> RunResult:
    """The trailer, then the summary from the records file alone, then the run's other outputs."""
    path = replay.records_path
    try:
        if server is not None and server.samples:
            write_server_metrics(server.samples, replay.out_dir / "server_metrics.csv")
        append_trailer(path, {"stop_reason": outcome.stop_reason, "client_cpu_s": outcome.cpu_s,
                              "server_metrics": server.describe() if server is not None else None})
        record_file = read_records(path)
        summary = summarize_run(record_file)
        write_run_outputs(replay.out_dir, record_file, summary)
    except OSError as exc:
        raise OutputError(f"{replay.out_dir}: cannot write the run's results ({exc.strerror or exc}); "
                          f"{path.name} keeps every request recorded") from None
    return RunResult(replay.out_dir, summary, outcome.stop_reason, outcome.failures)


def _dry_run(config: RunConfig, workload: Workload, console: Console) -> RunResult:
    """Build (and save, with --save-requests) every request body without contacting any server."""
    target = dry_run_target(config.target, config.prompts)
    plan = plan_for(config.prompts, workload, target)
    saved = config.output.save_requests
    if saved is not None:
        save_plan(plan, saved, console)
    else:
        for _ in plan:  # build every body anyway: a dry run proves the whole trace can be prepared
            pass
    for note in plan.notes:
        console.print(f"[yellow]note:[/] {note}")
    console.print(f"dry run: {len(plan):,} requests prepared for model {target.model} (backend {target.backend}, "
                  f"ignore_eos {target.options.ignore_eos}); nothing was sent" +
                  (f"; bodies in {saved}" if saved else "") +
                  ("; --count-template is measured only when sending" if config.prompts.count_template else ""))
    return RunResult(None, None)
