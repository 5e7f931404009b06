import json
from dataclasses import replace
from pathlib import Path

import pytest

from replayer.analysis.runs import merge_record_files, read_run, summarize_run, write_record_file
from replayer.api import RunConfig, run
from replayer.cli import main
from replayer.records import RecordFile, RequestRecord, read_records
from replayer.run.config import OutputConfig, PromptConfig, ScaleConfig, WorkloadSource
from replayer.sim.engine import EngineModel
from replayer.sim.server import SimulatorConfig
from replayer.workload.shaping import Shaping

BASE = RunConfig(workload=WorkloadSource(trace="sample:burstgpt-1"), prompts=PromptConfig(seed=3),
                 shaping=Shaping(output_range=(1, 64), max_requests=60, speedup=20_000),
                 simulator=SimulatorConfig(engine=EngineModel(decode_base_ms=1, decode_ms_per_seq=0.01)))
"""60 short BurstGPT requests (both models) against a fast simulator: the run's shape matters here, not its speed."""


@pytest.mark.parametrize(("settings", "check"), [
    ({"output": OutputConfig(quiet=True, scrape_metrics="off")}, lambda s: "server_metrics" not in s),
    ({"output": OutputConfig(quiet=True)}, lambda s: s["server_metrics"]["available"]),
    ({"output": OutputConfig(quiet=True, scrape_metrics="off"), "scale": ScaleConfig(workers=2)},
     lambda s: s["requests_sent"] == 60),
], ids=["plain", "server-metrics", "workers-2"])
def test_report_without_summary_json_reproduces_the_runs_own_summary(tmp_path, report_without_summary, settings,
                                                                     check):
    config = replace(BASE, **{**settings, "output": replace(settings["output"], out_dir=tmp_path / "run")})
    result = run(config)
    saved = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert check(saved) and saved["client_cpu_s"] > 0 and saved["interrupted"] is None
    assert "model" in saved["breakdowns"]  # the trace's labels travel in the records
    assert report_without_summary(tmp_path / "run") == saved
    assert result.summary is not None and result.summary["completed"] == saved["completed"]


def test_a_records_file_without_a_trailer_is_reported_unfinished(tmp_path):
    run(replace(BASE, output=OutputConfig(quiet=True, scrape_metrics="off", out_dir=tmp_path / "run")))
    path = tmp_path / "run" / "records.jsonl"
    lines = path.read_text().splitlines(keepends=True)
    assert lines[-1].startswith('{"trailer":')
    path.write_text("".join(lines[:-1]))  # as a killed process leaves it
    summary = summarize_run(read_records(path))
    assert summary["interrupted"] == "unfinished" and summary["client_cpu_s"] is None
    assert summary["requests_sent"] == 60


def test_shards_merged_keep_one_trailer_with_the_first_early_stop_and_the_summed_cpu(tmp_path):
    for index in range(2):
        run(replace(BASE, scale=ScaleConfig(shard=(index, 2)),
                    output=OutputConfig(quiet=True, scrape_metrics="off", out_dir=tmp_path / f"s{index}")))
    files = [read_run(tmp_path / f"s{index}") for index in range(2)]
    merged = merge_record_files(files)
    assert merged.trailer is not None and merged.trailer["stop_reason"] is None
    assert merged.trailer["client_cpu_s"] == pytest.approx(sum(f.trailer["client_cpu_s"] for _, f in files))
    assert summarize_run(merged)["requests_sent"] == 60


def test_a_merge_names_the_shards_missing_and_those_that_did_not_finish(tmp_path, capsys):
    def shard(k: int, n: int, trailer: dict | None) -> RecordFile:
        record = RequestRecord(k, 0, 10, 2, sent_ns=0, first_token_ns=1, end_ns=2, served_output_tokens=2)
        return RecordFile({"shard": [k, n], "t0_wall_ns": 1, "workers": 1}, [record], trailer=trailer)

    merged = merge_record_files([(Path("s0"), shard(0, 4, {})), (Path("s2"), shard(2, 4, None)),
                                 (Path("s3"), shard(3, 4, {}))])
    assert (merged.header["shards_missing"], merged.header["shards_incomplete"]) == ([1], ["s2"])
    assert [r.id for r in merged.records] == [0, 2, 3]  # (what the unfinished shard finished is kept)
    whole = merge_record_files([(Path(f"s{k}"), shard(k, 2, {})) for k in range(2)])
    assert (whole.header["shards_missing"], whole.header["shards_incomplete"]) == ([], [])
    for k, trailer in ((0, {}), (2, None)):  # and `report --merge-to` says so
        (tmp_path / f"s{k}").mkdir()
        write_record_file(tmp_path / f"s{k}" / "records.jsonl", shard(k, 4, trailer))
    assert main(["report", str(tmp_path / "s0"), str(tmp_path / "s2"), "--merge-to", str(tmp_path / "m"),
                 "--format", "json"]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "shards 1, 3 of 4 are missing from the merge" in said and f"{tmp_path / 's2'}" in said
    assert "did not finish" in said


def test_the_warmup_is_sent_and_recorded_but_kept_out_of_statistics_and_slos(tmp_path):
    config = RunConfig(workload=WorkloadSource(synthetic="arrivals=constant,rate=10,duration=3,input=fixed:20,"
                                                         "output=fixed:5"),
                       output=OutputConfig(quiet=True, out_dir=tmp_path / "run", warmup_s=1.0,
                                           slos=("ttft<=5s", "attainment>=99%")),
                       simulator=BASE.simulator)
    result = run(config)
    records = read_records(tmp_path / "run" / "records.jsonl").records
    warm = [r for r in records if r.warmup]
    assert warm and all(r.intended_ns < 1e9 for r in warm) and all(r.intended_ns >= 1e9 for r in records
                                                                  if not r.warmup)
    summary = result.summary
    assert summary["requests_sent"] == len(records) - len(warm) and summary["accounting"]["records"] == len(records)
    assert summary["warmup"] == {"seconds": 1.0, "requests": len(warm)}
    assert summary["slo"]["good_requests"] == summary["requests_sent"]
    assert summarize_run(read_records(tmp_path / "run" / "records.jsonl")) == summary
