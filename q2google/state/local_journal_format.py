"""The JSON backend's session journal as written: its file, its lines, and where its
committed checkpoints end (:class:`JournalMark`). :mod:`q2google.state.local_journal` gives the
format and reads it; :mod:`q2google.state.local_writing` writes it."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pydantic_core

JOURNAL_FILE = "journal.jsonl"


@dataclass(frozen=True, slots=True)
class JournalMark:
    """Where a journal's committed checkpoints end, and the file as last seen.

    Attributes:
        identity: Device, inode, size and modification time of the file when last read or
            written: a save trusts ``end`` only while the file is still exactly that one.
        end: Bytes of the committed checkpoints; anything after them is an unfinished write.
        lines: Lines of the committed checkpoints.
        live: Records it held when last read or rewritten whole (appends may add some): what
            its size is compared with, to rewrite it when it is many times larger.
    """

    identity: tuple[int, int, int, int]
    end: int
    lines: int
    live: int

    def matches(self, status: os.stat_result) -> bool:
        """Whether ``status`` is of the file as last seen."""
        return file_identity(status) == self.identity


NOTHING_COMMITTED = JournalMark((0, 0, 0, 0), 0, 0, 0)
"""The mark of a journal not read or written yet."""


def encode_records(
    records: Iterable[tuple[str, object, Mapping[str, Any]]],
) -> dict[tuple[str, object], bytes]:
    """Encode records as journal lines (without their newline), by kind and key."""
    return {
        (kind, key): b'{"%s":' % kind.encode() + pydantic_core.to_json(data) + b"}"
        for kind, key, data in records
    }


def encode_checkpoint(
    meta: Mapping[str, Any] | None,
    items: Iterable[tuple[str, Mapping[str, Any]]],
    batches: Iterable[tuple[int, Mapping[str, Any]]],
) -> tuple[bytes, int]:
    """Encode records as one checkpoint: a line each, then the commit line.

    Args:
        meta: The session metadata, or ``None`` when it is not part of it.
        items: ``(item_key, data)`` pairs.
        batches: ``(batch_index, data)`` pairs.

    Returns:
        The bytes to write, and how many lines they are.
    """
    records: list[tuple[str, object, Mapping[str, Any]]] = []
    if meta is not None:
        records.append(("meta", None, meta))
    records += [("batch", index, data) for index, data in batches]
    records += [("item", key, data) for key, data in items]
    lines = list(encode_records(records).values())
    lines += [b'{"commit":%d}' % len(lines), b""]
    return b"\n".join(lines), len(lines) - 1


def file_identity(status: os.stat_result) -> tuple[int, int, int, int]:
    """What tells a file, and a change of it, apart: device, inode, size, mtime."""
    return (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)
