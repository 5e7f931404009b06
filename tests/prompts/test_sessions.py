from dataclasses import replace

import numpy as np

from replayer.prompts.sessions import Conversations, link_sessions, think_times_ns
from replayer.prompts.synthesis import TemplateOverhead
from replayer.traces.formats import read_trace
from replayer.traces.model import Categorical, Trace
from replayer.workload.shaping import Shaping, Workload, shape


def _workload(sessions: list[str], inputs: list[int], outputs: list[int] | None = None) -> Workload:
    n = len(sessions)
    labels = tuple(sorted(set(sessions)))
    trace = Trace(source="t", format="test", row_ids=np.arange(n), arrival_s=np.arange(n, dtype=float),
                  input_tokens=np.asarray(inputs), output_tokens=np.asarray(outputs or [10] * n),
                  sessions=Categorical(np.array([labels.index(s) for s in sessions]), labels))
    return Workload(trace, np.arange(n, dtype=np.int64) * 1_000_000, 1.0, Shaping())


def test_links_chain_each_session_in_send_order():
    links = link_sessions(_workload(["a", "", "b", "a", "a", "b", ""], [5] * 7))
    assert links.previous.tolist() == [-1, -1, -1, 0, 3, 2, -1]
    assert links.turn.tolist() == [1, 0, 1, 2, 3, 2, 0]
    assert links.follow_ups.tolist() == [1, 0, 1, 1, 0, 0, 0]


def test_a_recorded_turn_column_orders_a_sessions_turns():
    workload = _workload(["a", "a", "a", "b"], [5] * 4)
    workload = replace(workload, trace=replace(workload.trace, turns=np.array([1, 3, 2, 1])))
    links = link_sessions(workload)
    assert links.previous.tolist() == [-1, -1, 0, -1]  # turn 3 was sent before turn 2: it cannot follow it
    assert links.turn.tolist() == [1, 1, 2, 1]


def test_think_times_are_the_recorded_gap_less_the_recorded_duration_capped_and_scaled():
    workload = _workload(["a", "a", "a", "b", "b"], [5] * 5)  # arrivals 0, 1, 2, 3, 4 s
    durations = np.array([0.25, 1.5, 0.0, 0.5, 0.0])
    workload = replace(workload, trace=replace(workload.trace, durations_s=durations))
    previous = link_sessions(workload).previous
    assert think_times_ns(workload, previous).tolist() == [-1, 750_000_000, 0, -1, 500_000_000]
    faster = replace(workload, speedup=2.0, shaping=Shaping(max_idle_gap_s=0.6))
    assert think_times_ns(faster, previous).tolist() == [-1, 300_000_000, 0, -1, 250_000_000]


def _tree(parents: list[int], inputs: list[int]) -> Workload:
    """Rows in send order whose parents (row ids, -1 for none) make follow-up trees, as Qwen-Bailian's."""
    n = len(parents)
    trace = Trace(source="t", format="test", row_ids=np.arange(n), arrival_s=np.arange(n, dtype=float),
                  input_tokens=np.asarray(inputs), output_tokens=np.full(n, 10), parents=np.asarray(parents))
    return Workload(trace, np.arange(n, dtype=np.int64) * 1_000_000, 1.0, Shaping())


def test_a_tree_links_each_follow_up_to_its_parent_and_shares_the_parents_conversation(synthesizer):
    workload = _tree([-1, 0, 0, 1, -1, 2, 9], [40, 80, 90, 150, 30, 160, 20])  # row 6: its parent is not replayed
    links = link_sessions(workload)
    assert links.previous.tolist() == [-1, 0, 0, 1, -1, 2, -1]
    assert links.turn.tolist() == [1, 2, 2, 3, 1, 3, 1]
    assert links.follow_ups.tolist() == [2, 1, 1, 0, 0, 0, 0]
    conversations = Conversations(links, synthesizer, "synthetic")
    messages = [conversations.messages(position, position, int(n), 10)
                for position, n in enumerate(workload.trace.input_tokens)]
    reply = {"role": "assistant", "content": synthesizer.reply(0, 10)}
    assert messages[1][:2] == messages[2][:2] == [*messages[0], reply]  # both follow-ups of row 0 carry it
    assert messages[3][:4] == [*messages[1], {"role": "assistant", "content": synthesizer.reply(1, 10)}]
    assert messages[5][:4] == [*messages[2], {"role": "assistant", "content": synthesizer.reply(2, 10)}]
    assert not conversations._open  # every conversation is forgotten once its last follow-up is built
    shaped = workload.take(np.array([0, 2, 3, 5]))  # row 1 shaped out: its follow-up starts anew
    assert link_sessions(shaped).previous.tolist() == [-1, 0, -1, 1]


def test_traces_without_sessions_have_no_links():
    assert link_sessions(shape(read_trace("sample:burstgpt-1"), Shaping())) is None
    assert link_sessions(_workload(["", ""], [5, 5])) is None


def test_burstgpt3_sessions_are_linked_turn_by_turn():
    workload = shape(read_trace("sample:burstgpt-3"), Shaping())
    links = link_sessions(workload)
    labels = workload.trace.sessions.values()
    for position in np.flatnonzero(links.previous >= 0):
        previous = links.previous[position]
        assert previous < position and labels[previous] == labels[position]
        assert links.turn[position] == links.turn[previous] + 1
    assert (links.turn == 0).sum() == (labels == "").sum()


def test_a_shrinking_context_drops_the_oldest_exchanges(tokenizer, synthesizer):
    workload = _workload(["s"] * 3, inputs=[100, 300, 250], outputs=[80, 90, 10])
    conversations = Conversations(link_sessions(workload), synthesizer, "synthetic")
    first = conversations.messages(0, 0, 100, 80)
    second = conversations.messages(1, 1, 300, 90)
    third = conversations.messages(2, 2, 250, 10)  # u2 + a2 = 210 tokens fit; u1 + a1 no longer do
    assert [len(m) for m in (first, second, third)] == [1, 3, 3]
    assert second[0] == first[0]
    assert third[:2] == [second[2], {"role": "assistant", "content": synthesizer.reply(1, 90)}]
    for messages, n in ((first, 100), (second, 300), (third, 250)):
        assert sum(tokenizer.count(m["content"]) for m in messages) == n


def test_the_template_overhead_is_counted_per_message(tokenizer, synthesizer):
    workload = _workload(["s"] * 2, inputs=[100, 300])
    template = TemplateOverhead(base=4, per_message=6)
    conversations = Conversations(link_sessions(workload), synthesizer, "synthetic", template)
    conversations.messages(0, 0, 100, 10)
    second = conversations.messages(1, 1, 300, 10)
    assert sum(tokenizer.count(m["content"]) for m in second) + template.of(len(second)) == 300


def test_actual_mode_waits_for_the_reply_and_keeps_only_open_sessions(synthesizer):
    workload = _workload(["s", "s", "t"], inputs=[50, 120, 30])
    conversations = Conversations(link_sessions(workload), synthesizer, "actual")
    conversations.messages(0, 0, 50, 10)
    conversations.messages(2, 2, 30, 10)
    assert conversations.wants_reply(0) and not conversations.wants_reply(2)
    conversations.add_reply(0, 0, 10, " a real reply")
    second = conversations.messages(1, 1, 120, 10)
    assert second[1] == {"role": "assistant", "content": " a real reply"}
    assert not conversations._open  # nothing kept once every session's last turn is built
