"""The MongoDB backend's ledger claims and entries.

- ``claims``: one document per file being delivered (``_id`` = item key, ``session_id``,
  ``since``), inserted atomically, many at once with one unordered ``insert_many``; the claim
  of a session whose lease has expired is taken over with a conditional update on the old
  holder.
- Ledger entries are the ledger session's ``items`` documents, each replaced (upserted) on its
  own, and looked up by key with ``$in`` (never the whole ledger). An invalid entry document
  counts as not delivered, with a warning; ``q2google ledger rebuild`` moves invalid ledger
  documents to the ``ledger_set_aside`` collection (:meth:`~MongoLedgerClaims.repair_ledger`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Sequence
from contextlib import suppress
from typing import TYPE_CHECKING, Any, TypeVar

from pymongo import ReplaceOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from q2google.errors import StateCorruptError, StateError, StateWriteError
from q2google.state.base import SCHEMA_VERSION, ItemState, SessionState, utc_now_iso
from q2google.state.lease import LeaseHolder
from q2google.state.ledger import LEDGER_SESSION_ID, new_ledger, warn_unreadable_entry
from q2google.state.mongo_lease import mongo_now

if TYPE_CHECKING:
    from pymongo.collection import Collection

T = TypeVar("T")

LOOKUP_KEYS_PER_QUERY = 10_000
"""Item keys per ``$in`` lookup: a session's worth in one query, far below 16 MB of BSON."""
SET_ASIDE_COLLECTION = "ledger_set_aside"
_DUPLICATE_KEY = 11000
_DUPLICATE_KEYS = (_DUPLICATE_KEY, 11001, 12582)
"""The codes MongoDB answers a duplicate ``_id`` with (pymongo's ``DuplicateKeyError``)."""
_TRIES = 3
_ENTRY_FIELDS = {"_id": 0, "session_id": 0, "settled": 0}


class MongoLedgerClaims:
    """:class:`~q2google.state.claims.LedgerClaims`, :class:`~q2google.state.claims.BulkClaims`,
    :class:`~q2google.state.claims.LedgerLookups` and :class:`~q2google.state.claims.LedgerRepair`
    for :class:`~q2google.state.mongo.MongoBackend`."""

    if TYPE_CHECKING:  # provided by MongoBackend
        database_name: str
        _sessions: Collection[dict[str, Any]]
        _items: Collection[dict[str, Any]]
        _claims: Collection[dict[str, Any]]

        def _call(
            self, doing: str, operation: Callable[[], T], kind: type[StateError] = StateError
        ) -> T: ...
        def _ensure_indexes(self) -> None: ...
        def _live_lease(self, session_id: str) -> LeaseHolder | None: ...

    _ledger_document_made = False
    """Whether this backend has made sure the ledger's session document exists."""

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

    # -- BulkClaims ------------------------------------------------------------------------

    def claim_items(self, item_keys: Sequence[str], session_id: str) -> list[str]:
        """Claim files for ``session_id`` with one ``insert_many``; only the files held
        already cost more (one read of their holders, one lease lookup per holder, one
        conditional update per claim taken over). See
        :class:`~q2google.state.claims.BulkClaims`."""
        return self._call("claim", lambda: self._claim_many(item_keys, session_id), StateWriteError)

    def _claim_many(self, item_keys: Sequence[str], session_id: str) -> list[str]:
        keys = list(dict.fromkeys(item_keys))
        if not keys:
            return []
        claim = {"session_id": session_id, "since": utc_now_iso()}
        try:  # unordered: each claim stands alone, a held one does not stop the others
            self._claims.insert_many([{"_id": key, **claim} for key in keys], ordered=False)
            return list(item_keys)
        except BulkWriteError as error:
            failures = error.details.get("writeErrors", [])
            held = [f["op"]["_id"] for f in failures if "_id" in (f.get("op") or {})]
            if (
                error.details.get("writeConcernErrors")
                or not failures
                or any(f.get("code") not in _DUPLICATE_KEYS for f in failures)
                or len(held) != len(failures)
            ):  # not only claims held already: let go of those made, then fail
                made = list(set(keys).difference(held))
                with suppress(PyMongoError):
                    self._claims.delete_many({"_id": {"$in": made}, "session_id": session_id})
                raise
        won = set(keys).difference(held)
        holders = {
            document["_id"]: document.get("session_id")
            for document in self._claims.find({"_id": {"$in": held}}, {"session_id": 1})
        }
        running: dict[str, bool] = {}  # whether a holder's session runs, asked once each
        for key in held:
            holder = holders.get(key)
            if holder == session_id:
                won.add(key)  # already its own (a retried call, or a claim made before)
                continue
            if key in holders and isinstance(holder, str):
                if holder not in running:
                    running[holder] = self._live_lease(holder) is not None
                if running[holder]:
                    continue
                where = {"_id": key, "session_id": holder}  # its run is over: take it over
                if self._claims.update_one(where, {"$set": claim}).matched_count == 1:
                    won.add(key)
                    continue
            if self._claim_once(key, session_id):  # released or changed meanwhile
                won.add(key)
        return [key for key in item_keys if key in won]

    def release_items(self, item_keys: Sequence[str], session_id: str) -> None:
        """Drop ``session_id``'s claims on files with one ``delete_many`` (per
        :data:`LOOKUP_KEYS_PER_QUERY` keys); others' claims stay."""
        keys = list(dict.fromkeys(item_keys))
        for start in range(0, len(keys), LOOKUP_KEYS_PER_QUERY):
            chunk = keys[start : start + LOOKUP_KEYS_PER_QUERY]
            self._call(
                "release",
                functools.partial(
                    self._claims.delete_many, {"_id": {"$in": chunk}, "session_id": session_id}
                ),
                StateWriteError,
            )

    # -- ledger entries --------------------------------------------------------------------

    def record_deliveries(self, entries: Sequence[ItemState]) -> None:
        """Upsert each entry on its own, creating the ledger's session document if needed."""
        if entries:
            self._call("write", lambda: self._record_once(entries), StateWriteError)

    def _record_once(self, entries: Sequence[ItemState]) -> None:
        if not self._ledger_document_made:  # once per backend: entries come 50 at a time
            self._ensure_ledger_document()
            self._ledger_document_made = True
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
        self._ledger_document_made = False
        meta = self._sessions.find_one({"session_id": LEDGER_SESSION_ID})
        if meta is not None and not _valid_meta(meta):
            aside.insert_one({"collection": "sessions", "document": meta, "at": mongo_now()})
            valid = new_ledger().meta_dict()  # replaced in place: never a moment without one
            self._sessions.replace_one({"_id": meta["_id"]}, valid)
            moved.append(f"MongoDB {self.database_name}: the ledger's session document")
        for document in self._items.find({"session_id": LEDGER_SESSION_ID}):
            fields = {k: v for k, v in document.items() if k not in _ENTRY_FIELDS}
            try:
                ItemState.from_dict(fields)
            except StateCorruptError:
                aside.insert_one({"collection": "items", "document": document, "at": mongo_now()})
                self._items.delete_one({"_id": document["_id"]})
                moved.append(f"MongoDB {self.database_name}: entry {document.get('item_key')!r}")
        if meta is not None:
            self._ensure_ledger_document()
        return moved


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
