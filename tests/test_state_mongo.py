"""MongoBackend against a real MongoDB wire-protocol server (SecantusDB), not a mock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from secantus import SecantusDBServer

from q2google.config import Q2GoogleSettings
from q2google.errors import (
    EXIT_BAD_INPUT,
    EXIT_TRY_LATER,
    ConfigError,
    StateCorruptError,
    StateError,
    StateUnavailableError,
)
from q2google.state import StageStatus, SyncStateBackend, build_backend, new_session
from q2google.state.mongo import MongoBackend
from q2google.testing import BackendSpec, SyncStateBackendContract, sample_session
from tests.mongo_commands import CommandNames


class TestMongoBackendContract(SyncStateBackendContract):
    @pytest.fixture
    def backend(self, mongo_uri: str) -> Iterator[SyncStateBackend]:
        backend = MongoBackend(mongo_uri)
        yield backend
        backend.close()

    @pytest.fixture
    def reopen_backend(self, mongo_uri: str) -> Callable[[], SyncStateBackend]:
        return lambda: MongoBackend(mongo_uri)

    @pytest.fixture
    def backend_spec(self, mongo_uri: str) -> BackendSpec:
        # A short lease TTL: a killed owner's lease is free again in half a second.
        return BackendSpec(
            "q2google.state.mongo:MongoBackend", {"uri": mongo_uri, "lease_ttl_seconds": 0.5}
        )

    @pytest.fixture
    def drop_summary(self, mongo_uri: str) -> Callable[[str], None]:
        def drop(session_id: str) -> None:
            client: MongoClient[dict[str, Any]]
            with MongoClient(mongo_uri) as client:
                client.get_default_database()["summaries"].delete_one({"_id": session_id})

        return drop


def test_one_round_trip_per_checkpoint(mongo_uri: str) -> None:
    from pymongo import MongoClient

    listener = CommandNames()
    client: Any = MongoClient(mongo_uri, event_listeners=[listener])
    backend = MongoBackend(mongo_uri, client=client)
    state = sample_session("rt", items=500)
    backend.save(state)
    for number in range(5):
        listener.commands.clear()
        state.items["media000100-0"].upload_offset = (number + 1) * 262_144
        state.batches[0].status = StageStatus.RUNNING if number % 2 else StageStatus.COMPLETED
        state.discovery_next_page = number + 10
        backend.save(state)
        assert listener.commands == ["bulkWrite"], listener.commands
    loaded = MongoBackend(mongo_uri).load("rt")
    assert loaded is not None
    assert loaded.to_dict() == state.to_dict()


def test_claiming_many_files_costs_round_trips_per_call_not_per_file(mongo_uri: str) -> None:
    listener = CommandNames()
    client: Any = MongoClient(mongo_uri, event_listeners=[listener])
    backend = MongoBackend(mongo_uri, client=client)
    keys = [f"rt-claim-{number}" for number in range(16)]
    with backend.lease("rt-holder"), backend.lease("rt-claimer"):
        assert backend.claim_items(keys[:8], "rt-holder") == keys[:8]
        listener.commands.clear()
        assert backend.claim_items(keys, "rt-claimer") == keys[8:]
        # one insert; then one read of the 8 held and one lease lookup for their one holder
        assert listener.commands == ["insert", "find", "find"], listener.commands
        listener.commands.clear()
        backend.release_items(keys, "rt-claimer")
        assert listener.commands == ["delete"], listener.commands
        assert backend.claim_items(keys[8:], "rt-holder") == keys[8:]  # released: free
        backend.release_items(keys, "rt-holder")


def test_claims_the_server_did_not_confirm_are_let_go(mongo_uri: str) -> None:
    backend = MongoBackend(mongo_uri)
    admin: MongoClient[dict[str, Any]]
    with MongoClient(mongo_uri) as admin, backend.lease("wc-holder"), backend.lease("wc"):
        assert backend.claim_items(["wc-held"], "wc-holder") == ["wc-held"]
        admin.admin.command(  # the next insert runs, but its write concern fails
            "configureFailPoint",
            "failCommand",
            mode={"times": 1},
            data={
                "failCommands": ["insert"],
                "writeConcernError": {"code": 64, "errmsg": "waiting for replication timed out"},
            },
        )
        try:
            with pytest.raises(StateError, match="MongoDB"):
                backend.claim_items(["wc-held", "wc-new"], "wc")
        finally:
            admin.admin.command("configureFailPoint", "failCommand", mode="off")
        # the unconfirmed claim was let go: another running session can take the file
        assert backend.claim_items(["wc-new"], "wc-holder") == ["wc-new"]


def test_recording_deliveries_is_one_round_trip_once_the_ledger_exists(mongo_uri: str) -> None:
    listener = CommandNames()
    client: Any = MongoClient(mongo_uri, event_listeners=[listener])
    backend = MongoBackend(mongo_uri, client=client)
    entries = list(sample_session("rt-ledger", items=4).items.values())
    backend.record_deliveries(entries[:2])  # makes sure the ledger's document exists
    listener.commands.clear()
    backend.record_deliveries(entries[2:])
    assert listener.commands == ["update"], listener.commands
    keys = [entry.item_key for entry in entries]
    assert set(backend.delivered_entries(keys)) == set(keys)


def test_database_comes_from_the_uri_path(mongo_server: SecantusDBServer) -> None:
    host, port = mongo_server.address
    assert MongoBackend(f"mongodb://{host}:{port}/mydb").database_name == "mydb"
    assert MongoBackend(f"mongodb://{host}:{port}/").database_name == "q2google"


def test_build_backend_picks_mongo_for_its_schemes(mongo_uri: str) -> None:
    backend = build_backend(Q2GoogleSettings(state_uri=mongo_uri))
    assert isinstance(backend, MongoBackend)


def test_a_malformed_uri_is_one_line_without_the_password() -> None:
    with pytest.raises(ConfigError) as caught:
        MongoBackend("mongodb://admin:hunter2@host:notaport/db")
    assert "hunter2" not in str(caught.value)
    assert "not a valid MongoDB URI" in str(caught.value)


def test_an_unreachable_server_is_one_line_naming_it_exit_75() -> None:
    backend = MongoBackend(
        "mongodb://admin:hunter2@127.0.0.1:9/q2google", timeout_ms=300, retry_seconds=0
    )
    with pytest.raises(StateUnavailableError, match=r"127\.0\.0\.1:9 is unreachable") as caught:
        backend.load("any")
    assert "hunter2" not in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.exit_code == EXIT_TRY_LATER
    assert "progress up to the last checkpoint is saved" in str(caught.value)
    state = new_session("any", start_date_iso="2024-01-01", end_date_iso="2024-01-02", batch_size=1)
    with pytest.raises(StateUnavailableError, match="unreachable"):
        backend.save(state)
    assert state.has_pending_changes, "a failed save keeps its changes for the next one"
    with pytest.raises(StateUnavailableError), backend.lease("any"):
        pytest.fail("leased on an unreachable server")


def test_the_uri_bounds_the_wait_for_an_unreachable_server() -> None:
    uri = "mongodb://127.0.0.1:9/q2google?serverSelectionTimeoutMS=300"
    assert MongoBackend(uri).retry_seconds == 0.3
    assert MongoBackend("mongodb://127.0.0.1:9/q2google").retry_seconds == 60.0
    assert MongoBackend(uri, retry_seconds=5).retry_seconds == 5


def test_a_server_back_within_the_retry_window_loses_nothing(tmp_path: Path) -> None:
    import logging
    import threading

    storage = str(tmp_path / "mongo")
    server = SecantusDBServer(storage_path=storage)
    server.start()
    host, port = server.address
    uri = f"mongodb://{host}:{port}/q2google"
    backend = MongoBackend(uri, timeout_ms=200, retry_seconds=30)
    state = sample_session("blip", items=5)
    backend.save(state)
    server.stop()  # gone for a moment
    state.items["burst0-0"].upload_offset = 1
    failures: list[BaseException] = []

    def save() -> None:
        try:
            backend.save(state)
        except BaseException as error:  # reported below
            failures.append(error)

    retried = threading.Event()

    class OnRetry(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            retried.set()

    retry_log = logging.getLogger("q2google.state.retrying")
    handler, level = OnRetry(logging.DEBUG), retry_log.level
    retry_log.addHandler(handler)
    retry_log.setLevel(logging.DEBUG)
    saving = threading.Thread(target=save)
    saving.start()
    try:
        assert retried.wait(timeout=30), "the save was not retried"
    finally:
        retry_log.removeHandler(handler)
        retry_log.setLevel(level)
    server = SecantusDBServer(port=port, storage_path=storage)  # back, same data
    server.start()
    try:
        saving.join(timeout=60)
        assert not saving.is_alive()
        assert failures == []
        stored = MongoBackend(uri).load("blip")
        assert stored is not None
        assert stored.to_dict() == state.to_dict()
    finally:
        server.stop()


def test_a_corrupt_document_is_exit_2_not_retried(mongo_uri: str) -> None:
    from pymongo import MongoClient

    backend = MongoBackend(mongo_uri)
    backend.save(sample_session("bad"))
    db: Any = MongoClient(mongo_uri).get_default_database()
    db.items.update_one({"session_id": "bad"}, {"$set": {"attempts": "many"}})
    with pytest.raises(StateCorruptError) as caught:
        backend.load("bad")
    assert caught.value.exit_code == EXIT_BAD_INPUT


def test_unique_indexes_on_natural_keys(mongo_uri: str) -> None:
    backend = MongoBackend(mongo_uri)
    backend.save(sample_session("ix"))
    from pymongo import MongoClient

    db: Any = MongoClient(mongo_uri).get_default_database()
    unique = {
        name: [tuple(index["key"]) for index in db[name].list_indexes() if index.get("unique")]
        for name in ("sessions", "items", "batches")
    }
    assert unique == {
        "sessions": [("session_id",)],
        "items": [("session_id", "item_key")],
        "batches": [("session_id", "batch_index")],
    }


def test_sync_state_survives_in_mongo(tmp_path: Path, mongo_uri: str) -> None:
    backend = MongoBackend(mongo_uri)
    state = sample_session("x", items=3)
    backend.save(state)
    assert backend.session_ids() == ["x"]


@pytest.mark.slow
async def test_a_sync_on_mongo_survives_the_server_going_away(tmp_path: Path) -> None:
    import asyncio

    from q2google.sandbox import Sandbox, SandboxLibrary
    from tests.test_sync import assert_exactly_once, run_sync

    storage = str(tmp_path / "mongo")
    server = SecantusDBServer(storage_path=storage)
    server.start()
    host, port = server.address
    uri = f"mongodb://{host}:{port}/q2google"
    library = SandboxLibrary.generated(
        photos=20,
        videos=2,
        bursts=1,
        frames=4,
        photo_size=300 * 1024,
        video_size=4 * 1024**2,
        seed=4,
    )
    sandbox = Sandbox(library, faults=None)
    with sandbox.running_in_thread():
        sandbox.set_faults("bandwidth=2MiB")
        run = asyncio.ensure_future(
            run_sync(sandbox, tmp_path, backend=MongoBackend(uri, timeout_ms=1000, retry_seconds=1))
        )
        while sandbox.stats.upload_bytes_received < 2 * 1024**2 and not run.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        server.stop()  # MongoDB goes away midway
        with pytest.raises(StateError, match="unreachable") as caught:
            await run
        assert "\n" not in str(caught.value)
        assert len(sandbox.snapshot()["mediaItems"]) < len(library.deliverables())

        server = SecantusDBServer(port=port, storage_path=storage)  # back, same data
        server.start()
        sandbox.set_faults("")
        await run_sync(sandbox, tmp_path, backend=MongoBackend(uri))
        assert_exactly_once(sandbox)
        stored = MongoBackend(uri).load("s1")
        assert stored is not None
        assert {item.create_status for item in stored.items.values()} == {StageStatus.COMPLETED}
    server.stop()


def test_a_run_whose_lease_was_taken_over_stops_at_its_next_checkpoint(mongo_uri: str) -> None:
    import time

    import pymongo

    from q2google.errors import SessionBusyError

    backend = MongoBackend(mongo_uri, lease_ttl_seconds=0.3)
    state = new_session("s1", start_date_iso="2024-01-01", end_date_iso="2024-02-01", batch_size=5)
    with backend.lease("s1"):
        backend.save(state)
        database: Any = pymongo.MongoClient(mongo_uri).get_default_database()
        database["leases"].update_one({"_id": "s1"}, {"$set": {"owner": "another-run"}})
        deadline = time.monotonic() + 5
        caught: SessionBusyError | None = None
        while caught is None and time.monotonic() < deadline:  # the heartbeat finds it out
            state.batch_size += 1
            try:
                backend.save(state)
            except SessionBusyError as lost:
                caught = lost
            time.sleep(0.05)
    assert caught is not None, "the run went on without its lease"
    assert "lease was lost" in str(caught)
    assert caught.exit_code == 75
