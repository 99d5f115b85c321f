"""Compaction of a session's journal: its live records rewritten as one checkpoint, streamed.

A journal grows by one checkpoint per save (see :mod:`q2google.state.local_journal`). Once it
holds many more lines than live records (:func:`needs_compaction`), the save rewrites it: the
records it does not change are copied as they are stored, its changed ones follow, then one
commit line. The copy reads the journal twice, once for the line of each record's last
version, once to copy those lines; it holds a line number per live record, never the records'
bytes, so a session of 100,000 files compacts in a few MiB, not in the journal's size twice.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from q2google.errors import StateError
from q2google.state.local_journal import last_lines
from q2google.state.local_journal_format import encode_records

COMPACT_FACTOR = 2
COMPACT_SLACK_LINES = 1_000
"""A journal is rewritten once it has more than ``COMPACT_FACTOR`` lines per live record plus
``COMPACT_SLACK_LINES``."""

_WRITE_CHUNK = 1 << 20
"""Bytes of lines gathered per chunk of a rewrite."""


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
    changed = encode_records([] if meta is None else [("meta", None, meta)])
    changed.update(encode_records(("batch", index, data) for index, data in batches))
    changed.update(encode_records(("item", key, data) for key, data in items))
    last = last_lines(path, committed)
    kept = bytearray(committed + 1)  # 1 at the lines copied as they are
    for kind, numbers in last.items():
        for key, number in numbers.items():
            if (kind, key) not in changed:
                kept[number] = 1
    copied = sum(kept)
    del last
    lines = copied + len(changed) + 1
    return _chunks(path, kept, list(changed.values()), lines - 1), lines


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
