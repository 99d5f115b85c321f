"""A run's session lets what a save stored as settled leave memory, and takes back anything
changed after it left (SessionState.settle_as_saved / settle_saved)."""

from __future__ import annotations

from pathlib import Path

import pytest

from q2google.errors import StateError
from q2google.sessions import summarize
from q2google.state import (
    BatchState,
    ItemState,
    JsonFileBackend,
    SessionState,
    StageStatus,
    new_session,
)
from q2google.state.outcomes import mark_item
from q2google.state.protocol import load_to_run

DONE = StageStatus.COMPLETED


def _session(files: int = 4, *, album: str | None = None) -> SessionState:
    state = new_session(
        "settling",
        start_date_iso="2024-01-01T00:00:00+00:00",
        end_date_iso="2024-02-01T00:00:00+00:00",
        batch_size=50,
        album_title=album,
    )
    for number in range(files):
        state.add_item(
            ItemState(
                media_id=f"m{number}",
                file_name=f"GOPR{number:04d}.JPG",
                captured_at=f"2024-01-0{number + 1}T10:00:00+00:00",
                size_bytes=1000 + number,
                discovery_status=DONE,
            )
        )
    return state


def _deliver(item: ItemState) -> None:
    item.transfer_status = item.create_status = DONE
    item.media_item_id = f"google-{item.item_key}"


@pytest.fixture
def backend(tmp_path: Path) -> JsonFileBackend:
    return JsonFileBackend(tmp_path)


def test_files_saved_as_delivered_leave_memory_and_count_the_same(
    backend: JsonFileBackend,
) -> None:
    state = _session()
    state.settle_as_saved()
    backend.save(state)
    for key in ("m0-0", "m1-0"):
        _deliver(state.items[key])
    marks = {key: mark_item(item) for key, item in state.items.items()}
    backend.save(state)
    before = summarize(state)

    assert state.settle_saved() == 2

    assert set(state.items) == {"m2-0", "m3-0"}
    assert {key: entry.mark for key, entry in state.settled.items()} == {
        key: marks[key] for key in ("m0-0", "m1-0")
    }
    assert state.settled["m0-0"].captured_at == "2024-01-01T10:00:00+00:00"
    assert state.knows("m0-0")
    assert not state.has_pending_changes
    assert summarize(state) == before
    assert state.settle_saved() == 0  # each save's files leave once
    counted = backend._summaries._kept["settling"].tracker
    assert all(entry.mark is counted.mark(key) for key, entry in state.settled.items()), (
        "a settled file's mark is the one its summary counts, not a copy"
    )


def test_nothing_leaves_unless_the_run_asked(backend: JsonFileBackend) -> None:
    state = _session()
    for item in state.items.values():
        _deliver(item)
    backend.save(state)
    assert state.settle_saved() == 0
    assert len(state.items) == 4
    assert not state.settled


def test_a_session_that_may_miss_ledger_entries_keeps_its_files(backend: JsonFileBackend) -> None:
    state = _session()
    state.ledger_recorded = False  # an earlier version's: its run checks every created file
    state.settle_as_saved()
    for item in state.items.values():
        _deliver(item)
    backend.save(state)
    assert state.settle_saved() == 0


def test_only_what_is_done_leaves(backend: JsonFileBackend) -> None:
    state = _session(album="Trips")
    state.settle_as_saved()
    created, uploaded, held_back = (state.items[key] for key in ("m0-0", "m1-0", "m2-0"))
    _deliver(created)
    uploaded.transfer_status = DONE
    uploaded.upload_token = "token"
    _deliver(held_back)
    held_back.transfer_status = StageStatus.SKIPPED  # delivered by another session...
    backend.save(state)  # ...and not added to this session's album yet

    assert state.settle_saved() == 1
    assert set(state.settled) == {"m0-0"}


def test_a_file_changed_after_its_save_stays(backend: JsonFileBackend) -> None:
    state = _session()
    state.settle_as_saved()
    item = state.items["m0-0"]
    _deliver(item)
    with state.pending_changes() as changes:  # what a save in another thread does...
        backend_items = dict(changes.items)
        item.attempts = 3  # ...while the run goes on
    assert backend_items["m0-0"]["attempts"] == 0
    assert state.settle_saved() == 0
    assert state.items["m0-0"] is item
    assert state.has_pending_changes


def test_a_file_that_left_comes_back_when_it_changes(backend: JsonFileBackend) -> None:
    state = _session()
    state.settle_as_saved()
    item = state.items["m0-0"]
    _deliver(item)
    backend.save(state)
    state.settle_saved()
    assert "m0-0" not in state.items

    item.attempts = 1  # a reference kept by a stage: the change must not be lost

    assert state.items["m0-0"] is item
    assert "m0-0" not in state.settled
    backend.save(state)
    stored = backend.load("settling")
    assert stored is not None
    assert stored.items["m0-0"].attempts == 1


def test_finished_batches_leave_and_their_indexes_are_not_reused(
    backend: JsonFileBackend,
) -> None:
    state = _session()
    state.settle_as_saved()
    done = state.add_batch(BatchState(batch_index=0, item_keys=("m0-0",), status=DONE))
    refused = state.add_batch(BatchState(batch_index=1, status=StageStatus.FAILED))
    sending = state.add_batch(BatchState(batch_index=2, status=StageStatus.RUNNING))
    backend.save(state)

    state.settle_saved()

    assert list(state.batches) == [2]
    assert state.batches[2] is sending
    assert state.next_batch_index() == 3
    refused.attempts = 2  # changed after it left: it comes back
    assert state.batches[1] is refused
    backend.save(state)
    stored = backend.load("settling")
    assert stored is not None
    assert stored.batches[1].attempts == 2
    assert stored.batches[0] == done


def test_a_session_without_what_left_cannot_be_written_whole(backend: JsonFileBackend) -> None:
    state = _session()
    state.settle_as_saved()
    _deliver(state.items["m0-0"])
    backend.save(state)
    state.settle_saved()
    with pytest.raises(StateError, match="settled"):
        state.to_dict()
    with pytest.raises(StateError, match="settled"):
        state.mark_all_dirty()


def test_what_left_is_what_a_resume_leaves_out(backend: JsonFileBackend) -> None:
    state = _session(album="Trips")
    state.settle_as_saved()
    for key in ("m1-0", "m3-0"):
        _deliver(state.items[key])
    backend.save(state)
    state.settle_saved()

    resumed = load_to_run(backend, "settling")

    assert resumed is not None
    assert resumed.settled == state.settled
    assert set(resumed.items) == set(state.items)
