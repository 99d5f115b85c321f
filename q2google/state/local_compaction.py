"""Compaction of a session's journal: its live records rewritten as one checkpoint, streamed.

A journal grows by one checkpoint per save (see :mod:`q2google.state.local_journal`). Once it
holds many more lines than live records (:func:`needs_compaction`), the save rewrites it: the
records it does not change are copied as they are stored, its changed ones follow, then one
commit line. The copy reads the journal twice, once for the line of each record's last
version, once to copy those lines. It holds a line number per live record, never the records'
bytes, and an item's in an array slot at the item's position rather than under its key
(:class:`LastLines`): 100,000 files compact in about 2 MiB. A run that ends leaves a long
journal compact too (:func:`needs_tidying`), for the next run reads it whole.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from q2google.errors import StateError
from q2google.state.local_journal import committed_records
from q2google.state.local_journal_format import encode_records

COMPACT_FACTOR = 2
COMPACT_SLACK_LINES = 1_000
"""A journal is rewritten once it has more than ``COMPACT_FACTOR`` lines per live record plus
``COMPACT_SLACK_LINES``."""

_WRITE_CHUNK = 1 << 20
"""Bytes of lines gathered per chunk of a rewrite."""


TIDY_FACTOR = 1.25
"""At the end of a run, a journal of more than ``TIDY_FACTOR`` lines per live record (plus
``COMPACT_SLACK_LINES``) is rewritten (:func:`needs_tidying`)."""


def needs_tidying(lines: int, live: int) -> bool:
    """Whether a journal of ``lines`` lines holding ``live`` records should be rewritten when
    its run ends: the next run reads it whole, and a nightly run of a finished session appends
    a few lines only, so the journal a run leaves is what every later run reads (up to twice
    its records otherwise: 2.7 s instead of 2 s for a nightly run of 100,000 files)."""
    return lines > TIDY_FACTOR * live + COMPACT_SLACK_LINES


def needs_compaction(lines: int, live: int) -> bool:
    """Whether a journal of ``lines`` lines holding ``live`` records should be rewritten.

    Rewriting costs the live records; it comes after at least as many lines appended (and a
    thousand more), so that each line appended pays for about one line rewritten, whatever
    the size of the session.
    """
    return lines > COMPACT_FACTOR * live + COMPACT_SLACK_LINES


def compacted(
    path: Path,
    committed: int,
    meta: Mapping[str, Any] | None,
    items: Iterable[tuple[str, Mapping[str, Any]]],
    batches: Iterable[tuple[int, Mapping[str, Any]]],
) -> tuple[Iterator[bytes], int]:
    """A journal's live records with changes applied, as one checkpoint, in chunks.

    Args:
        path: The journal (it must not change until the chunks are all read).
        committed: How many lines its committed checkpoints are (its backend knows).
        meta: The changed metadata, or ``None``.
        items: Changed items, as ``(item_key, data)`` pairs.
        batches: Changed batches, as ``(batch_index, data)`` pairs.

    Returns:
        The rewritten journal's bytes, in chunks read from ``path`` as they are asked for,
        and how many lines they are.

    Raises:
        StateError: It cannot be read (also while the chunks are read).
        StateCorruptError: A line of its committed checkpoints cannot be read.
    """
    items = list(items)
    changed = encode_records([] if meta is None else [("meta", None, meta)])
    changed.update(encode_records(("batch", index, data) for index, data in batches))
    changed.update(encode_records(("item", key, data) for key, data in items))
    try:
        last = LastLines.of(path, committed, by_position=True)
    except SharedPositionError:  # positions do not tell this journal's items apart
        last = LastLines.of(path, committed, by_position=False)
    kept = last.kept(committed, changed, items)
    copied = sum(kept)
    del last
    lines = copied + len(changed) + 1
    return _chunks(path, kept, list(changed.values()), lines - 1), lines


class SharedPositionError(Exception):
    """Two items of a journal, of different keys, are at the same position."""


class LastLines:
    """The line of each record's last version in a journal, read streaming.

    An item's line is in :attr:`by_position`, at the item's position in its session (unique
    per key: :meth:`~q2google.state.SessionState.add_item` gives them in turn), with a hash of
    its key beside it in :attr:`key_hashes`; the metadata's, the batches', and those of items
    without a position are in :attr:`others`, by kind and key. A slot claimed by a second key
    raises :class:`SharedPositionError` (and the caller reads the journal again by key), so
    that an item's last line is never taken for another's.

    Attributes:
        by_position: The line (from 1; 0 for none) of each position's item.
        key_hashes: ``hash(item_key)`` of each position's item.
        others: The other records' lines, by kind and key.
    """

    def __init__(self) -> None:
        self.by_position = array("q")
        self.key_hashes = array("q")
        self.others: dict[tuple[str, Any], int] = {}

    @classmethod
    def of(cls, path: Path, committed: int, *, by_position: bool) -> LastLines:
        """Read the journal ``path`` whose first ``committed`` lines are its committed
        checkpoints (as its backend last read or wrote it).

        Args:
            path: The journal.
            committed: How many lines its committed checkpoints are.
            by_position: Keep items' lines by their positions (else by key, as the others).

        Raises:
            StateError: It cannot be read.
            StateCorruptError: A line of its committed checkpoints cannot be read, or they
                are shorter than said (the file changed since).
            SharedPositionError: With ``by_position``, two keys share a position.
        """
        last = cls()
        for number, kind, key, data in committed_records(path, committed):
            position = _slot(data, committed) if by_position and kind == "item" else None
            if position is None:
                last.others[kind, key] = number
            else:
                last._put(position, hash(key), number)
        return last

    def _put(self, position: int, key_hash: int, number: int) -> None:
        """Record ``number`` as the line of the item at ``position``."""
        if position >= len(self.by_position):
            more = max(position + 1, 2 * len(self.by_position), 1024) - len(self.by_position)
            self.by_position.frombytes(bytes(more * self.by_position.itemsize))
            self.key_hashes.frombytes(bytes(more * self.key_hashes.itemsize))
        elif self.by_position[position] and self.key_hashes[position] != key_hash:
            raise SharedPositionError(f"two items at position {position}")
        self.by_position[position] = number
        self.key_hashes[position] = key_hash

    def kept(
        self,
        committed: int,
        changed: Mapping[tuple[str, Any], bytes],
        items: Iterable[tuple[str, Mapping[str, Any]]],
    ) -> bytearray:
        """The lines to copy as they are: a 1 at the last line of each record not changed.

        A changed item whose position moved keeps its earlier line too: its new line comes
        after it, and a later line of a key replaces the earlier one.

        Args:
            committed: How many lines the journal's committed checkpoints are.
            changed: The changed records, by kind and key.
            items: The changed items, as ``(item_key, data)`` pairs.
        """
        kept = bytearray(committed + 1)
        for record, number in self.others.items():
            if record not in changed:
                kept[number] = 1
        for number in self.by_position:
            if number:
                kept[number] = 1
        for key, data in items:
            position = _slot(data, len(self.by_position))
            if position is not None and self.key_hashes[position] == hash(key):
                kept[self.by_position[position]] = 0  # 0 stays 0 for an empty slot
        return kept


def _slot(data: Mapping[str, Any], limit: int) -> int | None:
    """An item's stored position when it is a slot below ``limit``, else ``None``."""
    position = data.get("position")
    return position if type(position) is int and 0 <= position < limit else None


def _chunks(path: Path, kept: bytearray, changed: list[bytes], records: int) -> Iterator[bytes]:
    """The kept lines of ``path`` in their order, the changed ones, then the commit line."""
    chunk: list[bytes] = []
    size = 0
    try:
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if number >= len(kept):
                    break
                if kept[number]:
                    chunk.append(line)
                    size += len(line)
                    if size >= _WRITE_CHUNK:
                        yield b"".join(chunk)
                        chunk, size = [], 0
    except OSError as error:
        raise StateError(f"cannot read {path}: {error.strerror or error}") from error
    chunk += [line + b"\n" for line in changed]
    chunk.append(b'{"commit":%d}\n' % records)
    yield b"".join(chunk)
