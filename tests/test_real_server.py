"""End to end against a real OpenAI-compatible server: llama-cpp-python's server running a real
270M-parameter model (Gemma 3, Q4_K_M) on this CPU. Run with `make test-real`, which builds the
server into a cached virtualenv and points REPLAYER_REAL_PYTHON and REPLAYER_REAL_MODEL at it."""

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from replayer.records import read_records

pytestmark = pytest.mark.real_server

N_CTX = 1024
"""The server's context window: a longer prompt must come back as an HTTP error, not a crash."""
_PROMPT_EVAL = re.compile(r"prompt eval time =\s*([\d.]+) ms /\s*(\d+) tokens")
"""llama.cpp's performance line for a request's prompt pass (the server prints one per request)."""
_EVAL_RUNS = re.compile(r"\s eval time =\s*([\d.]+) ms /\s*(\d+) runs")
"""…and for its decode steps (their time, and one step per generated token after the first)."""


@contextlib.contextmanager
def llama_server(log: Path, *options: str) -> Iterator[str]:
    """llama-cpp-python's server on a free loopback port, its output in `log`; yields its base URL."""
    python, model = os.environ.get("REPLAYER_REAL_PYTHON"), os.environ.get("REPLAYER_REAL_MODEL")
    assert python and model and Path(model).is_file(), "run these with make test-real"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with open(log, "w") as out:
        process = subprocess.Popen([python, "-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1",
                                    "--port", str(port), "--n_ctx", str(N_CTX), "--chat_format", "gemma",
                                    "--n_threads", "1", "--model_alias", "gemma3-270m", *options],
                                   stdout=out, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(base_url + "/v1/models", timeout=2):
                break
        except OSError:
            assert process.poll() is None, log.read_text()[-2000:]
            time.sleep(0.5)
    try:
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def real_server(tmp_path_factory):
    """The server as these tests need it: it finishes every stream it starts (by default a new
    request interrupts the running one); yields (base URL, path of its log)."""
    log = tmp_path_factory.mktemp("server") / "server.log"
    with llama_server(log, "--interrupt_requests", "False") as base_url:
        yield base_url, log


SPACED = "arrivals=constant,rate=0.25,requests=5,input=zipf:1.1:20:300,output=zipf:1.1:4:16,seed=7"
"""Five short requests 4 s apart, far slower than the server answers them: never two at once, by
construction (a bursty trace slice can send two together), so each record maps to one log entry."""


def replay(base_url: str, out: Path, *options: str) -> tuple[subprocess.CompletedProcess, list]:
    """The spaced workload against the server; returns the run's result and its records."""
    result = subprocess.run([sys.executable, "-m", "replayer", "run", "--synthetic", SPACED, "--base-url", base_url,
                             "--out", str(out), "--quiet", *options], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result, read_records(out / "records.jsonl").records


@pytest.mark.parametrize("api", ["chat", "completions"])
@pytest.mark.parametrize("stream", ["--stream", "--no-stream"])
def test_a_real_server_answers_every_request_at_the_trace_length(real_server, tmp_path, api, stream):
    base_url, log = real_server
    before = len(_EVAL_RUNS.findall(log.read_text()))
    _, records = replay(base_url, tmp_path / "run", "--api", api, stream)
    assert len(records) == 5 and all(r.ok for r in records), [r.error for r in records]
    header = read_records(tmp_path / "run" / "records.jsonl").header
    assert header["target"]["backend"] == "llama-cpp-python"  # recognised by --backend auto
    assert "owned_by" in header["target"]["backend_source"]
    records.sort(key=lambda r: r.sent_ns)
    decode = [(float(ms), int(n)) for ms, n in _EVAL_RUNS.findall(log.read_text())[before:]]
    assert len(decode) == len(records)
    for record, (decode_ms, server_runs) in zip(records, decode):
        # min_tokens = max_tokens forced the trace's length, and the server's own log agrees: it ran one
        # decode step per token after the first (which the prompt pass yields).
        assert record.served_output_tokens == record.output_tokens == server_runs + 1
        assert record.sent_ns < record.first_token_ns <= record.end_ns
        if stream == "--stream":  # no usage in its streams: one token per chunk, counted
            assert record.output_counted and len(record.itl_us) + 1 == record.served_output_tokens
            # TPOT covers the server's decode steps plus its own HTTP work: never less than the steps.
            tpot_ms = (record.end_ns - record.first_token_ns) / 1e6 / server_runs
            assert tpot_ms >= 0.9 * decode_ms / server_runs
        else:  # the counts are the usage the server reported
            assert not record.output_counted and record.served_input_tokens > 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["completed"] == 5 and summary["token_mismatch"]["output"]["mismatched"] == 0


def test_ttft_exceeds_the_prompt_time_the_server_logs(real_server, tmp_path):
    base_url, log = real_server
    before = len(_PROMPT_EVAL.findall(log.read_text()))
    _, records = replay(base_url, tmp_path / "run", "--api", "completions", "--prefix-cache", "off")
    records.sort(key=lambda r: r.sent_ns)
    assert all(a.end_ns < b.sent_ns for a, b in zip(records, records[1:]))  # never two at once
    logged = _PROMPT_EVAL.findall(log.read_text())[before:]
    assert len(logged) == len(records)
    for record, (prompt_ms, _) in zip(records, logged):
        assert (record.first_token_ns - record.sent_ns) / 1e6 > float(prompt_ms)


@pytest.mark.parametrize("stream", ["--no-stream", "--stream"])
def test_prompts_over_the_context_window_fail_as_the_server_answers_and_the_run_goes_on(real_server, tmp_path, stream):
    base_url, _ = real_server
    result = subprocess.run([sys.executable, "-m", "replayer", "run", "--trace", "sample:azure-2023-conv",
                             "--input-tokens", f"{N_CTX + 200}:{N_CTX * 3}", "--output-tokens", "4:32",
                             "--max-requests", "3", "--speedup", "200", "--base-url", base_url, stream,
                             "--out", str(tmp_path / "long"), "--quiet"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr  # (every request failed: the run says so and exits 1)
    assert "none of the 3 requests sent succeeded" in " ".join(result.stderr.split())
    records = read_records(tmp_path / "long" / "records.jsonl").records
    assert len(records) == 3 and all(r.first_token_ns is None for r in records)
    if stream == "--no-stream":  # HTTP 400 with the server's own message
        assert {r.status for r in records} == {"http_400"}
        assert all("maximum context length is 1024 tokens" in r.error for r in records), [r.error for r in records]
    else:  # llama-cpp-python answers 200 and then ends the stream without a token (its error goes to its log)
        assert {r.status for r in records} == {"stream"}


def test_a_stream_the_server_interrupts_is_recorded_as_the_failure_it_is(tmp_path):
    """By default llama-cpp-python cuts the running stream when a new request arrives, closing it with
    [DONE] and no finish_reason: the cut stream must be a failure (`empty` before any output,
    `stream` after some), never a short success, and the run must go on and account for every request."""
    with llama_server(tmp_path / "server.log") as base_url:
        result = subprocess.run([sys.executable, "-m", "replayer", "run", "--synthetic",
                                 "arrivals=constant,rate=5,requests=2,input=fixed:40,output=fixed:64",
                                 "--base-url", base_url, "--out", str(tmp_path / "run"), "--quiet"],
                                capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    first, second = sorted(read_records(tmp_path / "run" / "records.jsonl").records, key=lambda r: r.intended_ns)
    assert not first.ok and first.status in ("stream", "empty"), (first.status, first.error)
    assert first.served_output_tokens != first.output_tokens  # it was cut: never recorded as a whole answer
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["accounting"]["balanced"] and summary["requests_sent"] == 2
    assert second.ok and second.served_output_tokens == second.output_tokens  # the request that cut it


@pytest.mark.timeout(600)
def test_capacity_and_sweep_against_the_real_server(real_server, tmp_path):
    """The experiments where the server is real: one request at a time on one CPU thread, so queueing
    sets in at a few requests per second and the search must find that, not the client's limit."""
    base_url, _ = real_server
    workload = "arrivals=constant,rate=0.25,duration=15,input=fixed:20,output=fixed:4"
    common = ("--synthetic", workload, "--base-url", base_url, "--cooldown", "1")
    found = subprocess.run([sys.executable, "-m", "replayer", "capacity", *common, "--slo", "ttft_p99<=2s",
                            "--low", "1", "--precision", "20%", "--max-time", "180", "--out", str(tmp_path / "cap")],
                           capture_output=True, text=True, timeout=400)
    assert found.returncode == 0, found.stderr[-3000:]
    result = json.loads((tmp_path / "cap" / "capacity.json").read_text())
    print(result["verdict"], f"({result['elapsed_s']:.0f} s)")
    assert result["max_speedup"] >= 1 and result["failing_speedup"] is not None  # one slot: it saturates
    failing = next(p for p in result["probes"] if p["speedup"] == result["failing_speedup"])
    assert failing["passed"] is False and (failing["stopped_early"] or failing["slo_values"]["ttft_p99<=2s"]
                                           ["value"] > 2000)
    beyond = f"{2 * result['failing_speedup']:.0f}"  # twice the load that failed, so its requests queue
    swept = subprocess.run([sys.executable, "-m", "replayer", "sweep", *common[:-2], "--speedups", f"1,{beyond}",
                            "--slo", "ttft<=2s", "--out", str(tmp_path / "sweep")], capture_output=True, text=True,
                           timeout=400)
    assert swept.returncode == 0, swept.stderr[-3000:]
    points = json.loads((tmp_path / "sweep" / "sweep.json").read_text())["points"]
    assert points[1]["metrics"]["ttft_p99"] > points[0]["metrics"]["ttft_p99"]
