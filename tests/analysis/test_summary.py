from dataclasses import replace

import pytest

from replayer.analysis.summary import distribution, summarize, token_mismatch
from replayer.records import RequestRecord

MS = 1_000_000


def ok(i, intended, sent, first, end, n_out, itl, n_in=10, served_in=10):
    return RequestRecord(id=i, intended_ns=intended * MS, input_tokens=n_in, output_tokens=n_out,
                         sent_ns=sent * MS, first_token_ns=first * MS, end_ns=end * MS,
                         served_input_tokens=served_in, served_output_tokens=n_out,
                         itl_us=[round(gap * 1000) for gap in itl])


RECORDS = [
    # TTFT 100, E2E 500, TPOT (500-100)/(5-1) = 100, lag 0
    ok(0, 0, 0, 100, 500, 5, [100.0, 100.0, 100.0, 100.0]),
    # TTFT 200, E2E 400, TPOT (400-200)/(3-1) = 100... served 3 tokens; lag 2
    ok(1, 1000, 1002, 1202, 1402, 3, [50.0, 150.0]),
    # one token: no TPOT; TTFT 300, E2E 300; lag 4
    ok(2, 2000, 2004, 2304, 2304, 1, [], served_in=12),
    RequestRecord(id=3, intended_ns=3000 * MS, input_tokens=10, output_tokens=4, sent_ns=3000 * MS,
                  end_ns=4000 * MS, status="http_500", error="boom"),
]


def test_hand_computed_summary():
    s = summarize(RECORDS)
    assert (s["requests_sent"], s["completed"], s["failed"]) == (4, 3, 1)
    assert s["failures"] == {"http_500": 1}
    assert s["failure_examples"] == {"http_500": "boom"}
    assert s["duration_s"] == 4.0  # last completion (the failure at 4000 ms) - t0
    assert s["request_throughput"] == 0.75
    assert s["output_throughput"] == 9 / 4
    assert s["input_throughput"] == 32 / 4
    assert s["ttft_ms"]["mean"] == 200.0
    assert s["ttft_ms"]["p50"] == 200.0
    assert s["ttft_ms"]["max"] == 300.0
    assert s["e2e_ms"]["mean"] == 400.0
    assert s["tpot_ms"]["count"] == 2 and s["tpot_ms"]["mean"] == 100.0
    assert s["itl_ms"]["count"] == 6 and s["itl_ms"]["max"] == 150.0
    assert s["schedule_lag_ms"]["mean"] == 1.5  # (0 + 2 + 4 + 0) / 4, the failure was sent on time
    assert s["user_ttft_ms"]["max"] == 304.0
    assert s["client_limited"] is False


def test_lag_above_threshold_marks_the_run_client_limited_given_three_late_sends():
    late = [*RECORDS, ok(4, 3500, 3504, 3600, 3700, 2, [100.0])]  # lags 0, 2, 4, 0, 4 ms
    s = summarize(late, client_limited_lag_ms=1.5)
    assert s["client_limited"] is True
    assert [(w["start_s"], w["end_s"], w["requests"], w["late"]) for w in s["client_behind_windows"]] == [
        (0.0, 5.0, 5, 3)]
    assert summarize(late, client_limited_lag_ms=3.0)["client_limited"] is False  # two late sends: a hiccup


def test_a_burst_the_client_fell_behind_in_is_not_hidden_by_a_calm_run():
    calm = [ok(i, i * 100, i * 100, i * 100 + 10, i * 100 + 20, 2, [10.0]) for i in range(400)]  # 40 s on time
    burst = [ok(400 + i, 22_000, 22_000 + 8, 22_100, 22_200, 2, [100.0]) for i in range(3)]  # 8 ms late
    s = summarize(calm + burst)
    assert s["client_lag_p99_ms"] < 5.0  # the whole run's p99 looks fine...
    assert s["client_limited"] is True  # ...but in 20-25 s the client was behind
    [window] = s["client_behind_windows"]
    assert (window["start_s"], window["requests"]) == (20.0, 53) and window["lag_p99_ms"] == pytest.approx(8.0)


def test_session_waits_count_as_schedule_lag_but_do_not_make_the_client_limited():
    turn = ok(4, 5000, 5400, 5500, 5600, 2, [100.0])
    turn.turn, turn.session_wait_ns = 2, 399 * MS  # held back 399 ms by its previous turn, then 1 ms late
    s = summarize([*RECORDS, turn], client_limited_lag_ms=4.5)
    assert s["schedule_lag_ms"]["max"] == 400.0
    assert s["session_wait_ms"]["count"] == 1 and s["session_wait_ms"]["max"] == 399.0
    assert s["client_lag_p99_ms"] < 4.5 and s["client_limited"] is False
    assert summarize(RECORDS)["session_wait_ms"]["count"] == 0


def test_not_streamed_runs_have_no_tpot_or_itl():
    s = summarize(RECORDS, streamed=False)
    assert s["tpot_ms"]["count"] == 0 and s["itl_ms"]["count"] == 0
    assert s["ttft_ms"]["count"] == 3


def test_percentiles_interpolate_linearly():
    d = distribution([1, 2, 3, 4])
    assert (d["p50"], d["p90"], d["max"], d["mean"]) == (2.5, pytest.approx(3.7), 4.0, 2.5)
    assert distribution([])["p99"] is None


def test_token_mismatch_counts_fewer_and_more():
    records = [ok(0, 0, 0, 1, 2, 5, [], served_in=12), ok(1, 0, 0, 1, 2, 5, [], served_in=9),
               ok(2, 0, 0, 1, 2, 5, [])]
    result = token_mismatch(records)["input"]
    assert result == {"checked": 3, "mismatched": 2, "fewer": 1, "more": 1, "mean_abs_error": 1.0, "max_abs_error": 2}


def test_unsent_records_are_not_counted_as_sent():
    unsent = RequestRecord(id=9, intended_ns=0, input_tokens=1, output_tokens=1)
    assert summarize([*RECORDS, unsent])["requests_sent"] == 4


def test_the_report_shows_how_served_lengths_missed_the_plan():
    from rich.console import Console

    from replayer.analysis.text import render_summary

    records = [ok(0, 0, 0, 1, 2, 5, [], served_in=12), ok(1, 0, 0, 1, 2, 5, [], served_in=9),
               ok(2, 0, 0, 1, 2, 5, [])]
    console = Console(record=True, width=120)
    render_summary(summarize(records), console)
    text = console.export_text()
    assert "1/3 as planned (1 fewer, 1 more; mean error 1.00, max 2)" in text
    assert "3/3 as planned" in text  # output side


def test_the_report_names_the_window_where_the_client_fell_behind():
    from rich.console import Console

    from replayer.analysis.text import render_summary
    console = Console(record=True, width=300)
    render_summary(summarize(RECORDS, client_limited_lag_ms=-1.0), console)  # (every send counts as late)
    assert ("fell behind its schedule in 1 window(s) of the schedule, worst 0-5 s with lag p99 3.9 ms (4 of 4 sends "
            "late)" in console.export_text())


def test_breakdowns_group_requests_by_turns_and_input_length():
    turn = ok(4, 5000, 5000, 5050, 5150, 2, [100.0], n_in=3000)
    turn.turn = 2
    groups = summarize([*RECORDS, turn])["breakdowns"]
    single = groups["turns"]["single-turn"]
    assert (single["requests"], single["completed"], single["failed"]) == (4, 3, 1)
    assert single["ttft_ms"] == {"p50": 200.0, "p99": 298.0} and single["tpot_ms"]["p50"] == 100.0
    assert groups["turns"]["session turn"]["ttft_ms"] == {"p50": 50.0, "p99": 50.0}
    assert list(groups["input_tokens"]) == ["0-255", "1024-4095"]  # in bucket order, only those used
    assert groups["input_tokens"]["1024-4095"]["requests"] == 1 and groups["input_tokens"]["0-255"]["requests"] == 4


def test_breakdowns_by_trace_labels_put_unlabelled_requests_apart():
    models = ("GPT-4", "ChatGPT", "GPT-4", None)
    labelled = [replace(r, labels={"model": model} if model else None) for r, model in zip(RECORDS, models)]
    groups = summarize(labelled)["breakdowns"]["model"]
    assert {name: stats["requests"] for name, stats in groups.items()} == {"GPT-4": 2, "ChatGPT": 1, "(none)": 1}
    assert groups["GPT-4"]["ttft_ms"] == {"p50": 200.0, "p99": 298.0} and groups["(none)"]["failed"] == 1


def test_accounting_balances_sent_against_outcomes_and_catches_a_double_count():
    assert summarize(RECORDS)["accounting"] == {
        "records": 4,
        "sent": 4,
        "ok": 3,
        "failed": 1,
        "unique_ids": True,
        "balanced": True,
    }
    twice = summarize([*RECORDS, RECORDS[0]])["accounting"]
    assert (twice["unique_ids"], twice["balanced"]) == (False, False)
