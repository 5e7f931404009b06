import asyncio
import csv
import json

from replayer.cli.run import run_exit_code
from replayer.run.config import OutputConfig, PromptConfig, RunConfig, WorkloadSource
from replayer.run.pipeline import execute
from replayer.run.server_metrics import ServerMetrics, parse_metrics, prepare
from replayer.workload.shaping import Shaping

VLLM_PAGE = """\
# HELP vllm:num_requests_running Number of requests currently running on GPU.
# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{engine="0",model_name="m"} 7.0
vllm:num_requests_running{engine="1",model_name="m"} 5.0
vllm:num_requests_waiting{model_name="m"} 3.0
vllm:kv_cache_usage_perc{model_name="m"} 0.42
vllm:num_preemptions_total{model_name="m"} 2.0
vllm:time_to_first_token_seconds_bucket{le="0.001",model_name="m"} 0.0
vllm:num_requests_running_is_not_this{model_name="m"} 99
"""


def test_watched_metrics_are_read_and_summed_over_label_sets():
    assert parse_metrics(VLLM_PAGE) == {"running": 12.0, "waiting": 3.0, "kv_cache_usage": 0.42, "preemptions": 2.0}
    assert parse_metrics("sglang:num_queue_reqs 4\nsglang:token_usage 0.5\n") == {"waiting": 4.0, "kv_cache_usage": 0.5}
    assert parse_metrics("process_cpu_seconds_total 12\n") == {}


def test_a_run_samples_the_simulators_metrics(tmp_path):
    config = RunConfig(
        workload=WorkloadSource(trace="sample:azure-2023-conv"),
        shaping=Shaping(duration_s=20, speedup=4),
        prompts=PromptConfig(seed=1),
        output=OutputConfig(quiet=True, out_dir=tmp_path / "run"),
    )
    summary = execute(config).summary
    server = summary["server_metrics"]
    assert server["available"] and server["samples"] >= 4 and server["errors"] == 0
    assert server["peak"]["running"] >= 1 and 0 < server["peak"]["kv_cache_usage"] < 1
    rows = list(csv.DictReader((tmp_path / "run" / "server_metrics.csv").open()))
    assert len(rows) == server["samples"] and max(float(row["running"]) for row in rows) == server["peak"]["running"]


def test_an_absent_endpoint_never_stops_the_run_and_the_summary_says_why(tmp_path):
    config = RunConfig(
        workload=WorkloadSource(trace="sample:azure-2023-conv"),
        shaping=Shaping(duration_s=8, speedup=4),
        prompts=PromptConfig(seed=1),
        output=OutputConfig(quiet=True, out_dir=tmp_path / "run", scrape_metrics="http://127.0.0.1:9/metrics"),
    )
    result = execute(config)
    assert run_exit_code(result) == 0 and result.summary["failed"] == 0
    server = json.loads((tmp_path / "run" / "summary.json").read_text())["server_metrics"]
    assert not server["available"] and server["errors"] >= 1 and server["last_error"]
    assert not (tmp_path / "run" / "server_metrics.csv").exists()


def test_auto_samples_only_an_endpoint_that_answers():
    absent = asyncio.run(prepare("auto", "http://127.0.0.1:9"))
    assert isinstance(absent, ServerMetrics) and not absent.active and absent.last_error
    assert asyncio.run(prepare("off", "http://127.0.0.1:9")) is None
