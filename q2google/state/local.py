"""JSON files on the local disk: the default, embedded state backend.

Layout under the state directory, one subdirectory per session::

    {state_dir}/{session_id}/meta.json       session metadata; marks the directory a session
    {state_dir}/{session_id}/journal.jsonl   the session's checkpoints, appended
    {state_dir}/{session_id}/summary.json    the session's counts, for ``sessions list``

A save appends what changed (its records, and the metadata if it changed) to the journal as
one checkpoint, in one write, then fsyncs it: a checkpoint is one append and one fsync, a crash
leaves the previous checkpoint or the new one, and a load reads one file (see
:mod:`q2google.state.local_journal`). The journal is rewritten, compact, when it grows much
larger than the session. It is the truth; ``meta.json`` is a copy of its metadata (with the
layout's ``schema_version``, 3), replaced atomically *before* the journal when the metadata
changes, so that a summary made before that checkpoint is not trusted after it (see
:mod:`q2google.state.local_writing` for the order of the writes). A session's first save writes
the journal, then ``meta.json``: a directory without it is an unfinished first save and is not
a session.

Sessions stored by older versions are read as they are and moved to the journal on their next
save that changes something: one file per record (``items/{item}.json``,
``batches/{n}.json``; schema version 2), the original q2google's directory (schema version
1), or a flat ``{session_id}.json``. The journal is written first, then ``meta.json`` (until
it is, the old files are the session), then the old directories are removed.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import secrets
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit
from urllib.request import url2pathname

from q2google.errors import StateCorruptError, StateWriteError, UnknownBackendError
from q2google.state.base import (
    SCHEMA_VERSION,
    SessionState,
    refuse_other_session,
    validate_session_id,
)
from q2google.state.ledger import LEDGER_SESSION_ID
from q2google.state.local_counts import JsonRequestCounts
from q2google.state.local_files import (
    JOURNAL_LAYOUT_VERSION,
    META_FILE,
    SUMMARY_FILE,
    gc_paused,
    layout_of,
    meta_from_file,
    read_flat_file,
    read_meta,
    read_old_layout,
    read_summary,
    safe_ids,
)
from q2google.state.local_journal import read_journal
from q2google.state.local_journal_format import JOURNAL_FILE
from q2google.state.local_ledger import JsonLeasesAndClaims
from q2google.state.local_summary import JsonSessionSummaries
from q2google.state.local_writing import JsonSessionWriting, TrackedJournal
from q2google.state.retrying import DEFAULT_RETRY_SECONDS
from q2google.state.settled import settled_item, settles
from q2google.state.summary_store import SummaryKeeper

if TYPE_CHECKING:
    from q2google.config import Q2GoogleSettings

logger = logging.getLogger(__name__)

MIGRATED_SUFFIX = ".migrated"
_MAX_READABLE_NAME = 120
_OLD_LAYOUT_READS = 3
"""Reads of a session in an older layout, while its migration replaces it under the reader."""

_DELETED_PREFIX = ".deleted-"
"""Hidden name of a session directory being deleted."""


class JsonFileBackend(
    JsonSessionWriting, JsonLeasesAndClaims, JsonRequestCounts, JsonSessionSummaries
):
    """Checkpoint sessions as a directory each: an append-only journal and two JSON files.

    Also a :class:`~q2google.state.SessionLeasing` (OS file locks), a
    :class:`~q2google.state.LedgerClaims` (see :mod:`q2google.state.local_ledger`), a
    :class:`~q2google.state.RequestCounts` (see :mod:`q2google.state.local_counts`) and a
    :class:`~q2google.state.SessionSummaries` (see :mod:`q2google.state.local_summary`).

    Args:
        state_dir: Root directory; created on the first save.
        durable: fsync files and directories so a checkpoint survives a power cut, not only
            a crash of the process. Leave on; switch off only for throwaway test data.
        retry_seconds: How long a full disk or an I/O error is retried, with backoff, before
            a :class:`~q2google.errors.StateUnavailableError` (exit 75).
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        durable: bool = True,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
    ) -> None:
        self.state_dir = Path(state_dir)
        self.durable = durable
        self.retry_seconds = retry_seconds
        self._summaries = SummaryKeeper()
        self._tracked: dict[str, TrackedJournal] = {}

    def __repr__(self) -> str:
        return f"JsonFileBackend({str(self.state_dir)!r})"

    @classmethod
    def from_settings(cls, settings: Q2GoogleSettings) -> JsonFileBackend:
        """Build the backend for ``settings``: ``file://`` URI path, else ``state_dir``.

        Raises:
            UnknownBackendError: The ``file:`` URI names a remote host.
        """
        uri = settings.state_uri
        if not uri:
            return cls(settings.state_dir)
        parts = urlsplit(uri)
        if parts.netloc not in ("", "localhost"):
            raise UnknownBackendError(
                f"Q2GOOGLE_STATE_URI: a file URI names a local directory, as "
                f"file:///absolute/path, not the host {parts.netloc!r}"
            )
        path = url2pathname(unquote(parts.path))
        return cls(Path(path) if path else settings.state_dir)

    # -- paths -------------------------------------------------------------------------------

    def session_dir(self, session_id: str) -> Path:
        """Return the directory of a session (validating the id first).

        Raises:
            InvalidSessionIdError: The id could not be a safe directory name.
        """
        return self.state_dir / validate_session_id(session_id)

    def legacy_file(self, session_id: str) -> Path:
        """Return where an older q2google kept the session as one flat JSON file."""
        return self.state_dir / f"{validate_session_id(session_id)}.json"

    @staticmethod
    def item_file_name(item_key: str) -> str:
        """Return the file name that stores an item.

        The key is percent-encoded (so ``/``, ``..`` or unicode cannot escape or confuse the
        directory) and followed by a short hash of the exact key, so that keys differing only
        in case stay apart on case-insensitive filesystems (macOS, Windows).
        """
        readable = quote(item_key, safe="")[:_MAX_READABLE_NAME]
        if readable.startswith("."):  # never a hidden name: those are temporary files
            readable = "%2E" + readable[1:]
        digest = hashlib.sha256(item_key.encode("utf-8")).hexdigest()[:10]
        return f"{readable}.{digest}.json"

    # -- SyncStateBackend ----------------------------------------------------------------------

    def load(self, session_id: str) -> SessionState | None:
        """Read a session, or return ``None`` when it was never saved here.

        Raises:
            InvalidSessionIdError: The id is not allowed.
            StateCorruptError: A stored file is unreadable; it names the file (and the line of
                the journal), and nothing is written or repaired.
            StateUnavailableError: The disk kept failing (an I/O error) past the retries.
        """
        self.session_dir(session_id)
        return self._retrying(lambda: self._load_once(session_id), "read", session_id)

    def load_unsettled(self, session_id: str) -> SessionState | None:
        """Read a session without its settled files (:mod:`q2google.state.settled`): the
        journal is read once, and only the files still to do are built. Sessions in an older
        layout are read whole. It raises what :meth:`load` raises."""
        self.session_dir(session_id)
        return self._retrying(
            lambda: self._load_once(session_id, unsettled=True), "read", session_id
        )

    def load_meta(self, session_id: str) -> SessionState | None:
        """Read a session's metadata alone (its ``meta.json``), for the checks before a run;
        a session in an older layout is read whole. It raises what :meth:`load` raises."""
        directory = self.session_dir(session_id)

        def read() -> SessionState | None:
            meta_path = directory / META_FILE
            if not meta_path.is_file():
                return self._load_once(session_id)
            meta = read_meta(meta_path, session_id)
            if layout_of(meta, meta_path) != JOURNAL_LAYOUT_VERSION:
                return self._load_once(session_id)
            try:
                return SessionState.meta_only(meta_from_file(meta))
            except StateCorruptError as error:
                raise StateCorruptError(f"{meta_path}: {error}") from None

        return self._retrying(read, "read", session_id)

    def _load_once(self, session_id: str, *, unsettled: bool = False) -> SessionState | None:
        directory = self.session_dir(session_id)
        meta_path = directory / META_FILE
        with gc_paused():
            if meta_path.is_file():
                if session_id == LEDGER_SESSION_ID:
                    return self._load_ledger(directory)
                return self._load_directory(session_id, directory, unsettled=unsettled)
            legacy = self.legacy_file(session_id)
            if legacy.is_file():
                return read_flat_file(session_id, legacy)
        return None

    def save(self, state: SessionState) -> None:
        """Write what changed in ``state`` since it was loaded or last saved.

        Raises:
            InvalidSessionIdError: The id is not allowed.
            StateWriteError: The disk refused a write; the changes stay pending in ``state``
                and the stored checkpoint is the previous one, still loadable.
            StateUnavailableError: The disk stayed full (or failing) past the retries; likewise.
        """
        self.session_dir(state.session_id)
        self._retrying(lambda: self._save_once(state), "write", state.session_id, StateWriteError)

    def _save_once(self, state: SessionState) -> None:
        if state.session_id == LEDGER_SESSION_ID:
            self._save_ledger(state)
            return
        directory = self.session_dir(state.session_id)
        layout, stored = self._stored_layout(directory, state.session_id)
        if layout is None:
            state.mark_all_dirty()
        with self._summaries.saving(state) as (changes, summary):
            tracked = self._tracked.get(state.session_id)
            chores = tracked is not None and (tracked.meta_behind is not None or tracked.old_dirs)
            if changes.is_empty and summary is None and not chores:
                return
            if changes.full and layout is not None:
                stored = stored or read_meta(directory / META_FILE, state.session_id)
                refuse_other_session(meta_from_file(stored), state, str(self.state_dir))
            if layout == JOURNAL_LAYOUT_VERSION and not changes.full:
                if chores or not changes.is_empty:
                    self._checkpoint(directory, changes, stored)
            elif layout is None or changes.full or not changes.is_empty:
                self._rewrite(directory, changes, layout, stored)
            if summary is not None:  # after what it counts: it never counts what is not stored
                self._write_file(directory / SUMMARY_FILE, summary)
        if layout is None:
            self._retire_legacy(state.session_id)

    # -- sessions catalogue (beyond the protocol) ----------------------------------------------

    def session_ids(self) -> list[str]:
        """Return the ids of the sessions stored here, sorted."""
        if not self.state_dir.is_dir():
            return []
        found = set()
        for entry in self.state_dir.iterdir():
            name = entry.name
            if entry.is_dir() and (entry / META_FILE).is_file():
                found.add(name)
            elif name.endswith(".json") and entry.is_file():
                found.add(name.removesuffix(".json"))
        return sorted(safe_ids(found))

    def delete(self, session_id: str) -> bool:
        """Delete a session (and an older layout's file of it); return whether one existed.

        The session's directory is first renamed to a hidden name (atomic), then removed, so a
        crash midway leaves either the whole session or none of it; the next delete clears
        hidden leftovers.

        Raises:
            InvalidSessionIdError: The id is not allowed.
            StateWriteError: The disk refused.
        """
        directory = self.session_dir(session_id)
        legacy = self.legacy_file(session_id)
        found = False
        self._summaries.forget(session_id)
        self._tracked.pop(session_id, None)
        try:
            if directory.is_dir():
                doomed = self.state_dir / f"{_DELETED_PREFIX}{session_id}.{secrets.token_hex(4)}"
                os.replace(directory, doomed)
                self._sync_dir(self.state_dir)
                found = True
            if legacy.is_file():
                legacy.unlink()
                found = True
            legacy.with_name(legacy.name + MIGRATED_SUFFIX).unlink(missing_ok=True)
            for leftover in self.state_dir.glob(f"{_DELETED_PREFIX}*"):
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError as error:
            raise StateWriteError(
                f"cannot delete session {session_id!r} under {self.state_dir}: "
                f"{error.strerror or error}"
            ) from error
        return found

    # -- reading -------------------------------------------------------------------------------

    def _load_directory(
        self, session_id: str, directory: Path, *, unsettled: bool = False
    ) -> SessionState:
        """Read a session directory in whichever layout its ``meta.json`` names."""
        meta_path = directory / META_FILE
        attempt = 1
        while True:
            before = _file_identity(meta_path)
            meta = read_meta(meta_path, session_id)
            layout = layout_of(meta, meta_path)
            if layout == JOURNAL_LAYOUT_VERSION:
                return self._load_journal(session_id, directory, meta, unsettled=unsettled)
            state = read_old_layout(directory, meta, layout)
            if _file_identity(meta_path) == before or attempt == _OLD_LAYOUT_READS:
                break  # else a save moved it to the journal while it was being read
            attempt += 1
        if layout == SCHEMA_VERSION:
            self._summaries.loaded(state, read_summary(directory))
        return state

    def _load_journal(
        self, session_id: str, directory: Path, meta: dict[str, Any], *, unsettled: bool = False
    ) -> SessionState:
        """Read a session kept in a journal (``meta`` is its ``meta.json``)."""
        try:  # a copy of the journal's, but what `sessions list` reads: it must be valid too
            SessionState.from_parts(meta_from_file(meta), (), ())
        except StateCorruptError as error:
            raise StateCorruptError(f"{directory / META_FILE}: {error}") from None
        settle = None
        if unsettled and settles(meta):
            album = meta.get("album_title")
            settle = functools.partial(settled_item, album_title=album if album else None)
        journal = read_journal(directory / JOURNAL_FILE, settle)
        state = journal.session()
        self._track(session_id, directory, journal, meta)
        self._summaries.loaded(state, read_summary(directory))
        return state

    def _stored_layout(
        self, directory: Path, session_id: str
    ) -> tuple[int | None, dict[str, Any] | None]:
        """Return the stored session's layout (``None``: none) and its ``meta.json``, which is
        not read when the journal is the one this backend last read or wrote."""
        tracked = self._tracked.get(session_id)
        if tracked is not None:
            try:
                if tracked.mark.matches(os.stat(directory / JOURNAL_FILE)):
                    return JOURNAL_LAYOUT_VERSION, None
            except FileNotFoundError:
                pass
            self._tracked.pop(session_id, None)
        meta_path = directory / META_FILE
        if not meta_path.is_file():
            return None, None
        meta = read_meta(meta_path, session_id)
        return layout_of(meta, meta_path), meta

    def _retire_legacy(self, session_id: str) -> None:
        """Set an older version's flat file aside once its session is saved here."""
        legacy = self.legacy_file(session_id)
        if legacy.is_file():
            target = legacy.with_name(legacy.name + MIGRATED_SUFFIX)
            os.replace(legacy, target)
            logger.info(
                "moved session %s to the journal layout; old file kept as %s", session_id, target
            )


def _file_identity(path: Path) -> tuple[int, int] | None:
    """Inode and mtime of a file (``None``: absent), to see it replaced meanwhile."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_mtime_ns
