"""Summaries kept by backends: the optional :class:`SessionSummaries` protocol and the helper
both built-in backends use to keep a summary beside each session.

A backend that keeps summaries writes a session's :class:`~q2google.state.summary.StoredSummary`
in the same save as the records it summarizes, after them, whenever it changed: a summary never
counts what is not stored, and it is exact after every save that returned. What changed is
known without reading the session again: :class:`SummaryKeeper` keeps, per session saved or
loaded through the backend, each file's mark in memory, and a checkpoint replaces the marks of
the files it writes (see :class:`~q2google.state.summary.SummaryTracker`).

A summary written by a save that was cut short (a crash between the records and the summary)
may miss that checkpoint's changes. When the session's metadata was part of them, the summary's
``updated_at`` tells it apart and it is not used; in any case the session's next load counts
the session again, and its next save writes a summary that matches.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from q2google.errors import StateCorruptError
from q2google.state.base import SCHEMA_VERSION, SessionState, StateChanges
from q2google.state.ledger import LEDGER_SESSION_ID
from q2google.state.outcomes import mark_data
from q2google.state.summary import StoredSummary, SummaryMeta, SummaryTracker

LISTED_FILES_MAX = 100
"""A stored summary lists at most this many failed and this many held-back files (the first in
discovery order); its counts are exact whatever their number."""


@runtime_checkable
class SessionSummaries(Protocol):
    """A backend that keeps a summary of each session beside it (optional).

    ``q2google sessions list`` reads summaries instead of whole sessions when the backend has
    them. The backend writes a session's summary in ``save``, after the records it counts,
    whenever it changed; and also when the session was loaded without a summary that matches
    it, even if nothing else changed: so ``load`` then ``save`` of a session of an older
    q2google gives it one. :class:`SummaryKeeper` does the bookkeeping.
    """

    def session_summary(self, session_id: str) -> StoredSummary | None:
        """Return the session's stored summary, when it has one that matches its metadata.

        Args:
            session_id: The session.

        Returns:
            The summary; ``None`` when there is no such session, or no usable summary of it
            (written by an older q2google, torn, or left behind by a save cut short): the
            caller then summarizes the session from its items.

        Raises:
            StateCorruptError: The session's metadata cannot be read.
        """
        ...


def current_summary(meta: Mapping[str, Any], stored: object, where: str) -> StoredSummary | None:
    """Check a session's stored metadata and return its stored summary if it matches it.

    Args:
        meta: The session's stored metadata.
        stored: The stored summary, as read (``None`` when there is none).
        where: Where the metadata is, for the message.

    Returns:
        The summary, or ``None`` when there is none, it is unreadable, or it was made with
        other metadata (another session, or a save since).

    Raises:
        StateCorruptError: The metadata is not a valid session's.
    """
    version = meta.get("schema_version", 1)
    if isinstance(version, int) and version < SCHEMA_VERSION:
        return None  # an older form: read through load, which migrates it
    try:
        state = SessionState.from_parts(meta, (), ())
    except StateCorruptError as error:
        raise StateCorruptError(f"{where}: {error}") from None
    return matching_summary(state, stored)


def matching_summary(state: SessionState, stored: object) -> StoredSummary | None:
    """Read a stored summary, if it was made with the session's metadata as stored.

    Args:
        state: The session, or only its metadata (as loaded: no pending changes).
        stored: The stored summary, as read (``None`` when there is none).

    Returns:
        The summary, or ``None`` when there is none, it is unreadable, or it belongs to
        another session or to an earlier save of this one.
    """
    summary = StoredSummary.parse(stored)
    if summary is None or (summary.session_id, summary.updated_at) != (
        state.session_id,
        state.updated_at,
    ):
        return None
    return summary


@dataclass
class _Kept:
    """One session's tracker, the state object it counts, and the summary last written."""

    state: weakref.ref[SessionState]
    tracker: SummaryTracker
    written: dict[str, Any] | None


class SummaryKeeper:
    """Keep the summary of every session a backend saves, one checkpoint at a time.

    The backend calls :meth:`loaded` when it loads a session, and wraps each write in
    :meth:`checkpoint`, which says what summary to write along with the changes (if any). Saves
    of one session must not overlap (the pipeline serializes them); the delivery ledger has no
    summary.

    Args:
        limit: Failed and held-back files listed in a summary (see :data:`LISTED_FILES_MAX`).
    """

    def __init__(self, limit: int = LISTED_FILES_MAX) -> None:
        self.limit = limit
        self._kept: dict[str, _Kept] = {}
        self._lock = threading.Lock()

    def loaded(self, state: SessionState, stored: object) -> None:
        """Count a session just loaded, and remember whether its stored summary matches it.

        Args:
            state: The session as loaded (no pending changes).
            stored: Its stored summary as read (``None`` when it has none).
        """
        if state.session_id == LEDGER_SESSION_ID:
            return
        tracker = SummaryTracker.of_state(state)
        summary = matching_summary(state, stored)
        written = summary.to_dict() if summary is not None else None
        with self._lock:
            self._drop_dead()
            counted = self._summary(tracker)
            self._kept[state.session_id] = _Kept(
                weakref.ref(state), tracker, written if written == counted else None
            )

    def written(self, session_id: str) -> dict[str, Any] | None:
        """The summary last written (or found stored and right) for a session, if known.

        Inside :meth:`checkpoint` it is the one before that checkpoint's: a backend can write
        only the fields that changed.
        """
        with self._lock:
            kept = self._kept.get(session_id)
            return kept.written if kept is not None else None

    def forget(self, session_id: str) -> None:
        """Forget a session (deleted)."""
        with self._lock:
            self._kept.pop(session_id, None)

    @contextmanager
    def checkpoint(
        self, state: SessionState, changes: StateChanges
    ) -> Iterator[dict[str, Any] | None]:
        """Count ``changes`` and give the summary to write with them.

        Args:
            state: The session being saved.
            changes: What the save writes (from :meth:`SessionState.pending_changes`).

        Yields:
            The summary to write after the changes' records, as plain data; ``None`` when
            the stored one is still right. If the block raises, the session is counted anew
            at its next save, and that save writes its summary.
        """
        if state.session_id == LEDGER_SESSION_ID:
            yield None
            return
        with self._lock:
            kept = self._tracked(state, changes)
            changed = kept.written is None
            for key, data in changes.items:
                changed = kept.tracker.put(key, mark_data(data)) or changed
                changes.marks[key] = kept.tracker.mark(key)
            if changes.meta is not None:
                changed = kept.tracker.set_meta(SummaryMeta.of_meta(changes.meta)) or changed
            summary = self._summary(kept.tracker) if changed else None
            if summary is not None and summary == kept.written:
                summary = None
        try:
            yield summary
        except BaseException:
            self.forget(state.session_id)
            raise
        if summary is not None:
            with self._lock:
                kept.written = summary

    @contextmanager
    def saving(self, state: SessionState) -> Iterator[tuple[StateChanges, dict[str, Any] | None]]:
        """What a backend's save writes: the changes of ``state`` and its summary, if that
        changed (:meth:`SessionState.pending_changes`, then :meth:`checkpoint`). Both
        backends save through it: write the changes, then the summary, inside the block.

        Yields:
            The changes, and the summary to write after them (``None``: nothing to write).
            If the block raises, the changes stay pending and the summary is counted anew.
        """
        with state.pending_changes() as changes, self.checkpoint(state, changes) as summary:
            yield changes, summary

    def _tracked(self, state: SessionState, changes: StateChanges) -> _Kept:
        """The session's entry, counted anew when the save is whole or the state is not the
        one counted (it then counts as it is in memory: its unsaved changes are in
        ``changes``)."""
        kept = self._kept.get(state.session_id)
        if changes.full:
            tracker = SummaryTracker()
            tracker.meta = SummaryMeta.of_state(state)
        elif kept is None or kept.state() is not state:
            tracker = SummaryTracker.of_state(state)
        else:
            return kept
        kept = _Kept(weakref.ref(state), tracker, None)
        self._kept[state.session_id] = kept
        return kept

    def _summary(self, tracker: SummaryTracker) -> dict[str, Any]:
        return tracker.summary_data(self.limit)

    def _drop_dead(self) -> None:
        """Forget the sessions whose state is gone from memory (their next save counts anew)."""
        for session_id in [sid for sid, kept in self._kept.items() if kept.state() is None]:
            del self._kept[session_id]
