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

import threading
from collections.abc import Collection

from q2google.errors import InvalidSessionIdError
from q2google.state.base import (
    ItemState,
    SessionState,
    StageStatus,
    SyncStateBackend,
    new_session,
)
from q2google.state.claims import LedgerClaims

LEDGER_SESSION_ID = "q2google-ledger"
"""Reserved: no sync session may use this id."""


def refuse_reserved(session_id: str) -> str:
    """Reject the ledger's id as a session id.

    Raises:
        InvalidSessionIdError: ``session_id`` is the ledger's.
    """
    if session_id == LEDGER_SESSION_ID:
        raise InvalidSessionIdError(f"invalid session id {session_id!r}: it is reserved")
    return session_id


class DeliveryLedger:
    """Delivered GoPro files and their Google media item ids, and who is delivering which.

    The pipeline's use, for each file::

        if ledger.claim(item.item_key, session_id):   # False: delivered, or another run's
            ...upload, create...
            ledger.record(item)
            ledger.save()                              # also releases the claim
        ...
        ledger.release_all(session_id)                 # at the end: files not delivered

    Methods that touch the backend block: call them through ``asyncio.to_thread``. They are
    safe to call from several threads at once.

    Args:
        backend: Where the ledger is stored (the sessions' backend).
    """

    def __init__(self, backend: SyncStateBackend) -> None:
        self.backend = backend
        self._state: SessionState | None = None
        self._claims = backend if isinstance(backend, LedgerClaims) else None
        self._claimed: dict[str, str] = {}  # item key -> session id: the claims made here
        self._lock = threading.Lock()
        self._loading = threading.Lock()

    @property
    def state(self) -> SessionState:
        """The ledger as a session (loaded on first use)."""
        with self._loading:
            if self._state is None:
                self._state = self.backend.load(LEDGER_SESSION_ID) or new_session(
                    LEDGER_SESSION_ID,
                    start_date_iso="1970-01-01",
                    end_date_iso="1970-01-01",
                    batch_size=1,
                )
            return self._state

    def __len__(self) -> int:
        return len(self.state.items)

    def media_item_id(self, item_key: str) -> str | None:
        """The Google media item id a file was delivered as, or ``None``."""
        entry = self.state.items.get(item_key)
        return entry.media_item_id if entry is not None else None

    def record(self, item: ItemState) -> bool:
        """Remember that ``item`` is in the library; return whether that is news."""
        if not item.media_item_id or self.media_item_id(item.item_key) == item.media_item_id:
            return False
        self.state.add_item(
            ItemState(
                media_id=item.media_id,
                file_index=item.file_index,
                file_name=item.file_name,
                media_type=item.media_type,
                captured_at=item.captured_at,
                media_item_id=item.media_item_id,
                discovery_status=StageStatus.COMPLETED,
                transfer_status=StageStatus.COMPLETED,
                create_status=StageStatus.COMPLETED,
            ),
            replace=True,
        )
        return True

    def save(self) -> None:
        """Persist what was recorded since the last save, then release the claims of it.

        With a :class:`~q2google.state.claims.LedgerClaims` backend only the new entries are
        written, each on its own, so entries other processes record meanwhile are kept.
        """
        state = self.state
        if self._claims is None:
            self.backend.save(state)
            saved = [key for key in list(self._claimed) if key in state.items]
        else:
            with state.pending_changes() as changes:
                entries = [ItemState.from_dict(data) for _, data in changes.items]
                if entries:
                    self._claims.record_deliveries(entries)
            saved = [entry.item_key for entry in entries]
        for key in saved:
            session_id = self._claimed.get(key)
            if session_id is not None:
                self.release(key, session_id)

    def delivered(self, item_key: str) -> str | None:
        """The Google media item id a file was delivered as, asking the store afresh (another
        process may have delivered it since the ledger was loaded); ``None`` if not delivered.
        """
        if self._claims is not None:
            entry = self._claims.delivered_entry(item_key)
            if entry is not None and entry.media_item_id:
                return entry.media_item_id
        return self.media_item_id(item_key)

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

    def release(self, item_key: str, session_id: str) -> None:
        """Let go of ``session_id``'s claim on a file (not delivered, or recorded)."""
        with self._lock:
            if self._claimed.get(item_key) == session_id:
                del self._claimed[item_key]
        if self._claims is not None:
            self._claims.release_item(item_key, session_id)

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
        for key in keys:
            self.release(key, session_id)
        return len(keys)
