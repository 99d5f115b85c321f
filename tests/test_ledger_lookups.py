"""Ledger lookups per key on every backend, and what an unreadable ledger does."""

from __future__ import annotations

import errno
import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from q2google.errors import EXIT_BAD_INPUT, StateCorruptError, StateError
from q2google.state import LEDGER_SESSION_ID, DeliveryLedger, JsonFileBackend
from q2google.state.ledger import new_ledger
from q2google.state.local_entries import ENTRIES_PER_FILE, EntryFiles
from q2google.state.mongo import MongoBackend
from q2google.testing.ledger_contract import delivered_file, recorded
from tests.mongo_commands import CommandNames

REBUILD = "q2google ledger rebuild"


# -- JSON files: an unreadable entry or meta.json --------------------------------------------


def _json_ledger(tmp_path: Path) -> tuple[JsonFileBackend, Path]:
    backend = JsonFileBackend(tmp_path / "state")
    recorded(backend, *(delivered_file(f"m{n}", f"google-{n}") for n in range(3)))
    return backend, tmp_path / "state" / LEDGER_SESSION_ID


def _torn(name: Path, content: str) -> Path:
    """Give one entry's name a damaged file of its own (the entries recorded together share
    one file: damage to it shows under each name, see the test below)."""
    name.unlink()
    name.write_text(content)
    return name


def test_an_unreadable_entry_counts_as_absent_with_a_warning_naming_it_and_the_fix(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend, directory = _json_ledger(tmp_path)
    torn = _torn(directory / "items" / backend.item_file_name("m1-0"), '{"media_id": "m1", "fil')
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
    torn = _torn(directory / "items" / backend.item_file_name("m2-0"), "[]")
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


# -- JSON files: the entries of files created together share one file ----------------------


def _inodes(directory: Path) -> Counter[int]:
    """How many entry names each file of ``items/`` has."""
    return Counter(path.stat().st_ino for path in (directory / "items").glob("*.json"))


def test_entries_recorded_together_share_a_file_and_each_name_reads_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend = JsonFileBackend(tmp_path / "state")
    count = ENTRIES_PER_FILE * 2 + 20
    files = [delivered_file(f"m{n}", f"google-{n}") for n in range(count)]
    recorded(backend, *files)
    directory = tmp_path / "state" / LEDGER_SESSION_ID
    assert sorted(_inodes(directory).values()) == [20, ENTRIES_PER_FILE, ENTRIES_PER_FILE]
    assert not [path for path in (directory / "items").iterdir() if path.name.startswith(".")]
    assert json.loads((directory / "meta.json").read_text())["schema_version"] == 4

    parsed: list[bytes] = []
    loads = json.loads

    def counted(raw: bytes) -> Any:
        parsed.append(raw)
        return loads(raw)

    monkeypatch.setattr("q2google.state.local_entries.json.loads", counted)
    keys = [item.item_key for item in files]
    expected = {item.item_key: item.media_item_id for item in files}
    assert DeliveryLedger(backend).delivered_many([*keys, "never-0"]) == expected
    shared = [raw for raw in parsed if b'"ledger_entries"' in raw]
    assert len(shared) == 3, "each shared file is parsed once however many names are read"
    assert backend.ledger_size() == count
    assert len(DeliveryLedger(backend)) == count, "the whole ledger reads every entry once"
    assert DeliveryLedger(backend).delivered("m7-0") == "google-7"


def test_a_name_read_twice_reads_its_entry_twice(tmp_path: Path) -> None:
    """A shared file's entries are kept until each is read once; a second read parses again."""
    backend, directory = _json_ledger(tmp_path)
    files = EntryFiles(backend.item_file_name)
    names = [directory / "items" / backend.item_file_name(f"m{n}-0") for n in (1, 0, 1, 2, 2)]
    read = [files.read(name) for name in names]
    assert [(entry.media_item_id if entry else None, problem) for entry, problem in read] == [
        ("google-1", None),
        ("google-0", None),
        ("google-1", None),
        ("google-2", None),
        ("google-2", None),
    ]


def test_an_entry_recorded_again_replaces_its_own_name_only(tmp_path: Path) -> None:
    backend, directory = _json_ledger(tmp_path)
    assert sorted(_inodes(directory).values()) == [3]
    recorded(backend, delivered_file("m1", "google-again"))
    assert sorted(_inodes(directory).values()) == [1, 2]
    assert DeliveryLedger(backend).delivered_many(["m0-0", "m1-0", "m2-0"]) == {
        "m0-0": "google-0",
        "m1-0": "google-again",
        "m2-0": "google-2",
    }


def test_damage_to_a_shared_file_shows_under_each_of_its_names(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend, directory = _json_ledger(tmp_path)
    recorded(backend, delivered_file("alone", "google-alone"))
    shared = directory / "items" / backend.item_file_name("m1-0")
    with shared.open("r+b") as handle:  # the disk damages the file itself, under all its names
        handle.truncate(40)
    with caplog.at_level(logging.WARNING):
        found = DeliveryLedger(backend).delivered_many(["m0-0", "m1-0", "m2-0", "alone-0"])
    assert found == {"alone-0": "google-alone"}
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3
    assert all(REBUILD in warning for warning in warnings)
    assert len(backend.repair_ledger()) == 3, "each name is set aside"
    assert len(DeliveryLedger(backend)) == 1


def test_a_name_given_another_files_entries_is_unreadable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    backend, directory = _json_ledger(tmp_path)
    items = directory / "items"
    os.link(items / backend.item_file_name("m0-0"), items / backend.item_file_name("other-0"))
    with caplog.at_level(logging.WARNING):
        assert DeliveryLedger(backend).delivered_many(["other-0", "m0-0"]) == {"m0-0": "google-0"}
    assert "it holds the entries of 'm0-0', 'm1-0', 'm2-0'" in caplog.text
    with pytest.raises(StateCorruptError, match="other-0"):
        len(DeliveryLedger(backend))


def test_a_ledger_of_one_file_per_entry_is_marked_before_files_are_shared(
    tmp_path: Path,
) -> None:
    """A q2google that reads one entry per file must stop at a ledger with shared files (it
    would count their files as never delivered), and it stops at a newer schema version."""
    backend = JsonFileBackend(tmp_path / "state")
    recorded(backend, delivered_file("old", "google-old"))
    meta = tmp_path / "state" / LEDGER_SESSION_ID / "meta.json"
    stored = json.loads(meta.read_text())
    meta.write_text(json.dumps({**stored, "schema_version": 2}))  # as earlier versions wrote it
    assert DeliveryLedger(backend).delivered_many(["old-0"]) == {"old-0": "google-old"}
    recorded(backend, *(delivered_file(f"m{n}", f"google-{n}") for n in range(2)))
    assert json.loads(meta.read_text())["schema_version"] == 4
    assert len(DeliveryLedger(backend)) == 3

    meta.write_text(json.dumps({**stored, "schema_version": 5}))
    with pytest.raises(StateError, match="newer q2google"):
        DeliveryLedger(backend).delivered_many(["old-0"])


def test_a_ledger_an_older_q2google_made_first_is_marked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two processes make the ledger at once and the other, older, one wins: its meta.json is
    marked before a file is shared."""
    backend = JsonFileBackend(tmp_path / "state")

    def older_first(self: JsonFileBackend, directory: Path, meta: Path) -> None:
        (directory / "items").mkdir(parents=True)
        meta.write_text(json.dumps({**new_ledger().meta_dict(), "schema_version": 2}))

    monkeypatch.setattr(JsonFileBackend, "_create_ledger", older_first)
    recorded(backend, *(delivered_file(f"m{n}", f"google-{n}") for n in range(2)))
    meta = tmp_path / "state" / LEDGER_SESSION_ID / "meta.json"
    assert json.loads(meta.read_text())["schema_version"] == 4
    assert len(DeliveryLedger(backend)) == 2


def test_without_hard_links_each_entry_is_a_file_of_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused(source: Path, name: Path) -> None:  # as FAT: a name taken first, then EPERM
        if Path(name).exists():
            raise FileExistsError(errno.EEXIST, "File exists")
        raise OSError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr("q2google.state.local_links.os.link", refused)
    backend, directory = _json_ledger(tmp_path)
    assert sorted(_inodes(directory).values()) == [1, 1, 1]
    recorded(backend, delivered_file("m1", "google-again"), delivered_file("m3", "google-3"))
    assert sorted(_inodes(directory).values()) == [1, 1, 1, 1]
    assert not [path for path in (directory / "items").iterdir() if path.name.startswith(".")]
    for path in (directory / "items").iterdir():  # each holds its own entry, not the group's
        assert backend.item_file_name(json.loads(path.read_text())["item_key"]) == path.name
    assert DeliveryLedger(backend).delivered_many(["m0-0", "m1-0", "m3-0"]) == {
        "m0-0": "google-0",
        "m1-0": "google-again",
        "m3-0": "google-3",
    }


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
