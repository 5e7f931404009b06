import json
from collections import Counter

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


def _common_prefix_tokens(tokenizer, a: str, b: str) -> int:
    x, y = tokenizer.encode(a), tokenizer.encode(b)
    n = 0
    while n < min(len(x), len(y)) and x[n] == y[n]:
        n += 1
    return n


def test_mooncake_rows_sharing_leading_blocks_share_exactly_those_512_token_prefixes(tokenizer, synthesizer):
    trace = read_trace("sample:mooncake-synthetic")
    first_block = np.array([b[0] if len(b) else -1 for b in trace.prefix_blocks])
    popular = [block for block, _ in Counter(first_block.tolist()).most_common(6)]
    rows = np.concatenate([np.flatnonzero(first_block == block)[:12] for block in popular] + [np.arange(0, 3993, 40)])
    prompts = {int(r): synthesizer.prefixed_prompt(int(trace.row_ids[r]), trace.prefix_blocks[r],
                                                   int(trace.input_tokens[r])) for r in rows}
    for r in rows[::7]:
        assert tokenizer.count(prompts[int(r)]) == trace.input_tokens[r]
    checked = {"sharing": 0, "disjoint": 0}
    for x, i in enumerate(rows.tolist()):
        for j in rows[x + 1:].tolist():
            a, b = trace.prefix_blocks[i], trace.prefix_blocks[j]
            limit = min(len(a), len(b), int(trace.input_tokens[i]) // 512, int(trace.input_tokens[j]) // 512)
            shared = 0
            while shared < limit and a[shared] == b[shared]:
                shared += 1
            if shared:
                prefix = synthesizer.prefixed_prompt(0, a[:shared], 512 * shared)
                assert prompts[i].startswith(prefix) and prompts[j].startswith(prefix)
                assert tokenizer.count(prefix) == 512 * shared
                checked["sharing"] += 1
            elif len(a) and len(b) and a[0] != b[0]:
                # different first blocks: at most the run salt and an id digit in common
                assert _common_prefix_tokens(tokenizer, prompts[i][:400], prompts[j][:400]) <= 4
                checked["disjoint"] += 1
    assert checked["sharing"] > 300 and checked["disjoint"] > 1000


def test_prefix_cache_off_makes_every_mooncake_prompt_unique(tokenizer, synthesizer):
    workload = shape(read_trace("sample:mooncake-synthetic"), Shaping(max_requests=200))
    options = RequestOptions(api="completions", model="m", stream=False)
    shared = prepare_requests(workload, synthesizer, options)
    unique = prepare_requests(workload, synthesizer, options, prefix_cache=False)
    heads = lambda requests: {json.loads(r.body)["prompt"][:60] for r in requests}  # noqa: E731
    assert len(heads(shared)) < len(shared)  # some rows share their first block
    assert len(heads(unique)) == len(unique)


def test_blocks_concatenate_without_merging_across_the_boundary(tokenizer, synthesizer):
    blocks = np.array([11, 22, 33, 44])
    for n in (1, 511, 512, 513, 1500, 2048, 2100, 3000):  # 3000: more tokens than the blocks hold
        assert tokenizer.count(synthesizer.prefixed_prompt(9, blocks, n)) == n
