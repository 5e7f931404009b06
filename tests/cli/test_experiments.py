import json

from replayer.cli import main

TINY = ("--synthetic", "rate=5,duration=2,input=fixed:50,output=fixed:20", "--max-running", "4",
        "--decode-base-ms", "5", "--decode-ms-per-seq", "0")


def test_capacity_exits_0_with_a_capacity_1_when_even_low_fails_and_2_on_bad_input(replayer, tmp_path, capsys):
    found = replayer("capacity", *TINY, "--slo", "ttft_p99<=5s", "--low", "2", "--high", "4", "--out",
                     str(tmp_path / "found"))
    assert found.returncode == 0, found.stderr
    result = json.loads((tmp_path / "found" / "capacity.json").read_text())
    assert result["max_speedup"] == 4 and "sustains" in found.stdout and "probe 2" in found.stderr
    assert {"max_speedup", "max_rate", "slos", "precision", "probes", "verdict"} <= set(result)
    assert {"speedup", "passed", "stopped_early", "runs", "slo_values"} <= set(result["probes"][0])
    failing = replayer("capacity", *TINY, "--slo", "ttft_p99<=1ms", "--out", str(tmp_path / "none"))
    assert failing.returncode == 1 and "does not sustain" in failing.stdout
    users = replayer("capacity", *TINY, "--vary", "concurrency", "--low", "2", "--high", "4", "--slo", "ttft_p99<=5s",
                     "--out", str(tmp_path / "users"))
    assert users.returncode == 0, users.stderr
    assert json.loads((tmp_path / "users" / "capacity.json").read_text())["max_concurrency"] == 4
    assert "(4 users)" in users.stdout and "probe 1: 2 users" in users.stderr
    for bad in (("--slo", "ttft<=1s"), ("--slo", "ttft_p99<=1s", "--precision", "200%"),
                ("--slo", "ttft_p99<=1s", "--speedup", "2"), ("--slo", "ttft_p99<=1s", "--vary", "concurrency",
                                                               "--low", "1.5")):
        try:
            code = main(["capacity", *TINY, *bad, "--out", str(tmp_path / "bad")])
        except SystemExit as exit:  # (argparse's own errors)
            code = exit.code
        error = capsys.readouterr().err
        assert code == 2 and len(error.strip().splitlines()) == 1, error


def test_sweep_and_run_trials_write_their_experiment_and_report_rebuilds_it(replayer, tmp_path):
    swept = replayer("sweep", *TINY, "--speedups", "1,2", "--slo", "ttft<=1s", "--out", str(tmp_path / "sweep"))
    assert swept.returncode == 0, swept.stderr
    assert len(json.loads((tmp_path / "sweep" / "sweep.json").read_text())["points"]) == 2
    trials = replayer("run", *TINY, "--trials", "2", "--seed", "5", "--out", str(tmp_path / "trials"))
    assert trials.returncode == 0, trials.stderr
    result = json.loads((tmp_path / "trials" / "trials.json").read_text())
    assert [t["run"] for t in result["point"]["trials"]] == ["trial-1", "trial-2"]
    assert {"mean", "low", "high"} <= set(result["point"]["spread"]["ttft_p99"]) and "95% interval" in trials.stdout
    (tmp_path / "trials" / "report.html").unlink()
    rebuilt = replayer("report", str(tmp_path / "trials"))
    assert rebuilt.returncode == 0 and (tmp_path / "trials" / "report.html").is_file()
    assert json.loads((tmp_path / "trials" / "trials.json").read_text())["point"] == result["point"]
    compared = replayer("compare", str(tmp_path / "trials"), str(tmp_path / "trials" / "trial-1"))
    assert compared.returncode == 0 and "within noise" in compared.stdout
