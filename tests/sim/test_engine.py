"""The simulated engine's scheduler is a pure step planner: these tests drive it step by step on a
virtual clock (the sum of planned step times), so every figure is exact."""

import pytest

from replayer.sim.engine import EngineModel, Scheduler, Sequence, Step


def run_to_completion(scheduler: Scheduler, arrivals: dict[int, list[Sequence]] | None = None) -> list[Step]:
    """Plan and complete steps until the engine is idle; `arrivals` submits sequences before the step
    of that index. Returns the steps taken."""
    arrivals = arrivals or {}
    steps: list[Step] = []
    while not scheduler.idle or any(index >= len(steps) for index in arrivals):
        for sequence in arrivals.get(len(steps), []):
            scheduler.submit(sequence)
        step = scheduler.plan()
        scheduler.complete(step)
        steps.append(step)
    return steps


def first_token_ms(steps: list[Step], sequence: Sequence) -> float:
    """The virtual time at which `sequence` got its first token (the end of the step that emitted it)."""
    elapsed = 0.0
    for step in steps:
        elapsed += step.duration_ms
        if sequence in step.emitting:
            return elapsed
    raise AssertionError("the sequence never emitted a token")


def test_prefill_time_grows_with_prompt_length():
    model = EngineModel(prefill_tokens_per_ms=2.0, max_prefill_tokens_per_step=100_000, decode_base_ms=10)
    ttft = {}
    for prompt in (10, 2000):
        scheduler = Scheduler(model)
        sequence = Sequence(prompt, 2)
        ttft[prompt] = first_token_ms(run_to_completion(scheduler, {0: [sequence]}), sequence)
    assert ttft == {10: 10 + 10 / 2.0, 2000: 10 + 2000 / 2.0}  # the first token comes with the prefill step
    assert ttft[2000] - ttft[10] == 995.0  # 1990 more tokens at 2 tokens/ms


def test_decode_steps_slow_down_as_the_batch_grows():
    model = EngineModel(decode_base_ms=5, decode_ms_per_seq=2.0, prefill_tokens_per_ms=1000)

    def total_ms(n: int) -> float:
        steps = run_to_completion(Scheduler(model), {0: [Sequence(1, 20) for _ in range(n)]})
        assert len(steps) == 20  # one prefill step that yields the first token, then 19 decode steps
        assert all(step.decoding == n for step in steps[1:])
        return sum(step.duration_ms for step in steps)

    alone, crowded = total_ms(1), total_ms(40)
    assert alone == pytest.approx(5 + 1 / 1000 + 19 * (5 + 2.0))
    assert crowded == pytest.approx(5 + 40 / 1000 + 19 * (5 + 2.0 * 40))  # 85 ms a step with 40 running
    assert crowded > 4 * alone


def test_full_kv_budget_makes_new_requests_wait():
    scheduler = Scheduler(EngineModel(kv_tokens=300, max_model_len=300, decode_base_ms=10))
    first, second = Sequence(1, 250), Sequence(1, 50)
    steps = run_to_completion(scheduler, {0: [first], 5: [second]})
    last_of_first = max(index for index, step in enumerate(steps) if first in step.emitting)
    first_of_second = min(index for index, step in enumerate(steps) if second in step.emitting)
    # 251 + 51 KV tokens exceed the budget of 300: the second is admitted only once the first has
    # finished and freed its memory
    assert first_of_second == last_of_first + 1
    assert scheduler.kv_used == 0 and scheduler.idle


def test_chunked_prefill_spreads_a_long_prompt_over_steps_within_the_token_budget():
    scheduler = Scheduler(EngineModel(max_prefill_tokens_per_step=512, prefill_tokens_per_ms=100))
    long, short = Sequence(1200, 1), Sequence(100, 1)
    steps = run_to_completion(scheduler, {0: [long, short]})
    assert [step.prefill_tokens for step in steps[:3]] == [512, 512, 276]  # 1200 + 100 in budgets of 512
    assert steps[2].emitting == [long, short]  # both finish their prefill in the third step


def test_an_aborted_sequence_frees_its_memory_and_leaves_the_batch():
    scheduler = Scheduler(EngineModel())
    sequence = Sequence(100, 1000)
    scheduler.submit(sequence)
    scheduler.complete(scheduler.plan())
    assert scheduler.kv_used == 1100 and scheduler.running == [sequence]
    scheduler.abort(sequence)
    assert scheduler.kv_used == 0 and scheduler.idle
