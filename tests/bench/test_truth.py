
import numpy as np

from replayer.bench.truth import measurement_errors

MS = 1_000_000


def test_inflation_is_client_minus_truth_per_request_and_gap(record):
    records = [record(1, 0, 12 * MS, [10.5, 9.0]), record(2, 0, 30 * MS, [1.0], status="timeout"),
               record(3, 0, 5 * MS, [4.0])]  # 3 has a chunk count the truth disagrees with: TTFT only
    truth = {1: (1 * MS, np.array([11, 21, 31]) * MS),  # truth TTFT 10 ms, gaps 10 and 10
             2: (0, np.array([1]) * MS), 3: (0, np.array([4, 8, 12]) * MS)}
    ttft, itl = measurement_errors(records, truth)
    assert np.allclose(ttft, [2.0, 1.0])
    assert np.allclose(itl, [0.5, 1.0])
