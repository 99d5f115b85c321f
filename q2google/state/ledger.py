"""What has been delivered to Google Photos, across sessions, kept through the same backend.

The ledger is stored as a session of its own under the reserved id :data:`LEDGER_SESSION_ID`:
one item per delivered GoPro file (keyed like session items, by media id and file index), with
its Google media item id. Any :class:`~q2google.state.SyncStateBackend` therefore keeps it with
its two methods. A session whose window overlaps an earlier one finds its files here and
sends none of them again.

Two sessions running at once never upload the same file: a run :meth:`~DeliveryLedger.claim`s
a file before its upload. With a backend that implements
:class:`~q2google.state.claims.LedgerClaims` (both built-in ones do), claims hold across
processes and every entry is stored on its own, so concurrent runs never lose one; with
another backend, claims hold within one ledger object and the ledger is saved whole.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Iterable, Sequence

from q2google.errors import InvalidSessionIdError, StateCorruptError, StateError
from q2google.state.base import (
    ItemState,
    SessionState,
    StageStatus,
    SyncStateBackend,
    new_session,
)
from q2google.state.claims import BulkClaims, LedgerClaims, LedgerLookups

logger = logging.getLogger(__name__)

LEDGER_SESSION_ID = "q2google-ledger"
"""Reserved: no sync session may use this id."""
REBUILD_FIX = "run `q2google ledger rebuild` to rebuild it from Google Photos"
"""The fix of an unreadable ledger, for every message that names one."""

_WARNED: set[str] = set()
"""Unreadable entries this process has warned about already."""


def refuse_reserved(session_id: str) -> str:
    """Reject the ledger's id as a session id.

    Raises:
        InvalidSessionIdError: ``session_id`` is the ledger's.
    """
    if session_id == LEDGER_SESSION_ID:
        raise InvalidSessionIdError(f"invalid session id {session_id!r}: it is reserved")
    return session_id


def new_ledger() -> SessionState:
    """An empty ledger, unsaved."""
    return new_session(
        LEDGER_SESSION_ID, start_date_iso="1970-01-01", end_date_iso="1970-01-01", batch_size=1
    )


def ledger_entry(item: ItemState) -> ItemState:
    """The ledger entry of a delivered file: what names it, and its Google media item id."""
    return ItemState(
        media_id=item.media_id,
        file_index=item.file_index,
        file_name=item.file_name,
        media_type=item.media_type,
        captured_at=item.captured_at,
        media_item_id=item.media_item_id,
        discovery_status=StageStatus.COMPLETED,
        transfer_status=StageStatus.COMPLETED,
        create_status=StageStatus.COMPLETED,
    )


def unreadable_ledger(error: StateError) -> StateError:
    """``error`` (a ledger record that cannot be read), with the fix in its one line."""
    text = str(error)
    if "ledger rebuild" in text:
        return error
    return StateCorruptError(f"the delivery ledger is unreadable: {text}; {REBUILD_FIX}")


def warn_unreadable_entry(where: str, why: str) -> None:
    """Say once per process that a ledger entry cannot be read and counts as not delivered.

    Args:
        where: The entry (its file, or its key and database).
        why: What is wrong with it.
    """
    if where in _WARNED:
        return
    _WARNED.add(where)
    logger.warning(
        "the delivery ledger's entry %s is unreadable (%s): the file counts as not delivered; %s",
        where,
        why,
        REBUILD_FIX,
    )


class DeliveryLedger:
    """Delivered GoPro files and their Google media item ids, and who is delivering which.

    The pipeline's use, for each file::

        ledger.delivered_many(session_keys)           # at the start: the session's own files
        if ledger.claim(item.item_key, session_id):   # False: delivered, or another run's
            ...upload, create...
            ledger.record(item)
            ledger.save()                              # also releases the claim
        ...
        ledger.release_all(session_id)                 # at the end: files not delivered

    Methods that touch the backend block: call them through ``asyncio.to_thread``. They are
    safe to call from several threads at once. :meth:`record` never touches the backend of a
    :class:`~q2google.state.claims.LedgerClaims` backend; with another, it loads the ledger
    on first use (:meth:`delivered_many` does too).

    Args:
        backend: Where the ledger is stored (the sessions' backend).
    """

    def __init__(self, backend: SyncStateBackend) -> None:
        self.backend = backend
        self._state: SessionState | None = None
        self._claims = backend if isinstance(backend, LedgerClaims) else None
        self._bulk = (
            backend if self._claims is not None and isinstance(backend, BulkClaims) else None
        )
        self._lookups = (
            backend if self._claims is not None and isinstance(backend, LedgerLookups) else None
        )
        self._claimed: dict[str, str] = {}  # item key -> session id: the claims made here
        self._known: dict[str, str | None] = {}  # item key -> media item id, as last stored
        self._pending: dict[str, ItemState] = {}  # recorded, not saved yet (claims backends)
        self._lock = threading.Lock()
        self._loading = threading.Lock()

    @property
    def state(self) -> SessionState:
        """The whole ledger as a session (loaded on first use).

        Raises:
            StateCorruptError: A record of it is unreadable (the message names the fix).
        """
        with self._loading:
            if self._state is None:
                try:
                    stored = self.backend.load(LEDGER_SESSION_ID)
                except StateCorruptError as error:
                    raise unreadable_ledger(error) from None
                self._state = stored or new_ledger()
            return self._state

    def __len__(self) -> int:
        return len(self.state.items)

    def media_item_id(self, item_key: str) -> str | None:
        """The Google media item id a file was delivered as, or ``None`` (recorded here, or
        in the whole ledger, loaded on first use)."""
        with self._lock:
            pending = self._pending.get(item_key)
            known = self._known.get(item_key)
        if pending is not None:
            return pending.media_item_id
        if known is not None:
            return known
        entry = self.state.items.get(item_key)
        return entry.media_item_id if entry is not None else None

    def delivered_many(self, item_keys: Iterable[str]) -> dict[str, str]:
        """The Google media item ids of those of ``item_keys`` that are delivered.

        With a :class:`~q2google.state.claims.LedgerLookups` backend only these entries are
        read, as stored now; otherwise the whole ledger is loaded (once: later calls answer
        from it). Files recorded here and not saved yet count as delivered.

        Returns:
            Media item id by item key; files not delivered are left out.

        Raises:
            StateCorruptError: The ledger cannot be read (the message names the fix); an
                unreadable entry alone counts as not delivered instead.
        """
        keys = list(dict.fromkeys(item_keys))
        found: dict[str, str] = {}
        if self._lookups is None:
            state = self.state
            for key in keys:
                entry = state.items.get(key)
                if entry is not None and entry.media_item_id:
                    found[key] = entry.media_item_id
        else:
            try:
                entries = self._lookups.delivered_entries(keys) if keys else {}
            except StateCorruptError as error:
                raise unreadable_ledger(error) from None
            found = {key: e.media_item_id for key, e in entries.items() if e.media_item_id}
            with self._lock:
                self._known.update((key, found.get(key)) for key in keys)
        with self._lock:
            for key in keys:
                pending = self._pending.get(key)
                if pending is not None and pending.media_item_id:
                    found[key] = pending.media_item_id
        return found

    def record(self, item: ItemState) -> bool:
        """Remember that ``item`` is in the library; return whether that is news (to
        :meth:`save`)."""
        if not item.media_item_id:
            return False
        if self._claims is None:
            if self.media_item_id(item.item_key) == item.media_item_id:
                return False
            self.state.add_item(ledger_entry(item), replace=True)
            return True
        with self._lock:
            pending = self._pending.get(item.item_key)
            current = pending.media_item_id if pending is not None else self._stored(item.item_key)
            if current == item.media_item_id:
                return False
            self._pending[item.item_key] = ledger_entry(item)
        return True

    def save(self) -> None:
        """Persist what was recorded since the last save, then release the claims of it.

        With a :class:`~q2google.state.claims.LedgerClaims` backend only the new entries are
        written, each on its own, so entries other processes record meanwhile are kept.
        """
        if self._claims is None:
            state = self.state
            self.backend.save(state)
            saved = [key for key in list(self._claimed) if key in state.items]
        else:
            saved = self._save_entries(self._claims)
        by_session: dict[str, list[str]] = {}
        with self._lock:
            for key in saved:
                session_id = self._claimed.get(key)
                if session_id is not None:
                    by_session.setdefault(session_id, []).append(key)
        for session_id, keys in by_session.items():
            self.release_many(keys, session_id)

    def _save_entries(self, claims: LedgerClaims) -> list[str]:
        """Write the recorded entries the store does not hold as they are; return their keys."""
        with self._lock:
            pending = dict(self._pending)
            unknown = [key for key in pending if self._stored(key, missing="?") == "?"]
        if unknown and self._lookups is not None:  # one read, to write only what is news
            self.delivered_many(unknown)
        with self._lock:
            entries = [e for key, e in pending.items() if self._stored(key) != e.media_item_id]
        if entries:
            claims.record_deliveries(entries)
        with self._lock:
            for key, entry in pending.items():
                self._known[key] = entry.media_item_id
                if self._pending.get(key) is entry:
                    del self._pending[key]
        return list(pending)

    def _stored(self, item_key: str, missing: str | None = None) -> str | None:
        """What the store holds for a file as far as this ledger knows, without asking it
        (``missing`` when it does not know); call with ``_lock`` held."""
        if item_key in self._known:
            return self._known[item_key]
        if self._state is not None:
            entry = self._state.items.get(item_key)
            return entry.media_item_id if entry is not None else None
        return missing

    def delivered(self, item_key: str) -> str | None:
        """The Google media item id a file was delivered as, asking the store afresh (another
        process may have delivered it since the ledger was loaded); ``None`` if not delivered.
        """
        if self._claims is None:
            return self.media_item_id(item_key)
        entry = self._claims.delivered_entry(item_key)
        stored = entry.media_item_id if entry is not None and entry.media_item_id else None
        with self._lock:
            self._known[item_key] = stored
            pending = self._pending.get(item_key)
        if stored is None and pending is not None:  # recorded here, not saved yet
            return pending.media_item_id
        return stored

    def claim(self, item_key: str, session_id: str) -> bool:
        """Claim a file for ``session_id`` before uploading it.

        Atomic across processes with a :class:`~q2google.state.claims.LedgerClaims` backend
        (within this ledger object otherwise). The claim of a session whose run died (its lease is
        free) is taken over.

        Args:
            item_key: The file (:func:`~q2google.state.make_item_key`).
            session_id: The session that will upload it.

        Returns:
            ``True`` when ``session_id`` owns the file now (or already did) and it is not
            delivered; ``False`` when it is delivered already (:meth:`delivered` says as
            what) or another running session is uploading it: do not upload it now.
        """
        if self._claims is None:
            with self._lock:
                if self._claimed.setdefault(item_key, session_id) != session_id:
                    return False
        else:
            if not self._claims.claim_item(item_key, session_id):
                return False
            with self._lock:
                self._claimed[item_key] = session_id
        # Claimed first, asked second: a run records a delivery before it releases the claim.
        if self.delivered(item_key) is not None:
            self.release(item_key, session_id)
            return False
        return True

    def claim_many(self, item_keys: Sequence[str], session_id: str) -> list[str]:
        """:meth:`claim` each file, in one call to the store when it can (see
        :class:`~q2google.state.claims.BulkClaims`) and one lookup of those won.

        Returns:
            The keys ``session_id`` owns now and that are not delivered, in the order given.
        """
        if self._bulk is None or self._lookups is None:
            return [key for key in item_keys if self.claim(key, session_id)]
        won = self._bulk.claim_items(item_keys, session_id)
        with self._lock:
            self._claimed.update((key, session_id) for key in won)
        # Claimed first, asked second: a run records a delivery before it releases the claim.
        delivered = self.delivered_many(won)
        if delivered:
            self.release_many(list(delivered), session_id)
        return [key for key in won if key not in delivered]

    def release_many(self, item_keys: Sequence[str], session_id: str) -> None:
        """:meth:`release` each file, in one call to the store when it can."""
        with self._lock:
            for key in item_keys:
                if self._claimed.get(key) == session_id:
                    del self._claimed[key]
        if self._bulk is not None:
            self._bulk.release_items(item_keys, session_id)
        elif self._claims is not None:
            for key in item_keys:
                self._claims.release_item(key, session_id)

    def release(self, item_key: str, session_id: str) -> None:
        """Let go of ``session_id``'s claim on a file (not delivered, or recorded)."""
        self.release_many([item_key], session_id)

    def release_all(self, session_id: str, *, keep: Collection[str] = ()) -> int:
        """Let go of every claim ``session_id`` made through this ledger, but those on the files
        in ``keep``; return how many were let go."""
        kept = set(keep)
        with self._lock:
            keys = [
                key
                for key, owner in self._claimed.items()
                if owner == session_id and key not in kept
            ]
        self.release_many(keys, session_id)
        return len(keys)
