"""The command line as a user meets it: real subprocesses, real files, the built-in simulator."""

import json
import signal
import subprocess
import sys
import time

import pytest

from replayer.records import read_records
from replayer.traces.formats import read_trace


def test_burstgpt3_replay_sends_every_non_failed_row_with_exact_token_counts(tmp_path, replayer, fast_engine):
    out = tmp_path / "run"
    result = replayer("run", "--trace", "sample:burstgpt-3", "--speedup", "10000", "--out", str(out), "--quiet",
                      *fast_engine)
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
    report = replayer("report", str(out))
    assert report.returncode == 0, report.stderr
    assert "E2E vs the recording's system, request by request (served / recorded): p50" in report.stdout


@pytest.mark.parametrize("api", ["chat", "completions", "responses", "messages"])
@pytest.mark.parametrize("stream", ["--stream", "--no-stream"])
def test_run_against_a_separately_started_simulator(simulate_process, tmp_path, api, stream, replayer):
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


def test_embeddings_replay_token_exact_batches_and_report_latency_and_throughput_only(tmp_path, replayer,
                                                                                      fast_engine):
    out = tmp_path / "run"
    result = replayer("run", "--trace", "sample:burstgpt-1", "--max-requests", "20", "--speedup", "5000",
                      "--api", "embeddings", "--embedding-batch", "3", "--out", str(out), *fast_engine)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["requests_sent"], summary["completed"]) == (20, 20)
    records = read_records(out / "records.jsonl").records
    trace = read_trace("sample:burstgpt-1")
    planned = dict(zip(trace.row_ids.tolist(), trace.input_tokens.tolist()))
    assert all(r.input_tokens == r.served_input_tokens == 3 * planned[r.id] for r in records)  # exact, 3 a batch
    assert summary["token_mismatch"]["input"]["mismatched"] == 0 and summary["total_output_tokens"] == 0
    assert summary["ttft_ms"]["count"] == summary["itl_ms"]["count"] == 0 and summary["e2e_ms"]["count"] == 20
    assert summary["input_throughput"] > 0
    assert read_records(out / "records.jsonl").header["target"]["stream"] is False
    assert "E2E" in result.stdout


def test_no_secret_from_a_key_file_a_header_or_the_url_reaches_any_output(simulate_process, tmp_path, replayer):
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
def test_bad_secret_and_timeout_options_are_one_line_errors(args, message, replayer):
    result = replayer("run", "--trace", "sample:burstgpt-1", "--base-url", "http://127.0.0.1:9", "--quiet", *args)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2 and "Traceback" not in result.stderr
    assert "sk-secret" not in result.stderr


def test_terminal_report_is_printed_with_the_summary_table(simulate_process, tmp_path, replayer):
    result = replayer("run", "--trace", "sample:burstgpt-1", "--max-requests", "5", "--speedup", "5000",
                      "--base-url", simulate_process, "--out", str(tmp_path / "r"))
    assert result.returncode == 0
    for text in ("requests sent", "TTFT", "TPOT", "ITL", "p99", "sched. lag"):
        assert text in result.stdout


def test_malformed_trace_row_is_one_line_with_file_line_field(write_file, replayer):
    path = write_file("bad.csv", "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
                                 "5,ChatGPT,12,3,15,API log\n6,ChatGPT,twelve,3,15,API log\n")
    result = replayer("run", "--trace", str(path), "--quiet")
    assert result.returncode == 2
    assert result.stderr.strip() == f"replayer: {path}:3: Request tokens: not an integer: 'twelve'"
    assert "Traceback" not in result.stderr


def test_generic_csv_runs_with_a_column_mapping(write_file, tmp_path, replayer, fast_engine):
    path = write_file("mine.csv", "ts,prompt_len,gen_len\n0,30,4\n250,40,5\n500,50,6\n")
    out = tmp_path / "run"
    result = replayer("run", "--trace", str(path), "--format", "csv", "--columns",
                      "time=ts,input=prompt_len,output=gen_len", "--time-unit", "ms", "--out", str(out), *fast_engine)
    assert result.returncode == 0, result.stderr
    assert "format csv, forced" in result.stderr
    records = read_records(out / "records.jsonl").records
    assert sorted((r.intended_ns, r.served_input_tokens) for r in records) == [
        (0, 30), (250_000_000, 40), (500_000_000, 50)]


def test_a_run_in_which_nothing_succeeded_exits_1_and_says_so(tmp_path, replayer, fast_engine):
    result = replayer("run", "--synthetic", "rate=20,requests=10", "--error-rate", "404=1", "--out",
                      str(tmp_path / "run"), *fast_engine)
    assert result.returncode == 1
    assert "none of the 10 requests sent succeeded (http_404 10): check --base-url, --model and --api" in \
        " ".join(result.stderr.split())
    some = replayer("run", "--synthetic", "rate=20,requests=10", "--error-rate", "404=0.5", "--seed", "3", "--out",
                    str(tmp_path / "some"), *fast_engine)
    assert some.returncode == 0, some.stderr  # (failures alone, with some successes, are the report's business)


def test_stall_s_inf_stalls_forever_so_the_first_token_timeout_ends_each_request(tmp_path, replayer, fast_engine):
    out = tmp_path / "run"
    result = replayer("run", "--synthetic", "rate=20,requests=3", "--stall-rate", "1", "--stall-s", "inf",
                      "--first-token-timeout", "0.3", "--out", str(out), *fast_engine)
    assert result.returncode == 1, result.stderr  # (nothing succeeded)
    assert {r.status for r in read_records(out / "records.jsonl").records} == {"timeout_first_token"}
    refused = replayer("run", "--stall-s", "nan")
    assert refused.returncode == 2 and "must be a finite number or inf, got nan" in refused.stderr


def test_existing_run_directory_is_not_overwritten(tmp_path, replayer):
    (tmp_path / "old.txt").write_text("keep me")
    result = replayer("run", "--trace", "sample:burstgpt-1", "--max-requests", "1", "--out", str(tmp_path), "--quiet")
    assert result.returncode == 2 and "--overwrite" in result.stderr
    assert (tmp_path / "old.txt").read_text() == "keep me"


def test_run_synthetic_replays_the_generated_workload_and_records_the_spec(tmp_path, replayer, fast_engine):
    out = tmp_path / "run"
    spec = "arrivals=constant,rate=50,requests=40,input=fixed:64,output=fixed:8"
    result = replayer("run", "--synthetic", spec, "--out", str(out), *fast_engine)
    assert result.returncode == 0, result.stderr
    assert "format synthetic, generated; 40 rows" in result.stderr
    record_file = read_records(out / "records.jsonl")
    assert record_file.header["config"]["workload"]["synthetic"] == spec
    assert sorted(r.intended_ns for r in record_file.records) == [i * 20_000_000 for i in range(40)]
    assert {(r.served_input_tokens, r.served_output_tokens) for r in record_file.records} == {(64, 8)}
    fitted = replayer("run", "--synthetic", "rate=50,requests=20", "--fit", "sample:azure-2023-conv", "--out",
                      str(tmp_path / "fitted"), *fast_engine)
    assert fitted.returncode == 0, fitted.stderr
    for name in ("Gamma", "Weibull"):  # both fits printed, as synth --fit prints them
        assert f"AzureLLMInferenceTrace_conv.csv: {name} fit shape" in fitted.stderr


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


def test_a_run_whose_summary_cannot_be_written_exits_74_and_keeps_its_records(tmp_path, monkeypatch, capsys):
    from replayer.cli import main
    from replayer.run import pipeline

    def full_disk(*args: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pipeline, "write_run_outputs", full_disk)
    out = tmp_path / "run"
    code = main(["run", "--trace", "sample:burstgpt-1", "--max-requests", "3", "--speedup", "5000", "--out", str(out),
                 "--quiet", "--decode-base-ms", "1"])
    assert code == 74  # the load went out: this is an output failure, not bad input (2)
    assert "cannot write the run's results (No space left on device)" in capsys.readouterr().err
    assert len(read_records(out / "records.jsonl").records) == 3
