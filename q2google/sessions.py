"""Stored sessions as a person sees them: a summary of each, and putting failures back to work.

``q2google sessions`` and the end of every ``q2google sync`` read sessions through
:func:`summarize`; ``q2google sessions retry`` calls :func:`reset_failed` before running.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from q2google.errors import Q2GoogleError, StateCorruptError
from q2google.state import (
    LEDGER_SESSION_ID,
    DeliveryLedger,
    ItemState,
    SessionCatalog,
    SessionState,
    StageName,
    StageStatus,
    SyncStateBackend,
)
from q2google.window import describe_window

COMPLETED = "completed"
FAILED = "failed"
PENDING = "pending"
SKIPPED = "skipped"
DEFERRED = "deferred"
GONE = "gone"
OUTCOMES = (COMPLETED, FAILED, PENDING, SKIPPED, DEFERRED, GONE)
"""Where a file can stand, in the order summaries show them."""
CORRUPT = "corrupt"
WAITING = "waiting"
"""Session status: everything that can move is in Google Photos; some files wait for the
GoPro cloud to finish processing them, and a later run delivers them."""


def item_outcome(item: ItemState) -> str:
    """Where one file stands overall: one of :data:`OUTCOMES`.

    ``completed`` means it is in Google Photos (created by this session or an earlier one);
    ``skipped``, ``deferred`` and ``gone`` are held back on purpose, with a reason.
    """
    if item.create_status is StageStatus.COMPLETED:
        return COMPLETED
    if item.exclusion is not None:
        return item.exclusion.kind.value
    statuses = (item.discovery_status, item.transfer_status, item.create_status)
    return FAILED if StageStatus.FAILED in statuses else PENDING


def to_deliver(files: int, by_status: dict[str, int]) -> int:
    """Files that belong in Google Photos: all but the skipped and the gone."""
    return files - by_status.get(SKIPPED, 0) - by_status.get(GONE, 0)


def last_error(item: ItemState) -> str:
    """The item's most recent error message (``"failed"`` when none was recorded)."""
    if not item.errors:
        return FAILED
    newest = max(item.errors.values(), key=lambda error: error.occurred_at)
    return f"{newest.stage.value}: {newest.message}"


@dataclass
class SessionSummary:
    """Counts and failures of one session.

    Attributes:
        session_id: The session.
        status: ``completed`` (every file in Google Photos, or held back for good: skipped or
            gone), ``failed`` (its last run ended with failures), ``waiting`` (the rest waits
            for the GoPro cloud: run it again later), or ``incomplete`` (running, or
            interrupted: run it again).
        window: The capture window, ``start`` and ``end`` (a date for midnight UTC, else a
            time in UTC; ``end`` is exclusive, ``now`` for a window without end).
        album: Album title, if any.
        files: Files in the session.
        by_status: Files per outcome (every one of :data:`OUTCOMES`).
        by_stage: Per stage, files per stage status.
        bytes_total: Bytes of the files whose size is known.
        bytes_completed: Bytes of the files already in Google Photos.
        updated_at: Last checkpoint.
        failures: ``{"item", "file", "error"}`` for each failed file.
        held_back: ``{"item", "file", "outcome", "reason"}`` for each skipped, deferred or
            gone file.
        error: Why the session cannot be read (status ``corrupt``), else ``None``.
        new_since_last_run: Files the last listing of the window found that the session did
            not know.
        listings: Complete listings of the window so far.
    """

    session_id: str
    status: str
    window: dict[str, str]
    album: str | None
    files: int
    by_status: dict[str, int]
    by_stage: dict[str, dict[str, int]]
    bytes_total: int
    bytes_completed: int
    updated_at: str
    failures: list[dict[str, str]] = field(default_factory=list)
    held_back: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None
    new_since_last_run: int = 0
    listings: int = 0

    @classmethod
    def unreadable(cls, session_id: str, error: str) -> SessionSummary:
        """A session whose stored state cannot be read."""
        return cls(
            session_id, CORRUPT, {"start": "", "end": ""}, None, 0, {}, {}, 0, 0, "", error=error
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "error": self.error,
            "session_id": self.session_id,
            "status": self.status,
            "window": self.window,
            "album": self.album,
            "files": self.files,
            "by_status": self.by_status,
            "by_stage": self.by_stage,
            "bytes_total": self.bytes_total,
            "bytes_completed": self.bytes_completed,
            "updated_at": self.updated_at,
            "failures": self.failures,
            "held_back": self.held_back,
            "new_since_last_run": self.new_since_last_run,
            "listings": self.listings,
        }


def summarize(state: SessionState) -> SessionSummary:
    """Summarize a session for ``sessions list``, ``sessions show`` and a run's report."""
    items = list(state.items.values())
    outcomes = Counter(item_outcome(item) for item in items)
    by_stage = {
        stage.value: dict(Counter(getattr(item, f"{stage.value}_status").value for item in items))
        for stage in StageName
    }
    if items and outcomes[COMPLETED] == len(items):
        status = COMPLETED
    elif state.stages[StageName.DISCOVERY] is StageStatus.COMPLETED and not outcomes[PENDING]:
        status = FAILED if outcomes[FAILED] else WAITING if outcomes[DEFERRED] else COMPLETED
    else:
        status = "incomplete"
    return SessionSummary(
        session_id=state.session_id,
        status=status,
        window=describe_window(state),
        album=state.album_title,
        files=len(items),
        by_status={name: outcomes[name] for name in OUTCOMES},
        by_stage=by_stage,
        bytes_total=sum(item.size_bytes or 0 for item in items),
        bytes_completed=sum(
            item.size_bytes or 0 for item in items if item_outcome(item) == COMPLETED
        ),
        updated_at=state.updated_at,
        failures=[
            {"item": item.item_key, "file": item.file_name, "error": last_error(item)}
            for item in items
            if item_outcome(item) == FAILED
        ],
        held_back=[
            {
                "item": item.item_key,
                "file": item.file_name,
                "outcome": item.exclusion.kind.value,
                "reason": item.exclusion.reason,
            }
            for item in items
            if item.exclusion is not None and item.create_status is not StageStatus.COMPLETED
        ],
        new_since_last_run=state.listing_new,
        listings=state.listings,
    )


def reset_failed(state: SessionState) -> int:
    """Put every failed file back to pending so the next run tries it again.

    A file whose discovery failed is described again; one whose transfer failed is sent
    again; one whose create failed is created again with its upload token (or sent again
    when it has none). Errors stay recorded until the file succeeds.

    Returns:
        How many files were reset.
    """
    reset = 0
    for item in state.items.values():
        if item.discovery_status is StageStatus.FAILED:
            item.discovery_status = StageStatus.PENDING
            item.transfer_status = item.create_status = StageStatus.PENDING
        elif item.transfer_status is StageStatus.FAILED:
            item.transfer_status = StageStatus.PENDING
        elif item.create_status is StageStatus.FAILED:
            item.create_status = StageStatus.PENDING
            if not item.upload_token:
                item.transfer_status = StageStatus.PENDING
        else:
            continue
        item.attempts = 0
        reset += 1
    for stage in StageName:
        if state.stages[stage] is StageStatus.FAILED:
            state.set_stage(stage, StageStatus.PENDING)
    return reset


def catalogue(backend: SyncStateBackend) -> tuple[SessionCatalog, list[str]]:
    """The backend as a :class:`SessionCatalog` and its session ids (the ledger hidden).

    Raises:
        Q2GoogleError: The backend cannot list or delete sessions.
    """
    if not isinstance(backend, SessionCatalog):
        raise Q2GoogleError(
            f"the state backend {backend!r} cannot list or delete sessions "
            "(it does not implement SessionCatalog)"
        )
    return backend, [found for found in backend.session_ids() if found != LEDGER_SESSION_ID]


def load_existing(backend: SyncStateBackend, session_id: str) -> SessionState:
    """Load a session that must exist.

    Raises:
        Q2GoogleError: There is no such session (the message says where it looked).
    """
    state = backend.load(session_id)
    if state is None:
        raise Q2GoogleError(
            f"no session {session_id!r} in {backend!r}: `q2google sessions list` shows them"
        )
    return state


def list_sessions(backend: SessionCatalog, session_ids: list[str]) -> list[SessionSummary]:
    """Summarize each session; one that cannot be read is listed as ``corrupt``, not fatal."""
    summaries = []
    for session_id in session_ids:
        try:
            state = backend.load(session_id)
        except StateCorruptError as error:
            summaries.append(SessionSummary.unreadable(session_id, str(error)))
            continue
        if state is not None:
            summaries.append(summarize(state))
    return summaries


def delete_session(backend: SessionCatalog, session_id: str, state: SessionState | None) -> None:
    """Delete a session, first making sure the ledger knows every file it delivered.

    A run that died between a batch's checkpoint and the ledger's leaves the session alone
    knowing some files are in Google Photos; they go to the ledger before the session goes,
    so no later session sends them again.

    Args:
        backend: Where the session is.
        session_id: The session.
        state: The session as loaded, or ``None`` when it cannot be read (corrupt).
    """
    if state is not None:
        ledger = DeliveryLedger(backend)
        delivered = [item for item in state.items.values() if item_outcome(item) == COMPLETED]
        news = [ledger.record(item) for item in delivered]  # every one, no short cut
        if any(news):
            ledger.save()
    backend.delete(session_id)
