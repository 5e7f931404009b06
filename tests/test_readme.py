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
