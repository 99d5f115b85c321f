"""The MongoDB backend's settled pages: a session's settled files, a thousand to a document,
so that a run reads the keys and marks of its settled files from a few documents, not one
document each (a SecantusDB server reads about 40 µs a document: 4 s at 100,000 files).

``settled_pages`` holds one document per ``(session_id, page)``: ``chunks``, the
:func:`~q2google.state.settled.settled_row` of each file in the order it settled, as one JSON
text per checkpoint (a server reads a few strings a page, not six values a file: 100 pages
read and parsed in 0.15 s instead of 0.7 s on SecantusDB, on a busy 2-core machine), and
their ``count``. Pages written before chunks hold ``rows``, the rows themselves, which are
still read (before the page's chunks, which a later checkpoint may have appended).

A checkpoint writes its files' documents flagged open, then appends the rows of those that
settle to the session's last page (a new page past :data:`PAGE_ROWS`), then flags them
``settled`` (:data:`SETTLED_FLAG`), in one ordered write: cut short anywhere, it leaves
no flagged file without its row and no row without its file. (A new session's first save
writes the rows, then its files flagged: it exists once its metadata, written last, does.)
A run then reads the files not flagged (through an index) and the pages; a file's own document
wins over its row, so a file that opens again is read as open and its old row is ignored.

The pages are a copy. A session without pages (stored before them, or cut short in a whole
save, which deletes them first) is read file by file, as before pages. When the pages and the
open files do not add up to the session's summary (a page lost by hand), or a row is
unreadable, the run reads every file's fields too. The files of a session stored before the
pages are never flagged, so a run reads them each time, as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from pymongo import DESCENDING, DeleteMany, UpdateOne

from q2google.errors import StateCorruptError
from q2google.state.settled import (
    FINISHED_BATCH_STATUSES,
    SETTLED_FIELDS,
    SettledItem,
    from_settled_row,
    settled_row,
    settles,
    split_settled,
)

if TYPE_CHECKING:
    from pymongo.collection import Collection

PAGES_COLLECTION = "settled_pages"
PAGE_ROWS = 1_000
"""Rows per page: about 60 KB of BSON, rewritten whole by each append on most servers."""
SETTLED_FLAG = "settled"
"""The field of an item document that says its row is in a page (a run does not read it)."""

KEYS_PER_QUERY = 10_000
"""Item keys per ``$in`` query: far below 16 MB of BSON."""
ITEM_HIDDEN = {"_id": 0, "session_id": 0, SETTLED_FLAG: 0}
"""The fields of an item document that are not the item's own."""
_META_FIELDS = {"_id": 0}
Found = tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]], dict[str, Any] | None]
"""A stored session as read: metadata, items, batches and summary."""
PageOps = list[tuple[Any, type[Any], tuple[Any, ...], dict[str, Any]]]
"""``(collection, operation class, arguments, keyword arguments)``, as a checkpoint's write
gathers its operations."""


def page_rows(page: Mapping[str, Any]) -> list[Any] | None:
    """A page's rows in the order they were appended: its ``rows`` (written before chunks),
    then those of each chunk; ``None`` when a chunk is not a JSON list."""
    rows = list(page.get("rows") or ())
    for chunk in page.get("chunks") or ():
        try:
            decoded = json.loads(chunk) if isinstance(chunk, str) else None
        except ValueError:
            return None
        if not isinstance(decoded, list):
            return None
        rows += decoded
    return rows


class PagePlan(NamedTuple):
    """The writes that keep a session's pages true through a checkpoint, in order.

    Attributes:
        first: Before anything else: a whole save's fresh start.
        rows: The rows of the files that settle.
        flags: The flags of those files, once their rows are stored (their documents are
            written flagged open before the rows, unless the session is new: see
            :meth:`MongoCheckpoints._write <q2google.state.mongo_writing.MongoCheckpoints>`).
        settled: The keys of those files.
        last_page: The last page's number and rows once they have run.
    """

    first: PageOps
    rows: PageOps
    flags: PageOps
    settled: frozenset[str]
    last_page: tuple[int, int]


class MongoSettledPages:
    """Settled pages for :class:`~q2google.state.mongo.MongoBackend`."""

    if TYPE_CHECKING:  # provided by MongoBackend
        _sessions: Collection[dict[str, Any]]
        _items: Collection[dict[str, Any]]
        _batches: Collection[dict[str, Any]]
        _settled_pages: Collection[dict[str, Any]]
        _last_pages: dict[str, tuple[int, int]]

        def _rest(
            self,
            session_id: str,
            meta: dict[str, Any],
            items: list[dict[str, Any]] | None,
            *,
            open_batches: list[int] | None = None,
        ) -> Found: ...

    def _page_ops(
        self, session_id: str, settled: Sequence[tuple[str, SettledItem]], *, restart: bool
    ) -> PagePlan:
        """How a checkpoint that writes the files ``settled`` settles keeps the pages true.

        Args:
            session_id: The session.
            settled: The files the checkpoint stores as settled, with their settled form.
            restart: The checkpoint stores the session whole over a stored one: its pages
                start over.

        Returns:
            The plan (see :class:`PagePlan`).
        """
        first: PageOps = []
        if restart:  # the pages start over (every file is then written flagged open)
            first.append((self._settled_pages, DeleteMany, ({"session_id": session_id},), {}))
            page, count = 0, 0
        else:
            page, count = self._last_page(session_id)
        rows: PageOps = []
        pending = [settled_row(key, entry) for key, entry in settled]
        while pending:
            if count >= PAGE_ROWS:
                page, count = page + 1, 0
            taken, pending = pending[: PAGE_ROWS - count], pending[PAGE_ROWS - count :]
            where = {"session_id": session_id, "page": page}
            chunk = json.dumps(taken, separators=(",", ":"), ensure_ascii=False)
            append = {"$push": {"chunks": chunk}, "$inc": {"count": len(taken)}}
            rows.append((self._settled_pages, UpdateOne, (where, append), {"upsert": True}))
            count += len(taken)
        flag = {"$set": {SETTLED_FLAG: True}}
        flags: PageOps = [  # each by its unique key (an $in of many keys is slow on some servers)
            (self._items, UpdateOne, ({"session_id": session_id, "item_key": key}, flag), {})
            for key, _ in settled
        ]
        keys = frozenset(key for key, _ in settled)
        return PagePlan(first, rows, flags, keys, (page, count))

    def _last_page(self, session_id: str) -> tuple[int, int]:
        """The session's last page and its rows (asked of the server once per session)."""
        if session_id not in self._last_pages:
            last = self._settled_pages.find_one(
                {"session_id": session_id}, {"page": 1, "count": 1}, sort=[("page", DESCENDING)]
            )
            found = (0, 0) if last is None else (int(last["page"]), int(last.get("count", 0)))
            self._last_pages[session_id] = found
        return self._last_pages[session_id]

    def _read_pages(self, session_id: str) -> dict[str, SettledItem] | None:
        """The settled files the session's pages hold (a later row of a key wins), or
        ``None`` when a row is unreadable."""
        settled: dict[str, SettledItem] = {}
        last = (0, 0)
        query = {"session_id": session_id}
        fields = {"_id": 0, "page": 1, "count": 1, "rows": 1, "chunks": 1}
        for page in self._settled_pages.find(query, fields).sort("page", 1):
            rows = page_rows(page)
            if rows is None:
                return None
            for row in rows:
                parsed = from_settled_row(row)
                if parsed is None:
                    return None
                settled[parsed[0]] = parsed[1]
            last = (int(page["page"]), int(page.get("count", 0)))
        self._last_pages[session_id] = last
        return settled

    def _forget_pages(self, session_id: str) -> None:
        """Drop what this backend knows of a session's pages (deleted, or about to be)."""
        self._last_pages.pop(session_id, None)

    def _read_unsettled(
        self, session_id: str, *, pages: bool = True
    ) -> tuple[Found, dict[str, SettledItem], list[int]] | None:
        """A session as a run reads it: its metadata, open files (each in full), settled
        files (from the pages, when they add up, else from every file's fields), finished
        batches (by index) and the rest (:meth:`_rest`); ``None`` when there is none."""
        meta = self._sessions.find_one({"session_id": session_id}, _META_FIELDS)
        if meta is None:
            return None
        if not settles(meta):
            return self._rest(session_id, meta, None), {}, []
        from_pages = self._read_pages(session_id) if pages else None
        fields = {"_id": 0, **dict.fromkeys(SETTLED_FIELDS, 1)}
        query: dict[str, Any] = {"session_id": session_id}
        if from_pages:  # the files not flagged settled (and those of before the pages)
            query[SETTLED_FLAG] = {"$in": [False, None]}
        marks = self._items.find(query, fields)
        try:
            open_items, settled = split_settled(
                marks, album_title=meta.get("album_title"), known=from_pages
            )
        except KeyError as error:
            raise StateCorruptError(f"an item without {error.args[0]!r}") from None
        keys = list(open_items)
        items = []
        for start in range(0, len(keys), KEYS_PER_QUERY):
            chunk = keys[start : start + KEYS_PER_QUERY]
            query = {"session_id": session_id, "item_key": {"$in": chunk}}
            items += list(self._items.find(query, ITEM_HIDDEN))
        finished, still_open = self._batch_indexes(session_id)
        found = self._rest(session_id, meta, items, open_batches=still_open)
        if from_pages and not self._adds_up(found[3], len(open_items) + len(settled)):
            return self._read_unsettled(session_id, pages=False)
        return found, settled, finished

    def _batch_indexes(self, session_id: str) -> tuple[list[int], list[int]]:
        """The indexes of the session's finished batches and of the others, in one query
        (a run reads only the others whole).

        Raises:
            StateCorruptError: A batch has no whole-number index.
        """
        finished: list[int] = []
        still_open: list[int] = []
        fields = {"_id": 0, "batch_index": 1, "status": 1}
        for doc in self._batches.find({"session_id": session_id}, fields):
            index = doc.get("batch_index")
            if not isinstance(index, int) or isinstance(index, bool):
                raise StateCorruptError(f"a batch with the index {index!r}")
            (finished if doc.get("status") in FINISHED_BATCH_STATUSES else still_open).append(index)
        return finished, still_open

    @staticmethod
    def _adds_up(summary: dict[str, Any] | None, files: int) -> bool:
        """Whether the session's stored summary counts ``files`` files (the pages and the
        open files read are then the whole session)."""
        return summary is not None and summary.get("files") == files
