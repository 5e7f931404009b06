import json

import pytest

from replayer.prompts.bodies import PreparedRequest, RequestOptions, RequestPlan, build_body, save_requests
from replayer.prompts.synthesis import TemplateOverhead
from replayer.traces.formats import read_trace
from replayer.workload.shaping import Shaping, shape


def test_chat_body_carries_exact_max_tokens_and_ignore_eos():
    body = json.loads(build_body(RequestOptions(api="chat", model="m"), "hi there", 42))
    assert body == {
        "model": "m",
        "max_tokens": 42,
        "stream": True,
        "messages": [{"role": "user", "content": "hi there"}],
        "stream_options": {"include_usage": True},
        "ignore_eos": True,
    }


def test_completions_body_without_stream_or_ignore_eos():
    body = json.loads(build_body(RequestOptions(api="completions", model="m", stream=False, ignore_eos=False), "x", 3))
    assert body == {"model": "m", "max_tokens": 3, "stream": False, "prompt": "x"}


def test_chat_body_takes_a_whole_conversation():
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    assert json.loads(build_body(RequestOptions(model="m"), messages, 5))["messages"] == messages


def test_planned_requests_follow_the_workload(tokenizer, synthesizer):
    workload = shape(read_trace("sample:burstgpt-1"), Shaping(max_requests=20, speedup=100))
    requests = list(RequestPlan(workload, synthesizer, RequestOptions(model="m")))
    assert [r.id for r in requests] == workload.trace.row_ids.tolist()
    assert [r.offset_ns for r in requests] == workload.offsets_ns.tolist()
    for request in requests:
        body = json.loads(request.body)
        assert body["max_tokens"] == request.output_tokens
        assert tokenizer.count(body["messages"][0]["content"]) == request.input_tokens
        assert request.turn == 0 and request.after == -1


def test_prefix_cache_off_makes_every_mooncake_prompt_unique(synthesizer):
    workload = shape(read_trace("sample:mooncake-synthetic"), Shaping(max_requests=200))
    options = RequestOptions(api="completions", model="m", stream=False)
    shared = list(RequestPlan(workload, synthesizer, options))
    unique = list(RequestPlan(workload, synthesizer, options, prefix_cache=False))
    heads = lambda requests: {json.loads(r.body)["prompt"][:60] for r in requests}  # noqa: E731
    assert len(heads(shared)) < len(shared)  # some rows share their first block
    assert len(heads(unique)) == len(unique)


def test_a_measured_template_is_subtracted_from_each_prompt(tokenizer, synthesizer):
    workload = shape(read_trace("sample:burstgpt-1"), Shaping(max_requests=20))
    plan = RequestPlan(workload, synthesizer, RequestOptions(model="m"), template=TemplateOverhead(3, 5))
    for request in plan:
        content = json.loads(request.body)["messages"][0]["content"]
        assert tokenizer.count(content) == max(1, request.input_tokens - 8)


def _burstgpt3(**shaping):
    return shape(read_trace("sample:burstgpt-3"), Shaping(**shaping))


def test_session_turns_carry_the_growing_history_with_synthetic_replies(tokenizer, synthesizer):
    workload = _burstgpt3()
    requests = list(RequestPlan(workload, synthesizer, RequestOptions(model="m"), history="synthetic"))
    sessions = workload.trace.sessions.values()
    last_messages: dict[str, list[dict]] = {}
    checked = trimmed = 0
    for position, request in enumerate(requests):
        messages = json.loads(request.body)["messages"]
        assert sum(tokenizer.count(m["content"]) for m in messages) == request.input_tokens
        assert [m["role"] for m in messages] == ["user", "assistant"] * (len(messages) // 2) + ["user"]
        session = sessions[position]
        if not session:
            assert request.turn == 0 and len(messages) == 1
            continue
        earlier = last_messages.get(session)
        if earlier is None:
            assert request.turn == 1 and request.after == -1 and len(messages) == 1
        else:
            previous = requests[request.after]
            assert sessions[request.after] == session and request.turn == previous.turn + 1
            reply = synthesizer.reply(previous.id, previous.output_tokens)
            assert tokenizer.count(reply) == previous.output_tokens  # the synthetic reply has the recorded length
            history = [*earlier, {"role": "assistant", "content": reply}]
            if messages[:-1] == history:
                checked += 1
            else:  # the trace's context shrank: the oldest exchanges were dropped
                kept = len(messages) - 1
                assert history[len(history) - kept :] == messages[:-1]
                trimmed += 1
        last_messages[session] = messages
    later_turns = sum(1 for r in requests if r.after >= 0)
    assert checked + trimmed == later_turns and checked > later_turns // 2 and trimmed > 0


def test_actual_history_turns_are_built_after_the_previous_reply(tokenizer, synthesizer):
    workload = _burstgpt3()
    plan = RequestPlan(workload, synthesizer, RequestOptions(model="m"))
    requests = list(plan)
    later = [(p, r) for p, r in enumerate(requests) if r.after >= 0]
    assert later and all(r.body is None for _, r in later)
    assert all(r.body is not None for r in requests if r.after < 0)
    position, request = later[0]
    first = requests[request.after]
    assert plan.wants_reply(request.after)
    plan.finished(request.after, first, " the actual reply of the server")
    messages = json.loads(plan.body(position, request))["messages"]
    assert messages[1] == {"role": "assistant", "content": " the actual reply of the server"}
    assert messages[0] == json.loads(first.body)["messages"][0]
    assert sum(tokenizer.count(m["content"]) for m in messages) == request.input_tokens


def test_a_failed_turn_leaves_a_synthetic_reply_in_the_history(tokenizer, synthesizer):
    plan = RequestPlan(_burstgpt3(), synthesizer, RequestOptions(model="m"))
    requests = list(plan)
    position, request = next((p, r) for p, r in enumerate(requests) if r.after >= 0)
    plan.finished(request.after, requests[request.after], None)
    reply = json.loads(plan.body(position, request))["messages"][1]["content"]
    assert tokenizer.count(reply) == requests[request.after].output_tokens


@pytest.mark.parametrize("history,api", [("off", "chat"), ("actual", "completions")])
def test_sessions_off_or_without_chat_send_every_row_on_its_own(synthesizer, history, api):
    plan = RequestPlan(_burstgpt3(), synthesizer, RequestOptions(api=api, model="m"), history=history)
    assert not plan.has_sessions
    assert all(r.body is not None and r.turn == 0 for r in plan)
    assert bool(plan.notes) == (api == "completions")


def test_saved_requests_mark_session_turns(tmp_path, synthesizer):
    plan = RequestPlan(_burstgpt3(max_requests=30), synthesizer, RequestOptions(model="m"))
    path = tmp_path / "requests.jsonl"
    assert save_requests(plan.built_ahead(), plan.options, path) == 30
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert any(line.get("turn", 0) >= 2 for line in lines)
    assert all(line["endpoint"] == "/v1/chat/completions" and "messages" in line["body"] for line in lines)
    with pytest.raises(AssertionError):
        save_requests([PreparedRequest(1, 0, 5, 5, None, 0, 2)], plan.options, path)
