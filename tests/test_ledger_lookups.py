"""Ledger lookups per key on every backend, and what an unreadable ledger does."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from q2google.errors import EXIT_BAD_INPUT, StateCorruptError
from q2google.state import LEDGER_SESSION_ID, DeliveryLedger, JsonFileBackend
from q2google.state.mongo import MongoBackend
from q2google.testing.ledger_contract import delivered_file, recorded
from tests.mongo_commands import CommandNames

REBUILD = "q2google ledger rebuild"


# -- JSON files: an unreadable entry or meta.json --------------------------------------------


def _json_ledger(tmp_path: Path) -> tuple[JsonFileBackend, Path]:
    backend = JsonFileBackend(tmp_path / "state")
    recorded(backend, *(delivered_file(f"m{n}", f"google-{n}") for n in range(3)))
    return backend, tmp_path / "state" / LEDGER_SESSION_ID


def test_an_unreadable_entry_counts_as_absent_with_a_warning_naming_it_and_the_fix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend, directory = _json_ledger(tmp_path)
    torn = directory / "items" / backend.item_file_name("m1-0")
    torn.write_text('{"media_id": "m1", "fil')
    ledger = DeliveryLedger(backend)
    with caplog.at_level(logging.WARNING):
        assert ledger.delivered_many(["m0-0", "m1-0"]) == {"m0-0": "google-0"}
        assert ledger.delivered("m1-0") is None
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, "said once"
    assert str(torn) in warnings[0]
    assert REBUILD in warnings[0]
    assert ledger.record(delivered_file("m1", "google-1")), "the run's own record heals it"
    ledger.save()
    assert DeliveryLedger(backend).delivered_many(["m1-0"]) == {"m1-0": "google-1"}
    assert json.loads(torn.read_text())["media_item_id"] == "google-1"


def test_an_unreadable_meta_file_is_one_line_naming_it_and_the_fix(tmp_path: Path) -> None:
    backend, directory = _json_ledger(tmp_path)
    (directory / "meta.json").write_text("{ torn")
    for lookup in (
        lambda: DeliveryLedger(backend).delivered_many(["m0-0"]),
        lambda: len(DeliveryLedger(backend)),  # the whole-ledger load says the same
    ):
        with pytest.raises(StateCorruptError) as raised:
            lookup()
        message = str(raised.value)
        assert "\n" not in message
        assert str(directory / "meta.json") in message
        assert REBUILD in message
        assert raised.value.exit_code == EXIT_BAD_INPUT


def test_repair_sets_unreadable_files_aside_and_the_ledger_loads_again(tmp_path: Path) -> None:
    backend, directory = _json_ledger(tmp_path)
    torn = directory / "items" / backend.item_file_name("m2-0")
    torn.write_text("[]")
    (directory / "meta.json").write_bytes(b"\xff\xfe")
    with pytest.raises(StateCorruptError):
        len(DeliveryLedger(backend))
    assert sorted(backend.repair_ledger()) == sorted([str(directory / "meta.json"), str(torn)])
    assert len(DeliveryLedger(backend)) == 2, "m0 and m1 kept, m2 set aside"
    aside = sorted(path.name for path in directory.rglob(".*.unreadable"))
    assert len(aside) == 2
    assert backend.repair_ledger() == [], "nothing left to repair"
    assert backend.ledger_size() == 2


def test_repair_of_no_ledger_creates_nothing(tmp_path: Path) -> None:
    backend = JsonFileBackend(tmp_path / "absent")
    assert backend.repair_ledger() == []
    assert not (tmp_path / "absent").exists()


# -- MongoDB: one query per lookup, invalid documents ----------------------------------------


def test_a_mongodb_lookup_is_one_query_whatever_the_keys(mongo_uri: str) -> None:
    recorded(MongoBackend(mongo_uri), *(delivered_file(f"m{n}", f"g-{n}") for n in range(50)))
    listener = CommandNames()
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, event_listeners=[listener])
    backend = MongoBackend(mongo_uri, client=client)
    asked = [f"m{n}-0" for n in range(0, 3000, 3)]
    found = DeliveryLedger(backend).delivered_many(asked)
    assert found == {f"m{n}-0": f"g-{n}" for n in range(0, 50, 3)}
    assert listener.commands == ["find"], listener.commands
    client.close()


def test_an_invalid_mongodb_entry_counts_as_absent_and_repair_moves_it(
    mongo_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = MongoBackend(mongo_uri)
    recorded(backend, *(delivered_file(f"m{n}", f"g-{n}") for n in range(3)))
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    database = client.get_default_database()
    database["items"].update_one(
        {"session_id": LEDGER_SESSION_ID, "item_key": "m1-0"}, {"$set": {"bogus": 1}}
    )
    with caplog.at_level(logging.WARNING):
        assert DeliveryLedger(backend).delivered_many(["m0-0", "m1-0"]) == {"m0-0": "g-0"}
    assert any(REBUILD in r.getMessage() and "'m1-0'" in r.getMessage() for r in caplog.records)
    database["sessions"].update_one({"session_id": LEDGER_SESSION_ID}, {"$set": {"stages": 7}})
    with pytest.raises(StateCorruptError, match=REBUILD):
        len(DeliveryLedger(backend))
    moved = backend.repair_ledger()
    assert len(moved) == 2, moved
    assert database["ledger_set_aside"].count_documents({}) == 2
    assert len(DeliveryLedger(backend)) == 2, "the valid entries are kept"
    recorded(backend, delivered_file("m1", "g-1"))
    assert DeliveryLedger(backend).delivered_many(["m1-0"]) == {"m1-0": "g-1"}
    client.close()
