"""The command line as a user meets it: real subprocesses, real files, the built-in simulator."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from replayer.records import read_records
from replayer.traces.formats import read_trace, resolve_path

FAST_ENGINE = ("--decode-base-ms", "1", "--decode-ms-per-seq", "0.01")
"""Simulator settings that keep these behaviour tests short (latency figures do not matter here)."""


def replayer(*args: str, timeout: float = 180, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "replayer", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def simulate_process():
    """`replayer simulate` in its own process, as a user would start it."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "replayer", "simulate", "--port", str(port), *FAST_ENGINE],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=10)


def test_burstgpt3_replay_sends_every_non_failed_row_with_exact_token_counts(tmp_path):
    out = tmp_path / "run"
    result = replayer("run", "--trace", "sample:burstgpt-3", "--speedup", "2000", "--out", str(out), "--quiet",
                      *FAST_ENGINE)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    trace = read_trace("sample:burstgpt-3")
    non_failed = (trace.input_tokens > 0) & (trace.output_tokens > 0)
    assert summary["requests_sent"] == int(non_failed.sum()) == 399
    assert summary["completed"] + summary["failed"] == summary["requests_sent"]
    records = read_records(out / "records.jsonl").records
    planned = {int(i): (int(a), int(b)) for i, a, b in zip(trace.row_ids, trace.input_tokens, trace.output_tokens)}
    assert len(records) == 399
    for record in records:
        assert (record.input_tokens, record.output_tokens) == planned[record.id]
        assert record.served_input_tokens == record.input_tokens
        assert record.served_output_tokens == record.output_tokens
    for key in ("request_throughput", "output_throughput", "input_throughput", "duration_s"):
        assert summary[key] > 0
    for key in ("ttft_ms", "tpot_ms", "itl_ms", "e2e_ms", "schedule_lag_ms"):
        assert set(summary[key]) >= {"mean", "p50", "p90", "p95", "p99", "p999", "max"}


@pytest.mark.parametrize("api", ["chat", "completions"])
@pytest.mark.parametrize("stream", ["--stream", "--no-stream"])
def test_run_against_a_separately_started_simulator(simulate_process, tmp_path, api, stream):
    out = tmp_path / "run"
    result = replayer("run", "--trace", "sample:burstgpt-1", "--max-requests", "25", "--speedup", "5000",
                      "--base-url", simulate_process + "/v1", "--api", api, stream, "--out", str(out), "--quiet",
                      "--api-key", "sk-canary-0123456789")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["requests_sent"], summary["completed"]) == (25, 25)
    assert summary["token_mismatch"]["output"]["mismatched"] == 0
    header = read_records(out / "records.jsonl").header
    assert header["target"]["api"] == api and header["target"]["stream"] == (stream == "--stream")
    assert "sk-canary-0123456789" not in result.stdout + result.stderr
    for path in out.iterdir():  # records, summary, time series, server metrics, report.html
        assert "sk-canary-0123456789" not in path.read_text()


def test_no_secret_from_a_key_file_a_header_or_the_url_reaches_any_output(simulate_process, tmp_path):
    key_file = tmp_path / "key.txt"
    key_file.write_text("sk-canary-keyfile\n")
    out, saved = tmp_path / "run", tmp_path / "requests.jsonl"
    base_url = simulate_process.replace("http://", "http://me:canary-url-password@")
    result = replayer("run", "--trace", "sample:burstgpt-1", "--max-requests", "10", "--speedup", "5000",
                      "--base-url", base_url, "--api-key-file", str(key_file), "-H", "X-Api-Key: canary-header",
                      "-H", "X-Tenant: team-a", "--out", str(out), "--save-requests", str(saved))
    assert result.returncode == 0, result.stderr
    header = read_records(out / "records.jsonl").header
    assert header["config"]["target"]["headers"] == ["X-Api-Key: <redacted>", "X-Tenant: team-a"]
    for canary in ("sk-canary-keyfile", "canary-header", "canary-url-password"):
        assert canary not in result.stdout + result.stderr
        for path in [saved, *out.iterdir()]:
            assert canary not in path.read_text(), (canary, path)


@pytest.mark.parametrize(("args", "message"), [
    (["--api-key-file", "/nonexistent/key"], "--api-key-file /nonexistent/key: cannot read it"),
    (["-H", "sk-secret-without-a-name"], "-H: expected 'Name: value'"),
    (["--request-timeout", "0"], "--request-timeout"),
    (["--retry-429", "-1"], "--retry-429"),
])
def test_bad_secret_and_timeout_options_are_one_line_errors(args, message):
    result = replayer("run", "--trace", "sample:burstgpt-1", "--base-url", "http://127.0.0.1:9", "--quiet", *args)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2 and "Traceback" not in result.stderr
    assert "sk-secret" not in result.stderr


def test_report_resummarizes_a_finished_run(simulate_process, tmp_path):
    out = tmp_path / "run"
    assert replayer("run", "--trace", "sample:burstgpt-1", "--max-requests", "5", "--speedup", "5000",
                    "--base-url", simulate_process, "--out", str(out), "--quiet").returncode == 0
    result = replayer("report", str(out), "--format", "json")
    assert result.returncode == 0
    again = json.loads(result.stdout)
    saved = json.loads((out / "summary.json").read_text())
    assert again["ttft_ms"] == saved["ttft_ms"] and again["completed"] == 5
    text = replayer("report", str(out))
    assert "TTFT" in text.stdout and "requests sent" in text.stdout


def test_terminal_report_is_printed_with_the_summary_table(simulate_process, tmp_path):
    result = replayer("run", "--trace", "sample:burstgpt-1", "--max-requests", "5", "--speedup", "5000",
                      "--base-url", simulate_process, "--out", str(tmp_path / "r"))
    assert result.returncode == 0
    for text in ("requests sent", "TTFT", "TPOT", "ITL", "p99", "sched. lag"):
        assert text in result.stdout


def test_malformed_trace_row_is_one_line_with_file_line_field(write_file):
    path = write_file("bad.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                                 "5,ChatGPT,12,3,15,API log\n6,ChatGPT,twelve,3,15,API log\n")
    result = replayer("run", "--trace", str(path), "--quiet")
    assert result.returncode == 2
    assert result.stderr.strip() == f"replayer: {path}:3: Request tokens: not an integer: 'twelve'"
    assert "Traceback" not in result.stderr


def test_generic_csv_runs_with_a_column_mapping(write_file, tmp_path):
    path = write_file("mine.csv", "ts,prompt_len,gen_len\n0,30,4\n250,40,5\n500,50,6\n")
    out = tmp_path / "run"
    result = replayer("run", "--trace", str(path), "--format", "csv", "--columns",
                      "time=ts,input=prompt_len,output=gen_len", "--time-unit", "ms", "--out", str(out), *FAST_ENGINE)
    assert result.returncode == 0, result.stderr
    assert "format csv, forced" in result.stderr
    records = read_records(out / "records.jsonl").records
    assert sorted((r.intended_ns, r.served_input_tokens) for r in records) == [
        (0, 30), (250_000_000, 40), (500_000_000, 50)]


@pytest.mark.parametrize("args", [
    ["run", "--speedup", "0"],
    ["run", "--rate", "nan"],
    ["run", "--max-requests", "1.5"],
    ["run", "--speedup", "2", "--rate", "3"],
    ["run", "--api", "embeddings"],
    ["run", "--base-url", "localhost:8000"],
    ["run", "--trace", "sample:nope"],
    ["run", "--format", "csv", "--columns", "time"],
    ["run", "--input-tokens", "10-20"],
    ["run", "--sample", "2"],
    ["run", "--busiest", "60", "--start", "5"],
    ["run", "--synthetic", "rate=5,duration=10", "--trace", "sample:burstgpt-1"],
    ["run", "--fit", "sample:burstgpt-1"],
    ["run", "--synthetic", "rate=5"],
    ["run", "--synthetic", "rate=5,duration=10,output=conditional"],
])
def test_bad_options_are_one_line_errors_with_exit_2(args, tmp_path):
    result = replayer(*args, "--out", str(tmp_path / "r"), "--quiet")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "r" / "records.jsonl").exists()


def test_existing_run_directory_is_not_overwritten(tmp_path):
    (tmp_path / "old.txt").write_text("keep me")
    result = replayer("run", "--trace", "sample:burstgpt-1", "--max-requests", "1", "--out", str(tmp_path), "--quiet")
    assert result.returncode == 2 and "--overwrite" in result.stderr
    assert (tmp_path / "old.txt").read_text() == "keep me"


def test_inspect_prints_statistics_and_json():
    text = replayer("inspect", "sample:burstgpt-3")
    assert text.returncode == 0, text.stderr
    for fragment in ("400 over 41,453.0 s", "135 sessions", "Gamma fit", "By model", "GPT-4"):
        assert fragment in text.stdout
    as_json = json.loads(replayer("inspect", "sample:azure-2023-conv", "--json").stdout)
    assert as_json["rate"]["peak_per_min"] == 507


def test_inspect_plot_writes_the_figure_and_refuses_other_formats(tmp_path):
    figure = tmp_path / "fig.svg"
    drawn = replayer("inspect", "sample:burstgpt-1", "--plot", str(figure))
    assert drawn.returncode == 0, drawn.stderr
    assert "<svg" in figure.read_text()
    refused = replayer("inspect", "sample:burstgpt-1", "--plot", str(tmp_path / "fig.pdf"))
    assert refused.returncode == 2 and "must end in .png or .svg" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_inspect_bad_file_is_one_line(write_file):
    path = write_file("bad.jsonl", '{"timestamp": 1, "input_length": 2, "output_length": 3}\n{"timestamp": -1, '
                                   '"input_length": 2, "output_length": 3}\n')
    result = replayer("inspect", str(path))
    assert result.returncode == 2
    assert result.stderr.strip() == f"replayer: {path}:2: timestamp: timestamp must be a finite number >= 0, got '-1'"


@pytest.mark.parametrize("command", ["run", "simulate", "report", "inspect", "synth", "datasets"])
def test_every_command_has_help_with_examples(command):
    result = replayer(command, "--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout


def test_module_and_version():
    result = replayer("--version")
    assert result.returncode == 0 and result.stdout.startswith("replayer ")


def test_synth_fits_a_trace_writes_a_file_and_run_replays_it(tmp_path):
    path = tmp_path / "azure-at-20.csv.gz"
    made = replayer("synth", "rate=20,duration=30,seed=1", "--fit", "sample:azure-2023-conv", "-o", str(path))
    assert made.returncode == 0, made.stderr
    assert "Gamma fit shape" in made.stderr and "Weibull fit shape" in made.stderr and "KS distance" in made.stderr
    spec_line = next(line for line in made.stderr.splitlines() if line.startswith("spec: "))
    assert "rate=20,duration=30," in spec_line and "input=empirical,output=conditional,seed=1" in spec_line
    trace = read_trace(str(path))
    assert trace.format == "csv" and 400 < len(trace) < 800
    out = tmp_path / "run"
    ran = replayer("run", "--trace", str(path), "--speedup", "10", "--out", str(out), "--quiet", *FAST_ENGINE)
    assert ran.returncode == 0, ran.stderr
    assert json.loads((out / "summary.json").read_text())["requests_sent"] == len(trace)


def test_run_synthetic_replays_the_generated_workload_and_records_the_spec(tmp_path):
    out = tmp_path / "run"
    spec = "arrivals=constant,rate=50,requests=40,input=fixed:64,output=fixed:8"
    result = replayer("run", "--synthetic", spec, "--out", str(out), *FAST_ENGINE)
    assert result.returncode == 0, result.stderr
    assert "format synthetic, generated; 40 rows" in result.stderr
    record_file = read_records(out / "records.jsonl")
    assert record_file.header["config"]["workload"]["synthetic"] == spec
    assert sorted(r.intended_ns for r in record_file.records) == [i * 20_000_000 for i in range(40)]
    assert {(r.served_input_tokens, r.served_output_tokens) for r in record_file.records} == {(64, 8)}


def test_a_dataset_by_name_is_fetched_once_then_used_offline(tmp_path, serving):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "AzureLLMInferenceTrace_conv.csv").write_bytes(resolve_path("sample:azure-2023-conv").read_bytes())
    env = {"REPLAYER_CACHE_DIR": str(tmp_path / "cache")}
    listed = replayer("datasets", env=env)
    assert "burstgpt:1-without-fails" in listed.stdout and "azure-2024:conv" in listed.stdout
    with serving(mirror) as url:
        fetched = replayer("datasets", "azure-2023:conv", env={**env, "REPLAYER_DATASET_MIRROR": url})
    assert fetched.returncode == 0, fetched.stderr
    offline = replayer("inspect", "azure-2023:conv", "--json", env={**env, "REPLAYER_DATASET_MIRROR": url})
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["rows"] == 19_366
    assert "yes" in replayer("datasets", env=env).stdout


def test_sigint_mid_replay_leaves_valid_records_summary_and_report(tmp_path, report_without_summary):
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "replayer", "run", "--trace", "sample:azure-2023-conv",
                                "--duration", "120", "--out", str(out), "--quiet"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    records_path = out / "records.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not records_path.exists() or records_path.read_text().count("\n") < 4):
        time.sleep(0.2)  # until a few requests have finished
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    records = read_records(records_path)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["interrupted"] == "SIGINT" and summary["requests_sent"] == len(records.records) >= 3
    assert summary["accounting"]["balanced"] and not records.torn_last_line
    assert (out / "report.html").read_text().rstrip().endswith("</html>")
    assert report_without_summary(out) == summary  # the stop reason is in the records file too
