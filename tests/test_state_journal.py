"""JsonFileBackend's journal: torn and corrupt lines, compaction, the move from the layout with
one file per record (real files; a kill at every instant of a save is in
``test_state_journal_kills``)."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from q2google.errors import StateCorruptError
from q2google.state import (
    LEDGER_SESSION_ID,
    BatchState,
    DeliveryLedger,
    ItemState,
    SessionState,
    StageStatus,
    local_compaction,
    local_writing,
)
from q2google.state.lease import session_lease
from q2google.state.ledger import new_ledger
from q2google.state.local import JsonFileBackend
from q2google.state.local_compaction import compacted
from q2google.state.local_journal import read_journal
from q2google.state.local_journal_format import encode_checkpoint
from q2google.testing import sample_session

JOURNAL = "journal.jsonl"


@pytest.fixture
def backend(tmp_path: Path) -> JsonFileBackend:
    return JsonFileBackend(tmp_path / "state")


def _journal(backend: JsonFileBackend, session_id: str = "trip") -> Path:
    return backend.state_dir / session_id / JOURNAL


def journal_lines(path: Path) -> list[dict[str, Any]]:
    """Every line of a journal, parsed."""
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def loaded_from(backend_dir: Path, session_id: str = "trip") -> SessionState:
    """The session as a new backend over ``backend_dir`` loads it (it must be there)."""
    state = JsonFileBackend(backend_dir).load(session_id)
    assert state is not None
    return state


# -- torn and corrupt lines --------------------------------------------------------------------


@pytest.mark.parametrize("same_backend", [True, False])
@pytest.mark.parametrize(
    "tail",
    [
        b'{"item": {"item_key": "burst0-0", "media_id": "bu',  # torn midway through a line
        b'{"item": {"item_key": "burst0-0"}}\n{"comm',  # a whole line, then a torn commit
        b'{"meta": {"session_id": "trip"}}\n',  # whole lines of a checkpoint never committed
        b"\x00" * 700,  # what a power cut may leave: zeros
    ],
)
def test_an_unfinished_checkpoint_is_ignored_then_truncated_by_the_next_save(
    backend: JsonFileBackend, tail: bytes, same_backend: bool
) -> None:
    state = sample_session("trip", items=5)
    backend.save(state)
    path = _journal(backend)
    committed = path.read_bytes()
    with path.open("ab") as handle:
        handle.write(tail)

    loaded = backend.load("trip")
    assert loaded is not None
    assert loaded.to_dict() == state.to_dict(), "the last committed checkpoint"
    assert path.read_bytes() == committed + tail, "loading writes nothing"

    saver = backend if same_backend else JsonFileBackend(backend.state_dir)
    loaded.items["burst0-1"].upload_offset = 42
    saver.save(loaded)
    content = path.read_bytes()
    assert content.startswith(committed)
    assert journal_lines(path)[-2:] == [{"item": loaded.items["burst0-1"].to_dict()}, {"commit": 1}]
    assert read_journal(path).mark.end == len(content), "nothing left after the last commit"
    assert loaded_from(backend.state_dir).to_dict() == loaded.to_dict()


@pytest.mark.parametrize(
    ("line", "replacement", "message"),
    [
        (2, b'{"batch": {"batch_index": 0, "item', "line 2: not valid JSON"),
        (4, b"\xff\xfe{}", "line 4: not UTF-8 text"),
        (5, b"[1, 2]", "line 5: not a journal record"),
        (5, b'{"item": {"media_id": "x"}}', "line 5: an item without an item_key"),
        (3, b'{"batch": {"batch_index": "one"}}', "line 3: a batch without a batch_index"),
        (1, b'{"meta": {"session_id": "trip", "batch_size": 0}}', "line 1: invalid session"),
        (9, b'{"commit": 7}', "line 9: commits 7 records, but 8 precede it"),
        (9, b"", "line 9: not valid JSON"),  # an empty line, not the last
    ],
)
def test_an_unreadable_line_before_the_last_commit_is_one_error_naming_file_and_line(
    backend: JsonFileBackend, line: int, replacement: bytes, message: str
) -> None:
    state = sample_session("trip", items=5)
    backend.save(state)
    state.items["burst0-0"].attempts = 3
    backend.save(state)  # a second checkpoint: lines 10 and 11
    path = _journal(backend)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 11
    lines[line - 1] = replacement
    damaged = b"\n".join(lines) + b"\n"
    path.write_bytes(damaged)
    for reader in (backend, JsonFileBackend(backend.state_dir)):
        with pytest.raises(StateCorruptError) as caught:
            reader.load("trip")
        assert str(caught.value).startswith(f"{path}: {message}")
        assert "\n" not in str(caught.value)
        assert caught.value.exit_code == 2
    if "invalid" not in message:  # a save never appends after a line it cannot read
        state.items["burst0-0"].attempts = 4
        with pytest.raises(StateCorruptError):
            JsonFileBackend(backend.state_dir).save(state)
    assert path.read_bytes() == damaged, "nothing is repaired"


@pytest.mark.parametrize(
    "garbage", [b"\x00" * 40, b'{"item": {"item_key": "burst0-0", "att', b"[]"], ids=repr
)
def test_a_last_checkpoint_torn_by_a_power_cut_loads_as_the_one_before(
    backend: JsonFileBackend, garbage: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """A power cut may write the end of the last (unsynced) save and not its middle: its
    commit line is there, a line before it is not. Only that save can be torn."""
    state = sample_session("trip", items=5)
    backend.save(state)
    before = JsonFileBackend(backend.state_dir).load("trip")
    state.items["burst0-0"].attempts = 3
    state.items["burst0-1"].attempts = 4
    backend.save(state)  # the second checkpoint: lines 10 to 12
    path = _journal(backend)
    lines = path.read_bytes().splitlines()
    assert len(lines) == 12
    lines[9] = garbage
    path.write_bytes(b"\n".join(lines) + b"\n")

    loaded = JsonFileBackend(backend.state_dir).load("trip")
    assert loaded == before, "the checkpoint before the torn one"
    assert "the last checkpoint is damaged" in caplog.text
    assert loaded is not None
    loaded.items["burst0-2"].attempts = 5
    JsonFileBackend(backend.state_dir).save(loaded)  # drops the torn one, then appends
    again = JsonFileBackend(backend.state_dir).load("trip")
    assert again == loaded
    assert all(b"\x00" not in line for line in path.read_bytes().splitlines())


def test_a_journal_without_a_complete_checkpoint_or_missing_is_corrupt(
    backend: JsonFileBackend,
) -> None:
    backend.save(sample_session("trip"))
    path = _journal(backend)
    path.write_bytes(b'{"meta": {}}\n')
    with pytest.raises(StateCorruptError, match="holds no complete checkpoint"):
        JsonFileBackend(backend.state_dir).load("trip")
    path.unlink()
    with pytest.raises(StateCorruptError, match=r"journal\.jsonl: missing"):
        JsonFileBackend(backend.state_dir).load("trip")


def test_a_journal_session_is_refused_by_a_q2google_that_reads_one_file_per_record(
    backend: JsonFileBackend,
) -> None:
    backend.save(sample_session("trip"))
    meta = json.loads((backend.state_dir / "trip" / "meta.json").read_text())
    # What 0.1 and 0.2 do with it: read items/ (none), then build the session from meta.json.
    with pytest.raises(StateCorruptError, match="written by a newer q2google"):
        SessionState.from_parts(meta, [], [])
    (backend.state_dir / "trip" / "meta.json").write_text(json.dumps({**meta, "schema_version": 4}))
    with pytest.raises(StateCorruptError, match=r"meta\.json: schema version 4 .*newer q2google"):
        JsonFileBackend(backend.state_dir).load("trip")


def test_a_checkpoint_is_one_write_and_one_fsync(
    backend: JsonFileBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = sample_session("trip", items=50)
    backend.save(state)
    calls: list[str] = []

    def recorded(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            calls.append(name)
            return real(*args)

        return call

    for name in ("pwrite", "write", "fsync", "replace", "ftruncate"):
        monkeypatch.setattr(os, name, recorded(name, getattr(os, name)))
    state.items["media000010-0"].upload_offset = 1_048_576
    backend.save(state)
    assert calls == ["pwrite", "fsync"], "an upload's offset: one append, one fsync"
    for number in (11, 12):
        calls.clear()
        state.items[f"media0000{number}-0"].create_status = StageStatus.COMPLETED
        backend.save(state)
        assert calls[:2] == ["pwrite", "fsync"], "a file done: one append, one fsync"
        assert "fsync" not in calls[2:], "and its summary replaced, not fsynced"
    summaries = backend.state_dir / "trip"
    assert {path.name for path in summaries.glob("*summary*")} == {
        "summary.json",
        ".summary.json.spare",  # the one replaced, written again the next time
    }


# -- compaction --------------------------------------------------------------------------------


def test_the_journal_is_compacted_and_keeps_every_record(
    backend: JsonFileBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local_compaction, "COMPACT_SLACK_LINES", 50)
    collector_on: list[bool] = []  # the run's other threads make garbage meanwhile

    def compacted_watched(*args: Any) -> Any:
        collector_on.append(gc.isenabled())
        return compacted(*args)

    monkeypatch.setattr(local_writing, "compacted", compacted_watched)
    state = sample_session("trip", items=20)
    backend.save(state)
    path = _journal(backend)
    live = len(state.items) + len(state.batches)
    size, rewrites, longest = path.stat().st_size, 0, 0
    for number in range(300):
        item = state.items[list(state.items)[number % 20]]
        item.upload_offset = number
        if number % 50 == 0:
            state.add_item(ItemState(media_id=f"late{number}", file_name="GOPR9.JPG"))
            state.add_batch(BatchState(batch_index=state.next_batch_index(), item_keys=()))
            state.listings += 1
            live += 2
        backend.save(state)
        rewrites += path.stat().st_size < size
        size = path.stat().st_size
        longest = max(longest, len(journal_lines(path)))
        assert len(journal_lines(path)) <= 2 * live + 50 + 4
    assert rewrites > 2, "rewritten several times"
    assert collector_on == [True] * rewrites
    assert longest > 2 * live, "but not at every save"
    assert not list(path.parent.glob(".*.tmp")), "no temporary file left"
    assert loaded_from(backend.state_dir).to_dict() == state.to_dict()
    state.items["burst0-0"].attempts = 9
    backend.save(state)  # appends again after a compaction
    assert loaded_from(backend.state_dir).to_dict() == state.to_dict()


@pytest.fixture
def saved(backend: JsonFileBackend, monkeypatch: pytest.MonkeyPatch) -> SessionState:
    """A session of 20 files saved once, in a backend that compacts at 5 lines of slack."""
    monkeypatch.setattr(local_compaction, "COMPACT_SLACK_LINES", 5)
    state = sample_session("trip", items=20)
    backend.save(state)
    return state


def _lengthen(backend: JsonFileBackend, state: SessionState) -> None:
    """Save 8 changes one by one: more than 1.25 lines a record, not enough to compact."""
    for number in range(8):
        state.items[list(state.items)[number]].attempts = 1
        backend.save(state)


def test_a_long_journal_is_rewritten_compact_when_its_run_lets_the_session_go(
    backend: JsonFileBackend, saved: SessionState
) -> None:
    state = saved
    path = _journal(backend)
    live = len(journal_lines(path)) - 1  # its records, without the commit line
    with backend.lease("trip"):
        _lengthen(backend, state)
        long = len(journal_lines(path))
        assert 1.25 * live + 5 < long <= 2 * live + 5
    assert len(journal_lines(path)) == live + 1, "rewritten, a line per record"
    assert loaded_from(backend.state_dir).to_dict() == state.to_dict()

    with backend.lease("trip"):  # a run that changes little leaves the journal as it is
        state.items["burst0-0"].attempts = 2
        backend.save(state)
    assert len(journal_lines(path)) == live + 1 + 2
    assert loaded_from(backend.state_dir).to_dict() == state.to_dict()


@pytest.mark.parametrize("ending", ["error", "cancelled"])
def test_a_run_that_stops_on_an_error_leaves_its_long_journal_as_it_is(
    backend: JsonFileBackend, saved: SessionState, ending: str
) -> None:
    long: list[bytes] = []

    async def run() -> None:
        async with session_lease(backend, "trip"):
            _lengthen(backend, saved)  # long enough to be rewritten after a clean run
            long.append(_journal(backend).read_bytes())
            if ending == "error":
                raise RuntimeError("boom")
            raise asyncio.CancelledError  # Ctrl-C: the run leaves at once

    with pytest.raises((RuntimeError, asyncio.CancelledError)):
        asyncio.run(run())
    assert _journal(backend).read_bytes() == long[0]
    assert backend.lease_holder("trip") is None, "the lease went all the same"


def test_a_journal_long_because_its_records_grew_is_not_rewritten(
    backend: JsonFileBackend, saved: SessionState
) -> None:
    state = saved
    with backend.lease("trip"):
        for number in range(12):  # new files: the journal grows with its records
            state.add_item(ItemState(media_id=f"late{number}", file_name="GOPR9.JPG"))
            backend.save(state)
        before = _journal(backend).read_bytes()
    assert _journal(backend).read_bytes() == before
    assert loaded_from(backend.state_dir).to_dict() == state.to_dict()


def test_a_compaction_copies_the_journal_in_chunks_not_whole(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    padding = "x" * 1000
    first = [(f"m{n}-0", {"item_key": f"m{n}-0", "v": 1, "pad": padding}) for n in range(3000)]
    again = [(key, {**data, "v": 2}) for key, data in first[::2]]
    with path.open("wb") as out:
        for items in (first, again):
            payload, _ = encode_checkpoint({"session_id": "trip"}, items, [])
            out.write(payload)
        out.write(b'{"item": {"item_key": "torn"')  # an unfinished save: not copied

    late = ("late-0", {"item_key": "late-0", "v": 3})
    committed = read_journal(path).mark.lines  # as the backend knows it
    changed = [late, ("m1-0", {"item_key": "m1-0", "v": 3})]
    chunks, lines = compacted(path, committed, None, changed, [])
    pieces = list(chunks)

    assert len(pieces) > 2, "the copy is streamed"
    assert max(len(piece) for piece in pieces) < 2 * 2**20
    rewritten = tmp_path / "rewritten.jsonl"
    rewritten.write_bytes(b"".join(pieces))
    assert len(rewritten.read_bytes().splitlines()) == lines == 3000 + 1 + 1 + 1
    journal = read_journal(rewritten)
    versions = {key: data["v"] for key, (_, data) in journal.items.items()}
    assert versions == {
        **{key: 2 if number % 2 == 0 else 1 for number, (key, _) in enumerate(first)},
        "m1-0": 3,
        "late-0": 3,
    }
    assert journal.meta is not None
    assert journal.meta[1] == {"session_id": "trip"}


def _item(key: str, position: int | None, version: int) -> tuple[str, dict[str, Any]]:
    data: dict[str, Any] = {"item_key": key, "v": version}
    if position is not None:
        data["position"] = position
    return key, data


def _compacted_versions(path: Path, changed: list[tuple[str, dict[str, Any]]]) -> dict[str, int]:
    """Compact the journal at ``path`` with ``changed`` and read each item's version back."""
    chunks, lines = compacted(path, read_journal(path).mark.lines, None, changed, [])
    path.write_bytes(b"".join(chunks))
    assert len(path.read_bytes().splitlines()) == lines
    return {key: data["v"] for key, (_, data) in read_journal(path).items.items()}


def test_a_compaction_keeps_every_item_whatever_positions_it_stored(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    checkpoints = [
        [_item("a-0", 0, 1), _item("b-0", 1, 1), _item("old-0", None, 1), _item("odd-0", -1, 1)],
        [_item("a-0", 0, 2), _item("old-0", 2, 2), _item("b-0", 5, 2)],  # given late, moved
        [_item("far-0", 10**9, 1), _item("b-0", 1, 3)],  # one far off, one moved back
    ]
    with path.open("wb") as out:
        for items in checkpoints:
            out.write(encode_checkpoint({"session_id": "trip"}, items, [])[0])

    changed = [_item("a-0", 7, 4), _item("new-0", 3, 1)]  # a-0's position moved since

    assert _compacted_versions(path, changed) == {
        "a-0": 4,
        "b-0": 3,
        "old-0": 2,
        "odd-0": 1,
        "far-0": 1,
        "new-0": 1,
    }


def test_a_compaction_keeps_both_items_that_claim_one_position(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    first = [_item(f"m{n}-0", n, 1) for n in range(5)]
    again = [_item("m1-0", 1, 2), _item("intruder-0", 3, 1), _item("m4-0", 4, 2)]
    with path.open("wb") as out:
        for items in (first, again):
            out.write(encode_checkpoint({"session_id": "trip"}, items, [])[0])

    assert _compacted_versions(path, [_item("m0-0", 0, 3)]) == {
        "m0-0": 3,
        "m1-0": 2,
        "m2-0": 1,
        "m3-0": 1,
        "m4-0": 2,
        "intruder-0": 1,
    }


def test_a_compaction_holds_no_key_per_item(tmp_path: Path) -> None:
    """20,000 items compact in well under a MiB and a half of memory; a dict of their keys
    and lines took 2.6 MiB (140 bytes an item)."""
    path = tmp_path / "journal.jsonl"
    items = [_item(f"{n:024x}-0", n, 1) for n in range(20_000)]
    payload, committed = encode_checkpoint({"session_id": "trip"}, items, [])
    path.write_bytes(payload + payload.replace(b'"v":1', b'"v":2'))
    committed *= 2
    del items, payload
    tracemalloc.start()
    try:
        chunks, lines = compacted(path, committed, None, [_item("new-0", 20_000, 1)], [])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * 2**20
    assert lines == 20_000 + 1 + 1 + 1
    rewritten = tmp_path / "rewritten.jsonl"
    rewritten.write_bytes(b"".join(chunks))
    versions = {key: data["v"] for key, (_, data) in read_journal(rewritten).items.items()}
    assert versions == {**{f"{n:024x}-0": 2 for n in range(20_000)}, "new-0": 1}


def test_a_compaction_of_a_journal_changed_behind_its_back_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    payload, lines = encode_checkpoint({"session_id": "trip"}, [("a-0", {"item_key": "a-0"})], [])
    path.write_bytes(payload)
    with pytest.raises(StateCorruptError, match="before its last commit"):
        compacted(path, lines + 3, None, [], [])
    path.write_bytes(payload.replace(b'{"item":', b'{"item" ', 1))
    with pytest.raises(StateCorruptError, match="line 2: not valid JSON"):
        compacted(path, lines, None, [], [])


def test_a_whole_save_writes_a_compacted_journal(backend: JsonFileBackend) -> None:
    state = sample_session("trip", items=6)
    backend.save(state)
    for number in range(5):
        state.items["burst0-0"].attempts = number
        backend.save(state)
    data = state.to_dict()
    data["items"] = data["items"][:4]
    smaller = SessionState.from_dict(data)
    smaller.mark_all_dirty()
    backend.save(smaller)
    lines = journal_lines(_journal(backend))
    assert len(lines) == 1 + 2 + 4 + 1, "one line per record and a commit"
    assert loaded_from(backend.state_dir).to_dict() == smaller.to_dict()


# -- the layout with one file per record (schema version 2) ----------------------------------


def write_schema_2(directory: Path, state: SessionState) -> None:
    """Store ``state`` as q2google 0.1 and 0.2 did: one JSON file per record."""
    (directory / "items").mkdir(parents=True)
    (directory / "batches").mkdir()
    for key, item in state.items.items():
        (directory / "items" / JsonFileBackend.item_file_name(key)).write_text(
            json.dumps(item.to_dict(), indent=1)
        )
    for index, batch in state.batches.items():
        (directory / "batches" / f"{index}.json").write_text(json.dumps(batch.to_dict()))
    (directory / "meta.json").write_text(json.dumps(state.meta_dict()))


def test_a_schema_2_session_loads_and_moves_to_the_journal_on_save(
    backend: JsonFileBackend,
) -> None:
    state = sample_session("trip", items=8)
    directory = backend.state_dir / "trip"
    write_schema_2(directory, state)
    loaded = backend.load("trip")
    assert loaded is not None
    assert loaded.to_dict() == state.to_dict()
    assert not loaded.has_pending_changes

    backend.save(loaded)  # a summary only (as `sessions list` does): the layout stays
    assert (directory / "items").is_dir()
    assert not (directory / JOURNAL).exists()

    loaded.items["media000005-0"].create_status = StageStatus.COMPLETED
    backend.save(loaded)  # one item changed: the whole session moves, with it
    assert sorted(path.name for path in directory.iterdir() if path.name[0] != ".") == [
        JOURNAL,
        "meta.json",
        "summary.json",
    ]
    assert not list(directory.glob(".*.tmp"))
    assert json.loads((directory / "meta.json").read_text())["schema_version"] == 3
    again = loaded_from(backend.state_dir)
    assert again.to_dict() == loaded.to_dict()
    assert again.items["media000005-0"].create_status is StageStatus.COMPLETED
    assert len(again.items) == 8


def test_the_ledger_keeps_its_own_layout_when_saved_whole(backend: JsonFileBackend) -> None:
    ledger = new_ledger()
    ledger.add_item(ItemState(media_id="m1", file_name="a.JPG", media_item_id="google-1"))
    backend.save(ledger)
    directory = backend.state_dir / LEDGER_SESSION_ID
    assert (directory / "items" / JsonFileBackend.item_file_name("m1-0")).is_file()
    assert not (directory / JOURNAL).exists()
    assert DeliveryLedger(JsonFileBackend(backend.state_dir)).media_item_id("m1-0") == "google-1"
