import logging
import os
import signal
import threading
import time
from pathlib import Path

import pytest
import ray

from replayer.cli.run import EXIT_WORKER_FAILED, run_exit_code
from replayer.records import read_records
from replayer.run.config import OutputConfig, PromptConfig, RunConfig, ScaleConfig, TargetConfig, WorkloadSource
from replayer.run.pipeline import execute
from replayer.workload.shaping import Shaping


@pytest.fixture
def local_ray():
    """A local Ray cluster of 2 CPUs on this machine, stopped after the test."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()


def test_two_ray_shards_replay_exactly_the_requests_one_process_does(local_ray, simulator, tmp_path):
    shaping = Shaping(duration_s=30, speedup=6)
    runs = {}
    with simulator() as sim:
        for name, settings in (("single", {}), ("ray", {"scale": ScaleConfig(workers=2, ray="auto")})):
            result = execute(
                RunConfig(
                    workload=WorkloadSource(trace="sample:azure-2023-conv"),
                    shaping=shaping,
                    target=TargetConfig(base_url=sim.base_url),
                    prompts=PromptConfig(seed=5),
                    output=OutputConfig(quiet=True, out_dir=tmp_path / name),
                    **settings,
                )
            )
            assert run_exit_code(result) == 0 and result.summary["failed"] == 0
            runs[name] = (read_records(tmp_path / name / "records.jsonl"), result.summary)
    (single, _), (merged, summary) = runs["single"], runs["ray"]
    key = sorted((r.id, r.intended_ns, r.input_tokens, r.output_tokens) for r in single.records)
    assert sorted((r.id, r.intended_ns, r.input_tokens, r.output_tokens) for r in merged.records) == key
    served = {r.id: r.served_input_tokens for r in single.records}
    assert all(served[r.id] == r.served_input_tokens for r in merged.records)  # the same bodies
    shards = summary["scale_out"]["shards"]
    assert summary["scale_out"]["backend"] == "ray" and [s["index"] for s in shards] == [0, 1]
    assert sum(s["requests"] for s in shards) == len(merged.records) and all(s["requests"] for s in shards)
    assert all(abs(s["clock_offset_ms"]) <= s["clock_rtt_ms"] for s in shards)  # one machine: one clock
    assert all(0 <= r.sent_ns - r.intended_ns < 100_000_000 for r in merged.records)  # started together


def _kill_a_shard_actor_once_replaying(after_s: float) -> None:
    """SIGKILL the first process running a ShardReplayer actor, `after_s` after it appears."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        for entry in Path("/proc").iterdir():
            try:
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if b"ray::ShardReplayer" in command:
                time.sleep(after_s)
                os.kill(int(entry.name), signal.SIGKILL)
                return
        time.sleep(0.1)


def test_a_shard_whose_actor_dies_fails_the_run_but_keeps_the_other_records(local_ray, simulator, tmp_path):
    threading.Thread(target=_kill_a_shard_actor_once_replaying, args=(4.0,), daemon=True).start()
    with simulator() as sim:
        result = execute(
            RunConfig(
                workload=WorkloadSource(trace="sample:azure-2023-conv"),
                shaping=Shaping(duration_s=60, speedup=6),
                target=TargetConfig(base_url=sim.base_url),
                prompts=PromptConfig(seed=5),
                output=OutputConfig(quiet=True, out_dir=tmp_path / "run"),
                scale=ScaleConfig(workers=2, ray="auto"),
            )
        )
    assert run_exit_code(result) == EXIT_WORKER_FAILED and result.stop_reason.startswith("worker failed")
    shards = result.summary["scale_out"]["shards"]
    assert sorted(bool(s["requests"]) for s in shards) == [False, True]  # the dead shard's records are lost
    records = read_records(tmp_path / "run" / "records.jsonl").records
    assert len(records) == sum(s["requests"] for s in shards) and result.summary["accounting"]["balanced"]
