"""Settled files: delivered, with nothing left to do, so a run need not hold them in memory.

A resume of a large session reads only what is still to do. Its settled files are known by
key (discovery must not add them again), by capture time (discovery counts the media of the
window) and by their :data:`~q2google.state.outcomes.ItemMark` (the session's summary counts
them), never built as :class:`~q2google.state.ItemState`; its finished batches are known by index
alone (:func:`finished_batch`). A backend tells them from the
stored form of each item with :func:`settled_item`, using :data:`SETTLED_FIELDS` only (a
database can ask for those fields alone), and hands them to
:meth:`~q2google.state.SessionState.from_parts`.

Settled means: created in Google Photos, not held back, and in the session's album (created
into it, or added to it), or the session has no album. A session whose created files may be
missing from the delivery ledger (one of an earlier version, :attr:`SessionState.ledger_recorded`
false) settles nothing: its run checks every created file once.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, TypeGuard

from q2google.state.outcomes import COMPLETED, ItemMark
from q2google.state.records import StageStatus

SETTLED_FIELDS = (
    "item_key",
    "position",
    "captured_at",
    "discovery_status",
    "transfer_status",
    "create_status",
    "size_bytes",
    "exclusion",
    "added_to_album",
)
"""The stored fields :func:`settled_item` reads (the others may be left out of the read)."""

_COMPLETED = StageStatus.COMPLETED.value
_STATUSES: dict[object, str] = {status.value: status.value for status in StageStatus}
"""Stage statuses by their stored form: each file's mark shares these strings."""


class SettledItem(NamedTuple):
    """What a session keeps of a settled file: its capture time and its summary mark."""

    captured_at: str | None
    mark: ItemMark


FINISHED_BATCH_STATUSES = (StageStatus.COMPLETED.value, StageStatus.FAILED.value)
"""Stored statuses of a batch no run takes up again: a run loads such batches by index alone
(so that none is reused), never their records."""


def finished_batch(data: Mapping[str, Any]) -> bool:
    """Whether a stored batch is finished (:data:`FINISHED_BATCH_STATUSES`)."""
    return data.get("status") in FINISHED_BATCH_STATUSES


def settles(meta: Mapping[str, Any]) -> bool:
    """Whether a session (its stored metadata) may leave settled files out of memory."""
    return bool(meta.get("ledger_recorded"))


def settled_item(
    data: Mapping[str, Any], *, album_title: str | None, mark: ItemMark | None = None
) -> SettledItem | None:
    """The settled form of a stored item, or ``None`` when it still has something to do.

    Args:
        data: The item's stored form (at least :data:`SETTLED_FIELDS`).
        album_title: The session's album title (``None``: the session has no album).
        mark: Its mark as counted already, if it was: kept when it is the same (one object
            for the summary and the session, not two).

    Returns:
        Its capture time and mark, when it is settled; ``None`` also when its stored form is
        not valid (the item is then built, and its load reports it).
    """
    if data.get("create_status") != _COMPLETED or data.get("exclusion"):
        return None
    transfer = data.get("transfer_status")
    if album_title and transfer != _COMPLETED and data.get("added_to_album") is None:
        return None  # created here means created into the album; else added to it, or not
    position, size = data.get("position"), data.get("size_bytes") or 0
    discovery = data.get("discovery_status")
    discovery = _STATUSES.get(discovery) if isinstance(discovery, str) else None
    transfer = _STATUSES.get(transfer) if isinstance(transfer, str) else None
    if not (_whole(position) and _whole(size) and discovery and transfer):
        return None  # not valid: built, it is reported as such
    captured = data.get("captured_at")
    own = (int(position), COMPLETED, discovery, transfer, _COMPLETED, int(size), None)
    return SettledItem(captured if type(captured) is str else None, mark if mark == own else own)


def _whole(number: object) -> TypeGuard[int]:
    """An integer as stored (MongoDB reads large ones as ``bson.Int64``), not a boolean."""
    return isinstance(number, int) and not isinstance(number, bool)


def split_settled(
    records: Iterable[Mapping[str, Any]],
    *,
    album_title: str | None,
    known: dict[str, SettledItem] | None = None,
) -> tuple[dict[str, Mapping[str, Any]], dict[str, SettledItem]]:
    """Sort stored items into those still to do and the settled ones.

    A later record of the same key replaces an earlier one (a journal's order).

    Args:
        records: Stored items, each with its ``item_key``.
        album_title: The session's album title.
        known: Settled files known already (a compact copy of them), taken over and
            returned as the settled ones; a record of the same key wins over its copy.

    Returns:
        The open items' stored forms by key, and the settled items by key.

    Raises:
        KeyError: A record has no ``item_key`` (the caller names the file).
    """
    open_items: dict[str, Mapping[str, Any]] = {}
    settled: dict[str, SettledItem] = known if known is not None else {}
    for data in records:
        key = str(data["item_key"])
        entry = settled_item(data, album_title=album_title)
        if entry is None:
            open_items[key] = data
            settled.pop(key, None)
        else:
            settled[key] = entry
            open_items.pop(key, None)
    return open_items, settled


def settled_row(key: str, entry: SettledItem) -> list[Any]:
    """A settled file as a compact row (a store may keep many in one record): its key, capture
    time, position, discovery and transfer statuses, and size."""
    position, _, discovery, transfer, _, size, _ = entry.mark
    return [key, entry.captured_at, position, discovery, transfer, size]


def from_settled_row(row: object) -> tuple[str, SettledItem] | None:
    """The key and settled form of a :func:`settled_row`, or ``None`` when it is not one."""
    if not isinstance(row, list) or len(row) != 6:
        return None
    key, captured, position, discovery, transfer, size = row
    discovery = _STATUSES.get(discovery) if isinstance(discovery, str) else None
    transfer = _STATUSES.get(transfer) if isinstance(transfer, str) else None
    if not (isinstance(key, str) and _whole(position) and _whole(size) and discovery and transfer):
        return None
    mark = (int(position), COMPLETED, discovery, transfer, _COMPLETED, int(size), None)
    return key, SettledItem(captured if type(captured) is str else None, mark)
