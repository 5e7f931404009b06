import asyncio
import time

from replayer.client import Client, ClientConfig, raise_fd_limit
from replayer.dispatcher import Progress, StopControl, dispatch
from replayer.prompts import PreparedRequest, PromptSynthesizer, RequestOptions, build_body
from replayer.simulator import EngineModel, Faults
from replayer.tokenizer import load_tokenizer

SECOND = 1_000_000_000


def requests_at(offsets_ns: list[int], input_tokens: int = 20, output_tokens: int = 3) -> list[PreparedRequest]:
    synthesizer = PromptSynthesizer(load_tokenizer(), seed=1)
    options = RequestOptions(model="replayer-sim")
    return [PreparedRequest(i, offset, input_tokens, output_tokens,
                            build_body(options, synthesizer.prompt(i, input_tokens), output_tokens))
            for i, offset in enumerate(offsets_ns)]


def replay(base_url: str, requests: list[PreparedRequest], stop_after_s: float | None = None,
           drain_timeout_s: float = 30.0):
    records = []
    progress = Progress()

    async def go():
        stop = StopControl()
        t0 = time.perf_counter_ns() + SECOND // 20
        if stop_after_s is not None:
            asyncio.get_running_loop().call_later(stop_after_s, stop.request_stop, "test")
        async with Client(ClientConfig(base_url), t0_ns=t0) as client:
            await dispatch(requests, client, records.append, t0, stop=stop, drain_timeout_s=drain_timeout_s,
                           progress=progress)

    asyncio.run(go())
    return records, progress


def test_stalling_responses_do_not_delay_later_sends(simulator):
    requests = requests_at([i * SECOND // 10 for i in range(20)])  # one every 100 ms for 2 s
    with simulator(faults=Faults(stall_rate=1.0, stall_s=3.0)) as sim:
        records, _ = replay(sim.base_url, requests)
    assert sorted(r.id for r in records) == list(range(20))
    assert all(r.ok for r in records)
    # Every request left while all earlier ones were still stalled: sending never waited on a response.
    assert max(r.sent_ns for r in records) < min(r.first_token_ns for r in records)
    assert all(r.first_token_ns - r.sent_ns >= 3 * SECOND for r in records)
    assert all(r.sent_ns >= r.intended_ns for r in records)


def test_a_burst_sharing_one_timestamp_is_sent_together(simulator):
    raise_fd_limit()
    requests = requests_at([0] * 1000, input_tokens=10, output_tokens=2)
    with simulator(engine=EngineModel(max_running=1024)) as sim:
        records, progress = replay(sim.base_url, requests)
    assert len(records) == 1000 and progress.sent == 1000
    assert all(r.ok for r in records), {r.status for r in records}
    assert all(r.intended_ns == 0 for r in records)
    # all of them were on their way before the first answer came back
    assert max(r.sent_ns for r in records) < min(r.first_token_ns for r in records)


def test_stop_ends_sending_and_cancels_what_outlives_the_drain(simulator):
    requests = requests_at([i * SECOND // 10 for i in range(40)])  # 4 s of sends
    with simulator(faults=Faults(stall_rate=1.0, stall_s=20.0)) as sim:
        records, progress = replay(sim.base_url, requests, stop_after_s=0.5, drain_timeout_s=0.3)
    assert 0 < progress.sent < 40
    assert len(records) == progress.sent  # every sent request has exactly one record
    assert {r.status for r in records} == {"cancelled"}
    assert max(r.intended_ns for r in records) <= 0.6 * SECOND


def test_drain_lets_in_flight_requests_finish(simulator):
    requests = requests_at([0, 0, 10 * SECOND])
    with simulator(engine=EngineModel(decode_base_ms=20)) as sim:
        records, progress = replay(sim.base_url, requests, stop_after_s=0.1)
    assert progress.sent == 2
    assert [r.status for r in records] == ["ok", "ok"]
