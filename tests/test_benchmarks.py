"""The benchmarks run and report what they promise (their figures are read by people, not asserted)."""

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def test_prompt_benchmark_prints_rates_exactness_and_the_verdict():
    result = subprocess.run([sys.executable, str(BENCHMARKS / "prompt_synthesis.py"), "--prompts", "3000",
                             "--huge", "30000"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    rates = [line for line in lines if "prompts/s," in line and "tokens/s" in line]
    assert [line.split()[0] for line in rates] == ["prompts", "request", "huge"]
    assert "1,000/1,000 sampled prompts re-encode to their exact length" in result.stdout
    assert "30,000" in rates[2] and "look-ahead" in result.stdout
    assert lines[-1].startswith("target >= 20,000 prompts/s at mean 600 tokens: ")


def test_trace_loading_benchmark_prints_each_size_and_its_targets(tmp_path):
    result = subprocess.run([sys.executable, str(BENCHMARKS / "trace_loading.py"), "--rows", "20000",
                             "--keep", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("importing replayer.traces.formats: ")
    for columns in ("v1", "v3"):  # BurstGPT_1's columns and BurstGPT_3's
        assert any(line.startswith(f"20,000 rows ({columns}): load ") and "inspect (load and statistics)" in line
                   for line in lines), lines
    targets = [line for line in lines if line.startswith("target: ")]
    assert [line.split(":")[1].split()[0] for line in targets] == ["inspect"] * 2  # (load targets: full sizes only)
    assert all(line.endswith((": met", ": NOT met")) for line in targets)


def test_chunk_path_benchmark_prints_each_stage_and_the_raw_clients_work():
    result = subprocess.run([sys.executable, str(BENCHMARKS / "client_chunk_path.py"), "--streams", "16",
                             "--chunks", "70", "--rounds", "1"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "16 interleaved streams x 70 chunks, best of 1, µs per chunk:"
    stages = [line.rsplit(None, 1) for line in lines[1:]]
    assert [name.strip() for name, _ in stages] == [
        "HTTP fast path", "+ hand-off to the stream", "+ batched SSE split, decode", "= replayer",
        "raw client's per-read work"]
    figures = [float(value) for _, value in stages]
    assert abs(figures[3] - sum(figures[:3])) < 0.02  # the stages add up to the whole
