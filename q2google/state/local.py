"""JSON files on the local disk: the default, embedded state backend.

Layout under the state directory, one subdirectory per session::

    {state_dir}/{session_id}/meta.json          session metadata and stage statuses
    {state_dir}/{session_id}/items/{item}.json  one file per ItemState
    {state_dir}/{session_id}/batches/{n}.json   one file per BatchState
    {state_dir}/{session_id}/summary.json       the session's counts, for ``sessions list``

Every file is replaced atomically (temporary file in the same directory, flush, fsync,
``os.replace``, then one fsync of each directory touched), so a crash at any instant leaves
each file either as it was or as it is now. A save writes only what changed since the last
one. ``meta.json`` is written after the items and batches (only ``summary.json``, derived from
them, comes after it): a session directory without it is an unfinished first save and is not
a session. Sessions stored by older versions as a flat ``{session_id}.json``
are read transparently and moved to the layout above on their next save.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlsplit
from urllib.request import url2pathname

import pydantic_core

from q2google.errors import StateCorruptError, StateWriteError, UnknownBackendError
from q2google.state.base import (
    SCHEMA_VERSION,
    BatchState,
    ItemState,
    SessionState,
    StateChanges,
    refuse_other_session,
    validate_session_id,
)
from q2google.state.local_counts import JsonRequestCounts
from q2google.state.local_files import (
    BATCHES_DIR,
    ITEM_FILE_RE,
    ITEMS_DIR,
    META_FILE,
    SUMMARY_FILE,
    json_files,
    parse_record,
    read_flat_file,
    read_json,
    read_meta,
    read_original_directory,
    read_summary,
    safe_ids,
)
from q2google.state.local_ledger import JsonLeasesAndClaims
from q2google.state.local_summary import JsonSessionSummaries
from q2google.state.retrying import DEFAULT_RETRY_SECONDS
from q2google.state.summary_store import SummaryKeeper

if TYPE_CHECKING:
    from q2google.config import Q2GoogleSettings

logger = logging.getLogger(__name__)

MIGRATED_SUFFIX = ".migrated"
_MAX_READABLE_NAME = 120
_PARALLEL_WRITES_FROM = 64
_WRITER_THREADS = 8


_DELETED_PREFIX = ".deleted-"
"""Hidden name of a session directory being deleted."""


class JsonFileBackend(JsonLeasesAndClaims, JsonRequestCounts, JsonSessionSummaries):
    """Checkpoint sessions as a directory of JSON files each.

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
            StateCorruptError: A stored file is unreadable; it names the file, and nothing is
                written or repaired.
            StateUnavailableError: The disk kept failing (an I/O error) past the retries.
        """
        self.session_dir(session_id)
        return self._retrying(lambda: self._load_once(session_id), "read", session_id)

    def _load_once(self, session_id: str) -> SessionState | None:
        directory = self.session_dir(session_id)
        meta_path = directory / META_FILE
        if meta_path.is_file():
            return self._load_directory(session_id, directory)
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
        directory = self.session_dir(state.session_id)
        first_save = not (directory / META_FILE).is_file()
        if first_save:
            state.mark_all_dirty()
        with (
            state.pending_changes() as changes,
            self._summaries.checkpoint(state, changes) as summary,
        ):
            if changes.is_empty and summary is None:
                return
            if changes.full and not first_save:
                self._refuse_other_session(directory, state)
            self._write(directory, changes, summary, first_save=first_save)
        if first_save:
            self._retire_legacy(state.session_id)

    def _refuse_other_session(self, directory: Path, state: SessionState) -> None:
        """Refuse to write a whole session over a different one stored under the same id."""
        stored = read_json(directory / META_FILE)
        if not isinstance(stored, dict):
            raise StateCorruptError(f"{directory / META_FILE}: not a JSON object")
        refuse_other_session(stored, state, str(self.state_dir))

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

    def _load_directory(self, session_id: str, directory: Path) -> SessionState:
        meta_path = directory / META_FILE
        meta = read_meta(meta_path, session_id)
        version = meta.get("schema_version", 1)
        if isinstance(version, int) and version < SCHEMA_VERSION:
            return read_original_directory(directory, meta)
        items = [
            parse_record(ItemState, path)
            for path in json_files(directory / ITEMS_DIR)
            if ITEM_FILE_RE.search(path.name)
        ]
        batches = [parse_record(BatchState, path) for path in json_files(directory / BATCHES_DIR)]
        try:
            state = SessionState.from_parts(meta, items, batches)
        except StateCorruptError as error:
            raise StateCorruptError(f"{meta_path}: {error}") from None
        self._summaries.loaded(state, read_summary(directory))
        return state

    # -- writing -------------------------------------------------------------------------------

    def _write(
        self,
        directory: Path,
        changes: StateChanges,
        summary: dict[str, Any] | None,
        *,
        first_save: bool,
    ) -> None:
        items_dir, batches_dir = directory / ITEMS_DIR, directory / BATCHES_DIR
        if first_save:
            self._prepare_session_dir(directory)
        writes: list[tuple[Path, dict[str, Any]]] = [
            (items_dir / self.item_file_name(key), data) for key, data in changes.items
        ]
        writes += [(batches_dir / f"{index}.json", data) for index, data in changes.batches]
        if len(writes) >= _PARALLEL_WRITES_FROM:
            # fsync waits on the disk, not the CPU: overlap many of them for a full save.
            with ThreadPoolExecutor(_WRITER_THREADS, thread_name_prefix="q2google-save") as pool:
                list(pool.map(lambda write: self._write_file(*write), writes))
        else:
            for path, data in writes:
                self._write_file(path, data)
        legacy = (
            self._drop_stale(directory, {path.name for path, _ in writes}) if (changes.full) else []
        )
        if changes.items or changes.full:
            self._sync_dir(items_dir)
        if changes.batches or changes.full:
            self._sync_dir(batches_dir)
        if changes.meta is not None:
            self._write_file(directory / META_FILE, changes.meta)
        if summary is not None:  # after what it counts: it never counts what is not stored
            self._write_file(directory / SUMMARY_FILE, summary)
        if changes.meta is not None or summary is not None:
            self._sync_dir(directory)
        for stale in legacy:
            stale.unlink(missing_ok=True)

    @staticmethod
    def _drop_stale(directory: Path, kept: set[str]) -> list[Path]:
        """Delete records a full save no longer has; return the original layout's item files,
        which its ``meta.json`` still needs until the new one is written."""
        legacy: list[Path] = []
        for sub in (directory / ITEMS_DIR, directory / BATCHES_DIR):
            for stale in json_files(sub):
                if stale.name in kept:
                    continue
                if sub.name == ITEMS_DIR and not ITEM_FILE_RE.search(stale.name):
                    legacy.append(stale)
                else:
                    stale.unlink()
        return legacy

    def _prepare_session_dir(self, directory: Path) -> None:
        """Create the session's directories, clearing what an unfinished first save left."""
        new_root = not self.state_dir.exists()
        for sub in (directory / ITEMS_DIR, directory / BATCHES_DIR):
            sub.mkdir(parents=True, exist_ok=True)
            for leftover in json_files(sub, include_temporary=True):
                leftover.unlink()
        if new_root:
            self._sync_dir(self.state_dir.parent)
        self._sync_dir(self.state_dir)
        self._sync_dir(directory)

    def _write_file(self, path: Path, data: dict[str, Any]) -> None:
        payload = pydantic_core.to_json(data, indent=1)
        temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(payload)
                handle.flush()
                if self.durable:
                    os.fsync(handle.fileno())
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise

    def _sync_dir(self, directory: Path) -> None:
        if not self.durable:
            return
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _retire_legacy(self, session_id: str) -> None:
        legacy = self.legacy_file(session_id)
        if legacy.is_file():
            target = legacy.with_name(legacy.name + MIGRATED_SUFFIX)
            os.replace(legacy, target)
            logger.info(
                "moved session %s to the directory layout; old file kept as %s", session_id, target
            )
