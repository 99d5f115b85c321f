"""What has been delivered to Google Photos, across sessions, kept through the same backend.

The ledger is stored as a session of its own under the reserved id :data:`LEDGER_SESSION_ID`:
one item per delivered GoPro file (keyed like session items, by media id and file index), with
its Google media item id. Any :class:`~q2google.state.SyncStateBackend` therefore keeps it with
its two methods, incrementally where the backend saves incrementally. A session whose window
overlaps an earlier one finds its files here and sends none of them again.
"""

from __future__ import annotations

from q2google.errors import InvalidSessionIdError
from q2google.state.base import (
    ItemState,
    SessionState,
    StageStatus,
    SyncStateBackend,
    new_session,
)

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
    """Delivered GoPro files and their Google media item ids.

    Args:
        backend: Where the ledger is stored (the sessions' backend).
    """

    def __init__(self, backend: SyncStateBackend) -> None:
        self.backend = backend
        self._state: SessionState | None = None

    @property
    def state(self) -> SessionState:
        """The ledger as a session (loaded on first use)."""
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
        """Persist what was recorded since the last save."""
        self.backend.save(self.state)
