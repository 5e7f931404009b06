"""The command line as a user meets it: real subprocesses, real files, the built-in simulator."""

import json


def test_report_resummarizes_a_finished_run(simulate_process, tmp_path, replayer):
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


def test_output_that_cannot_be_written_exits_74_not_2(simulate_process, tmp_path, replayer):
    out = tmp_path / "run"
    assert replayer("run", "--trace", "sample:burstgpt-1", "--max-requests", "3", "--speedup", "5000",
                    "--base-url", simulate_process, "--out", str(out), "--quiet").returncode == 0
    missing = tmp_path / "no-such-dir"
    for args in (["check", str(out), "--slo", "ttft_p99<=3600s", "--junit", str(missing / "slo.xml")],
                 ["report", str(out), "--format", "json", "-o", str(missing / "r.json")],
                 ["report", str(out), "--timeseries", str(missing / "ts.csv")]):
        result = replayer(*args)
        assert result.returncode == 74, (args, result.stderr)
        assert result.stderr.startswith("replayer: ") and len(result.stderr.strip().splitlines()) == 1
