import json

import numpy as np
import pytest

from replayer.prompts import PromptSynthesizer, RequestOptions, build_body, prepare_requests
from replayer.tokenizer import load_tokenizer
from replayer.trace import read_trace
from replayer.workload import Shaping, shape


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer()


@pytest.fixture(scope="module")
def synthesizer(tokenizer):
    return PromptSynthesizer(tokenizer, seed=7)


def test_tokenizer_is_cl100k(tokenizer):
    assert tokenizer.encode("hello world") == [15339, 1917]


def test_every_length_encodes_exactly(tokenizer, synthesizer):
    rng = np.random.default_rng(3)
    lengths = [*range(1, 40), *rng.integers(1, 32_000, size=400).tolist()]
    for request_id, n in enumerate(lengths):
        assert tokenizer.count(synthesizer.prompt(request_id * 7919, n)) == n, n


def test_prompts_start_with_text_unique_to_request_and_run(tokenizer, synthesizer):
    heads = {tuple(tokenizer.encode(synthesizer.prompt(i, 200))[:5]) for i in range(2000)}
    assert len(heads) == 2000
    other_run = PromptSynthesizer(tokenizer, seed=8)
    assert tokenizer.encode(other_run.prompt(0, 50))[:2] != tokenizer.encode(synthesizer.prompt(0, 50))[:2]


def test_prompts_are_deterministic_per_seed_and_id(tokenizer, synthesizer):
    again = PromptSynthesizer(tokenizer, seed=7)
    assert again.prompt(123, 777) == synthesizer.prompt(123, 777)


def test_prompt_text_is_prose_not_a_repeated_token(synthesizer):
    words = synthesizer.prompt(5, 300).split()
    assert len(set(words)) > 80
    assert "." in synthesizer.prompt(5, 300)


def test_chat_body_carries_exact_max_tokens_and_ignore_eos():
    body = json.loads(build_body(RequestOptions(api="chat", model="m"), "hi there", 42))
    assert body == {"model": "m", "max_tokens": 42, "stream": True, "messages": [{"role": "user", "content": "hi there"}],
                    "stream_options": {"include_usage": True}, "ignore_eos": True}


def test_completions_body_without_stream_or_ignore_eos():
    body = json.loads(build_body(RequestOptions(api="completions", model="m", stream=False, ignore_eos=False), "x", 3))
    assert body == {"model": "m", "max_tokens": 3, "stream": False, "prompt": "x"}


def test_prepared_requests_follow_the_workload(tokenizer, synthesizer):
    workload = shape(read_trace("sample:burstgpt-1"), Shaping(max_requests=20, speedup=100))
    requests = prepare_requests(workload, synthesizer, RequestOptions(model="m"))
    assert [r.id for r in requests] == workload.trace.row_ids.tolist()
    assert [r.offset_ns for r in requests] == workload.offsets_ns.tolist()
    for request in requests:
        body = json.loads(request.body)
        assert body["max_tokens"] == request.output_tokens
        assert tokenizer.count(body["messages"][0]["content"]) == request.input_tokens
