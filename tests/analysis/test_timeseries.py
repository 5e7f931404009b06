import csv

from replayer.analysis.timeseries import COLUMNS, time_series, write_series_csv
from replayer.records import RequestRecord

MS = 1_000_000


def ok(i, intended, sent, first, end, n_out, itl):
    return RequestRecord(id=i, intended_ns=intended * MS, input_tokens=10, output_tokens=n_out, sent_ns=sent * MS,
                         first_token_ns=first * MS, end_ns=end * MS, served_input_tokens=10,
                         served_output_tokens=n_out, itl_us=[round(gap * 1000) for gap in itl])


RECORDS = [
    ok(0, 0, 0, 100, 1500, 4, [600.0, 400.0, 400.0]),  # chunks at 100, 700, 1100, 1500 ms; TTFT 100, TPOT 466.67
    ok(1, 200, 203, 503, 703, 3, [100.0, 100.0]),      # chunks at 503, 603, 703; TTFT 300, TPOT 100; lag 3
    ok(2, 2100, 2100, 2150, 2150, 1, []),              # TTFT 50, no TPOT
    RequestRecord(id=3, intended_ns=2500 * MS, input_tokens=10, output_tokens=2, sent_ns=2500 * MS,
                  end_ns=3200 * MS, status="timeout"),
]


def test_hand_computed_series_in_one_second_bins():
    s = time_series(RECORDS)
    assert s["t_s"] == [0.0, 1.0, 2.0, 3.0]
    assert s["sent"] == [2, 0, 2, 0]
    assert s["completed"] == [1, 1, 1, 0]   # request 1 ends at 0.7 s, 0 at 1.5 s, 2 at 2.15 s
    assert s["failed"] == [0, 0, 0, 1]
    assert s["in_flight"] == [1, 0, 1, 0]   # open at each bin's end: request 0, none, request 3, none
    assert s["output_tokens_per_s"] == [5.0, 2.0, 1.0, 0.0]  # 0: 1 chunk (of 4) + 3 of request 1; 1: 2 of 0's
    assert (s["ttft_p50_ms"][0], s["ttft_p99_ms"][0]) == (200.0, 298.0)  # TTFTs 100 and 300 sent in bin 0
    assert s["tpot_p50_ms"][0] == round((466.667 + 100) / 2, 3)
    assert (s["ttft_p50_ms"][1], s["tpot_p50_ms"][2]) == (None, None)  # nothing sent in bin 1; 1-token answer
    assert s["lag_p99_ms"][0] == 2.97


def test_the_csv_has_a_row_per_bin_and_empty_cells_without_samples(tmp_path):
    path = tmp_path / "timeseries.csv"
    write_series_csv(time_series(RECORDS, bin_s=2.0), path)
    rows = list(csv.reader(path.open()))
    assert tuple(rows[0]) == COLUMNS and len(rows) == 3
    assert (
        rows[1][:5] == ["0.0", "2", "2", "0", "0"]
        and rows[2][:5] == ["2.0", "2", "1", "1", "0"]
        and rows[2][6] == "50.0"
        and rows[2][8] == ""
    )
