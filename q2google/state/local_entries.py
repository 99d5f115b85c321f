"""The JSON ledger's entry files: one entry, or the entries of files created together.

An entry file is named for its file's key (``items/{item}.json``). A file created alone gets
a file holding its entry, as every q2google wrote it. Files created together (a batchCreate's
results, up to :data:`ENTRIES_PER_FILE`) get one file holding all their entries under
``"ledger_entries"``, linked under each one's name (:mod:`.local_links`): one file made and
fsynced per batch, not per file. A reader picks the entry of the name it opened; a lookup of
many keys parses a shared file once (:class:`EntryFiles`).

A ledger with shared files says so in its ``meta.json``
(:data:`LEDGER_LAYOUT_VERSION`): a q2google that reads only one entry per file then stops
("written by a newer q2google") instead of counting the ledger's files as never delivered.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pydantic_core

from q2google.errors import StateCorruptError
from q2google.state.base import ItemState

ENTRIES_PER_FILE = 50
"""Most entries in one shared file (a batchCreate's worth): a lookup reads the whole file."""
ENTRIES_KEY = "ledger_entries"
"""The key of a shared file's list of entries."""
LEDGER_LAYOUT_VERSION = 4
"""``schema_version`` of the ledger's ``meta.json`` once entry files may be shared (the
records keep :data:`~q2google.state.SCHEMA_VERSION`'s form, 2). Above the journal layout's
(:data:`~q2google.state.local_files.JOURNAL_LAYOUT_VERSION`, 3), so that a q2google before
it reading the ledger as a session says "newer q2google", not "journal missing"; a change of
the records' form must take a number above both."""

FileName = Callable[[str], str]
"""An item key's entry file name (``JsonFileBackend.item_file_name``)."""


def encode_entries(entries: Sequence[ItemState]) -> bytes:
    """The content of an entry file for ``entries`` (one: the entry itself; more: shared)."""
    if len(entries) == 1:
        return pydantic_core.to_json(entries[0].to_dict(), indent=1)
    return pydantic_core.to_json({ENTRIES_KEY: [entry.to_dict() for entry in entries]}, indent=1)


class EntryFiles:
    """Reads entry files, parsing each shared file once however many of its names are read
    (it keeps a shared file's entries until each has been read: a lookup or a whole-ledger
    read holds no more than the files it is partway through).

    Args:
        file_name: An item key's entry file name (to tell which entry a name is for).
    """

    def __init__(self, file_name: FileName) -> None:
        self._file_name = file_name
        self._shared: dict[tuple[int, ...], dict[str, dict[str, Any]]] = {}

    def read(self, path: Path) -> tuple[ItemState | None, str | None]:
        """The entry a file's name is for: ``(entry, None)``, ``(None, None)`` when there is
        no such file, or ``(None, why)`` when it is unreadable (or holds no entry of its
        name)."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None, None
        with os.fdopen(fd, "rb") as handle:
            status = os.fstat(fd)
            identity = (status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns)
            shared = self._shared.pop(identity, None)
            if shared is None or path.name not in shared:  # not parsed, or this name read
                parsed = self._parse(handle.read())
                if isinstance(parsed, str):
                    return None, parsed
                if isinstance(parsed, list):
                    return self._alone(parsed[0], path.name)
                shared = parsed
        data = shared.pop(path.name, None)
        if data is None:
            held = ", ".join(sorted(repr(entry.get("item_key")) for entry in shared.values()))
            return None, f"it holds the entries of {held}"
        if shared:  # for its other names
            self._shared[identity] = shared
        try:
            return ItemState.from_dict(data), None
        except StateCorruptError as error:
            return None, str(error)

    def _alone(self, data: dict[str, Any], name: str) -> tuple[ItemState | None, str | None]:
        """The entry of a file that holds one."""
        try:
            entry = ItemState.from_dict(data)
        except StateCorruptError as error:
            return None, str(error)
        if self._file_name(entry.item_key) != name:
            return None, f"it holds the entry of {entry.item_key!r}"
        return entry, None

    def _parse(self, raw: bytes) -> list[dict[str, Any]] | dict[str, dict[str, Any]] | str:
        """A file's one entry (in a list), a shared file's entries by the name each is for,
        or why it is unreadable."""
        try:
            data = json.loads(raw)
        except ValueError as error:
            return f"not valid JSON: {error}"
        if not isinstance(data, dict):
            return "not a JSON object"
        if list(data) != [ENTRIES_KEY]:
            return [data]
        entries = data[ENTRIES_KEY]
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            return f"{ENTRIES_KEY!r} is not a list of objects"
        keys = (entry.get("item_key") for entry in entries)
        return {
            self._file_name(key) if isinstance(key, str) else "": entry
            for key, entry in zip(keys, entries, strict=True)
        }
