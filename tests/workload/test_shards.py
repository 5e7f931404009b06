import json
import re
import subprocess
import sys
import time

import pytest

from replayer.errors import ConfigError
from replayer.records import read_records
from replayer.run.config import OutputConfig, PromptConfig, RunConfig, TargetConfig, WorkloadSource
from replayer.run.pipeline import execute
from replayer.workload.shaping import Shaping
from replayer.workload.shards import parse_shard, parse_start_at

SHAPING = ["--trace", "sample:azure-2023-conv", "--duration", "15", "--speedup", "6", "--seed", "5"]


def request_set(records) -> list[tuple[int, int, int, int]]:
    return sorted((r.id, r.intended_ns, r.input_tokens, r.output_tokens) for r in records)


def test_shard_and_start_at_values():
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "-1/2", "1", "a/b"):
        with pytest.raises(ConfigError, match="K/N"):
            parse_shard(bad)
    assert parse_start_at("1767225600") == 1_767_225_600 * 10**9
    assert parse_start_at("2026-01-01T00:00:00Z") == 1_767_225_600 * 10**9
    with pytest.raises(ConfigError, match="--start-at"):
        parse_start_at("soon")


def test_shards_started_at_one_instant_merge_into_the_single_process_run(simulator, tmp_path):
    with simulator() as sim:
        single = execute(
            RunConfig(
                workload=WorkloadSource(trace="sample:azure-2023-conv"),
                shaping=Shaping(duration_s=15, speedup=6),
                target=TargetConfig(base_url=sim.base_url),
                prompts=PromptConfig(seed=5),
                output=OutputConfig(quiet=True, out_dir=tmp_path / "single"),
            )
        )
        start_at = f"{time.time() + 8:.3f}"  # time for both processes to start and prepare
        shards = [subprocess.Popen([sys.executable, "-m", "replayer", "run", *SHAPING, "--base-url", sim.base_url,
                                    "--shard", f"{k}/2", "--start-at", start_at, "--out", str(tmp_path / f"s{k}"),
                                    *(("--quiet",) if k else ())], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True)
                  for k in range(2)]
        errors = [shard.communicate(timeout=120)[1] for shard in shards]
        assert [shard.returncode for shard in shards] == [0, 0], errors
        assert re.search(r"waiting for --start-at \S+Z: starts in \d+\.\d s", errors[0]), errors[0]
    merged = subprocess.run([sys.executable, "-m", "replayer", "report", str(tmp_path / "s0"), str(tmp_path / "s1"),
                             "--merge-to", str(tmp_path / "merged"), "--format", "json"],
                            capture_output=True, text=True, timeout=60)
    assert merged.returncode == 0, merged.stderr
    summary = json.loads(merged.stdout)
    records = read_records(tmp_path / "merged" / "records.jsonl")
    one = read_records(tmp_path / "single" / "records.jsonl").records
    assert request_set(records.records) == request_set(one) and single.summary["completed"] == len(one)
    assert summary["completed"] == len(one) and summary["accounting"]["balanced"]
    assert sorted(records.header["shards"]) == [[0, 2], [1, 2]]
    assert (records.header["shard"], records.header["workers"]) == (None, 2)
    assert (records.header["shards_missing"], records.header["shards_incomplete"]) == ([], [])
    assert all((tmp_path / "merged" / name).is_file() for name in ("summary.json", "timeseries.csv", "report.html"))
    assert all(0 <= r.sent_ns - r.intended_ns < 200_000_000 for r in records.records)  # both started on time


def test_a_start_instant_already_past_is_refused(simulator, tmp_path):
    with simulator() as sim:
        result = subprocess.run([sys.executable, "-m", "replayer", "run", *SHAPING, "--base-url", sim.base_url,
                                 "--start-at", f"{time.time() - 60:.0f}", "--out", str(tmp_path / "late")],
                                capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--start-at: that instant passed" in result.stderr
