"""The JSON backend's session journal, ``{session_id}/journal.jsonl``: its format, read.

The journal is a sequence of checkpoints, each one line per record it stores, then one line
that commits them::

    {"meta": {...}}          the session's metadata (SessionState.meta_dict())
    {"item": {...}}          an ItemState, keyed by its item_key
    {"batch": {...}}         a BatchState, keyed by its batch_index
    {"commit": 3}            ends a checkpoint: the number of record lines before it

A save appends one checkpoint in one write, then fsyncs the file (see
:mod:`q2google.state.local_writing`, which writes it). A later record of a key
replaces the earlier one. Only committed checkpoints count: whatever follows the last commit
line (an unfinished write, torn anywhere) is ignored, and the next save truncates it before
appending. A power cut may also leave the last write's commit line on disk and not a block
before it (garbage or zeros in its middle): a last checkpoint with a line that cannot be read
(or a commit that does not count its records) is that unfinished write, dropped with a
warning, as its save never returned. The same damage in any earlier checkpoint, fsynced
before the next one was written, is corruption, reported with the file and the line number;
so is a damaged first checkpoint (``meta.json`` is written only once it is durable).
When the journal holds many more lines than live records it is
rewritten with one line per record (temporary file, fsync, ``os.replace``, fsync of the
directory), as a whole save writes it (see :mod:`q2google.state.local_compaction`).
"""

from __future__ import annotations

import itertools
import json
import logging
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, NamedTuple, cast

import pydantic_core

from q2google.errors import StateCorruptError, StateError
from q2google.state.base import BatchState, ItemState, SessionState
from q2google.state.local_files import RecordT
from q2google.state.local_journal_format import NOTHING_COMMITTED, JournalMark, file_identity
from q2google.state.settled import SettledItem, finished_batch

logger = logging.getLogger(__name__)

_RECORD_KINDS = ("meta", "item", "batch")
_KEYS = {"item": "item_key", "batch": "batch_index"}
_WITHOUT_KEY = {"item": "an item without an item_key", "batch": "a batch without a batch_index"}
_PARSE_CHUNK = 256
_NO_DATA: dict[str, Any] = {}
_Line = tuple[int, dict[str, Any]]
"""A record as read: the line it is on, and its data."""


@dataclass(slots=True)
class Journal:
    """The live records of a journal: the last committed record of each key.

    Attributes:
        path: The file.
        meta: The session metadata, with its line; ``None`` if it holds none.
        items: Items by key, with their lines (those not settled, when read to settle).
        batches: Batches by index, with their lines (those not finished, when read to settle).
        settled: Settled items by key, when read to settle (see :func:`read_journal`).
        finished: Indexes of the finished batches, when read to settle.
        mark: Where its committed checkpoints end.
    """

    path: Path
    meta: _Line | None = None
    items: dict[str, _Line] = field(default_factory=dict)
    batches: dict[int, _Line] = field(default_factory=dict)
    settled: dict[str, SettledItem] = field(default_factory=dict)
    finished: set[int] = field(default_factory=set)
    mark: JournalMark = NOTHING_COMMITTED

    def session(self) -> SessionState:
        """Validate the live records into a session.

        Returns:
            The session, with no pending changes.

        Raises:
            StateCorruptError: A record or the metadata is invalid, or there is no metadata;
                the message names the file and the line.
        """
        if self.meta is None:
            raise StateCorruptError(f"{self.path}: holds no session metadata")
        items = [_validated(ItemState, self.path, line) for line in self.items.values()]
        batches = [_validated(BatchState, self.path, line) for line in self.batches.values()]
        number, meta = self.meta
        try:
            return SessionState.from_parts(meta, items, batches, self.settled, self.finished)
        except StateCorruptError as error:
            raise StateCorruptError(f"{self.path}: line {number}: {error}") from None


# -- reading -----------------------------------------------------------------------------------


def read_journal(
    path: Path, settle: Callable[[Mapping[str, Any]], SettledItem | None] | None = None
) -> Journal:
    """Read a journal's committed checkpoints.

    Args:
        path: The file.
        settle: Tells a settled item from its stored form
            (:func:`~q2google.state.settled.settled_item`); those are kept in
            :attr:`Journal.settled` only, never as data, and finished batches in
            :attr:`Journal.finished`. ``None``: every record is kept.

    Returns:
        Its live records and where its committed checkpoints end.

    Raises:
        StateError: It cannot be read (the ``OSError`` is the cause).
        StateCorruptError: It is missing, holds no committed checkpoint, or has an unreadable
            line before its last commit; the message names the file and the line.
    """
    reader = _Reader(path, settle=settle)
    journal = Journal(path)
    for checkpoint in reader.checkpoints():
        for record in checkpoint:
            line = (record.number, record.data)
            if record.kind == "item":
                key = str(record.key)
                if record.settled is None:
                    journal.items[key] = line
                    journal.settled.pop(key, None)
                else:
                    journal.settled[key] = record.settled
                    journal.items.pop(key, None)
            elif record.kind == "batch":
                index = cast(int, record.key)  # a batch's key is its index (_classify)
                if record.finished:
                    journal.finished.add(index)
                    journal.batches.pop(index, None)
                else:
                    journal.batches[index] = line
                    journal.finished.discard(index)
            else:
                journal.meta = line
    live = len(journal.items) + len(journal.settled) + len(journal.batches) + len(journal.finished)
    live += journal.meta is not None
    journal.mark = JournalMark(reader.identity, reader.end, reader.lines, live)
    return journal


def committed_records(path: Path, committed: int) -> Iterator[tuple[int, str, Any, Any]]:
    """The records of a journal whose first ``committed`` lines are its committed checkpoints
    (as its backend last read or wrote it), read streaming: a chunk of lines at a time.

    Args:
        path: The journal.
        committed: How many lines its committed checkpoints are.

    Yields:
        Each record's line number (from 1), kind (``meta``, ``item``, ``batch``), key
        (``None`` for the metadata) and data; commit lines are passed over.

    Raises:
        StateError: It cannot be read.
        StateCorruptError: A line of its committed checkpoints cannot be read, or they are
            shorter than said (the file changed since).
    """
    number = 0
    try:
        with path.open("rb") as handle:
            lines = itertools.islice(handle, committed)
            while chunk := [line[:-1] for line in itertools.islice(lines, _PARSE_CHUNK)]:
                for value in _parsed(chunk):
                    number += 1
                    kind, key, content = _classify(value)
                    if kind in _RECORD_KINDS:
                        yield number, kind, key, content
                    elif kind == "unreadable":
                        raise StateCorruptError(f"{path}: line {number}: {content}")
    except OSError as error:
        raise StateError(f"cannot read {path}: {error.strerror or error}") from error
    if number < committed:
        raise StateCorruptError(f"{path}: ends at line {number}, before its last commit")


class _Record(NamedTuple):
    """A record as stored: its kind, key (``None`` for the metadata), line number, data
    (empty when not kept, settled or finished), its settled form, and whether it is a
    finished batch (read to settle)."""

    kind: str
    key: str | int | None
    number: int
    data: dict[str, Any]
    settled: SettledItem | None = None
    finished: bool = False


class _Reader:
    """Reads a journal, one committed checkpoint at a time, streaming: it holds a chunk of
    lines and the checkpoint being read, never the whole file.

    Attributes:
        identity: The file's identity when opened (see :class:`JournalMark`).
        end: Bytes of the committed checkpoints read so far.
        lines: Lines of the committed checkpoints read so far.
    """

    def __init__(
        self, path: Path, *, settle: Callable[[Mapping[str, Any]], SettledItem | None] | None
    ) -> None:
        self.path = path
        self.settle = settle  # settled items come in their small form only
        self.identity = (0, 0, 0, 0)
        self.end = self.lines = self.read = 0
        self.damaged: str | None = None

    def checkpoints(self) -> Iterator[list[_Record]]:
        """Yield the records of each committed checkpoint, in order.

        Raises:
            StateError: The file cannot be read (the ``OSError`` is the cause).
            StateCorruptError: It is missing, a checkpoint before the last is damaged (a line
                cannot be read, or its commit does not count its records), or no checkpoint
                is complete.
        """
        path = self.path
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            raise StateCorruptError(
                f"{path}: missing (the session's meta.json says it is kept there)"
            ) from None
        except OSError as error:
            raise StateError(f"cannot read {path}: {error.strerror or error}") from error
        with handle:
            self.identity = file_identity(os.fstat(handle.fileno()))
            yield from self._checkpoints(self._chunks(handle))
        if not self.lines:  # a first save is durable before its meta.json: nothing was torn
            raise StateCorruptError(self.damaged or f"{path}: holds no complete checkpoint")
        if self.end < self.read:
            logger.info(
                "%s: ignoring %d bytes from line %d on, an unfinished save (the next save "
                "drops them)",
                path,
                self.read - self.end,
                self.lines + 1,
            )

    def _checkpoints(self, chunks: Iterator[list[bytes]]) -> Iterator[list[_Record]]:
        path = self.path
        pending: list[_Record] = []
        unreadable: tuple[int, str] | None = None
        damaged: str | None = None  # a damaged checkpoint: corruption, unless it is the last
        number = offset = 0
        for chunk in chunks:
            for line, value in zip(chunk, _parsed(chunk), strict=True):
                number += 1
                offset += len(line) + 1
                kind, key, content = _classify(value)
                if kind == "commit":
                    if damaged is not None:
                        raise StateCorruptError(damaged)
                    if unreadable is not None:
                        damaged = f"{path}: line {unreadable[0]}: {unreadable[1]}"
                    elif content != len(pending):
                        damaged = (
                            f"{path}: line {number}: commits {content} records, "
                            f"but {len(pending)} precede it"
                        )
                    else:
                        yield pending
                        self.end, self.lines = offset, number
                    pending, unreadable = [], None
                    continue
                elif kind in _RECORD_KINDS:
                    pending.append(self._record(kind, key, number, content))
                elif unreadable is None:
                    unreadable = (number, str(content))
        self.damaged = damaged
        if damaged is not None and self.lines:  # only the last write can be torn (unsynced)
            logger.warning(
                "%s: the last checkpoint is damaged (%s), as a power cut leaves a save that "
                "had not finished; the one before it is loaded (the next save drops it)",
                path,
                damaged.removeprefix(f"{path}: "),
            )

    def _record(self, kind: str, key: Any, number: int, content: Any) -> _Record:
        """A record in what is kept of it (a checkpoint may hold a whole session: settled
        items and finished batches are kept in their small form, when read to settle)."""
        if kind == "item" and self.settle is not None:
            settled = self.settle(content)
            if settled is not None:
                return _Record(kind, key, number, _NO_DATA, settled)
        elif kind == "batch" and self.settle is not None and finished_batch(content):
            return _Record(kind, key, number, _NO_DATA, finished=True)
        return _Record(kind, key, number, content)

    def _chunks(self, handle: BinaryIO) -> Iterator[list[bytes]]:
        """Yield the complete lines (without their newline) a chunk at a time; a last line
        without its newline is an unfinished write, counted in :attr:`read` only."""
        chunk: list[bytes] = []
        try:
            for line in handle:
                self.read += len(line)
                if not line.endswith(b"\n"):
                    break
                chunk.append(line[:-1])
                if len(chunk) == _PARSE_CHUNK:
                    yield chunk
                    chunk = []
        except OSError as error:
            raise StateError(f"cannot read {self.path}: {error.strerror or error}") from error
        if chunk:
            yield chunk


def _parsed(lines: list[bytes]) -> list[Any]:
    """Parse lines; an unreadable one becomes an :class:`_Unreadable`.

    The lines are parsed in one call when they are all well-formed objects (three times faster
    than one call per line), by pydantic-core's parser, which shares the objects' keys (a
    third faster than ``json.loads``: 0.22 s for a journal of 100,000 files); otherwise one by
    one, to know which is not.
    """
    if all(line[:1] == b"{" and line[-1:] == b"}" for line in lines):
        try:
            values = pydantic_core.from_json(b"[" + b",".join(lines) + b"]", cache_strings="keys")
        except ValueError:
            pass
        else:
            if isinstance(values, list) and len(values) == len(lines):
                return values
    return [_parse_line(line) for line in lines]


class _Unreadable(str):
    """Why a line could not be parsed."""


def _parse_line(line: bytes) -> Any:
    """Parse one line, or say why it cannot be."""
    try:
        return json.loads(line.decode("utf-8"))
    except UnicodeDecodeError:
        return _Unreadable("not UTF-8 text")
    except json.JSONDecodeError as error:
        return _Unreadable(f"not valid JSON ({error.msg} at column {error.colno})")


def _classify(value: Any) -> tuple[str, Any, Any]:
    """Return a parsed line's kind (a record's, ``commit`` or ``unreadable``), its key (a
    record's) and its content (a record's data, the commit's count, or what is wrong)."""
    problem: str | None = value if isinstance(value, _Unreadable) else None
    if isinstance(value, dict) and len(value) == 1:
        ((kind, content),) = value.items()
        key = content.get(_KEYS[kind]) if kind in _KEYS and isinstance(content, dict) else None
        if kind == "commit" and type(content) is int and content >= 0:
            return kind, None, content
        if kind == "meta" and isinstance(content, dict):
            return kind, None, content
        if (kind == "item" and isinstance(key, str)) or (kind == "batch" and type(key) is int):
            return kind, key, content
        problem = _WITHOUT_KEY.get(kind)
    if problem is None:
        problem = "not a journal record (an object of one key: meta, item, batch, commit)"
    return "unreadable", None, problem


def _validated(kind: type[RecordT], path: Path, line: _Line) -> RecordT:
    """Validate a record read from ``path``; an invalid one is named by its line."""
    number, data = line
    try:
        return kind.from_dict(data)
    except StateCorruptError as error:
        raise StateCorruptError(f"{path}: line {number}: {error}") from None
