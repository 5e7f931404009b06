from collections import Counter

import numpy as np

from replayer.prompts.synthesis import PromptSynthesizer, TemplateOverhead
from replayer.traces.formats import read_trace


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


def test_blocks_concatenate_without_merging_across_the_boundary(tokenizer, synthesizer):
    blocks = np.array([11, 22, 33, 44])
    for n in (1, 511, 512, 513, 1500, 2048, 2100, 3000):  # 3000: more tokens than the blocks hold
        assert tokenizer.count(synthesizer.prefixed_prompt(9, blocks, n)) == n


def test_16_token_blocks_are_exact_and_shared_text_for_shared_ids(tokenizer, synthesizer):
    many = np.arange(100, 160)
    for n in (1, 15, 16, 17, 100, 500, 960, 1200):  # 1200: beyond the 60 blocks' 960 tokens
        assert tokenizer.count(synthesizer.prefixed_prompt(3, many, n, block_tokens=16)) == n
    one = synthesizer.prefixed_prompt(1, np.array([7, 8, 9, 1]), 64, block_tokens=16)
    other = synthesizer.prefixed_prompt(2, np.array([7, 8, 9, 2]), 64, block_tokens=16)
    shared = synthesizer.prefixed_prompt(0, np.array([7, 8, 9]), 48, block_tokens=16)
    assert one.startswith(shared) and other.startswith(shared) and one != other


def test_synthetic_replies_are_exact_and_differ_from_the_prompt(tokenizer, synthesizer):
    for n in (0, 1, 5, 300):
        assert tokenizer.count(synthesizer.reply(4, n)) == n
    assert synthesizer.reply(4, 50)[:20] != synthesizer.prompt(4, 50)[:20]


def test_template_overhead_leaves_at_least_one_content_token():
    template = TemplateOverhead(base=3, per_message=5)
    assert template.of(3) == 18
    assert template.content_tokens(100) == 92
    assert template.content_tokens(100, messages=3) == 82
    assert template.content_tokens(4) == 1 and template.content_tokens(0) == 0
