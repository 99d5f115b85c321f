"""The optional protocol that shares a count of requests per day between processes.

Google Photos allows a project 10,000 Library API requests a day, uploads included, across
every session and machine using it. A backend that implements :class:`RequestCounts` keeps
that count where all of them see it (the JSON state directory, the MongoDB database), so
two sessions running from one state store together stop at the daily limit. Both built-in
backends implement it; for another backend, the count is kept per process
(:class:`MemoryRequestCounts`).
"""

from __future__ import annotations

import threading
from typing import Protocol, runtime_checkable

DAYS_KEPT = 7
"""Days of counts a backend keeps for each counter; older days are dropped as it writes."""


@runtime_checkable
class RequestCounts(Protocol):
    """A backend that counts requests per counter and day, atomically across processes."""

    def add_requests(self, counter: str, day: str, count: int) -> int:
        """Add ``count`` (0 or more) to ``counter`` on ``day``; return the day's new total.

        Args:
            counter: What is counted (``google-photos:<project>``); a safe file name.
            day: The day, ``YYYY-MM-DD`` in the counter's own time zone.
            count: Requests to add; 0 only reads.

        Returns:
            Every process's requests on that day, this addition included.
        """
        ...


class MemoryRequestCounts:
    """Counts kept in this process only (for backends without :class:`RequestCounts`)."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def add_requests(self, counter: str, day: str, count: int) -> int:
        """Add ``count`` to ``counter`` on ``day`` and return the total."""
        with self._lock:
            total = self._counts.get((counter, day), 0) + max(0, count)
            self._counts[(counter, day)] = total
            return total

    def __repr__(self) -> str:
        return "MemoryRequestCounts()"
