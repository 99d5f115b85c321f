"""MongoDB: the state backend for containers and several machines sharing sessions.

Selected by ``Q2GOOGLE_STATE_URI=mongodb://host:27017/dbname`` (or ``mongodb+srv://``); the
database comes from the URI's path, ``q2google`` by default. Requires pymongo
(``pip install 'q2google[mongo]'``), imported only here.

Collections, each with a unique index on its natural key:

- ``sessions``: one document per session (``session_id``, ``schema_version``, ``created_at``,
  ``updated_at``, the window, ``batch_size``, ``stages``...);
- ``items``: one per ``(session_id, item_key)``: media id, CDN URL, per-stage statuses, upload
  progress, upload token, errors;
- ``batches``: one per ``(session_id, batch_index)``: item keys, status, responses, error;
- ``summaries``: one per session (``_id``: its id): its counts, for ``q2google sessions list``
  (see :mod:`q2google.state.mongo_summary`);
- ``settled_pages``: a session's settled files, a thousand to a document, which a run reads
  instead of their own documents (see :mod:`q2google.state.mongo_pages`).

The cross-session ledger is the session ``q2google-ledger`` in the same collections; session
leases and ledger claims have collections of their own (see :mod:`q2google.state.mongo_lease`
and :mod:`q2google.state.mongo_claims`),
and so do the requests counted against Google's daily quota
(:mod:`q2google.state.mongo_counts`).
An unreachable server is retried with backoff for ``retry_seconds`` (60 s by default, or the
URI's own ``serverSelectionTimeoutMS`` when it sets one) before a
:class:`~q2google.errors.StateUnavailableError` (exit 75).

``save`` sends what changed since the last save as upserts in one client-level ``bulkWrite``
(MongoDB 8.0 and later), ordered when it appends to the settled pages: one round trip per
checkpoint, whatever the session's size. Older servers get one bulk per collection touched
(see :mod:`q2google.state.mongo_writing`). Retryable writes are on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from pymongo import ASCENDING, MongoClient
from pymongo.errors import (
    ConfigurationError,
    ConnectionFailure,
    InvalidURI,
)

from q2google.errors import (
    ConfigError,
    StateCorruptError,
    StateError,
    StateWriteError,
)
from q2google.state.base import (
    SCHEMA_VERSION,
    BatchState,
    ItemState,
    SessionState,
    refuse_other_session,
    validate_session_id,
)
from q2google.state.mongo_claims import MongoLedgerClaims
from q2google.state.mongo_counts import MongoRequestCounts
from q2google.state.mongo_errors import MongoErrors, host_of, uri_wait_seconds
from q2google.state.mongo_exit import release_stopped_monitors
from q2google.state.mongo_lease import DEFAULT_LEASE_TTL_SECONDS, MongoLeases, refuse_without_lease
from q2google.state.mongo_pages import (
    ITEM_HIDDEN,
    PAGES_COLLECTION,
    SETTLED_FLAG,
    Found,
    MongoSettledPages,
)
from q2google.state.mongo_summary import SUMMARIES_COLLECTION, MongoSessionSummaries
from q2google.state.mongo_writing import MongoCheckpoints
from q2google.state.retrying import retry_transient
from q2google.state.settled import (
    SettledItem,
    settled_item,
)
from q2google.state.summary_store import SummaryKeeper

if TYPE_CHECKING:
    from q2google.config import Q2GoogleSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_DATABASE = "q2google"
_HIDDEN = {"_id": 0}


class MongoBackend(
    MongoCheckpoints,
    MongoSettledPages,
    MongoLeases,
    MongoLedgerClaims,
    MongoRequestCounts,
    MongoSessionSummaries,
):
    """Checkpoint sessions in MongoDB.

    Also a :class:`~q2google.state.SessionLeasing` (lease documents renewed by a heartbeat),
    a :class:`~q2google.state.LedgerClaims` (see :mod:`q2google.state.mongo_claims`), a
    :class:`~q2google.state.RequestCounts` (see :mod:`q2google.state.mongo_counts`) and a
    :class:`~q2google.state.SessionSummaries` (see :mod:`q2google.state.mongo_summary`).

    Args:
        uri: ``mongodb://`` or ``mongodb+srv://`` connection string.
        timeout_ms: How long to look for a reachable server before giving up, unless the URI
            sets ``serverSelectionTimeoutMS`` or ``connectTimeoutMS`` itself.
        client: An existing client to use instead of connecting to ``uri``.
        retry_seconds: How long an unreachable server is retried, with backoff, before a
            :class:`~q2google.errors.StateUnavailableError`. Default: the URI's
            ``serverSelectionTimeoutMS`` when it sets one (the user's own bound), else 60 s.
        lease_ttl_seconds: How long a session's lease outlives its owner's last heartbeat.

    Raises:
        ConfigError: The URI is malformed (the message never repeats it: it may hold a
            password).
    """

    def __init__(
        self,
        uri: str,
        *,
        timeout_ms: int = 10_000,
        client: MongoClient[dict[str, Any]] | None = None,
        retry_seconds: float | None = None,
        lease_ttl_seconds: float = DEFAULT_LEASE_TTL_SECONDS,
    ) -> None:
        self._where = host_of(uri)
        query = {name.lower(): values for name, values in parse_qs(urlsplit(uri).query).items()}
        given = set(query)
        self.retry_seconds = retry_seconds if retry_seconds is not None else uri_wait_seconds(query)
        self.lease_ttl_seconds = lease_ttl_seconds
        timeouts: dict[str, Any] = {  # the URI's own options win over the default
            name: timeout_ms
            for name in ("serverSelectionTimeoutMS", "connectTimeoutMS")
            if name.lower() not in given
        }
        try:
            self._client: MongoClient[dict[str, Any]] = client or MongoClient(
                uri, retryWrites=True, appname="q2google", tz_aware=False, **timeouts
            )
            database = self._client.get_default_database(DEFAULT_DATABASE)
        except (InvalidURI, ConfigurationError, ValueError) as error:
            raise ConfigError(
                f"Q2GOOGLE_STATE_URI is not a valid MongoDB URI ({type(error).__name__})"
            ) from None
        self.database_name = database.name
        self._sessions = database["sessions"]
        self._items = database["items"]
        self._batches = database["batches"]
        self._leases = database["leases"]
        self._claims = database["claims"]
        self._request_counts = database["request_counts"]
        self._summary_docs = database[SUMMARIES_COLLECTION]
        self._settled_pages = database[PAGES_COLLECTION]
        self._last_pages: dict[str, tuple[int, int]] = {}
        self._summaries = SummaryKeeper()
        self._indexed = False

    def __repr__(self) -> str:
        return f"MongoBackend({self._where!r}, database={self.database_name!r})"

    @classmethod
    def from_settings(cls, settings: Q2GoogleSettings) -> MongoBackend:
        """Connect to ``settings.state_uri``."""
        assert settings.state_uri is not None
        return cls(settings.state_uri)

    def close(self) -> None:
        """Close the connection pool and stop the client's monitors (the process exits at once)."""
        self._client.close()
        release_stopped_monitors()

    # -- SyncStateBackend ------------------------------------------------------------------

    def load(self, session_id: str) -> SessionState | None:
        """Read a session, or ``None`` when there is none with that id.

        Raises:
            InvalidSessionIdError: The id is not allowed.
            StateError: MongoDB is unreachable or refused us (one line, naming the host).
            StateCorruptError: A stored document is invalid.
        """
        validate_session_id(session_id)
        found = self._call("read", lambda: self._read(session_id))
        return None if found is None else self._state(session_id, found, {})

    def load_unsettled(self, session_id: str) -> SessionState | None:
        """Read a session without its settled files (:mod:`q2google.state.settled`): its open
        files (one query for them, one per 10,000 to read them whole) and its settled files'
        keys and marks from its pages (:mod:`q2google.state.mongo_pages`).

        Raises:
            InvalidSessionIdError: The id is not allowed.
            StateError: MongoDB is unreachable or refused us (one line, naming the host).
            StateCorruptError: A stored document is invalid.
        """
        validate_session_id(session_id)
        found = self._call("read", lambda: self._read_unsettled(session_id))
        return None if found is None else self._state(session_id, *found)

    def load_meta(self, session_id: str) -> SessionState | None:
        """Read a session's metadata alone (one document), for the checks before a run.

        Raises:
            As :meth:`load`.
        """
        validate_session_id(session_id)
        meta = self._call(
            "read", lambda: self._sessions.find_one({"session_id": session_id}, _HIDDEN)
        )
        if meta is None:
            return None
        if meta.get("schema_version") != SCHEMA_VERSION:  # an older form: migrated whole
            return self.load(session_id)
        try:
            return SessionState.meta_only(meta)
        except StateCorruptError as error:
            raise StateCorruptError(
                f"MongoDB {self.database_name}, session {session_id!r}: {error}"
            ) from None

    def _state(
        self,
        session_id: str,
        found: Found,
        settled: dict[str, SettledItem],
        finished: list[int] | None = None,
    ) -> SessionState:
        meta, items, batches, summary = found
        try:
            state = SessionState.from_parts(
                meta,
                [ItemState.from_dict(doc) for doc in items],
                [BatchState.from_dict(doc) for doc in batches],
                settled,
                finished or (),
            )
        except (StateCorruptError, KeyError) as error:
            raise StateCorruptError(
                f"MongoDB {self.database_name}, session {session_id!r}: {error}"
            ) from None
        self._summaries.loaded(state, summary)
        return state

    def save(self, state: SessionState) -> None:
        """Write what changed in ``state``: one round trip per checkpoint.

        Raises:
            StateWriteError: The write failed after the driver's retries; the changes stay
                pending and the stored checkpoint is the previous one.
            StateUnavailableError: The server stayed unreachable past the retries; likewise.
        """
        validate_session_id(state.session_id)
        refuse_without_lease(state.session_id)
        self._call("write", lambda: self._save_once(state), StateWriteError)

    def _save_once(self, state: SessionState) -> None:
        self._ensure_indexes()
        with self._summaries.saving(state) as (changes, summary):
            if changes.is_empty and summary is None:
                return
            fresh = False
            session_id = state.session_id
            if changes.full and not self._refuse_other_session(state):
                # A first save: clear what an unfinished one left, then plain inserts.
                self._items.delete_many({"session_id": session_id})
                self._batches.delete_many({"session_id": session_id})
                self._settled_pages.delete_many({"session_id": session_id})
                self._last_pages[session_id] = (0, 0)
                fresh = True
            album = state.album_title
            settled = [
                (key, entry)
                for key, data in changes.items
                if (entry := settled_item(data, album_title=album)) is not None
            ]
            restart = changes.full and not fresh  # the pages are written anew with the files
            pages = self._page_ops(session_id, settled, restart=restart)
            self._write(changes, summary, fresh=fresh, pages=pages)
            self._last_pages[session_id] = pages.last_page

    # -- sessions catalogue (beyond the protocol) ------------------------------------------

    def session_ids(self) -> list[str]:
        """Return the ids of the stored sessions, sorted."""
        return sorted(self._call("read", lambda: self._sessions.distinct("session_id")))

    def delete(self, session_id: str) -> bool:
        """Delete a session; return whether one was stored.

        The session document goes first, so a crash midway leaves no loadable session; its
        stray items and batches are removed then, or by the next first save under that id.
        """
        validate_session_id(session_id)
        self._summaries.forget(session_id)

        self._forget_pages(session_id)

        def delete() -> bool:
            found = self._sessions.delete_one({"session_id": session_id}).deleted_count > 0
            self._items.delete_many({"session_id": session_id})
            self._batches.delete_many({"session_id": session_id})
            self._settled_pages.delete_many({"session_id": session_id})
            self._summary_docs.delete_one({"_id": session_id})
            return found

        return self._call("delete", delete, StateWriteError)

    # -- internals -------------------------------------------------------------------------

    def _read(self, session_id: str) -> Found | None:
        meta = self._sessions.find_one({"session_id": session_id}, _HIDDEN)
        if meta is None:
            return None
        return self._rest(session_id, meta, None)

    def _rest(
        self,
        session_id: str,
        meta: dict[str, Any],
        items: list[dict[str, Any]] | None,
        *,
        open_batches: list[int] | None = None,
    ) -> Found:
        """The session's batches (only those of ``open_batches``, when given) and summary,
        and its items when not read yet."""
        if items is None:
            items = list(self._items.find({"session_id": session_id}, ITEM_HIDDEN))
        query: dict[str, Any] = {"session_id": session_id}
        if open_batches is not None:
            query["batch_index"] = {"$in": open_batches}
        fields = {"_id": 0, "session_id": 0}
        batches = list(self._batches.find(query, fields)) if open_batches != [] else []
        summary = self._summary_docs.find_one({"_id": session_id}, _HIDDEN)
        return meta, items, batches, summary

    def _call(
        self, doing: str, operation: Callable[[], T], kind: type[StateError] = StateError
    ) -> T:
        """Run a MongoDB operation, retrying while the server is unreachable, and turn the
        driver's errors into one line naming the server."""
        with self._errors(doing, kind):
            return retry_transient(
                operation,
                transient=lambda error: isinstance(error, ConnectionFailure),
                seconds=self.retry_seconds,
                what=f"MongoDB {doing}",
            )

    def _ensure_indexes(self) -> None:
        if self._indexed:
            return
        self._sessions.create_index([("session_id", ASCENDING)], unique=True)
        self._items.create_index([("session_id", ASCENDING), ("item_key", ASCENDING)], unique=True)
        self._batches.create_index(
            [("session_id", ASCENDING), ("batch_index", ASCENDING)], unique=True
        )
        self._items.create_index([("session_id", ASCENDING), (SETTLED_FLAG, ASCENDING)])
        self._settled_pages.create_index(
            [("session_id", ASCENDING), ("page", ASCENDING)], unique=True
        )
        self._indexed = True

    def _refuse_other_session(self, state: SessionState) -> bool:
        """Refuse a whole-session save over a different stored session; return whether one
        with this id is stored."""
        stored = self._sessions.find_one(
            {"session_id": state.session_id}, {"created_at": 1, "schema_version": 1}
        )
        if stored is None:
            return False
        refuse_other_session(stored, state, f"MongoDB {self.database_name}")
        return True

    def _errors(self, doing: str, kind: type[StateError] = StateError) -> MongoErrors:
        return MongoErrors(self._where, self.retry_seconds, doing, kind)
