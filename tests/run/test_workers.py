import json
import multiprocessing
import os
import signal
import threading
import time

import numpy as np

from replayer.cli.run import EXIT_WORKER_FAILED, run_exit_code
from replayer.records import RecordWriter, RequestRecord, read_records
from replayer.run.config import OutputConfig, PromptConfig, RunConfig, ScaleConfig, WorkloadSource
from replayer.run.pipeline import execute
from replayer.run.workers import merge_parts
from replayer.traces.formats import read_trace
from replayer.workload.shaping import Shaping, shape
from replayer.workload.shards import shard_positions


def _request_set(records) -> list[tuple[int, int, int, int]]:
    return sorted((r.id, r.intended_ns, r.input_tokens, r.output_tokens) for r in records)


def test_two_workers_replay_exactly_the_requests_one_process_does(tmp_path):
    shaping = Shaping(duration_s=40, speedup=8)
    runs = {}
    for workers in (1, 2):
        config = RunConfig(
            workload=WorkloadSource(trace="sample:azure-2023-conv"),
            shaping=shaping,
            prompts=PromptConfig(seed=5),
            output=OutputConfig(out_dir=tmp_path / f"w{workers}", quiet=True),
            scale=ScaleConfig(workers=workers),
        )
        result = execute(config)
        runs[workers] = read_records(tmp_path / f"w{workers}" / "records.jsonl")
        assert run_exit_code(result) == 0 and result.summary["failed"] == 0
    one, two = runs[1].records, runs[2].records
    assert len(one) > 30 and _request_set(one) == _request_set(two)
    assert len({r.id for r in two}) == len(two)  # merged: none lost, none twice
    assert runs[2].header["workers"] == 2 and not list((tmp_path / "w2").glob("records.worker-*"))
    # The same bodies: the server counted the same prompt lengths for every id.
    served = {r.id: r.served_input_tokens for r in one}
    assert all(served[r.id] == r.served_input_tokens for r in two)
    # Both workers sent (their shards interleave in time), from one shared t0.
    assert all(r.sent_ns - r.intended_ns < 50_000_000 for r in two)


def _kill_a_worker_once_replaying(after_s: float) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        workers = [p for p in multiprocessing.active_children() if p.name.startswith("replayer-worker")]
        if workers:
            time.sleep(after_s)
            os.kill(workers[0].pid, signal.SIGKILL)
            return
        time.sleep(0.02)


def test_a_worker_that_dies_fails_the_run_but_keeps_every_other_record(tmp_path):
    threading.Thread(target=_kill_a_worker_once_replaying, args=(4.0,), daemon=True).start()
    config = RunConfig(
        workload=WorkloadSource(trace="sample:azure-2023-conv"),
        shaping=Shaping(duration_s=60, speedup=6),
        prompts=PromptConfig(seed=5),
        output=OutputConfig(out_dir=tmp_path / "run", quiet=True),
        scale=ScaleConfig(workers=2),
    )
    result = execute(config)
    assert run_exit_code(result) == EXIT_WORKER_FAILED and result.stop_reason.startswith(
        "worker failed: replayer-worker-"
    )
    assert "exited with code -9" in result.stop_reason
    records = read_records(tmp_path / "run" / "records.jsonl").records
    assert records and result.summary["accounting"]["balanced"]
    assert len(records) < len(shape(read_trace("sample:azure-2023-conv"), Shaping(duration_s=60, speedup=6)))


def test_shards_are_disjoint_dealt_in_send_order_and_keep_sessions_whole():
    workload = shape(read_trace("sample:burstgpt-3"), Shaping())
    shards = shard_positions(workload, 3)
    everything = np.concatenate(shards)
    assert sorted(everything.tolist()) == list(range(len(workload)))
    sessions = workload.trace.sessions
    labels = np.asarray(sessions.labels, dtype=object)[sessions.codes]
    for shard in shards:
        others = np.setdiff1d(everything, shard)
        inside = {label for label in labels[shard] if label}
        assert not inside & {label for label in labels[others] if label}  # no session split across shards
    assert max(map(len, shards)) - min(map(len, shards)) < len(workload) // 4


def test_rows_without_sessions_are_dealt_round_robin():
    workload = shape(read_trace("sample:burstgpt-1"), Shaping())
    shards = shard_positions(workload, 2)
    assert shards[0].tolist() == list(range(0, len(workload), 2))


def test_merging_keeps_every_whole_line_and_drops_a_torn_one(tmp_path):
    parts = []
    for worker, ids in enumerate(([1, 3], [2])):
        part = tmp_path / f"records.worker-{worker}.jsonl"
        writer = RecordWriter(part, {"worker": worker})
        for i in ids:
            writer.write(RequestRecord(id=i, intended_ns=i, input_tokens=1, output_tokens=1))
        writer.close()
        parts.append(part)
    with open(parts[1], "a") as torn:
        torn.write('{"id": 4, "intended_')  # an interrupted worker's last write
    assert merge_parts(tmp_path / "records.jsonl", {"workers": 2}, parts) == 3
    merged = read_records(tmp_path / "records.jsonl")
    assert merged.header == {"workers": 2} and sorted(r.id for r in merged.records) == [1, 2, 3]
    assert not merged.torn_last_line and not any(part.exists() for part in parts)
    assert json.loads((tmp_path / "records.jsonl").read_text().splitlines()[1])["id"] == 1
