"""Where each file of a session stands, and what it adds to the session's summary.

One definition for :func:`q2google.sessions.summarize`, for the summaries backends keep
(:mod:`q2google.state.summary`) and for anyone counting files: :func:`item_outcome` of a file,
:func:`session_status` of a session from its counts, and the :data:`ItemMark` of a file, from
an :class:`~q2google.state.ItemState` or from its stored form.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from typing import Any, Final

from q2google.state.records import ItemState

COMPLETED = "completed"
FAILED = "failed"
PENDING = "pending"
SKIPPED = "skipped"
DEFERRED = "deferred"
GONE = "gone"
OUTCOMES = (COMPLETED, FAILED, PENDING, SKIPPED, DEFERRED, GONE)
"""Where a file can stand, in the order summaries show them."""
HELD_BACK = (SKIPPED, DEFERRED, GONE)
"""Outcomes of files held back on purpose, each with a reason."""
INCOMPLETE = "incomplete"
WAITING = "waiting"
"""Session status: everything that can move is in Google Photos; some files wait for the
GoPro cloud to finish processing them, and a later run delivers them."""


def _outcome(discovery: str, transfer: str, create: str, exclusion: str | None) -> str:
    """Where a file stands, from its stage statuses and its exclusion kind."""
    if create == COMPLETED:
        return COMPLETED
    if exclusion is not None:
        return exclusion
    return FAILED if FAILED in (discovery, transfer, create) else PENDING


def item_outcome(item: ItemState) -> str:
    """Where one file stands overall: one of :data:`OUTCOMES`.

    ``completed`` means it is in Google Photos (created by this session or an earlier one);
    ``skipped``, ``deferred`` and ``gone`` are held back on purpose, with a reason.

    Args:
        item: The file.

    Returns:
        Its outcome.
    """
    exclusion = item.exclusion.kind.value if item.exclusion is not None else None
    return _outcome(item.discovery_status, item.transfer_status, item.create_status, exclusion)


def _newest_error(errors: Iterable[tuple[str, str, str]]) -> str:
    """``"stage: message"`` of the newest of ``(stage, message, occurred_at)``, else ``failed``."""
    newest: tuple[str, str, str] | None = None
    for error in errors:
        if newest is None or error[2] > newest[2]:
            newest = error
    return FAILED if newest is None else f"{newest[0]}: {newest[1]}"


def last_error(item: ItemState) -> str:
    """The item's most recent error message (``"failed"`` when none was recorded).

    Args:
        item: The file.

    Returns:
        ``"stage: message"`` of its newest error.
    """
    return _newest_error(
        (error.stage.value, error.message, error.occurred_at) for error in item.errors.values()
    )


def session_status(files: int, by_status: Mapping[str, int], discovery: str) -> str:
    """A session's status from its counts and whether its listing of the window is complete.

    Args:
        files: Files in the session.
        by_status: Files per outcome.
        discovery: The session-wide status of the discovery stage.

    Returns:
        ``completed``, ``failed``, ``waiting`` or ``incomplete`` (see
        :class:`q2google.sessions.SessionSummary`).
    """
    if files and by_status.get(COMPLETED, 0) == files:
        return COMPLETED
    if discovery == COMPLETED and not by_status.get(PENDING, 0):
        if by_status.get(FAILED, 0):
            return FAILED
        return WAITING if by_status.get(DEFERRED, 0) else COMPLETED
    return INCOMPLETE


ItemMark = tuple[int, str, str, str, str, int, tuple[str, str] | None]
"""What one file adds to its session's summary, a plain tuple (which the garbage collector
stops tracking): its discovery position (failed and held-back files are listed in that order),
its outcome (one of :data:`OUTCOMES`), its discovery, transfer and create statuses, its size
in bytes (0 when unknown) and, when it is failed or held back, its file name and its last
error or the reason it is held back. Read it with the indexes below."""
POSITION: Final = 0
OUTCOME: Final = 1
DISCOVERY: Final = 2
TRANSFER: Final = 3
CREATE: Final = 4
SIZE: Final = 5
LISTING: Final = 6


def mark_item(item: ItemState) -> ItemMark:
    """The mark of a file of a session in memory.

    Args:
        item: The file.

    Returns:
        What it adds to the summary.
    """
    outcome = item_outcome(item)
    listing = None
    if outcome == FAILED:
        listing = (item.file_name, last_error(item))
    elif outcome in HELD_BACK and item.exclusion is not None:
        listing = (item.file_name, item.exclusion.reason)
    return (
        item.position,
        outcome,
        item.discovery_status.value,
        item.transfer_status.value,
        item.create_status.value,
        item.size_bytes or 0,
        listing,
    )


def mark_data(data: Mapping[str, Any]) -> ItemMark:
    """The mark of a file in its stored form (:meth:`ItemState.to_dict`, as a checkpoint
    writes it), without building the item.

    Args:
        data: The file's stored data.

    Returns:
        What it adds to the summary; the same as :func:`mark_item` of the item.
    """
    exclusion = data.get("exclusion")
    discovery = sys.intern(str(data["discovery_status"]))  # shared: marks of 100,000 files
    transfer = sys.intern(str(data["transfer_status"]))
    create = sys.intern(str(data["create_status"]))
    outcome = _outcome(discovery, transfer, create, exclusion["kind"] if exclusion else None)
    listing = None
    if outcome == FAILED:
        errors = (data.get("errors") or {}).values()
        error = _newest_error((e["stage"], e["message"], e["occurred_at"]) for e in errors)
        listing = (data["file_name"], error)
    elif outcome in HELD_BACK and exclusion:
        listing = (data["file_name"], exclusion["reason"])
    size = data.get("size_bytes") or 0
    return (int(data["position"]), outcome, discovery, transfer, create, size, listing)


def mark_line(key: str, mark: ItemMark) -> dict[str, str]:
    """A failed or held-back file's line in ``failures`` (item, file, error) or ``held_back``
    (item, file, outcome, reason).

    Args:
        key: The file's item key.
        mark: Its mark.

    Returns:
        The line.
    """
    file_name, why = mark[LISTING] or ("", "")
    if mark[OUTCOME] == FAILED:
        return {"item": key, "file": file_name, "error": why}
    return {"item": key, "file": file_name, "outcome": mark[OUTCOME], "reason": why}
