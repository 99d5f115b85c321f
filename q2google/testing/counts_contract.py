"""The conformance tests of :class:`~q2google.state.RequestCounts` (optional protocol).

Part of :class:`~q2google.testing.SyncStateBackendContract`: a backend that counts requests
(so that every session using it stops together at Google's daily quota) must add atomically
and keep counters and days apart; a backend that does not skips these tests.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise

import pytest

from q2google.state import RequestCounts, SyncStateBackend

ADDERS = 8
ADDS_EACH = 25


def counting(backend: SyncStateBackend) -> RequestCounts:
    """The backend as a :class:`RequestCounts`, or skip the test."""
    if not isinstance(backend, RequestCounts):
        pytest.skip("the backend does not count requests (optional)")
    return backend


class RequestCountsContract:
    """Behaviour of a backend that counts requests per counter and day."""

    def test_requests_add_up_per_counter_and_day(
        self, backend: SyncStateBackend, reopen_backend: Callable[[], SyncStateBackend]
    ) -> None:
        counts = counting(backend)
        assert counts.add_requests("google-photos-1", "2026-12-01", 0) == 0
        assert counts.add_requests("google-photos-1", "2026-12-01", 3) == 3
        assert counts.add_requests("google-photos-1", "2026-12-01", 2) == 5
        assert counts.add_requests("google-photos-1", "2026-12-02", 1) == 1
        assert counts.add_requests("google-photos-2", "2026-12-01", 4) == 4
        reopened = counting(reopen_backend())
        assert reopened.add_requests("google-photos-1", "2026-12-01", 0) == 5
        assert reopened.add_requests("google-photos-2", "2026-12-01", 0) == 4

    def test_concurrent_additions_lose_nothing(self, backend: SyncStateBackend) -> None:
        counts = counting(backend)

        def add_many(_: int) -> list[int]:
            return [
                counts.add_requests("google-photos-9", "2026-12-01", 1) for _ in range(ADDS_EACH)
            ]

        with ThreadPoolExecutor(ADDERS) as pool:
            seen = list(pool.map(add_many, range(ADDERS)))
        assert counts.add_requests("google-photos-9", "2026-12-01", 0) == ADDERS * ADDS_EACH
        for totals in seen:  # each adder sees the total grow, its own additions included
            assert all(later > earlier for earlier, later in pairwise(totals))
            assert ADDS_EACH <= totals[-1] <= ADDERS * ADDS_EACH

    def test_counts_are_not_sessions(self, backend: SyncStateBackend) -> None:
        counts = counting(backend)
        counts.add_requests("google-photos-1", "2026-12-01", 1)
        assert backend.load("google-photos-1") is None
        ids = getattr(backend, "session_ids", None)
        if ids is not None:
            assert ids() == []
