"""The command line as a user meets it: real subprocesses, real files, the built-in simulator."""


import pytest


@pytest.mark.parametrize("args", [
    ["run", "--speedup", "0"],
    ["run", "--rate", "nan"],
    ["run", "--max-requests", "1.5"],
    ["run", "--speedup", "2", "--rate", "3"],
    ["run", "--api", "rerank"],
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
def test_bad_options_are_one_line_errors_with_exit_2(args, tmp_path, replayer):
    result = replayer(*args, "--out", str(tmp_path / "r"), "--quiet")
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "r" / "records.jsonl").exists()


@pytest.mark.parametrize("command", ["run", "simulate", "report", "inspect", "synth", "datasets"])
def test_every_command_has_help_with_examples(command, replayer):
    result = replayer(command, "--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout


def test_module_and_version(replayer):
    result = replayer("--version")
    assert result.returncode == 0 and result.stdout.startswith("replayer ")
