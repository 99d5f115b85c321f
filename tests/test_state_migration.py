"""State written by release 0.1.0 (tests/fixtures/state-0.1.0) loads and resumes without loss."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from bson import json_util

from q2google.config import Q2GoogleSettings
from q2google.run import run_session
from q2google.sandbox import Sandbox, SandboxLibrary
from q2google.sandbox.library import KIB
from q2google.sessions import item_outcome, list_sessions, summarize
from q2google.state import (
    DeliveryLedger,
    JsonFileBackend,
    SessionCatalog,
    SessionState,
    StageStatus,
    SyncStateBackend,
)

FIXTURE = Path(__file__).parent / "fixtures" / "state-0.1.0"
LIBRARY = SandboxLibrary.generated(
    photos=6,
    videos=2,
    chaptered=1,
    chapters=3,
    bursts=1,
    timelapses=1,
    renamed=1,
    edits=1,
    unready=1,
    no_source=1,
    photo_size=20 * KIB,
    video_size=64 * KIB,
    frames=3,
    seed=11,
)
REFUSED = "refuse=GOPR0002.JPG"
EXPECTED = {  # what release 0.1.0 reported for each session when it wrote them
    "trips-2024": {"completed": 9, "failed": 2, "deferred": 1},
    "nightly": {"completed": 2, "pending": 7, "failed": 1, "skipped": 1, "deferred": 1},
}


def json_state(tmp_path: Path) -> Path:
    copy = tmp_path / "state"
    shutil.copytree(FIXTURE / "json", copy)
    return copy


def mongo_state(mongo_uri: str) -> Any:
    from q2google.state.mongo import MongoBackend

    backend = MongoBackend(mongo_uri)
    database = backend._client.get_default_database()
    dump = json_util.loads((FIXTURE / "mongo.json").read_text())
    for name, documents in dump.items():
        if documents:
            database[name].insert_many(documents)
    return backend


def outcomes(backend: SyncStateBackend, session_id: str) -> Counter[str]:
    state = backend.load(session_id)
    assert state is not None
    return Counter(item_outcome(item) for item in state.items.values())


@pytest.fixture(params=["json", "mongo"])
def old_backend(request: pytest.FixtureRequest, tmp_path: Path) -> SyncStateBackend:
    if request.param == "json":
        return JsonFileBackend(json_state(tmp_path))
    return mongo_state(request.getfixturevalue("mongo_uri"))  # type: ignore[no-any-return]


def test_the_sessions_of_0_1_0_load_with_every_item(old_backend: SyncStateBackend) -> None:
    for session_id, expected in EXPECTED.items():
        counted = outcomes(old_backend, session_id)
        assert {name: n for name, n in counted.items() if n} == expected, session_id
    nightly = old_backend.load("nightly")
    assert nightly is not None
    assert nightly.open_end
    waiting = [item for item in nightly.items.values() if item.upload_token]
    assert waiting, "upload tokens of a run stopped by the quota are kept"
    ledger = DeliveryLedger(old_backend)
    trips = old_backend.load("trips-2024")
    assert trips is not None
    for item in trips.items.values():
        if item.create_status is StageStatus.COMPLETED:
            assert ledger.media_item_id(item.item_key) == item.media_item_id


def test_the_sessions_of_0_1_0_are_listed_from_their_items_once(
    old_backend: SyncStateBackend,
) -> None:
    ids = sorted(EXPECTED)
    before = {session_id: old_backend.load(session_id) for session_id in ids}
    loads: list[str] = []
    load = old_backend.load

    def counted(session_id: str) -> SessionState | None:
        loads.append(session_id)
        return load(session_id)

    old_backend.load = counted  # type: ignore[method-assign]
    assert isinstance(old_backend, SessionCatalog)
    first = list_sessions(old_backend, ids)
    assert loads == ids, "0.1.0 stored no summary: each session is read whole, once"
    for summary in first:
        counts = {name: n for name, n in summary.by_status.items() if n}
        assert counts == EXPECTED[summary.session_id]
        state = before[summary.session_id]
        assert state is not None
        assert summary.to_dict() == summarize(state).to_dict()
    second = list_sessions(old_backend, ids)
    assert loads == ids, "their summaries were stored: the next listing reads only them"
    assert [summary.to_dict() for summary in second] == [summary.to_dict() for summary in first]
    old_backend.load = load  # type: ignore[method-assign]
    for session_id, state in before.items():
        again = old_backend.load(session_id)
        assert again is not None
        assert state is not None
        assert again.to_dict() == state.to_dict(), "listing changed nothing but summaries"


@pytest.mark.sandbox(library=LIBRARY, faults=REFUSED)
async def test_a_session_of_0_1_0_resumes_and_finishes_without_loss(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state_dir = json_state(tmp_path)
    before = JsonFileBackend(state_dir).load("nightly")
    assert before is not None
    settings = Q2GoogleSettings(
        gopro_api_url=sandbox.url,
        photos_api_url=sandbox.url,
        state_dir=state_dir,
        google_token_file=sandbox.write_token_file(tmp_path / "token.json"),
    )
    summary = await run_session(
        settings, session_id="nightly", start=None, end=None, gopro_token=sandbox.gopro_token
    )
    after = JsonFileBackend(state_dir).load("nightly")
    assert after is not None
    assert set(before.items) <= set(after.items), "no item lost"
    for key, item in before.items.items():
        if item.create_status is StageStatus.COMPLETED:  # delivered then: kept, not sent again
            assert after.items[key].media_item_id == item.media_item_id
    assert summary.by_status["pending"] == 0
    created = Counter(entry["sha256"] for entry in sandbox.snapshot()["mediaItems"])
    assert max(created.values(), default=1) == 1, "nothing created twice"
    delivered_now = sum(
        1
        for key, item in after.items.items()
        if item.create_status is StageStatus.COMPLETED
        and before.items.get(key) is not None
        and before.items[key].create_status is not StageStatus.COMPLETED
    )
    assert delivered_now == len(sandbox.snapshot()["mediaItems"])
