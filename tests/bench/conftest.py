"""Helpers of the bench tests."""

from collections.abc import Callable

import pytest

from replayer.records import RequestRecord


@pytest.fixture
def record() -> Callable[..., RequestRecord]:
    """Factory: `record(id, sent_ns, first_token_ns, itl_ms, status="ok")`, a finished request's record
    (its ITL given in ms)."""

    def make(i: int, sent: int, first: int, itl: list[float], status: str = "ok") -> RequestRecord:
        return RequestRecord(id=i, intended_ns=sent, input_tokens=1, output_tokens=len(itl) + 1, sent_ns=sent,
                             first_token_ns=first, end_ns=first, status=status,
                             itl_us=[round(gap * 1000) for gap in itl])

    return make
