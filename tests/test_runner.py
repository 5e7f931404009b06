import json

import pytest

from replayer.runner import RunConfig, execute, request_options
from replayer.trace import read_trace
from replayer.workload import Shaping


@pytest.mark.parametrize(("backend", "ignore_eos", "expected"), [
    ("vllm", None, True), ("tgi", None, False), ("openai", None, False), ("tgi", True, True), ("vllm", False, False)])
def test_ignore_eos_follows_the_backend_unless_forced(backend, ignore_eos, expected):
    options = request_options(RunConfig(ignore_eos=ignore_eos), "m", backend)
    assert options.ignore_eos is expected


def test_dry_run_saves_every_body_and_sends_nothing(tmp_path):
    saved = tmp_path / "requests.jsonl"
    config = RunConfig(trace="sample:burstgpt-1", base_url="http://127.0.0.1:9", model="my-model", backend="tgi",
                       shaping=Shaping(speedup=10), dry_run=True, save_requests=saved, out_dir=tmp_path / "run",
                       seed=1, quiet=True)
    result = execute(config)  # port 9 (discard) is never contacted: a send would fail the run
    assert result.exit_code == 0 and result.summary is None and not (tmp_path / "run").exists()
    lines = [json.loads(line) for line in saved.read_text().splitlines()]
    trace = read_trace("sample:burstgpt-1")
    kept = trace.take((trace.input_tokens > 0) & (trace.output_tokens > 0))
    assert [line["id"] for line in lines] == kept.row_ids.tolist()
    assert [line["offset_ns"] for line in lines] == [round(t * 1e9 / 10) for t in kept.arrival_s]
    first = lines[0]
    assert first["endpoint"] == "/v1/chat/completions"
    assert first["body"]["model"] == "my-model" and first["body"]["max_tokens"] == first["output_tokens"]
    assert "ignore_eos" not in first["body"]  # TGI has no ignore_eos
