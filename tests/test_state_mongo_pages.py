"""MongoDB's settled pages: a run reads its settled files from a few page documents, never
their own documents, and a page that is wrong never makes a file disappear or settle."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from q2google.errors import StateCorruptError
from q2google.sessions import summarize
from q2google.state import BatchState, ItemState, SessionState, StageStatus
from q2google.state.mongo import MongoBackend
from q2google.state.mongo_pages import PAGE_ROWS, PAGES_COLLECTION
from q2google.state.settled import settled_item
from q2google.testing.unsettled_contract import OPEN, SETTLED, settled_and_open
from tests.mongo_commands import BatchQueries, ItemDocumentsRead


def _database(uri: str) -> Any:
    return MongoClient(uri).get_default_database()


def _as_stored_before_pages(uri: str) -> None:
    """Make the stored sessions look as this version found them: no pages, no flags."""
    database = _database(uri)
    database[PAGES_COLLECTION].delete_many({})
    database["items"].update_many({}, {"$unset": {"settled": ""}})


def _assert_lean(found: SessionState | None, state: SessionState) -> None:
    """``found`` holds ``state``'s open files, and its other files as settled."""
    assert found is not None
    assert set(found.settled) == set(state.items) - OPEN
    assert set(found.items) == OPEN


def _delivered(media_id: str, *, size: int) -> ItemState:
    """A new file that is already in Google Photos: it settles at its first save."""
    return ItemState(
        media_id=media_id,
        file_name=f"{media_id}.JPG",
        size_bytes=size,
        discovery_status=StageStatus.COMPLETED,
        transfer_status=StageStatus.COMPLETED,
        create_status=StageStatus.COMPLETED,
        media_item_id=f"google-{media_id}",
    )


def _reading(uri: str) -> tuple[MongoBackend, ItemDocumentsRead]:
    listener = ItemDocumentsRead()
    client: Any = MongoClient(uri, event_listeners=[listener])
    return MongoBackend(uri, client=client), listener


def test_a_run_reads_its_open_files_alone_and_the_rest_from_pages(mongo_uri: str) -> None:
    state = settled_and_open()
    MongoBackend(mongo_uri).save(state)
    assert _database(mongo_uri)[PAGES_COLLECTION].count_documents({}) == 1  # 40 rows

    backend, read = _reading(mongo_uri)
    loaded = backend.load_unsettled("lean")
    assert loaded is not None
    assert set(loaded.items) == OPEN
    assert set(loaded.settled) == set(state.items) - OPEN
    assert loaded.settled["done007-0"].captured_at == "2024-05-01T10:00:00+00:00"
    assert summarize(loaded) == summarize(state)
    assert read.count == 2 * len(OPEN), "the open files' marks, then their documents: no more"


def test_a_run_lists_its_batches_once_and_reads_the_open_ones_alone(mongo_uri: str) -> None:
    state = settled_and_open()
    for index, status in enumerate([StageStatus.COMPLETED] * 3 + [StageStatus.FAILED]):
        state.add_batch(BatchState(batch_index=index, item_keys=("done001-0",), status=status))
    MongoBackend(mongo_uri).save(state)
    listener = BatchQueries()
    client: Any = MongoClient(mongo_uri, event_listeners=[listener])
    backend = MongoBackend(mongo_uri, client=client)

    loaded = backend.load_unsettled("lean")
    assert loaded is not None
    assert not loaded.batches
    assert loaded.next_batch_index() == 4
    assert listener.filters == [{"session_id": "lean"}], "one listing, no batch read whole"

    open_batch = BatchState(batch_index=4, item_keys=("uploaded-0",), status=StageStatus.RUNNING)
    loaded.add_batch(open_batch)
    backend.save(loaded)
    listener.filters.clear()
    again = backend.load_unsettled("lean")
    assert again is not None
    assert list(again.batches) == [4]
    assert again.batches[4] == open_batch
    assert listener.filters[1:] == [{"session_id": "lean", "batch_index": {"$in": [4]}}]

    _database(mongo_uri)["batches"].update_one({"batch_index": 2}, {"$set": {"batch_index": "2"}})
    with pytest.raises(StateCorruptError, match="a batch with the index '2'"):
        backend.load_unsettled("lean")


def test_pages_fill_up_and_a_new_one_starts(mongo_uri: str) -> None:
    backend = MongoBackend(mongo_uri)
    state = settled_and_open()
    backend.save(state)
    loaded = backend.load("lean")
    assert loaded is not None
    for number in range(PAGE_ROWS + 10):
        loaded.add_item(_delivered(f"more{number:04d}", size=10))
    backend.save(loaded)
    pages = _database(mongo_uri)[PAGES_COLLECTION]
    assert sorted(page["count"] for page in pages.find()) == [10 + SETTLED, PAGE_ROWS]
    again = MongoBackend(mongo_uri).load_unsettled("lean")
    assert again is not None
    assert len(again.settled) == SETTLED + PAGE_ROWS + 10
    assert set(again.items) == OPEN


def test_a_file_that_opens_again_is_read_as_open(mongo_uri: str) -> None:
    backend = MongoBackend(mongo_uri)
    backend.save(settled_and_open())
    whole = backend.load("lean")
    assert whole is not None
    whole.items["done003-0"].added_to_album = None  # the album was deleted: add it again
    whole.items["done003-0"].transfer_status = StageStatus.SKIPPED
    backend.save(whole)
    loaded = MongoBackend(mongo_uri).load_unsettled("lean")
    assert loaded is not None
    assert "done003-0" in loaded.items, "its old row in a page does not settle it"
    assert "done003-0" not in loaded.settled
    assert set(loaded.items) == OPEN | {"done003-0"}


def test_pages_that_do_not_add_up_are_not_trusted(mongo_uri: str) -> None:
    backend = MongoBackend(mongo_uri)
    state = settled_and_open()
    backend.save(state)
    _database(mongo_uri)[PAGES_COLLECTION].update_many({}, {"$pop": {"chunks": 1}})  # rows lost
    loaded, read = _reading(mongo_uri)
    found = loaded.load_unsettled("lean")
    assert found is not None
    assert set(found.settled) == set(state.items) - OPEN, "no settled file may go missing"
    assert set(found.items) == OPEN
    assert read.count > len(state.items), "every file was read again"


@pytest.mark.parametrize(
    "garbage",
    [
        {"rows": ["x", 1]},  # a row as pages stored them before chunks
        {"chunks": '[["x", 1]]'},
        {"chunks": '[["done001-0"'},  # cut short
        {"chunks": '{"rows": []}'},
        {"chunks": 7},
    ],
)
def test_an_unreadable_row_is_not_trusted(mongo_uri: str, garbage: dict[str, Any]) -> None:
    backend = MongoBackend(mongo_uri)
    state = settled_and_open()
    backend.save(state)
    _database(mongo_uri)[PAGES_COLLECTION].update_many({}, {"$push": garbage})
    loaded, read = _reading(mongo_uri)
    found = loaded.load_unsettled("lean")
    _assert_lean(found, state)
    assert read.count > len(state.items), "every file was read again"


def test_pages_stored_as_rows_before_chunks_keep_loading_and_growing(mongo_uri: str) -> None:
    backend = MongoBackend(mongo_uri)
    state = settled_and_open()
    backend.save(state)
    pages = _database(mongo_uri)[PAGES_COLLECTION]
    for page in pages.find():  # as the version before chunks wrote them
        rows = [row for chunk in page["chunks"] for row in json.loads(chunk)]
        pages.update_one({"_id": page["_id"]}, {"$set": {"rows": rows}, "$unset": {"chunks": 1}})
    stored = MongoBackend(mongo_uri).load_unsettled("lean")
    assert stored is not None
    _assert_lean(stored, state)
    stored.items["uploaded-0"].create_status = StageStatus.COMPLETED
    stored.items["uploaded-0"].media_item_id = "google-uploaded"
    MongoBackend(mongo_uri).save(stored)  # its row follows the old rows, in a chunk

    (page,) = pages.find()
    assert page["rows"]
    assert [row[0] for chunk in page["chunks"] for row in json.loads(chunk)] == ["uploaded-0"]
    loaded, read = _reading(mongo_uri)
    found = loaded.load_unsettled("lean")
    assert found is not None
    assert set(found.items) == OPEN - {"uploaded-0"}
    assert set(found.settled) == set(state.items) - OPEN | {"uploaded-0"}
    assert read.count == 2 * len(found.items), "the open files alone: the pages were trusted"


def test_a_session_stored_before_pages_loads_as_it_did(mongo_uri: str) -> None:
    state = settled_and_open()
    MongoBackend(mongo_uri).save(state)
    _as_stored_before_pages(mongo_uri)
    found = MongoBackend(mongo_uri).load_unsettled("lean")
    _assert_lean(found, state)


def test_a_session_stored_before_pages_keeps_loading_once_pages_begin(mongo_uri: str) -> None:
    state = settled_and_open()
    MongoBackend(mongo_uri).save(state)
    _as_stored_before_pages(mongo_uri)
    backend = MongoBackend(mongo_uri)
    stored = backend.load("lean")
    assert stored is not None
    backend.save(_next_checkpoint(stored))  # 4 files settle: their rows start the pages

    loading, read = _reading(mongo_uri)
    found = loading.load_unsettled("lean")
    assert found is not None
    unflagged = SETTLED + len(OPEN) - 1  # all but "uploaded", now flagged with its row
    assert set(found.items) == OPEN - {"uploaded-0"} | {"done001-0"}
    assert len(found.settled) == SETTLED - 1 + 1 + 3
    assert read.count == unflagged + len(found.items), "the unflagged files, read once"


def test_a_whole_save_writes_the_pages_anew(mongo_uri: str) -> None:
    backend = MongoBackend(mongo_uri)
    stored = settled_and_open()
    backend.save(stored)
    data = stored.to_dict()
    data["items"] = [item for item in data["items"] if not item["media_id"].startswith("done0")]
    smaller = SessionState.from_dict(data)
    smaller.mark_all_dirty()  # as when a session is copied into a backend: stored whole
    backend.save(smaller)
    found = MongoBackend(mongo_uri).load_unsettled("lean")
    assert found is not None
    assert set(found.settled) == set(smaller.items) - OPEN, "no row of a file it dropped"
    rows = sum(page["count"] for page in _database(mongo_uri)[PAGES_COLLECTION].find())
    assert rows == len(found.settled)


# -- a write cut short after any of its operations -------------------------------------------


class PowerCut(Exception):
    """The process died in the middle of a checkpoint's write."""


@contextmanager
def cut_after(operations: int) -> Iterator[None]:
    """Let the next writes apply their first ``operations`` operations, in order, then die."""
    budget = [operations]
    client_write, collection_write = MongoClient.bulk_write, Collection.bulk_write

    def apply(real: Callable[..., Any], target: Any, ops: Any, **kwargs: Any) -> None:
        ops = list(ops)
        if not kwargs.get("ordered", True):  # the server may apply them in any order
            ops.reverse()
        done = ops[: budget[0]]
        budget[0] -= len(done)
        if done:
            real(target, done, **{**kwargs, "ordered": True})
        if len(done) < len(ops):
            raise PowerCut

    def on_client(client: Any, ops: Any, **kwargs: Any) -> None:
        apply(client_write, client, ops, **kwargs)

    def on_collection(collection: Any, ops: Any, **kwargs: Any) -> None:
        apply(collection_write, collection, ops, **kwargs)

    with (
        patch.object(MongoClient, "bulk_write", on_client),
        patch.object(Collection, "bulk_write", on_collection),
    ):
        yield


def _next_checkpoint(state: SessionState) -> SessionState:
    """A checkpoint's changes to the stored session: files settle, one opens again, new ones."""
    uploaded = state.items["uploaded-0"]
    uploaded.create_status = StageStatus.COMPLETED
    uploaded.media_item_id, uploaded.upload_token = "google-uploaded", None
    state.items["done001-0"].added_to_album = None
    state.items["done001-0"].transfer_status = StageStatus.SKIPPED
    for number in range(3):
        state.add_item(_delivered(f"late{number}", size=5))
    return state


def _assert_loads_as_stored(uri: str) -> None:
    """No file missing, none settled that its own document does not say is, none invented:
    by the order of the writes alone (the pages trusted without the count that guards them)."""
    with patch.object(MongoBackend, "_adds_up", staticmethod(lambda *_: True)):
        loaded = MongoBackend(uri).load_unsettled("lean")
    if loaded is None:
        return  # a first save cut before the session's document: nothing is stored yet
    documents = {
        document["item_key"]: document
        for document in _database(uri)["items"].find({"session_id": "lean"}, {"_id": 0})
    }
    assert set(loaded.items) | set(loaded.settled) == set(documents), "a file lost or invented"
    for key in loaded.settled:
        assert settled_item(documents[key], album_title="Trips") is not None, key


def _checkpoint(backend: MongoBackend, *, whole: bool) -> None:
    stored = backend.load("lean")
    assert stored is not None
    state = _next_checkpoint(stored)
    if whole:  # stored whole over the session, as a copy into a backend is
        state = SessionState.from_dict(state.to_dict())
        state.mark_all_dirty()
    backend.save(state)


@pytest.mark.parametrize("older_server", [False, True], ids=["bulkWrite", "per-collection"])
@pytest.mark.parametrize("save", ["first", "checkpoint", "whole"])
def test_a_write_cut_short_anywhere_loses_no_file_and_settles_none_wrongly(
    mongo_uri: str, save: str, older_server: bool
) -> None:
    database = _database(mongo_uri)
    for operations in range(200):
        for name in database.list_collection_names():
            database.drop_collection(name)
        backend = MongoBackend(mongo_uri)
        if older_server:
            backend._client_bulk_write = lambda: False  # type: ignore[method-assign]
        if save != "first":
            backend.save(settled_and_open())
        try:
            with cut_after(operations):
                if save == "first":
                    backend.save(settled_and_open())
                else:
                    _checkpoint(backend, whole=save == "whole")
        except PowerCut:
            _assert_loads_as_stored(mongo_uri)
        else:
            _assert_loads_as_stored(mongo_uri)
            return
    pytest.fail("the write never ended")
