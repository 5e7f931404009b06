import json
from dataclasses import replace

import numpy as np

from replayer.bench.ladder import StepResult, run_ladder, verdict, versus_raw
from replayer.send.addressing import row_of_request_id

MS = 1_000_000


def _step(rate: float, tokens: int, inflation_p99: float, completed: int = 10, lag_p99: float = 1.0) -> StepResult:
    return StepResult(rate, tokens, 10, completed, rate, rate, (0.1, lag_p99, 2.0), (0.1, inflation_p99), (0.1, 0.2),
                      1.0, 1.0)


def test_the_verdict_names_the_heaviest_faithful_step():
    results = [_step(50, 128, 0.4), _step(100, 128, 0.8), _step(200, 128, 3.0), _step(400, 128, 0.5, completed=9),
               _step(100, 512, 0.9, lag_p99=6.0)]
    assert verdict(results).startswith("this machine can drive 100 req/s x 128 tokens with < 1 ms inflation")
    failing = replace(_step(50, 128, 2.5), raw_ttft_inflation_ms=(0.1, 1.2))
    assert verdict([failing]).startswith("even at 50 req/s x 128 tokens the client inflated TTFT p99 by 2.50 ms "
                                         "(limit 1 ms; the raw client 1.20 ms)")


def test_the_client_is_compared_with_the_raw_client_step_by_step():
    steps = [replace(_step(100, 128, 1.5), raw_ttft_inflation_ms=(0.1, 1.0)),
             replace(_step(200, 128, 3.0), raw_ttft_inflation_ms=(0.1, 4.0)),
             replace(_step(400, 128, 9.0), raw_ttft_inflation_ms=(0.1, 5.0))]
    line = versus_raw(steps)
    assert "1.50x at 100x128, 0.75x at 200x128, 1.80x at 400x128;" in line
    assert line.endswith("keeps up with the raw client's measurement up to 200 req/s x 128 tokens "
                         "(TTFT inflation p99 within 1.5x, schedule lag p99 <= 5 ms)")


def test_a_tiny_ladder_matches_every_request_with_the_simulators_truth(tmp_path):
    [result] = run_ladder((20.0,), (8,), 1.0, tmp_path)
    assert result.planned > 5 and result.completed == result.planned
    assert result.intended_rate > 0 and result.achieved_rate > 0
    assert all(not np.isnan(v) for v in (*result.lag_ms, *result.ttft_inflation_ms, *result.itl_error_ms))
    assert result.ttft_inflation_ms[0] > 0  # the client sees the first token after the simulator wrote it
    assert result.cpu_per_1k_requests_s > 0 and result.cpu_per_100k_tokens_s > 0
    assert result.raw_ttft_inflation_ms[0] > 0 and result.raw_cpu_per_1k_requests_s > 0  # the yardstick ran too
    assert not np.isnan(result.ratio_to_raw)
    for log in ("truth.jsonl", "truth-raw.jsonl"):  # the raw client sent the very same requests
        ids = sorted(row_of_request_id(json.loads(line)["id"])
                     for line in (tmp_path / "rate20-tokens8" / log).read_text().splitlines())
        assert ids == list(range(result.planned))


