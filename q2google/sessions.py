"""Stored sessions as a person sees them: a summary of each, and putting failures back to work.

``q2google sessions`` and the end of every ``q2google sync`` read sessions through
:func:`summarize`; ``q2google sessions retry`` calls :func:`reset_failed` before running.
"""

from __future__ import annotations

import logging
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from q2google.errors import (
    Q2GoogleError,
    SessionBusyError,
    StateCorruptError,
    StateWriteError,
)
from q2google.state import (
    LEDGER_SESSION_ID,
    DeliveryLedger,
    SessionCatalog,
    SessionLeasing,
    SessionState,
    SessionSummaries,
    StageName,
    StageStatus,
    StoredSummary,
    SyncStateBackend,
)
from q2google.state.outcomes import (
    COMPLETED,
    DEFERRED,
    FAILED,
    GONE,
    OUTCOMES,
    PENDING,
    SKIPPED,
    WAITING,
    item_outcome,
    last_error,
)
from q2google.state.summary import SummaryTracker

__all__ = [
    "COMPLETED",
    "CORRUPT",
    "DEFERRED",
    "FAILED",
    "GONE",
    "OUTCOMES",
    "PENDING",
    "SKIPPED",
    "WAITING",
    "SessionSummary",
    "catalogue",
    "delete_session",
    "item_outcome",
    "last_error",
    "list_sessions",
    "load_existing",
    "reset_failed",
    "summarize",
    "to_deliver",
]

logger = logging.getLogger(__name__)

CORRUPT = "corrupt"


def to_deliver(files: int, by_status: dict[str, int]) -> int:
    """Files that belong in Google Photos: all but the skipped and the gone."""
    return files - by_status.get(SKIPPED, 0) - by_status.get(GONE, 0)


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
    def from_stored(cls, stored: StoredSummary) -> SessionSummary:
        """The summary of a session as its backend keeps it (see :mod:`q2google.state.summary`).

        Args:
            stored: The stored summary.

        Returns:
            The same, with the session's status.
        """
        return cls(
            session_id=stored.session_id,
            status=stored.status,
            window=dict(stored.window),
            album=stored.album,
            files=stored.files,
            by_status=dict(stored.by_status),
            by_stage={stage: dict(counts) for stage, counts in stored.by_stage.items()},
            bytes_total=stored.bytes_total,
            bytes_completed=stored.bytes_completed,
            updated_at=stored.updated_at,
            failures=[dict(entry) for entry in stored.failures],
            held_back=[dict(entry) for entry in stored.held_back],
            new_since_last_run=stored.new_since_last_run,
            listings=stored.listings,
        )

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
    """Summarize a session for ``sessions list``, ``sessions show`` and a run's report.

    Args:
        state: The session.

    Returns:
        Its counts, every failed and held-back file included.
    """
    return SessionSummary.from_stored(SummaryTracker.of_state(state).summary())


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
    """Summarize each session; one that cannot be read is listed as ``corrupt``, not fatal.

    A backend that keeps summaries (:class:`~q2google.state.SessionSummaries`) gives each
    session's stored summary, so that no session is read whole. A session without one (stored
    by an older q2google) is summarized from its items once, and its summary stored then.

    Args:
        backend: Where the sessions are.
        session_ids: The sessions to list.

    Returns:
        Their summaries, in the order given (sessions deleted meanwhile left out).

    Raises:
        StateUnavailableError: The state store is out of reach.
    """
    summaries = []
    for session_id in session_ids:
        try:
            summary = _listed(backend, session_id)
        except StateCorruptError as error:
            summaries.append(SessionSummary.unreadable(session_id, str(error)))
            continue
        if summary is not None:
            summaries.append(summary)
    return summaries


def _listed(backend: SessionCatalog, session_id: str) -> SessionSummary | None:
    """One session's summary: the stored one, else counted from its items."""
    if isinstance(backend, SessionSummaries):
        stored = backend.session_summary(session_id)
        if stored is not None:
            return SessionSummary.from_stored(stored)
        try:
            state = _load_storing_summary(backend, session_id)
        except SessionBusyError:  # a run holds it: its own saves store the summary
            state = backend.load(session_id)
        except StateWriteError as error:  # a read-only or full state store: list it anyway
            logger.warning("the summary of session %s is not stored: %s", session_id, error)
            state = backend.load(session_id)
    else:
        state = backend.load(session_id)
    return None if state is None else summarize(state)


def _load_storing_summary(backend: SessionCatalog, session_id: str) -> SessionState | None:
    """Load a session that has no usable summary, and store its summary (under the session's
    lease, so that it never replaces the summary of a run going on).

    Raises:
        SessionBusyError: A run holds the session.
    """
    owned: AbstractContextManager[Any] = (
        backend.lease(session_id) if isinstance(backend, SessionLeasing) else nullcontext()
    )
    with owned:
        state = backend.load(session_id)
        if state is not None and not state.has_pending_changes:  # an older form: as it is
            backend.save(state)  # nothing changed: writes the summary only
    return state


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
