"""MongoDB's session summaries: one document per session in the ``summaries`` collection.

``summaries`` holds each session's :class:`~q2google.state.summary.StoredSummary` under
``_id`` = the session id, beside (not in) its ``sessions`` document, which stays exactly the
session's metadata. A save replaces the summary in the same client-level ``bulkWrite`` as the
records it counts (one round trip per checkpoint still), and only when it changed; on a server
without it, after the other collections' bulks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from pymongo import ReplaceOne, UpdateOne

from q2google.errors import StateError
from q2google.state.base import validate_session_id
from q2google.state.summary import StoredSummary
from q2google.state.summary_store import SummaryKeeper, current_summary

if TYPE_CHECKING:
    from pymongo.collection import Collection

T = TypeVar("T")
SUMMARIES_COLLECTION = "summaries"


class MongoSessionSummaries:
    """:class:`~q2google.state.SessionSummaries` for :class:`~q2google.state.mongo.MongoBackend`."""

    if TYPE_CHECKING:  # provided by MongoBackend
        database_name: str
        _sessions: Collection[dict[str, Any]]
        _summary_docs: Collection[dict[str, Any]]
        _summaries: SummaryKeeper

        def _call(
            self, doing: str, operation: Callable[[], T], kind: type[StateError] = StateError
        ) -> T: ...

    def session_summary(self, session_id: str) -> StoredSummary | None:
        """Return the session's summary document, if it matches the session's metadata.

        Args:
            session_id: The session.

        Returns:
            The summary; ``None`` when there is no such session, no summary of it (a session
            of an older q2google), or one that is invalid or outdated.

        Raises:
            InvalidSessionIdError: The id is not allowed.
            StateError: MongoDB is unreachable or refused us (one line, naming the host).
            StateCorruptError: The session's document is invalid.
        """
        validate_session_id(session_id)

        def read() -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
            meta = self._sessions.find_one({"session_id": session_id}, {"_id": 0})
            if meta is None:
                return None, None
            return meta, self._summary_docs.find_one({"_id": session_id}, {"_id": 0})

        meta, stored = self._call("read", read)
        if meta is None:
            return None
        where = f"MongoDB {self.database_name}, session {session_id!r}"
        return current_summary(meta, stored, where)

    def _summary_write(
        self, session_id: str, summary: dict[str, Any]
    ) -> tuple[type[Any], tuple[Any, ...], dict[str, Any]]:
        """The operation that stores a summary, as (class, arguments, keyword arguments): the
        whole document when what is stored is not known, else only the fields that changed (a
        long list of failed files seldom does)."""
        previous = self._summaries.written(session_id)
        if previous is None:
            return ReplaceOne, ({"_id": session_id}, summary), {"upsert": True}
        changed = {key: value for key, value in summary.items() if previous.get(key) != value}
        return UpdateOne, ({"_id": session_id}, {"$set": changed}), {}
