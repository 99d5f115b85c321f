"""How :class:`~q2google.state.mongo.MongoBackend` writes a checkpoint: one round trip.

A checkpoint's changes become upserts (plain inserts for a first save) of the items, batches
and session document that changed, then the summary, sent as one client-level ``bulkWrite``
on MongoDB 8.0 and later, or as one bulk per collection on older servers (the summary last,
after the records it counts). A checkpoint that settles files also appends them to the
session's settled pages and flags their documents (:mod:`q2google.state.mongo_pages`): its
write is then ordered (on older servers, one bulk per run of operations on a collection, in
order), so that no file is flagged settled before its page holds it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from pymongo import DeleteMany, InsertOne, UpdateOne

from q2google.state.base import StateChanges
from q2google.state.mongo_pages import SETTLED_FLAG, PagePlan

if TYPE_CHECKING:
    from pymongo import MongoClient
    from pymongo.collection import Collection

CLIENT_BULK_WRITE_WIRE_VERSION = 25
"""MongoDB 8.0: the first server with the client-level (multi-collection) ``bulkWrite``."""


class MongoCheckpoints:
    """The write of a checkpoint, for :class:`~q2google.state.mongo.MongoBackend`."""

    if TYPE_CHECKING:  # provided by MongoBackend
        database_name: str
        _client: MongoClient[dict[str, Any]]
        _sessions: Collection[dict[str, Any]]
        _items: Collection[dict[str, Any]]
        _batches: Collection[dict[str, Any]]
        _summary_docs: Collection[dict[str, Any]]

        def _summary_write(
            self, session_id: str, summary: dict[str, Any]
        ) -> tuple[type[Any], tuple[Any, ...], dict[str, Any]]: ...

    def _write(
        self,
        changes: StateChanges,
        summary: dict[str, Any] | None,
        *,
        fresh: bool = False,
        pages: PagePlan | None = None,
    ) -> None:
        """Write ``changes`` (and ``summary``, when it changed) in one round trip.

        Args:
            changes: What the checkpoint writes.
            summary: The session's summary to store, or ``None``.
            fresh: Nothing of the session is stored: insert instead of upserting.
            pages: The settled pages' writes, around the items' (the whole write is then
                ordered): a new session's files are written flagged after their rows; others
                flagged open, then the rows, then the flags.
        """
        session_id = changes.session_id
        one_call = self._client_bulk_write()
        ops: list[tuple[Any, Any]] = []  # (collection, operation)

        def add(collection: Any, kind: Any, *args: Any, **kwargs: Any) -> None:
            if one_call:  # client-level bulkWrite: each operation names its collection
                kwargs["namespace"] = f"{self.database_name}.{collection.name}"
            ops.append((collection, kind(*args, **kwargs)))

        def records(
            collection: Any,
            field: str,
            changed: Iterable[tuple[Any, Mapping[str, Any]]],
            flag: bool = False,
        ) -> None:
            keys: list[Any] = []
            for key, stored in changed:
                keys.append(key)
                data = {**stored, SETTLED_FLAG: fresh and key in settled} if flag else stored
                if fresh:
                    add(collection, InsertOne, {"session_id": session_id, **data})
                else:
                    where = {"session_id": session_id, field: key}
                    add(collection, UpdateOne, where, {"$set": data}, upsert=True)
            if changes.full and not fresh:  # store exactly this session: drop what it lost
                add(collection, DeleteMany, {"session_id": session_id, field: {"$nin": keys}})

        settled = pages.settled if pages else frozenset()
        ordered = bool(pages and (pages.first or pages.rows))
        for collection, kind, args, kwargs in pages.first if pages else ():
            add(collection, kind, *args, **kwargs)
        if fresh:  # a new session: it exists once its metadata is written, after its files
            for collection, kind, args, kwargs in pages.rows if pages else ():
                add(collection, kind, *args, **kwargs)
            records(self._items, "item_key", changes.items, flag=True)
        else:  # flagged open, then the rows, then the flags: no flag without its row
            records(self._items, "item_key", changes.items, flag=True)
            for collection, kind, args, kwargs in (pages.rows + pages.flags) if pages else ():
                add(collection, kind, *args, **kwargs)
        records(self._batches, "batch_index", changes.batches)
        if changes.meta is not None:
            where = {"session_id": session_id}
            add(self._sessions, UpdateOne, where, {"$set": changes.meta}, upsert=True)
        if summary is not None:  # last: on older servers, after the records it counts
            kind, args, kwargs = self._summary_write(session_id, summary)
            add(self._summary_docs, kind, *args, **kwargs)
        if one_call:
            self._client.bulk_write([op for _, op in ops], ordered=ordered)
            return
        runs: list[tuple[Any, list[Any]]] = []  # one bulk per run of a collection, in order
        for collection, op in ops:
            if runs and runs[-1][0] is collection:
                runs[-1][1].append(op)
            else:
                runs.append((collection, [op]))
        for collection, collection_ops in runs:
            collection.bulk_write(collection_ops, ordered=ordered)

    def _client_bulk_write(self) -> bool:
        """Whether every writable server takes the client-level ``bulkWrite``."""
        description = self._client.topology_description
        servers = description.server_descriptions().values()
        versions = [server.max_wire_version for server in servers if server.is_writable]
        return bool(versions) and min(versions) >= CLIENT_BULK_WRITE_WIRE_VERSION
