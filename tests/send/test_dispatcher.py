import asyncio
import json
import time

import numpy as np

from replayer.prompts.bodies import PreparedRequest, RequestOptions, RequestPlan, build_body
from replayer.prompts.synthesis import PromptSynthesizer
from replayer.prompts.tokenizer import load_tokenizer
from replayer.send.client import Client, ClientConfig
from replayer.send.dispatcher import Lookahead, Progress, StopControl, dispatch
from replayer.send.eventloop import raise_fd_limit
from replayer.sim.engine import EngineModel
from replayer.sim.faults import Faults
from replayer.sim.server import Simulator
from replayer.traces.model import Categorical, Trace
from replayer.workload.shaping import Shaping, Workload

SECOND = 1_000_000_000


def requests_at(offsets_ns: list[int], input_tokens: int = 20, output_tokens: int = 3) -> list[PreparedRequest]:
    synthesizer = PromptSynthesizer(load_tokenizer(), seed=1)
    options = RequestOptions(model="replayer-sim")
    return [PreparedRequest(i, offset, input_tokens, output_tokens,
                            build_body(options, synthesizer.prompt(i, input_tokens), output_tokens))
            for i, offset in enumerate(offsets_ns)]


def replay(base_url: str, requests, stop_after_s: float | None = None, drain_timeout_s: float = 30.0,
           progress: Progress | None = None, **options):
    records = []
    progress = progress or Progress()

    async def go():
        stop = StopControl()
        t0 = time.perf_counter_ns() + SECOND // 20
        if stop_after_s is not None:
            asyncio.get_running_loop().call_later(stop_after_s, stop.request_stop, "test")
        async with Client(ClientConfig(base_url), t0_ns=t0) as client:
            await dispatch(requests, client, records.append, t0, stop=stop, drain_timeout_s=drain_timeout_s,
                           progress=progress, **options)

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
    assert all(r.sent_ns >= 0 for r in records) and len(progress.recent_lag) == 1000  # each one's lag is reported
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


def test_bodies_are_built_a_bounded_window_ahead_of_the_sends(simulator):
    requests = requests_at([i * SECOND // 1000 for i in range(1500)], input_tokens=10, output_tokens=1)
    progress = Progress()
    ahead = []

    def lazily():
        for index, request in enumerate(requests):
            ahead.append(index - progress.sent)  # how far building runs ahead of sending
            yield request

    with simulator() as sim:
        records, _ = replay(sim.base_url, Lookahead(lazily(), size=50), total=len(requests), progress=progress)
    assert len(records) == 1500 and all(r.ok for r in records)
    assert max(ahead) <= 50
    assert len(progress.recent_lag) == 1500  # every send's lag reaches the live schedule guard


def _session_plan(offsets_s: list[float], sessions: list[str], outputs: int) -> RequestPlan:
    n = len(offsets_s)
    labels = tuple(sorted(set(sessions)))
    trace = Trace(source="t", format="test", row_ids=np.arange(n), arrival_s=np.asarray(offsets_s),
                  input_tokens=np.arange(1, n + 1) * 200, output_tokens=np.full(n, outputs),
                  sessions=Categorical(np.array([labels.index(s) for s in sessions]), labels))
    workload = Workload(trace, (np.asarray(offsets_s) * SECOND).astype(np.int64), 1.0, Shaping())
    return RequestPlan(workload, PromptSynthesizer(load_tokenizer(), seed=1), RequestOptions(model="replayer-sim"))


def test_a_session_turn_waits_for_the_previous_turn_and_counts_the_wait(simulator):
    # turns of session "a" 50 ms apart, each answer taking about 300 ms; "b" is independent
    plan = _session_plan([0.0, 0.05, 0.1, 0.1], ["a", "a", "a", "b"], outputs=30)
    with simulator(engine=EngineModel(decode_base_ms=10)) as sim:
        records, progress = replay(sim.base_url, plan, sessions=plan)
    by_id = {r.id: r for r in records}
    assert all(r.ok for r in records) and progress.sent == 4
    for turn in (1, 2):
        previous, current = by_id[turn - 1], by_id[turn]
        assert current.turn == turn + 1
        assert current.sent_ns >= previous.end_ns  # never before the previous turn finished
        assert current.session_wait_ns > 0.2 * SECOND
        assert current.sent_ns - current.intended_ns >= current.session_wait_ns  # the wait is schedule lag
    assert by_id[3].session_wait_ns == 0 and by_id[3].sent_ns < by_id[0].end_ns  # b did not wait for a


def test_a_session_turn_uses_the_servers_actual_reply(simulator):
    plan = _session_plan([0.0, 0.01], ["a", "a"], outputs=7)
    sent_bodies = []
    original = plan.body

    def spying(position, request):
        body = original(position, request)
        sent_bodies.append(json.loads(body))
        return body

    plan.body = spying
    with simulator() as sim:
        records, _ = replay(sim.base_url, plan, sessions=plan)
        server_reply = Simulator(sim.config).reply_text(7)
    assert all(r.ok for r in records)
    first, second = sent_bodies  # the first turn is built ahead, the second after the first's reply
    assert second["messages"] == [*first["messages"], {"role": "assistant", "content": server_reply},
                                  second["messages"][-1]]


def test_a_concurrency_cap_holds_in_flight_requests_to_it_and_records_each_wait(simulator):
    requests = requests_at([i * SECOND // 100 for i in range(30)])  # one every 10 ms, each taking >= 100 ms
    with simulator(faults=Faults(stall_rate=1.0, stall_s=0.1)) as sim:
        records, progress = replay(sim.base_url, requests, max_in_flight=4)
    assert sorted(r.id for r in records) == list(range(30)) and all(r.ok for r in records)
    edges = sorted([(r.sent_ns, 1) for r in records] + [(r.end_ns, -1) for r in records], key=lambda e: (e[0], e[1]))
    assert max(np.cumsum([step for _, step in edges])) == 4  # never more than 4 in flight, and 4 at times
    assert [r.intended_ns for r in sorted(records, key=lambda r: r.id)] == [q.offset_ns for q in requests]
    waited = [r for r in records if r.cap_wait_ns > 0]
    assert len(waited) >= 20  # all but the first few waited for a slot...
    assert all(r.sent_ns - r.intended_ns >= r.cap_wait_ns for r in records)  # ...and the wait is part of the lag
    assert max(r.client_lag_ns for r in records) < SECOND // 20  # but not the client's doing
    ends = sorted(r.end_ns for r in records)
    for r in waited:  # a waiting request left when an earlier one ended, not on a timer
        assert min(abs(r.sent_ns - end) for end in ends) < SECOND // 50


def test_a_closed_loop_keeps_each_user_busy_in_plan_order_whatever_the_timestamps(simulator):
    requests = requests_at([i * SECOND for i in range(24)])  # a second apart: the closed loop ignores that
    with simulator(faults=Faults(stall_rate=1.0, stall_s=0.1)) as sim:
        records, progress = replay(sim.base_url, requests, users=3)
    assert sorted(r.id for r in records) == list(range(24)) and all(r.ok for r in records) and progress.sent == 24
    by_send = sorted(records, key=lambda r: r.sent_ns)
    assert [r.id for r in by_send[:3]] == [0, 1, 2] and by_send[-1].end_ns < 3 * SECOND  # back to back
    edges = sorted([(r.sent_ns, 1) for r in records] + [(r.end_ns, -1) for r in records], key=lambda e: (e[0], e[1]))
    assert max(np.cumsum([step for _, step in edges])) == 3  # three users, never more in flight
    assert all(0 <= r.sent_ns - r.intended_ns < SECOND // 100 for r in records)  # intended: when its user took it
    assert min(r.intended_ns for r in records) >= 0  # (the users start at t0)
    ends = sorted(r.end_ns for r in records)
    for r in by_send[3:]:  # every later request left as an earlier one ended
        assert min(abs(r.sent_ns - end) for end in ends) < SECOND // 100


def test_a_closed_loop_user_goes_on_after_a_session_turn(simulator):
    plan = _session_plan([0.0, 0.0, 0.0, 0.0], ["a", "a", "a", "b"], outputs=5)
    with simulator() as sim:
        records, progress = replay(sim.base_url, plan, sessions=plan, users=1)  # one user sends all four
    assert sorted(r.id for r in records) == [0, 1, 2, 3] and all(r.ok for r in records) and progress.sent == 4


def test_a_closed_loop_still_waits_for_a_sessions_earlier_turn(simulator):
    plan = _session_plan([0.0, 0.0, 0.0], ["a", "a", "b"], outputs=20)
    with simulator(engine=EngineModel(decode_base_ms=5)) as sim:
        records, _ = replay(sim.base_url, plan, sessions=plan, users=3)
    by_id = {r.id: r for r in records}
    assert all(r.ok for r in records)
    assert by_id[1].sent_ns >= by_id[0].end_ns and by_id[1].session_wait_ns > 0  # its user waited for turn 1
    assert by_id[2].sent_ns < by_id[0].end_ns  # b's user did not
