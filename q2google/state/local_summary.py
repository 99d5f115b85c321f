"""The JSON backend's session summaries: ``summary.json`` beside each session's ``meta.json``.

``{state_dir}/{session_id}/summary.json`` holds the session's
:class:`~q2google.state.summary.StoredSummary`. A save writes it after the checkpoint it counts
(and ``meta.json``), and only when it changed: a checkpoint that moves an upload's offset
writes no summary. It is replaced atomically but not fsynced, the file it replaces kept to be
written again the next time (see :func:`~q2google.state.local_writing.replace_derived`): it is
derived data, trusted only while its ``updated_at`` is the one of ``meta.json`` (which is
fsynced, and written before the journal when the metadata changes). After a power cut it may
lag like after a crash between the checkpoint and the summary (see
:mod:`q2google.state.summary_store`), or be torn, and is then counted again.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from q2google.errors import StateError
from q2google.state.local_files import META_FILE, layout_of, meta_from_file, read_meta, read_summary
from q2google.state.summary import StoredSummary
from q2google.state.summary_store import SummaryKeeper, current_summary

T = TypeVar("T")


class JsonSessionSummaries:
    """:class:`~q2google.state.SessionSummaries` for :class:`~q2google.state.JsonFileBackend`."""

    if TYPE_CHECKING:
        _summaries: SummaryKeeper

        def session_dir(self, session_id: str) -> Path: ...

        def _retrying(
            self,
            operation: Callable[[], T],
            verb: str,
            session_id: str,
            kind: type[StateError] = StateError,
        ) -> T: ...

    def session_summary(self, session_id: str) -> StoredSummary | None:
        """Return the session's summary from ``summary.json``, if it matches ``meta.json``.

        Args:
            session_id: The session.

        Returns:
            The summary; ``None`` when there is no such session, no ``summary.json`` (a
            session of an older q2google, or of the original layouts), or one that is torn or
            outdated.

        Raises:
            InvalidSessionIdError: The id is not allowed.
            StateCorruptError: ``meta.json`` is unreadable or invalid; the message names it.
            StateUnavailableError: The disk kept failing past the retries.
        """
        directory = self.session_dir(session_id)
        return self._retrying(lambda: self._summary_once(directory, session_id), "read", session_id)

    @staticmethod
    def _summary_once(directory: Path, session_id: str) -> StoredSummary | None:
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            return None
        meta = read_meta(meta_path, session_id)
        layout_of(meta, meta_path)  # refuses a newer layout
        return current_summary(meta_from_file(meta), read_summary(directory), str(meta_path))
