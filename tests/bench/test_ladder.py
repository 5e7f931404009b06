import json
from dataclasses import replace

import numpy as np
import pytest

from replayer.bench.ladder import StepResult, run_ladder, targets, verdict, versus_raw
from replayer.send.addressing import row_of_request_id

MS = 1_000_000


def _step(rate: float, tokens: int, inflation_p99: float, completed: int = 10, lag_p99: float = 1.0) -> StepResult:
    return StepResult(rate, tokens, "step", 10, completed, rate, rate, (0.1, lag_p99, 2.0), (0.1, inflation_p99),
                      (0.1, 0.2), 1.0, 1.0)


def test_the_verdict_names_the_heaviest_faithful_step():
    results = [_step(50, 128, 0.4), _step(100, 128, 0.8), _step(200, 128, 3.0), _step(400, 128, 0.5, completed=9),
               _step(100, 512, 0.9, lag_p99=6.0)]
    assert verdict(results).startswith("this machine can drive 100 req/s x 128 tokens with < 1 ms inflation")
    failing = replace(_step(50, 128, 2.5), raw_ttft_inflation_ms=(0.1, 1.2))
    assert verdict([failing]).startswith("even at 50 req/s x 128 tokens the client inflated TTFT p99 by 2.50 ms "
                                         "(limit 1 ms; the raw client 1.20 ms)")


def test_the_client_is_compared_with_the_raw_client_step_by_step():
    steps = [replace(_step(100, 128, 1.5), raw_ttft_inflation_ms=(0.1, 1.0), raw_cpu_per_1k_requests_s=0.5),
             replace(_step(200, 128, 3.0), raw_ttft_inflation_ms=(0.1, 4.0), raw_cpu_per_1k_requests_s=0.8),
             replace(_step(400, 128, 9.0), raw_ttft_inflation_ms=(0.1, 5.0), raw_cpu_per_1k_requests_s=1.0)]
    line = versus_raw(steps)
    assert "TTFT inflation p99 1.50x at 100x128, 0.75x at 200x128, 1.80x at 400x128;" in line
    assert "CPU per request 2.00x at 100x128, 1.25x at 200x128, 1.00x at 400x128;" in line
    assert line.endswith("keeps up with the raw client's measurement up to 200 req/s x 128 tokens "
                         "(TTFT inflation p99 within max(2 ms, 1.5x), schedule lag p99 <= 5 ms)")


def test_the_targets_are_judged_against_the_raw_client_where_it_kept_up():
    cheap = [replace(_step(rate, 128, 2.5), raw_ttft_inflation_ms=(0.1, 2.0), raw_cpu_per_1k_requests_s=0.9,
                     raw_lag_p99_ms=1.0) for rate in (100, 200, 400)]
    [(cpu, cpu_met), (accuracy, accurate)] = targets(cheap)
    assert cpu.endswith("1.11x at 200x128, 1.11x at 400x128") and cpu_met
    short = replace(cheap[1], tokens=2, cpu_per_1k_requests_s=3.0)  # judged only at 128 tokens, as the issue sets
    [(cpu, cpu_met), _] = targets([*cheap, short])
    assert cpu.endswith("1.11x at 200x128, 1.11x at 400x128") and cpu_met
    assert accuracy.startswith("as accurate as the raw client wherever it kept its schedule (100, 200, 400 req/s)")
    assert accurate
    costly = [*cheap[:2], replace(cheap[2], cpu_per_1k_requests_s=1.2, ttft_inflation_ms=(0.1, 3.5))]
    [(_, cpu_met), (accuracy, accurate)] = targets(costly)
    assert not cpu_met and not accurate and accuracy.endswith("missed at 400x128")
    raw_behind = [*cheap[:2], replace(costly[2], raw_lag_p99_ms=40.0)]  # a step the raw client itself missed
    [_, (accuracy, accurate)] = targets(raw_behind)
    assert accurate and "(100, 200 req/s)" in accuracy


@pytest.mark.parametrize("emission", ["spread"])  # (both modes stream alike: tests/bench/test_server.py)
def test_a_tiny_ladder_matches_every_request_with_the_servers_truth(tmp_path, emission):
    [result] = run_ladder((20.0,), (8,), 1.0, tmp_path, emission=emission)
    assert result.planned > 5 and result.completed == result.planned
    assert result.intended_rate > 0 and result.achieved_rate > 0
    assert all(not np.isnan(v) for v in (*result.lag_ms, *result.ttft_inflation_ms, *result.itl_error_ms))
    assert result.ttft_inflation_ms[0] > 0  # the client sees the first token after the server wrote it
    assert result.cpu_per_1k_requests_s > 0 and result.cpu_per_100k_tokens_s > 0
    assert result.raw_ttft_inflation_ms[0] > 0 and result.raw_cpu_per_1k_requests_s > 0  # the yardstick ran too
    assert not np.isnan(result.ratio_to_raw)
    for log in ("truth.jsonl", "truth-raw.jsonl"):  # the raw client sent the very same requests
        ids = sorted(row_of_request_id(json.loads(line)["id"])
                     for line in (tmp_path / f"{emission}-rate20-tokens8" / log).read_text().splitlines())
        assert ids == list(range(result.planned))


