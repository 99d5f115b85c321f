"""The JSON backend's writes: a checkpoint appended to a session's journal (truncating an
unfinished write first), a whole journal replaced atomically (a first save, a whole save, a
compaction, the move of an older layout), ``meta.json``.

The order of the writes is what makes a crash at any instant leave a loadable session, the
previous checkpoint or the new one (see :mod:`q2google.state.local` for the layout):

- a checkpoint is one append to the journal, then an fsync: readers ignore an unfinished one;
- when the metadata changes, ``meta.json`` (a copy of the journal's) is replaced *before* the
  append: a summary made for the stored metadata is then never trusted for a checkpoint that
  did not make it (``meta.json`` behind the journal would pass it), and ``meta.json`` ahead of
  the journal is noticed on load and written again by the next save;
- a whole journal is written to a temporary file and moved into place;
- a first save or the move of an older layout writes the journal, then ``meta.json`` (the
  switch: until then the directory is no session, or the old layout's), then removes the old
  layout's directories.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic_core

from q2google.errors import StateCorruptError, StateWriteError
from q2google.state.base import ItemState, SessionState, StateChanges
from q2google.state.local_compaction import compacted, needs_compaction, needs_tidying
from q2google.state.local_files import (
    BATCHES_DIR,
    ITEMS_DIR,
    JOURNAL_LAYOUT_VERSION,
    META_FILE,
    SUMMARY_FILE,
    gc_paused,
    meta_for_file,
    read_old_layout,
)
from q2google.state.local_journal import Journal, read_journal
from q2google.state.local_journal_format import (
    JOURNAL_FILE,
    JournalMark,
    encode_checkpoint,
    file_identity,
)
from q2google.state.local_links import replace_file


@dataclass(slots=True)
class TrackedJournal:
    """What the backend knows of a journal it read or wrote, so that a save need not read it.

    Attributes:
        mark: Where its committed checkpoints end, and the file as last seen.
        meta_behind: The journal's metadata when ``meta.json`` differs from it (a save was cut
            between the two): the next save writes it to ``meta.json``.
        old_dirs: An older layout's ``items/`` or ``batches/`` is still there, to remove.
    """

    mark: JournalMark
    meta_behind: dict[str, Any] | None = None
    old_dirs: bool = False


class JsonSessionWriting:
    """The writing half of :class:`~q2google.state.JsonFileBackend`."""

    if TYPE_CHECKING:  # provided by JsonFileBackend
        state_dir: Path
        durable: bool
        _tracked: dict[str, TrackedJournal]

        def session_dir(self, session_id: str) -> Path: ...
        def _record_once(self, entries: Sequence[ItemState]) -> None: ...

    def _track(
        self, session_id: str, directory: Path, journal: Journal, meta_file: dict[str, Any]
    ) -> TrackedJournal:
        """Remember a journal just read, and what its session directory needs put right."""
        journal_meta = journal.meta[1] if journal.meta is not None else None
        behind = None
        if journal_meta is not None and _without_version(journal_meta) != _without_version(
            meta_file
        ):
            behind = journal_meta
        old_dirs = (directory / ITEMS_DIR).exists() or (directory / BATCHES_DIR).exists()
        tracked = TrackedJournal(journal.mark, behind, old_dirs)
        self._tracked[session_id] = tracked
        return tracked

    def _checkpoint(
        self, directory: Path, changes: StateChanges, stored: dict[str, Any] | None
    ) -> None:
        """Append the changes of a session kept in a journal (or rewrite it, when due).

        Args:
            directory: The session's directory.
            changes: What to write.
            stored: Its ``meta.json``, when read already.
        """
        path = directory / JOURNAL_FILE
        session_id = changes.session_id
        tracked = self._tracked.get(session_id)
        if tracked is None:
            with gc_paused():
                journal = read_journal(path)
            tracked = self._track(session_id, directory, journal, stored or {})
        meta = changes.meta if changes.meta is not None else tracked.meta_behind
        if meta is not None:  # before the journal: see the module's docstring
            self._write_meta(directory, meta)
            tracked.meta_behind = None
        if not changes.is_empty:
            payload, lines = encode_checkpoint(changes.meta, changes.items, changes.batches)
            self._tracked.pop(session_id, None)  # until the journal is known again
            if needs_compaction(tracked.mark.lines + lines, tracked.mark.live):
                # The collector stays on: the run goes on meanwhile, and its garbage with it
                # (paused, it left 13 MiB behind at each compaction of 100,000 files).
                chunks, lines = compacted(
                    path, tracked.mark.lines, changes.meta, changes.items, changes.batches
                )
                tracked.mark = write_journal(path, chunks, lines, durable=self.durable)
            else:
                tracked.mark = append_checkpoint(
                    path, payload, lines, tracked.mark, durable=self.durable
                )
            self._tracked[session_id] = tracked
        if tracked.old_dirs:
            tracked.old_dirs = False
            self._remove_old_dirs(directory)

    def tidy(self, session_id: str) -> bool:
        """Rewrite a session's journal compact if it is much longer than its records
        (:func:`~q2google.state.local_compaction.needs_tidying`); call it holding the
        session's lease (its run ends).

        Returns:
            Whether it was rewritten (not when this backend has not read or written it, or
            it changed since).

        Raises:
            StateError: It cannot be read or rewritten (it is left as it was).
        """
        tracked = self._tracked.get(session_id)
        if tracked is None or not needs_tidying(tracked.mark.lines, tracked.mark.live):
            return False
        path = self.session_dir(session_id) / JOURNAL_FILE
        try:
            if not tracked.mark.matches(os.stat(path)):
                return False
        except OSError:
            return False
        self._tracked.pop(session_id, None)  # until the journal is known again
        chunks, lines = compacted(path, tracked.mark.lines, None, [], [])
        if not needs_tidying(tracked.mark.lines, lines - 1):  # its records grew with it
            tracked.mark = replace(tracked.mark, live=lines - 1)
            self._tracked[session_id] = tracked
            return False
        try:
            tracked.mark = write_journal(path, chunks, lines, durable=self.durable)
        except OSError as error:
            raise StateWriteError(f"cannot rewrite {path}: {error.strerror or error}") from error
        self._tracked[session_id] = tracked
        return True

    def _rewrite(
        self,
        directory: Path,
        changes: StateChanges,
        layout: int | None,
        stored: dict[str, Any] | None,
    ) -> None:
        """Write a whole journal: a first save, a whole save, or the move of an older layout.

        Args:
            directory: The session's directory.
            changes: What to write; unless they are the whole session, the records of the
                older layout they do not change are read again and written with them.
            layout: The stored session's layout (``None``: there is none).
            stored: Its ``meta.json``, when there is one.

        Raises:
            StateCorruptError: The older layout cannot be read.
        """
        session_id = changes.session_id
        meta: dict[str, Any] | None = changes.meta
        items: dict[str, dict[str, Any]] = dict(changes.items)
        batches: dict[int, dict[str, Any]] = dict(changes.batches)
        if not changes.full and layout is not None and stored is not None:
            with gc_paused():
                old = read_old_layout(directory, stored, layout)  # the records not changed
            items = {key: item.to_dict() for key, item in old.items.items()} | items
            batches = {index: batch.to_dict() for index, batch in old.batches.items()} | batches
            meta = meta if meta is not None else old.meta_dict()
        if meta is None:  # a whole save always has its metadata
            raise StateCorruptError(f"session {session_id!r}: a whole save without metadata")
        if layout is None:
            self._prepare_session_dir(directory)
        elif layout == JOURNAL_LAYOUT_VERSION:
            self._write_meta(directory, meta)  # before the journal: see the module's docstring
        self._tracked.pop(session_id, None)
        mark = self._write_journal(directory / JOURNAL_FILE, meta, items, batches)
        if layout != JOURNAL_LAYOUT_VERSION:
            self._write_meta(directory, meta)  # the switch: now the session is the journal
        self._tracked[session_id] = TrackedJournal(mark)
        self._remove_old_dirs(directory)

    def _write_journal(
        self,
        path: Path,
        meta: dict[str, Any] | None,
        items: dict[str, dict[str, Any]],
        batches: dict[int, dict[str, Any]],
    ) -> JournalMark:
        """Replace the journal with one checkpoint of these records."""
        payload, lines = encode_checkpoint(meta, items.items(), sorted(batches.items()))
        return write_journal(path, [payload], lines, durable=self.durable)

    def _write_meta(self, directory: Path, meta: dict[str, Any]) -> None:
        """Replace ``meta.json`` (the layout's version, fsynced, its directory too)."""
        self._write_file(directory / META_FILE, meta_for_file(meta))
        self._sync_dir(directory)

    def _remove_old_dirs(self, directory: Path) -> None:
        """Remove an older layout's directories (once ``meta.json`` names the journal)."""
        removed = False
        for name in (ITEMS_DIR, BATCHES_DIR):
            if (directory / name).is_dir():
                shutil.rmtree(directory / name, ignore_errors=True)
                removed = True
        if removed:
            self._sync_dir(directory)

    def _save_ledger(self, state: SessionState) -> None:
        """Save the delivery ledger as its own layout keeps it, a file per entry (entries are
        added or replaced, never dropped: the ledger only grows)."""
        with state.pending_changes() as changes:
            self._record_once([ItemState.from_dict(data) for _, data in changes.items])

    def _prepare_session_dir(self, directory: Path) -> None:
        """Create the session's directory, clearing what an unfinished first save left."""
        new_root = not self.state_dir.exists()
        directory.mkdir(parents=True, exist_ok=True)
        for name in (ITEMS_DIR, BATCHES_DIR):  # of an older q2google's unfinished first save
            shutil.rmtree(directory / name, ignore_errors=True)
        for leftover in directory.glob(".*.tmp"):
            leftover.unlink()
        if new_root:
            self._sync_dir(self.state_dir.parent)
        self._sync_dir(self.state_dir)

    def _write_file(self, path: Path, data: dict[str, Any]) -> None:
        """Replace one JSON file atomically, fsynced (``summary.json``: see
        :func:`replace_derived`)."""
        payload = pydantic_core.to_json(data, indent=1)
        if path.name == SUMMARY_FILE:
            replace_derived(path, payload)
            return
        replace_file(path, payload, durable=self.durable)

    def _sync_dir(self, directory: Path) -> None:
        """fsync a directory, unless the backend is not durable."""
        if self.durable:
            sync_directory(directory)


def _without_version(meta: dict[str, Any]) -> dict[str, Any]:
    """Metadata but its schema version (the journal's and ``meta.json``'s differ there)."""
    return {key: value for key, value in meta.items() if key != "schema_version"}


def append_checkpoint(
    path: Path, payload: bytes, lines: int, mark: JournalMark, *, durable: bool
) -> JournalMark:
    """Append a checkpoint after the committed ones, in one write, then fsync.

    Anything after ``mark.end`` (an unfinished write) is truncated first. If the write fails
    midway, what it wrote is ignored by readers and truncated by the next append.

    Args:
        path: The journal.
        payload: The checkpoint, from :func:`encode_checkpoint`.
        lines: Its number of lines.
        mark: Where the committed checkpoints end (from :func:`read_journal` or the last
            write); the file must be the one it describes.
        durable: fsync the file.

    Returns:
        Where the committed checkpoints end now.
    """
    fd = os.open(path, os.O_WRONLY)
    try:
        if os.fstat(fd).st_size != mark.end:
            os.ftruncate(fd, mark.end)
        _write_all(fd, payload, mark.end)
        if durable:
            os.fsync(fd)
        status = os.fstat(fd)
    finally:
        os.close(fd)
    return JournalMark(
        file_identity(status), mark.end + len(payload), mark.lines + lines, mark.live
    )


def write_journal(path: Path, chunks: Iterable[bytes], lines: int, *, durable: bool) -> JournalMark:
    """Replace a journal (or create it) atomically with ``chunks``.

    Args:
        path: The journal.
        chunks: Its whole content, in order: one checkpoint of every live record.
        lines: Its number of lines (the records, and the commit line).
        durable: fsync the file and its directory.

    Returns:
        Where its committed checkpoints end.
    """
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):  # of a rewrite cut short
        leftover.unlink(missing_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            size = 0
            for chunk in chunks:
                _write_all(fd, chunk, size)
                size += len(chunk)
            if durable:
                os.fsync(fd)
            status = os.fstat(fd)
        finally:
            os.close(fd)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if durable:
        sync_directory(path.parent)
    return JournalMark(file_identity(status), size, lines, lines - 1)


def sync_directory(directory: Path) -> None:
    """fsync a directory, so that the names created or replaced in it are durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, payload: bytes, offset: int) -> None:
    """Write all of ``payload`` at ``offset`` (a write may take only part of it)."""
    view = memoryview(payload)
    while view:
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(errno.EIO, "the disk accepted no bytes")
        view, offset = view[written:], offset + written


def replace_derived(path: Path, payload: bytes) -> None:
    """Replace a file of derived data atomically, without fsync, reusing the file it replaced.

    A save that changes a session's counts replaces its ``summary.json``: a new file each
    time costs an inode allocation, which on some disks costs more than the checkpoint's
    own append and fsync. So the file replaced is kept under a hidden name (``.{name}.spare``)
    and written again the next time, then moved into place: two inodes take turns. A reader
    never sees a torn file, unless it still reads one two replacements later (it then counts
    as torn derived data: rebuilt). A crash at any point leaves the file old or new.
    """
    spare = path.with_name(f".{path.name}.spare")
    previous = path.with_name(f".{path.name}.previous")
    fd = os.open(spare, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        _write_all(fd, payload, 0)
        os.ftruncate(fd, len(payload))
    finally:
        os.close(fd)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(previous)  # left by a replacement cut short
    with contextlib.suppress(FileNotFoundError):
        os.link(path, previous)  # the current file lives on, to be the next spare
    os.replace(spare, path)
    with contextlib.suppress(FileNotFoundError):
        os.replace(previous, spare)
