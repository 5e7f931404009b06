"""The README's examples are run as written."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def test_the_python_api_examples_run_as_written(tmp_path):
    blocks = re.findall(r"```python\n(.*?)```", section("Use from Python"), re.S)
    assert len(blocks) == 2 and "replayer.run(config)" in blocks[0]
    result = subprocess.run([sys.executable, "-c", "\n".join(blocks)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    ttft, verdict = result.stdout.splitlines()
    assert re.fullmatch(r"TTFT p99 \d+\.\d ms over \d+ requests", ttft)
    passed, sent, regressed = verdict.split(" ", 2)
    assert passed in ("True", "False") and int(sent) > 0 and regressed == "[]"  # a run is no worse than itself
    assert (tmp_path / "runs" / "from-python" / "records.jsonl").is_file()


def _shell_commands(text: str) -> list[str]:
    """The commands of every bash/sh block, continuation lines joined, comments dropped."""
    commands = []
    for block in re.findall(r"```(?:bash|sh)\n(.*?)```", text, re.S):
        joined = re.sub(r"\\\n\s*", " ", block)
        commands += [line.split(" #")[0].strip() for line in joined.splitlines()
                     if line.strip() and not line.lstrip().startswith("#")]
    return commands


def _unquoted_comparisons(command: str) -> list[str]:
    """The `<=`/`>=`/`<`/`>` a shell would take as a redirection, with the word before it."""
    lexer = shlex.shlex(command, posix=True, punctuation_chars=True)
    tokens = list(lexer)
    return [f"{before}{token}{after}" for before, token, after in zip(tokens, tokens[1:], tokens[2:])
            if token in ("<", ">") and re.match(r"=?\d", after) and not before.endswith("2")]


def test_no_readme_or_help_example_has_a_comparison_bash_would_redirect():
    commands = _shell_commands(README.read_text(encoding="utf-8"))
    assert sum("--slo" in command for command in commands) >= 5
    for name in ("run", "check", "capacity", "sweep", "compare"):
        help_text = subprocess.run([sys.executable, "-m", "replayer", name, "--help"], capture_output=True,
                                   text=True, timeout=60).stdout
        examples = re.sub(r"\\\n\s*", " ", help_text.partition("\nexamples:\n")[2])
        commands += [line.strip() for line in examples.splitlines() if line.strip().startswith("replayer ")]
    assert [(command, bad) for command in commands if (bad := _unquoted_comparisons(command))] == []


OFFLINE = {
    # a README command (its start) → what is appended to shorten it; {run} is a fresh run directory
    "replayer --help": "",
    "replayer run --trace sample:azure-2023-conv --duration 120": "--duration 4 --out {run}",
    'replayer run --synthetic "arrivals=gamma': "--max-requests 20 --out {run}",
    "replayer inspect sample:burstgpt-3": "",
    "replayer synth ": "",
    'replayer run --synthetic "rate=40,duration=300" --fit': "--max-requests 20 --out {run}",
    "replayer capacity --trace sample:azure-2023-conv --max-requests 120 --vary concurrency": "--max-requests 12 "
                                                                                              "--high 8 --out {run}",
    "replayer report runs/": "",
    "replayer check runs/": "",
    "replayer compare runs/": "",
}
"""The README's commands that need no server, network or file of the user's, run shortened."""
ONLINE = ("--base-url", "burstgpt:", "simulate --port", "make ", "pip install", "python -m pytest", "benchmarks/",
          "agent_log.jsonl", "BurstGPT_1.csv", "runs/nightly", "capacity capacity-azure-conv",
          "sweep sweep-azure-conv", "capacity --trace sample:azure-2023-conv --duration 60",
          "sweep --trace sample:azure-2023-conv --duration 60")
"""What marks a README command as needing a server, a download or the user's files (or as too long
for the suite: the experiments' scenarios, run by their own tests)."""


def test_every_offline_readme_command_runs_when_pasted_into_bash(tmp_path):
    commands = [command.replace(".venv/bin/replayer", "replayer") for command in _shell_commands(
        README.read_text(encoding="utf-8"))]
    unsorted = [c for c in commands if not any(c.startswith(start) for start in OFFLINE)
                and not any(mark in c for mark in ONLINE)]
    assert unsorted == []  # (a new README command goes into OFFLINE, or is marked ONLINE)
    runs = iter(tmp_path / f"run-{n}" for n in range(100))
    ran, done = 0, []
    for command in commands:
        start = next((s for s in OFFLINE if command.startswith(s)), None)
        if start is None or any(mark in command for mark in ONLINE):
            continue
        command = re.sub(r" \[([^]]*)\]", r" \1", command)  # (optional parts, as written in brackets)
        if start.endswith("runs/"):  # (a finished run: the last one this test made)
            command = re.sub(r"runs/[\w.-]+", lambda _: str(done[-1]), command)
        line = f"{command} {OFFLINE[start].format(run=(run := next(runs)))}"
        result = subprocess.run(["bash", "-c", line.replace("replayer ", f"{sys.executable} -m replayer ", 1)],
                                cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode in (0, 1), (line, result.stderr[-2000:])  # (1: an SLO the short run missed)
        assert "Traceback" not in result.stderr and "No such file" not in result.stderr, (line, result.stderr)
        if run.is_dir() and (run / "records.jsonl").is_file():
            done.append(run)
        ran += 1
    assert ran >= 9 and (tmp_path / "ramp.csv").is_file() and (tmp_path / "trace.png").is_file()
