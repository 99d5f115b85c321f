"""Reading the JSON backend's files: metadata, summaries and the layouts before the journal
(one file per record, the original one, a flat file), with one line naming a file that is
unreadable. The journal itself is read by :mod:`q2google.state.local_journal`."""

from __future__ import annotations

import gc
import json
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from q2google.errors import StateCorruptError, StateError
from q2google.state.base import (
    SCHEMA_VERSION,
    BatchState,
    ItemState,
    SessionState,
    validate_session_id,
)

logger = logging.getLogger(__name__)

RecordT = TypeVar("RecordT", ItemState, BatchState)

META_FILE = "meta.json"
SUMMARY_FILE = "summary.json"
ITEMS_DIR = "items"
BATCHES_DIR = "batches"
JOURNAL_LAYOUT_VERSION = 3
"""``schema_version`` of a ``meta.json`` whose session is kept in ``journal.jsonl``.

The records themselves are in :data:`~q2google.state.SCHEMA_VERSION`'s form (2); the journal
layout gets a number of its own above it so that a q2google that knows only one file per
record refuses such a session ("written by a newer q2google") instead of reading it as empty.
A change of the records' form must take a number above this one and the delivery ledger's
(:data:`~q2google.state.local_entries.LEDGER_LAYOUT_VERSION`).
"""
ITEM_FILE_RE = re.compile(r"\.[0-9a-f]{10}\.json$")
"""Names of item files of the layout with one file per record (and of the ledger's entries);
others in ``items/`` are the original layout's."""


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector while a session is read.

    Reading builds tens of thousands of dicts and records that all stay alive: each collection
    the allocations trigger scans them all again, for nothing, and took more than half of the
    load of a 20,000-item session. Whatever the block allocates is collected after it as
    usual; the collector is enabled again on the way out (unless it was off already).
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def json_files(directory: Path, *, include_temporary: bool = False) -> Iterator[Path]:
    """Yield the JSON records in ``directory`` (none when it does not exist).

    Temporary files of an interrupted write start with a dot and are skipped unless asked for.

    Args:
        directory: Where to look.
        include_temporary: Also yield the temporary files an interrupted write left.

    Yields:
        Paths of the records.
    """
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return
    for entry in entries:
        is_temporary = entry.name.startswith(".")
        if (entry.name.endswith(".json") and not is_temporary) or (
            include_temporary and is_temporary and entry.name.endswith(".tmp")
        ):
            yield Path(entry.path)


def read_json(path: Path) -> Any:
    """Read one JSON file.

    Args:
        path: The file.

    Returns:
        What it holds.

    Raises:
        StateError: It cannot be read (the ``OSError`` is the cause).
        StateCorruptError: It is not UTF-8 JSON; the message names the file and where.
    """
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise StateError(f"cannot read {path}: {error.strerror or error}") from error
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise StateCorruptError(f"{path}: not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise StateCorruptError(
            f"{path}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})"
        ) from None


def parse_record(kind: type[RecordT], path: Path) -> RecordT:
    """Read an item or a batch file.

    Args:
        kind: :class:`ItemState` or :class:`BatchState`.
        path: The file.

    Returns:
        The record.

    Raises:
        StateCorruptError: The file is not a valid record; the message names it.
    """
    data = read_json(path)
    if not isinstance(data, dict):
        raise StateCorruptError(f"{path}: not a JSON object")
    try:
        return kind.from_dict(data)
    except StateCorruptError as error:
        raise StateCorruptError(f"{path}: {error}") from None


def read_meta(path: Path, session_id: str) -> dict[str, Any]:
    """Read a session's ``meta.json``.

    Args:
        path: The file.
        session_id: The session it must hold.

    Returns:
        The stored metadata.

    Raises:
        StateCorruptError: It is unreadable, not an object, or another session's.
    """
    meta = read_json(path)
    if not isinstance(meta, dict):
        raise StateCorruptError(f"{path}: not a JSON object")
    if meta.get("session_id") != session_id:
        raise StateCorruptError(
            f"{path}: holds session {meta.get('session_id')!r}, not {session_id!r} "
            "(two ids that differ only in case share a directory on this filesystem)"
        )
    return meta


def read_summary(directory: Path) -> Any:
    """Read a session's ``summary.json`` as stored, ``None`` when there is none.

    A torn summary is only derived data: it counts as none (with a warning), and the session's
    next save or listing writes it again.

    Args:
        directory: The session's directory.

    Returns:
        What the file holds, or ``None``.

    Raises:
        StateError: It cannot be read (an I/O error, not a torn file).
    """
    path = directory / SUMMARY_FILE
    if not path.is_file():
        return None
    try:
        return read_json(path)
    except StateCorruptError as error:
        logger.warning("%s; it is rebuilt from the session's items", error)
        return None


def layout_of(meta: Mapping[str, Any], path: Path) -> int:
    """Which layout the session of a ``meta.json`` is stored in.

    Args:
        meta: What ``meta.json`` holds.
        path: The file, for the message.

    Returns:
        1 for the original one (items named by file name), 2 for one file per record (also
        when the version is not a number: reading the session then says so), or
        :data:`JOURNAL_LAYOUT_VERSION`.

    Raises:
        StateCorruptError: A newer q2google wrote it.
    """
    version = meta.get("schema_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        return SCHEMA_VERSION
    if version > JOURNAL_LAYOUT_VERSION:
        raise StateCorruptError(
            f"{path}: schema version {version} was written by a newer q2google (this one "
            f"reads up to {JOURNAL_LAYOUT_VERSION}); upgrade q2google"
        )
    return version if version > 1 else 1


def meta_for_file(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Return session metadata as ``meta.json`` of the journal layout stores it."""
    return {**meta, "schema_version": JOURNAL_LAYOUT_VERSION}


def meta_from_file(meta: Mapping[str, Any]) -> dict[str, Any]:
    """Return a journal layout's ``meta.json`` as session metadata (the records' version)."""
    if meta.get("schema_version") == JOURNAL_LAYOUT_VERSION:
        return {**meta, "schema_version": SCHEMA_VERSION}
    return dict(meta)


def read_old_layout(directory: Path, meta: dict[str, Any], layout: int) -> SessionState:
    """Read a session stored in a layout before the journal.

    Args:
        directory: The session's directory.
        meta: Its ``meta.json``.
        layout: 1 or 2, from :func:`layout_of`.

    Returns:
        The session (marked to be saved whole when it was migrated from schema version 1).

    Raises:
        StateCorruptError: A file is unreadable or invalid; the message names it.
    """
    if layout < SCHEMA_VERSION:
        return read_original_directory(directory, meta)
    return read_record_directory(directory, meta)


def read_record_directory(directory: Path, meta: dict[str, Any]) -> SessionState:
    """Read a session stored as one file per record (schema version 2, as 0.1.0 wrote it).

    Args:
        directory: The session's directory.
        meta: Its ``meta.json``.

    Returns:
        The session, with no pending changes (its next save moves it to the journal).

    Raises:
        StateCorruptError: A file is unreadable or invalid; the message names it.
    """
    items = [
        parse_record(ItemState, path)
        for path in json_files(directory / ITEMS_DIR)
        if ITEM_FILE_RE.search(path.name)
    ]
    batches = [parse_record(BatchState, path) for path in json_files(directory / BATCHES_DIR)]
    try:
        return SessionState.from_parts(meta, items, batches)
    except StateCorruptError as error:
        raise StateCorruptError(f"{directory / META_FILE}: {error}") from None


def read_original_directory(directory: Path, meta: dict[str, Any]) -> SessionState:
    """Read a session in the original q2google's directory layout (items named by file name).

    Args:
        directory: The session's directory.
        meta: Its ``meta.json``, of schema version 1.

    Returns:
        The session, migrated and marked to be saved whole.

    Raises:
        StateCorruptError: It cannot be read; the message names the directory.
    """
    items = [
        read_json(path)
        for path in json_files(directory / ITEMS_DIR)
        if not ITEM_FILE_RE.search(path.name)  # ours: left by an unfinished migration
    ]
    batches = [read_json(path) for path in json_files(directory / BATCHES_DIR)]
    try:
        state = SessionState.from_dict({**meta, "items": items, "batches": batches})
    except StateCorruptError as error:
        raise StateCorruptError(f"{directory}: {error}") from None
    logger.info("read session %s in the original layout; it is migrated on save", directory)
    state.mark_all_dirty()
    return state


def read_flat_file(session_id: str, path: Path) -> SessionState:
    """Read a session an older q2google stored as one flat ``{session_id}.json``.

    Args:
        session_id: The session.
        path: The file.

    Returns:
        The session, migrated and marked to be saved whole.

    Raises:
        StateCorruptError: It cannot be read or holds another session; the message names it.
    """
    data = read_json(path)
    if not isinstance(data, dict):
        raise StateCorruptError(f"{path}: not a JSON object")
    data.setdefault("session_id", session_id)
    if data["session_id"] != session_id:
        raise StateCorruptError(f"{path}: holds session {data['session_id']!r}")
    try:
        state = SessionState.from_dict(data)
    except StateCorruptError as error:
        raise StateCorruptError(f"{path}: {error}") from None
    logger.info("read session %s from the legacy flat file %s", session_id, path)
    state.mark_all_dirty()
    return state


def safe_ids(names: Iterable[str]) -> Iterator[str]:
    """Yield the names that are valid session ids."""
    for name in names:
        try:
            yield validate_session_id(name)
        except ValueError:
            continue
