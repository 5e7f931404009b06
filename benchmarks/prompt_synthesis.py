"""Prompt-synthesis benchmark: prompts/s and tokens/s on one core, whole request bodies, exactness,
and the memory of streaming a huge trace through the dispatcher's look-ahead.

    .venv/bin/python benchmarks/prompt_synthesis.py [--prompts 200000] [--mean 600]
        [--tokenizer cl100k_base|PATH/tokenizer.json] [--huge 1000000]

Lengths are log-normal (sigma 1) with the given mean, clipped to 1..32,000 tokens. The target is
20,000 prompts/s at a mean of 600 tokens on one core; the last line says whether it is met.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np

from replayer.errors import ReplayerError
from replayer.prompts.bodies import RequestOptions, RequestPlan
from replayer.prompts.synthesis import PromptSynthesizer
from replayer.prompts.tokenizer import load_tokenizer
from replayer.send.dispatcher import Lookahead
from replayer.traces.model import Trace
from replayer.workload.shaping import Shaping, Workload

TARGET_PROMPTS_PER_S = 20_000
EXACTNESS_SAMPLE = 1_000


def lengths(count: int, mean: float, seed: int = 0) -> np.ndarray:
    """Log-normal prompt lengths (sigma 1) with the given mean, in 1..32,000."""
    median = mean / np.exp(0.5)
    drawn = np.random.default_rng(seed).lognormal(np.log(median), 1.0, count)
    return np.clip(np.rint(drawn), 1, 32_000).astype(np.int64)


def workload_of(inputs: np.ndarray) -> Workload:
    """A workload of back-to-back rows with these prompt lengths (one token out each)."""
    n = len(inputs)
    trace = Trace(source="benchmark", format="synthetic", row_ids=np.arange(n), arrival_s=np.arange(n) / 1e3,
                  input_tokens=inputs, output_tokens=np.ones(n, dtype=np.int64))
    return Workload(trace, np.arange(n, dtype=np.int64) * 1_000_000, 1.0, Shaping())


def rate_line(what: str, count: int, tokens: int, seconds: float) -> str:
    return (f"{what:<28} {count:>9,} in {seconds:6.2f} s = {count / seconds:>10,.0f} prompts/s, "
            f"{tokens / seconds / 1e6:6.1f} M tokens/s")


def bench_prompts(synthesizer: PromptSynthesizer, inputs: np.ndarray) -> float:
    prompt = synthesizer.prompt
    started = time.perf_counter()
    for request_id, n in enumerate(inputs.tolist()):
        prompt(request_id, n)
    seconds = time.perf_counter() - started
    print(rate_line("prompts (text only)", len(inputs), int(inputs.sum()), seconds))
    return len(inputs) / seconds


def bench_bodies(synthesizer: PromptSynthesizer, inputs: np.ndarray) -> None:
    plan = RequestPlan(workload_of(inputs), synthesizer, RequestOptions(model="m"))
    started = time.perf_counter()
    for _ in plan:
        pass
    print(rate_line("request bodies (JSON bytes)", len(inputs), int(inputs.sum()), time.perf_counter() - started))


def check_exactness(synthesizer: PromptSynthesizer, inputs: np.ndarray) -> int:
    sample = inputs[:EXACTNESS_SAMPLE].tolist()
    wrong = sum(synthesizer.tokenizer.count(synthesizer.prompt(i, n)) != n for i, n in enumerate(sample))
    print(f"exactness: {len(sample) - wrong:,}/{len(sample):,} sampled prompts re-encode to their exact length")
    return wrong


def bench_huge(synthesizer: PromptSynthesizer, rows: int, mean: float) -> None:
    """Stream every body of a huge trace through the look-ahead, as the dispatcher does."""
    inputs = lengths(rows, mean, seed=1)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    buffer = Lookahead(RequestPlan(workload_of(inputs), synthesizer, RequestOptions(model="m")))
    started, consumed, body_bytes = time.perf_counter(), 0, 0
    while True:
        buffer.fill()
        if not len(buffer):
            break
        while len(buffer):
            body_bytes += len(buffer.pop()[1].body)
            consumed += 1
    seconds = time.perf_counter() - started
    grew = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    print(rate_line("huge trace via look-ahead", consumed, int(inputs.sum()), seconds))
    print(f"  {body_bytes / 1e9:.2f} GB of bodies streamed through a {buffer.size:,}-request look-ahead; "
          f"peak RSS grew by {grew:,.0f} MB (the row arrays alone are {inputs.nbytes * 5 / 1e6:,.0f} MB)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=200_000)
    parser.add_argument("--mean", type=float, default=600.0, help="mean prompt length in tokens")
    parser.add_argument("--tokenizer", default="cl100k_base")
    parser.add_argument("--huge", type=int, default=1_000_000, metavar="ROWS",
                        help="rows of the look-ahead memory check (0 to skip)")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the target says
    started = time.perf_counter()
    try:
        synthesizer = PromptSynthesizer(load_tokenizer(args.tokenizer), seed=0)
    except ReplayerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"tokenizer {args.tokenizer}: synthesizer built and self-checked in {time.perf_counter() - started:.2f} s "
          f"({len(synthesizer.words):,} single-token words)")
    inputs = lengths(args.prompts, args.mean)
    print(f"{args.prompts:,} prompts, mean {inputs.mean():,.0f} tokens (log-normal, sigma 1), one core")
    rate = bench_prompts(synthesizer, inputs)
    bench_bodies(synthesizer, inputs)
    wrong = check_exactness(synthesizer, inputs)
    if args.huge:
        bench_huge(synthesizer, args.huge, args.mean)
    verdict = "met" if rate >= TARGET_PROMPTS_PER_S else "NOT met"
    print(f"target >= {TARGET_PROMPTS_PER_S:,} prompts/s at mean {args.mean:g} tokens: {verdict} ({rate:,.0f})")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
