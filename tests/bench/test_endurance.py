

from replayer.bench.endurance import hold_streams, peak_in_flight, soak

MS = 1_000_000


def test_holding_streams_counts_how_many_were_open_at_once(tmp_path):
    result = hold_streams(200, tmp_path, ramp_s=0.5, tokens=3, ms_per_token=400)
    assert (result.streams, result.completed, result.failures) == (200, 200, {})
    assert result.peak_in_flight == 200  # every stream outlasts the ramp, so all were open together
    assert "held 200 streams open at once (200 planned): 200 completed, failures: none" in result.line()


def test_peak_in_flight_sweeps_sent_to_end(record):
    records = [record(1, 0, 5, []), record(2, 3, 4, []), record(3, 5, 6, [])]  # end = first token here
    assert peak_in_flight(records) == 2


def test_a_soak_reads_the_client_memory_at_10_and_50_percent_and_at_the_end(tmp_path):
    result = soak(1500, 500.0, tmp_path)
    assert (result.requests, result.completed, result.failures) == (1500, 1500, {})
    percents = [percent for percent, _, _ in result.checkpoints]
    assert len(percents) == 3 and 10 <= percents[0] < 50 <= percents[1] < percents[2] < 100
    assert all(0 < rss <= peak <= result.final_peak_mb for _, rss, peak in result.checkpoints)
    assert (
        "soaked 1,500 requests at 500 req/s: 1,500 completed, failures: none; client memory while replaying"
        in result.line()
    )
