"""The simulator's truth log against the client's records: how much the client inflates TTFT and ITL."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from replayer.send.addressing import row_of_request_id


def read_truth(path: Path) -> dict[int, tuple[int, np.ndarray]]:
    """Request id → (received_ns, chunk write times) from a simulator truth log."""
    truth = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        if entry.get("id") is not None:
            truth[row_of_request_id(entry["id"])] = (
                entry["received_ns"],
                np.asarray(entry["chunk_ns"], dtype=np.int64),
            )
    return truth


def measurement_errors(records: list, truth: dict[int, tuple[int, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """(TTFT inflation per request, |ITL error| per chunk gap), in ms, over requests both sides saw whole."""
    whole = [r for r in records if r.ok and r.first_token_ns is not None]
    ttft = ttft_inflation({r.id: r.first_token_ns - r.sent_ns for r in whole}, truth)
    itl = []
    for record in whole:
        seen = truth.get(record.id)
        if seen is not None and len(record.itl_us) == len(seen[1]) - 1:
            itl.append(np.abs(np.asarray(record.itl_us) / 1e3 - np.diff(seen[1]) / 1e6))
    return ttft, (np.concatenate(itl) if itl else np.zeros(0))


def ttft_inflation(client_ttft_ns: dict[int, int], truth: dict[int, tuple[int, np.ndarray]]) -> np.ndarray:
    """Client TTFT minus the simulator's (first chunk written - request received), in ms, per request."""
    inflation = []
    for request_id, ttft_ns in client_ttft_ns.items():
        seen = truth.get(request_id)
        if seen is not None and len(seen[1]):
            inflation.append((ttft_ns - (seen[1][0] - seen[0])) / 1e6)
    return np.asarray(inflation)
