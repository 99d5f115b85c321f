"""The MongoDB backend's request counts: one document per counter and day, ``$inc``'d.

Collection ``request_counts``: ``_id`` = ``"<counter>|<day>"``, with ``counter``, ``day`` and
``requests``. Each addition is one atomic ``find_one_and_update`` (upsert) that returns the
new total, so processes on any number of machines share the count. The first addition of a
day drops the counter's days older than the last few.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from pymongo import ReturnDocument

from q2google.errors import StateError, StateWriteError
from q2google.state.request_counts import DAYS_KEPT

if TYPE_CHECKING:
    from pymongo.collection import Collection

T = TypeVar("T")


class MongoRequestCounts:
    """:class:`~q2google.state.request_counts.RequestCounts` for
    :class:`~q2google.state.mongo.MongoBackend`."""

    if TYPE_CHECKING:  # provided by MongoBackend
        _request_counts: Collection[dict[str, Any]]

        def _call(
            self, doing: str, operation: Callable[[], T], kind: type[StateError] = StateError
        ) -> T: ...

    def add_requests(self, counter: str, day: str, count: int) -> int:
        """Add ``count`` to ``counter`` on ``day``; return the day's total across processes.

        Raises:
            StateUnavailableError: MongoDB stayed unreachable.
            StateWriteError: MongoDB refused the write.
        """
        key = f"{counter}|{day}"
        if count <= 0:
            found = self._call("read", lambda: self._request_counts.find_one({"_id": key}))
            return int(found["requests"]) if found else 0

        def add() -> int:
            after = self._request_counts.find_one_and_update(
                {"_id": key},
                {"$inc": {"requests": count}, "$setOnInsert": {"counter": counter, "day": day}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
            )
            if after is None:  # MongoDB returns the upserted document; a lesser server may not
                after = self._request_counts.find_one({"_id": key}) or {"requests": count}
            total = int(after["requests"])
            if total == count:  # the day's first: forget the old days
                self._request_counts.delete_many(
                    {"counter": counter, "day": {"$lt": _days_before(day, DAYS_KEPT)}}
                )
            return total

        return self._call("write", add, StateWriteError)


def _days_before(day: str, days: int) -> str:
    """``day`` (``YYYY-MM-DD``) minus ``days``, or ``day`` itself when it is not a date."""
    try:
        return (date.fromisoformat(day) - timedelta(days=days)).isoformat()
    except ValueError:
        return day
