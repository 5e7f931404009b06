"""The README's examples are run as written."""

import re
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
