"""The MongoDB backend's session leases and ledger claims.

Collections, beside ``sessions``, ``items`` and ``batches``:

- ``leases``: one document per running session (``_id`` = session id, ``owner`` = a random
  token of the run, ``host``, ``pid``, ``since``, ``expires_at``). It is taken with one atomic
  ``find_one_and_update`` (upsert) whose filter matches only an expired lease or one of the
  same owner, so of two runs exactly one gets it (the other's upsert fails on the unique
  ``_id``). A heartbeat thread pushes ``expires_at`` on every third of the TTL; a run that
  dies stops renewing, and its lease is taken over once it has expired.
- ``claims``: one document per file being delivered (``_id`` = item key, ``session_id``...),
  inserted atomically; the claim of a session whose lease has expired is taken over with a
  conditional update on the old holder.

Ledger entries are the ledger session's ``items`` documents, each replaced (upserted) on its
own, and looked up by key with ``$in`` (never the whole ledger). An invalid entry document
counts as not delivered, with a warning; ``q2google ledger rebuild`` moves invalid ledger
documents to the ``ledger_set_aside`` collection (:meth:`~MongoLeasesAndClaims.repair_ledger`).
Expiry compares this machine's clock with the holder's: keep clocks in sync (NTP) to well
under the TTL.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import pymongo
from pymongo import ReplaceOne, ReturnDocument
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from q2google.errors import SessionBusyError, StateCorruptError, StateError, StateWriteError
from q2google.state.base import (
    SCHEMA_VERSION,
    ItemState,
    SessionState,
    utc_now_iso,
    validate_session_id,
)
from q2google.state.lease import LeaseHolder, busy_error
from q2google.state.ledger import LEDGER_SESSION_ID, new_ledger, warn_unreadable_entry

if TYPE_CHECKING:
    from pymongo.collection import Collection

logger = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_LEASE_TTL_SECONDS = 60.0
"""How long a lease outlives its last heartbeat (heartbeats come every third of it)."""
RELEASE_TIMEOUT_SECONDS = 5.0
"""A lease that cannot be deleted in this time expires by itself."""
LOOKUP_KEYS_PER_QUERY = 10_000
"""Item keys per ``$in`` lookup: a session's worth in one query, far below 16 MB of BSON."""
SET_ASIDE_COLLECTION = "ledger_set_aside"
_DUPLICATE_KEY = 11000
_TRIES = 3
_ENTRY_FIELDS = {"_id": 0, "session_id": 0}


class MongoLeasesAndClaims:
    """:class:`~q2google.state.lease.SessionLeasing` and
    :class:`~q2google.state.claims.LedgerClaims` for :class:`~q2google.state.mongo.MongoBackend`.
    """

    if TYPE_CHECKING:  # provided by MongoBackend
        lease_ttl_seconds: float
        database_name: str
        _sessions: Collection[dict[str, Any]]
        _items: Collection[dict[str, Any]]
        _leases: Collection[dict[str, Any]]
        _claims: Collection[dict[str, Any]]

        def _call(
            self, doing: str, operation: Callable[[], T], kind: type[StateError] = StateError
        ) -> T: ...
        def _ensure_indexes(self) -> None: ...

    # -- SessionLeasing --------------------------------------------------------------------

    @contextmanager
    def lease(self, session_id: str) -> Iterator[LeaseHolder]:
        """Hold ``session_id``, renewed by a heartbeat until the block ends.

        Raises:
            SessionBusyError: Another run holds an unexpired lease on it.
            StateUnavailableError: MongoDB stayed unreachable.
        """
        validate_session_id(session_id)
        holder = LeaseHolder.this_process()
        current = self._call("lease", lambda: self._take(session_id, holder), StateWriteError)
        if current is not None:
            raise busy_error(session_id, current)
        heartbeat = _Heartbeat(
            lambda: self._renew(session_id, holder.owner), self.lease_ttl_seconds / 3, session_id
        )
        heartbeat.start()
        LOST_LEASES.discard(session_id)
        _HELD_HERE.add(session_id)
        try:
            yield holder
        finally:
            _HELD_HERE.discard(session_id)
            heartbeat.stop()
            try:
                with pymongo.timeout(RELEASE_TIMEOUT_SECONDS):
                    self._leases.delete_one({"_id": session_id, "owner": holder.owner})
            except PyMongoError as error:  # it expires by itself
                logger.warning("could not release the lease of %s (%s)", session_id, error)

    def lease_holder(self, session_id: str) -> LeaseHolder | None:
        """Who holds an unexpired lease on ``session_id``, or ``None``."""
        validate_session_id(session_id)
        return self._call("read", lambda: self._live_lease(session_id))

    def _live_lease(self, session_id: str) -> LeaseHolder | None:
        found = self._leases.find_one({"_id": session_id, "expires_at": {"$gt": _now()}})
        if found is None:
            return None
        return LeaseHolder.from_dict(found) or LeaseHolder(host="?", pid=0, since="?")

    def _take(self, session_id: str, holder: LeaseHolder) -> LeaseHolder | None:
        """Take the lease; return ``None`` when taken, else who holds it."""
        for _ in range(_TRIES):
            now = _now()
            try:
                taken = self._leases.find_one_and_update(
                    {
                        "_id": session_id,
                        "$or": [{"expires_at": {"$lte": now}}, {"owner": holder.owner}],
                    },
                    {"$set": {**holder.to_dict(), "expires_at": now + self._ttl()}},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:  # held and unexpired: the upsert collided with it
                taken = None
            if taken is not None and taken.get("owner") == holder.owner:
                return None
            current = self._live_lease(session_id)
            if current is not None and not self._orphaned(session_id, current, holder):
                return current
            if current is not None:  # left by a dead run on this host: take it over now
                self._leases.update_one(
                    {"_id": session_id, "owner": current.owner},
                    {"$set": {"expires_at": now - timedelta(seconds=1)}},
                )
        return LeaseHolder(host="?", pid=0, since="?")

    @staticmethod
    def _orphaned(session_id: str, current: LeaseHolder, holder: LeaseHolder) -> bool:
        """Whether a live lease was left by a run of this host that is gone: a dead process,
        or this one when it no longer holds it (its release failed: MongoDB was away)."""
        if current.host != holder.host:
            return False  # another machine: only its expiry tells
        if current.pid == holder.pid:
            return session_id not in _HELD_HERE
        return not _alive(current.pid)

    def _renew(self, session_id: str, owner: str) -> bool:
        with pymongo.timeout(max(1.0, self.lease_ttl_seconds / 3)):
            renewed = self._leases.update_one(
                {"_id": session_id, "owner": owner}, {"$set": {"expires_at": _now() + self._ttl()}}
            )
        return renewed.matched_count == 1

    def _ttl(self) -> timedelta:
        return timedelta(seconds=self.lease_ttl_seconds)

    # -- LedgerClaims ----------------------------------------------------------------------

    def claim_item(self, item_key: str, session_id: str) -> bool:
        """Claim a file for ``session_id`` (see :class:`~q2google.state.claims.LedgerClaims`)."""
        return self._call("claim", lambda: self._claim_once(item_key, session_id), StateWriteError)

    def _claim_once(self, item_key: str, session_id: str) -> bool:
        claim = {"session_id": session_id, "since": utc_now_iso()}
        for _ in range(_TRIES):
            try:
                self._claims.insert_one({"_id": item_key, **claim})
            except DuplicateKeyError:
                pass
            else:
                return True
            current = self._claims.find_one({"_id": item_key})
            if current is None:  # released meanwhile: try again
                continue
            holder = current.get("session_id")
            if holder == session_id:
                return True
            if isinstance(holder, str) and self._live_lease(holder) is not None:
                return False
            taken = self._claims.update_one(
                {"_id": item_key, "session_id": holder}, {"$set": claim}
            )
            if taken.matched_count == 1:
                return True
        return False

    def release_item(self, item_key: str, session_id: str) -> None:
        """Drop ``session_id``'s claim on a file, if it is its own."""
        self._call(
            "release",
            lambda: self._claims.delete_one({"_id": item_key, "session_id": session_id}),
            StateWriteError,
        )

    def record_deliveries(self, entries: Sequence[ItemState]) -> None:
        """Upsert each entry on its own, creating the ledger's session document if needed."""
        if entries:
            self._call("write", lambda: self._record_once(entries), StateWriteError)

    def _record_once(self, entries: Sequence[ItemState]) -> None:
        self._ensure_ledger_document()
        operations = [  # replaced whole: an entry left invalid by hand is made valid again
            ReplaceOne(
                {"session_id": LEDGER_SESSION_ID, "item_key": entry.item_key},
                {"session_id": LEDGER_SESSION_ID, **entry.to_dict()},
                upsert=True,
            )
            for entry in entries
        ]
        for attempt in range(_TRIES):
            try:
                self._items.bulk_write(operations, ordered=False)
            except BulkWriteError as error:  # two upserts of one entry at once: update now
                codes = {failure.get("code") for failure in error.details.get("writeErrors", [])}
                if codes != {_DUPLICATE_KEY} or attempt == _TRIES - 1:
                    raise
            else:
                return

    def _ensure_ledger_document(self) -> None:
        """Create the ledger's session document if there is none (race-free)."""
        self._ensure_indexes()
        meta = new_ledger().meta_dict()
        del meta["session_id"]
        with suppress(DuplicateKeyError):  # another process created it at the same instant
            self._sessions.update_one(
                {"session_id": LEDGER_SESSION_ID}, {"$setOnInsert": meta}, upsert=True
            )

    def delivered_entry(self, item_key: str) -> ItemState | None:
        """The stored ledger entry of a file, or ``None`` (an invalid one too, with a warning)."""
        found = self._call(
            "read",
            lambda: self._items.find_one(
                {"session_id": LEDGER_SESSION_ID, "item_key": item_key}, _ENTRY_FIELDS
            ),
        )
        return self._entry_of(found, item_key) if found is not None else None

    # -- LedgerLookups ---------------------------------------------------------------------

    def delivered_entries(self, item_keys: Iterable[str]) -> dict[str, ItemState]:
        """The stored entries of the files ``item_keys``: one ``$in`` query (per 10,000 keys)
        on the ledger's items, never the whole ledger; an invalid one counts as absent."""
        keys = list(dict.fromkeys(item_keys))
        found: dict[str, ItemState] = {}
        for start in range(0, len(keys), LOOKUP_KEYS_PER_QUERY):
            chunk = keys[start : start + LOOKUP_KEYS_PER_QUERY]
            for document in self._call("read", functools.partial(self._find_entries, chunk)):
                key = document.get("item_key")
                entry = self._entry_of(document, key) if isinstance(key, str) else None
                if entry is not None:
                    found[entry.item_key] = entry
        return found

    def _find_entries(self, keys: list[str]) -> list[dict[str, Any]]:
        query = {"session_id": LEDGER_SESSION_ID, "item_key": {"$in": keys}}
        return list(self._items.find(query, _ENTRY_FIELDS))

    def ledger_size(self) -> int:
        """How many entry documents the ledger holds."""
        return self._call(
            "read", lambda: self._items.count_documents({"session_id": LEDGER_SESSION_ID})
        )

    def _entry_of(self, document: dict[str, Any], item_key: str) -> ItemState | None:
        try:
            return ItemState.from_dict(document)
        except StateCorruptError as error:
            warn_unreadable_entry(f"{item_key!r} in MongoDB {self.database_name}", str(error))
            return None

    # -- LedgerRepair ----------------------------------------------------------------------

    def repair_ledger(self) -> list[str]:
        """Move invalid ledger documents (its session document, its entries) to the
        ``ledger_set_aside`` collection and give the ledger a valid session document; return
        what was moved."""
        return self._call("repair", self._repair_once, StateWriteError)

    def _repair_once(self) -> list[str]:
        aside = self._items.database[SET_ASIDE_COLLECTION]
        moved: list[str] = []
        meta = self._sessions.find_one({"session_id": LEDGER_SESSION_ID})
        if meta is not None and not _valid_meta(meta):
            aside.insert_one({"collection": "sessions", "document": meta, "at": _now()})
            self._sessions.delete_one({"_id": meta["_id"]})
            moved.append(f"MongoDB {self.database_name}: the ledger's session document")
        for document in self._items.find({"session_id": LEDGER_SESSION_ID}):
            fields = {k: v for k, v in document.items() if k not in _ENTRY_FIELDS}
            try:
                ItemState.from_dict(fields)
            except StateCorruptError:
                aside.insert_one({"collection": "items", "document": document, "at": _now()})
                self._items.delete_one({"_id": document["_id"]})
                moved.append(f"MongoDB {self.database_name}: entry {document.get('item_key')!r}")
        if meta is not None:
            self._ensure_ledger_document()
        return moved


class _Heartbeat(threading.Thread):
    """Renews a lease every ``interval`` seconds until stopped (a daemon: it dies with us)."""

    def __init__(self, renew: Callable[[], bool], interval: float, session_id: str) -> None:
        super().__init__(name=f"q2google-lease-{session_id}", daemon=True)
        self._renew, self._interval, self._session_id = renew, interval, session_id
        self._stopped = threading.Event()

    def run(self) -> None:
        renewed = time.monotonic()
        while not self._stopped.wait(self._interval):
            try:
                if not self._renew():
                    self._lose("it expired and another run took it over")
                    return
                renewed = time.monotonic()
            except PyMongoError as error:  # the next beat tries again; the TTL leaves room
                logger.debug("lease heartbeat of %s failed (%s)", self._session_id, error)
                if time.monotonic() - renewed > 3 * self._interval:  # past its lifetime
                    self._lose("MongoDB was out of reach for longer than its lifetime")
                    return

    def _lose(self, why: str) -> None:
        LOST_LEASES.add(self._session_id)
        logger.warning("the lease of session %s is lost: %s", self._session_id, why)

    def stop(self) -> None:
        self._stopped.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout=RELEASE_TIMEOUT_SECONDS)


def _valid_meta(document: dict[str, Any]) -> bool:
    """Whether a session document is a readable ledger's."""
    meta = {k: v for k, v in document.items() if k != "_id"}
    version = meta.get("schema_version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        return True  # a newer q2google's: not for this one to judge
    try:
        SessionState.from_parts(meta, [], [])
    except StateCorruptError:
        return False
    return True


def _now() -> datetime:
    """Now, as the naive UTC datetime the client reads back (``tz_aware=False``)."""
    return datetime.now(UTC).replace(tzinfo=None)


_HELD_HERE: set[str] = set()
"""Sessions whose MongoDB lease this process holds now."""
LOST_LEASES: set[str] = set()
"""Sessions whose lease this process held and lost: their next checkpoint stops the run."""


def refuse_without_lease(session_id: str) -> None:
    """Stop a run whose session lease was lost, before it writes another checkpoint.

    Raises:
        SessionBusyError: The lease was lost (exit 75: run the same command again).
    """
    if session_id in LOST_LEASES:
        raise SessionBusyError(
            f"session {session_id!r} is no longer this run's: its lease was lost (MongoDB out "
            "of reach, or another run took it over); stopping. Run the same command again"
        )


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's: alive
        return True
    return True
