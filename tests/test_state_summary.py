"""Session summaries: what each built-in backend stores, when it writes it, and `sessions list`
reading summaries instead of sessions (the contract part is in the backends' contract suites)."""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from q2google.config import Q2GoogleSettings
from q2google.errors import StateWriteError
from q2google.run import run_session
from q2google.sandbox import Sandbox, SandboxLibrary
from q2google.sandbox.library import KIB
from q2google.sessions import SessionSummary, list_sessions, summarize
from q2google.state import (
    ErrorRecord,
    JsonFileBackend,
    SessionSummaries,
    StageName,
    StageStatus,
    SyncStateBackend,
)
from q2google.state.base import ExclusionKind
from q2google.state.mongo import MongoBackend
from q2google.state.outcomes import item_outcome, mark_data, mark_item
from q2google.state.settled import settled_item
from q2google.testing import sample_session
from tests.mongo_commands import CommandNames

SMALL_LIBRARY = SandboxLibrary.generated(
    photos=4, videos=1, edits=1, photo_size=20 * KIB, video_size=64 * KIB, seed=11
)


class CountingLoads:
    """Count the sessions a backend reads whole."""

    def __init__(self, backend: Any) -> None:
        self.loads: list[str] = []
        original = backend.load

        def load(session_id: str) -> Any:
            self.loads.append(session_id)
            return original(session_id)

        backend.load = load


@pytest.fixture(params=["json", "mongo"])
def any_backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "json":
        yield JsonFileBackend(tmp_path / "state")
        return
    backend = MongoBackend(request.getfixturevalue("mongo_uri"))
    yield backend
    backend.close()


def _summary_file(backend: JsonFileBackend, session_id: str) -> Path:
    return backend.state_dir / session_id / "summary.json"


def test_a_file_counts_the_same_from_memory_and_from_its_stored_form() -> None:
    state = sample_session("marks", items=8)
    files = list(state.items.values())
    files[0].create_status = StageStatus.COMPLETED
    files[1].exclude(ExclusionKind.GONE, "deleted from the GoPro cloud")
    files[2].exclude(ExclusionKind.DEFERRED, "processing")
    files[3].record_error(ErrorRecord(stage=StageName.CREATE, message="late", code="500"))
    files[3].create_status = StageStatus.FAILED
    files[4].size_bytes = None
    outcomes = {item_outcome(item) for item in files}
    assert outcomes == {"completed", "gone", "deferred", "failed", "pending"}
    for item in files:
        assert mark_data(item.to_dict()) == mark_item(item), item.item_key


@pytest.mark.parametrize("album", [None, "GoPro 2024"])
def test_a_settled_file_counts_the_same_in_its_small_form(album: str | None) -> None:
    state = sample_session("settled", items=7)
    files = list(state.items.values())
    for item in files:
        item.create_status = StageStatus.COMPLETED
    files[0].transfer_status = StageStatus.COMPLETED  # created here (into the album)
    files[1].added_to_album = "album-1"  # created by another session, added to the album
    files[2].size_bytes = None
    files[3].exclude(ExclusionKind.SKIPPED, "held back after all")
    files[5].create_status = StageStatus.FAILED
    stored = {item.item_key: item.to_dict() for item in files}
    stored[files[4].item_key]["discovery_status"] = "listed"  # not a valid stored form
    settled = {key: settled_item(data, album_title=album) for key, data in stored.items()}
    for item in files[:3] + files[6:]:
        entry = settled[item.item_key]
        if album and item in (files[2], files[6]):  # neither created into nor added to it
            assert entry is None
            continue
        assert entry is not None, item.item_key
        assert entry.mark == mark_item(item)
        assert entry.captured_at == item.captured_at
    for item in files[3:6]:  # held back, not valid, not created
        assert settled[item.item_key] is None


def test_summary_json_is_written_beside_meta_only_when_the_counts_change(tmp_path: Path) -> None:
    backend = JsonFileBackend(tmp_path)
    state = sample_session("trip", items=20)
    backend.save(state)
    summary = _summary_file(backend, "trip")
    stored = json.loads(summary.read_text())
    assert stored["files"] == 20
    assert stored["session_id"] == "trip"
    assert (
        stored["updated_at"]
        == json.loads((tmp_path / "trip" / "meta.json").read_text())["updated_at"]
    )
    written = summary.stat().st_ino
    meta = (tmp_path / "trip" / "meta.json").stat().st_ino

    state.items["media000010-0"].upload_offset = 1_048_576  # not counted: no summary write
    backend.save(state)
    assert summary.stat().st_ino == written

    state.items["media000010-0"].create_status = StageStatus.COMPLETED
    backend.save(state)
    assert summary.stat().st_ino != written, "a changed outcome rewrites the summary"
    assert (tmp_path / "trip" / "meta.json").stat().st_ino == meta, "and only the summary"
    assert json.loads(summary.read_text())["by_status"]["completed"] == 1


def test_a_torn_summary_is_rebuilt_from_the_items_not_reported(tmp_path: Path) -> None:
    backend = JsonFileBackend(tmp_path)
    state = sample_session("trip", items=6)
    backend.save(state)
    _summary_file(backend, "trip").write_text('{"files": 6, "by_st')
    assert backend.session_summary("trip") is None
    reopened = JsonFileBackend(tmp_path)
    assert reopened.load("trip") == state, "a torn summary never stops a session from loading"
    [listed] = list_sessions(JsonFileBackend(tmp_path), ["trip"])
    assert listed.error is None
    assert listed.to_dict() == summarize(state).to_dict()
    assert JsonFileBackend(tmp_path).session_summary("trip") is not None, "written again"


def test_a_save_cut_before_its_summary_leaves_none_that_is_trusted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = JsonFileBackend(tmp_path, retry_seconds=0)
    state = sample_session("trip", items=6)
    backend.save(state)
    real_write = JsonFileBackend._write_file

    def no_summary(self: JsonFileBackend, path: Path, data: dict[str, Any]) -> None:
        if path.name == "summary.json":
            raise OSError(errno.EACCES, "Permission denied")
        real_write(self, path, data)

    monkeypatch.setattr(JsonFileBackend, "_write_file", no_summary)
    state.items["burst0-0"].create_status = StageStatus.COMPLETED
    state.listings = 3  # the metadata changes too: the summary's updated_at is left behind
    with pytest.raises(StateWriteError):
        backend.save(state)
    assert JsonFileBackend(tmp_path).session_summary("trip") is None, "outdated: not used"
    monkeypatch.setattr(JsonFileBackend, "_write_file", real_write)

    backend.save(state)  # the same backend, the changes still pending: the summary follows
    stored = JsonFileBackend(tmp_path).session_summary("trip")
    assert stored is not None
    assert stored.by_status["completed"] == 1
    assert stored.listings == 3


def test_a_summary_left_behind_is_made_right_by_the_next_load_and_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = JsonFileBackend(tmp_path, retry_seconds=0)
    state = sample_session("trip", items=6)
    backend.save(state)
    previous = _summary_file(backend, "trip").read_bytes()
    state.items["burst0-0"].create_status = StageStatus.COMPLETED  # no metadata change
    backend.save(state)
    _summary_file(backend, "trip").write_bytes(previous)  # as if killed before its write
    lagging = JsonFileBackend(tmp_path).session_summary("trip")
    assert lagging is not None
    assert lagging.by_status["completed"] == 0, "the documented lag after a crash"

    resumed_backend = JsonFileBackend(tmp_path)
    resumed = resumed_backend.load("trip")
    assert resumed is not None
    resumed_backend.save(resumed)  # nothing changed; the summary is written all the same
    stored = JsonFileBackend(tmp_path).session_summary("trip")
    assert stored is not None
    assert stored.by_status["completed"] == 1


def test_listing_reads_no_session_whole_once_each_has_a_summary(any_backend: Any) -> None:
    for number in range(3):
        any_backend.save(sample_session(f"listed-{number}", items=30))
    counted = CountingLoads(any_backend)
    ids = [f"listed-{number}" for number in range(3)]
    summaries = list_sessions(any_backend, ids)
    assert [summary.session_id for summary in summaries] == ids
    assert counted.loads == []
    expected = summarize(sample_session("listed-0", items=30)).to_dict()
    got = summaries[0].to_dict()
    assert {key: got[key] for key in expected if key != "updated_at"} == {
        key: value for key, value in expected.items() if key != "updated_at"
    }


def test_a_session_stored_without_summary_is_read_whole_once(any_backend: Any) -> None:
    state = sample_session("older", items=12)
    any_backend.save(state)
    _drop_summary(any_backend, "older")
    counted = CountingLoads(any_backend)
    [first] = list_sessions(any_backend, ["older"])
    assert counted.loads == ["older"]
    [second] = list_sessions(any_backend, ["older"])
    assert counted.loads == ["older"], "the summary was stored the first time"
    assert first.to_dict() == second.to_dict() == summarize(state).to_dict()


def test_a_running_session_without_summary_is_listed_but_left_to_its_run(
    any_backend: Any,
) -> None:
    state = sample_session("running", items=4)
    any_backend.save(state)
    _drop_summary(any_backend, "running")
    with any_backend.lease("running"):  # a run holds it: its own saves store the summary
        [listed] = list_sessions(any_backend, ["running"])
    assert listed.to_dict() == summarize(state).to_dict()
    assert isinstance(any_backend, SessionSummaries)
    assert any_backend.session_summary("running") is None


def test_mongo_keeps_summaries_beside_the_session_documents(mongo_uri: str) -> None:
    listener = CommandNames()
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, event_listeners=[listener])
    backend = MongoBackend(mongo_uri, client=client)
    state = sample_session("beside", items=50)
    backend.save(state)
    database = client.get_default_database()
    session = database["sessions"].find_one({"session_id": "beside"}, {"_id": 0})
    assert session is not None
    assert set(session) == set(state.meta_dict()), "the session document stays its metadata"
    listener.commands.clear()
    state.items["media000010-0"].create_status = StageStatus.COMPLETED  # counts, no metadata
    backend.save(state)
    assert listener.commands == ["bulkWrite"], "the summary goes in the checkpoint's round trip"
    stored = database["summaries"].find_one({"_id": "beside"})
    assert stored is not None
    assert stored["by_status"]["completed"] == 1
    assert backend.delete("beside")
    assert database["summaries"].find_one({"_id": "beside"}) is None


def _drop_summary(backend: SyncStateBackend, session_id: str) -> None:
    """Make a session look stored by q2google 0.1.0: without a summary."""
    if isinstance(backend, JsonFileBackend):
        _summary_file(backend, session_id).unlink()
    else:
        assert isinstance(backend, MongoBackend)
        backend._summary_docs.delete_one({"_id": session_id})


@pytest.mark.sandbox(library=SMALL_LIBRARY, faults="refuse=GOPR0002.JPG")
async def test_after_each_run_the_summary_is_the_session_counted(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    settings = Q2GoogleSettings(
        gopro_api_url=sandbox.url,
        photos_api_url=sandbox.url,
        state_dir=tmp_path / "state",
        google_token_file=sandbox.write_token_file(tmp_path / "token.json"),
    )
    window = {"start": datetime(2023, 1, 1, tzinfo=UTC), "end": datetime(2025, 1, 1, tzinfo=UTC)}
    for retry in (False, True):  # a run with failed files (and an edit), then `sessions retry`
        ran = await run_session(
            settings,
            session_id="run",
            gopro_token=sandbox.gopro_token,
            retry_failed=retry,
            **(window if not retry else {"start": None, "end": None}),
        )
        backend = JsonFileBackend(tmp_path / "state")
        stored = backend.session_summary("run")
        state = backend.load("run")
        assert stored is not None
        assert state is not None
        assert SessionSummary.from_stored(stored).to_dict() == summarize(state).to_dict()
        assert stored.by_status == ran.by_status
        assert stored.status == ("completed" if retry else "failed")
        assert stored.by_status["skipped"] == 1
        sandbox.set_faults("")


def test_a_stored_form_settles_with_mongodbs_integers_and_never_crashes_on_odd_ones() -> None:
    from bson.int64 import Int64

    item = next(iter(sample_session("odd", items=1).items.values()))
    item.create_status = item.transfer_status = StageStatus.COMPLETED
    stored = {**item.to_dict(), "size_bytes": Int64(3 * 2**30), "position": Int64(7)}
    entry = settled_item(stored, album_title=None)
    assert entry is not None
    assert entry.mark[0] == 7
    assert entry.mark[5] == 3 * 2**30
    for field, odd in (
        ("discovery_status", ["completed"]),
        ("position", True),
        ("size_bytes", "1"),
    ):
        assert settled_item({**stored, field: odd}, album_title=None) is None, field
