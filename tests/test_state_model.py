"""SessionState and its records: validation, change tracking, serialization."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from q2google.errors import StateCorruptError
from q2google.state import (
    SCHEMA_VERSION,
    BatchState,
    ErrorRecord,
    ItemState,
    SessionState,
    StageName,
    StageStatus,
    make_item_key,
    new_session,
)
from q2google.testing import sample_session


def _session() -> SessionState:
    return new_session("s", start_date_iso="2024-01-01", end_date_iso="2024-01-31", batch_size=5)


def test_item_key_is_media_id_and_file_index() -> None:
    assert make_item_key("abc", 3) == "abc-3"
    assert ItemState(media_id="abc", file_index=3, file_name="x.JPG").item_key == "abc-3"
    with pytest.raises(ValueError, match="media_id"):
        make_item_key("", 0)
    with pytest.raises(ValueError, match="file_index"):
        make_item_key("abc", -1)


def test_same_file_name_in_two_media_are_two_items() -> None:
    state = _session()
    state.add_item(ItemState(media_id="cam-a", file_name="GOPR0001.JPG"))
    state.add_item(ItemState(media_id="cam-b", file_name="GOPR0001.JPG"))
    assert len(state.items) == 2


def test_new_session_checks_its_window() -> None:
    with pytest.raises(ValueError, match="ends"):
        new_session("s", start_date_iso="2024-02-01", end_date_iso="2024-01-01", batch_size=1)
    with pytest.raises(ValueError, match="ISO 8601"):
        new_session("s", start_date_iso="yesterday", end_date_iso="2024-01-01", batch_size=1)
    with pytest.raises(ValueError, match="batch_size"):
        new_session("s", start_date_iso="2024-01-01", end_date_iso="2024-01-01", batch_size=0)
    aware = new_session(
        "s",
        start_date_iso="2024-01-01T00:00:00+02:00",
        end_date_iso="2024-01-01T00:00:00",
        batch_size=1,
    )
    assert aware.end_date_iso == "2024-01-01T00:00:00"


def test_new_session_is_pending_in_full() -> None:
    state = _session()
    assert state.schema_version == SCHEMA_VERSION
    assert set(state.stages.values()) == {StageStatus.PENDING}
    assert state.has_pending_changes
    with state.pending_changes() as changes:
        assert changes.meta is not None
        assert changes.meta["session_id"] == "s"
    assert not state.has_pending_changes


def test_assignment_marks_only_that_item() -> None:
    state = sample_session(items=5)
    state.mark_clean()
    state.items["media000004-0"].upload_offset = 262_144
    with state.pending_changes() as changes:
        assert [key for key, _ in changes.items] == ["media000004-0"]
        assert changes.items[0][1]["upload_offset"] == 262_144
        assert changes.meta is None
        assert changes.batches == ()


def test_failed_write_keeps_changes_pending() -> None:
    state = sample_session(items=5)
    state.mark_clean()
    state.items["burst0-0"].attempts = 9
    state.batches[0].status = StageStatus.RUNNING
    state.album_title = "New"
    with pytest.raises(RuntimeError), state.pending_changes():
        raise RuntimeError("disk on fire")
    with state.pending_changes() as changes:
        assert [key for key, _ in changes.items] == ["burst0-0"]
        assert [index for index, _ in changes.batches] == [0]
        assert changes.meta is not None
        assert changes.meta["album_title"] == "New"
    assert not state.has_pending_changes


def test_changes_made_during_a_write_wait_for_the_next_one() -> None:
    state = sample_session(items=5)
    state.mark_clean()
    state.items["burst0-0"].attempts = 1
    with state.pending_changes() as changes:
        assert changes.items[0][1]["attempts"] == 1
        state.items["burst0-0"].attempts = 2
    with state.pending_changes() as changes:
        assert changes.items[0][1]["attempts"] == 2


def test_in_place_stage_dict_edits_are_still_seen() -> None:
    state = _session()
    state.mark_clean()
    state.stages[StageName.DISCOVERY] = StageStatus.RUNNING
    assert state.has_pending_changes


def test_assignments_are_validated() -> None:
    item = ItemState(media_id="m", file_name="x.JPG")
    with pytest.raises(ValidationError):
        item.transfer_status = "bogus"  # type: ignore[assignment]
    with pytest.raises(ValidationError):
        item.upload_offset = -1
    with pytest.raises(ValidationError):
        item.item_key = "other"
    with pytest.raises(ValidationError):
        ItemState(media_id="m", file_name="x", surprise=1)  # type: ignore[call-arg]


def test_items_view_is_read_only_and_duplicates_are_refused() -> None:
    state = _session()
    item = state.add_item(ItemState(media_id="m", file_name="a.JPG"))
    with pytest.raises(TypeError):
        state.items["x"] = item  # type: ignore[index]
    with pytest.raises(KeyError, match="already"):
        state.add_item(ItemState(media_id="m", file_name="again.JPG"))
    replacement = state.add_item(ItemState(media_id="m", file_name="b.JPG"), replace=True)
    assert replacement.position == item.position == 0
    state.add_batch(BatchState(batch_index=0))
    with pytest.raises(KeyError, match="already"):
        state.add_batch(BatchState(batch_index=0))
    assert state.next_batch_index() == 1


def test_error_records_are_one_bounded_line() -> None:
    record = ErrorRecord(stage=StageName.TRANSFER, message="line one\nline two\t" + "x" * 5000)
    assert "\n" not in record.message
    assert len(record.message) == 2000
    assert record.message.startswith("line one line two x")


def test_record_and_clear_error() -> None:
    state = _session()
    item = state.add_item(ItemState(media_id="m", file_name="a.JPG"))
    state.mark_clean()
    item.record_error(ErrorRecord(stage=StageName.CREATE, message="boom"))
    assert state.has_pending_changes
    state.mark_clean()
    item.clear_error(StageName.CREATE)
    assert item.errors == {}
    assert state.has_pending_changes


def test_items_without_errors_share_one_empty_mapping_that_refuses_edits() -> None:
    state = _session()
    first = state.add_item(ItemState(media_id="m", file_name="a.JPG"))
    loaded = ItemState.from_dict({**first.to_dict(), "item_key": "n-0", "media_id": "n"})
    assert first.errors is loaded.errors == {}
    with pytest.raises(TypeError, match="replaced, not changed in place"):
        first.errors[StageName.CREATE] = ErrorRecord(stage=StageName.CREATE, message="boom")
    assert loaded.errors == {}

    first.record_error(ErrorRecord(stage=StageName.CREATE, message="boom"))
    assert set(first.errors) == {StageName.CREATE}
    assert loaded.errors == {}, "an item's errors are its own once it has some"
    first.clear_error(StageName.CREATE)
    assert first.errors is loaded.errors


def test_items_with_filters_by_stage_status() -> None:
    state = sample_session(items=6)
    failed = state.items_with(StageName.TRANSFER, StageStatus.FAILED)
    assert [item.item_key for item in failed] == ["burst0-0", "burst0-2", "media000004-0"]


def test_to_dict_is_json_and_round_trips() -> None:
    state = sample_session(items=7)
    data = json.loads(json.dumps(state.to_dict()))
    again = SessionState.from_dict(data)
    assert again == state
    assert again.to_dict() == state.to_dict()
    assert not again.has_pending_changes


def test_from_dict_refuses_what_it_cannot_read() -> None:
    data = sample_session().to_dict()
    with pytest.raises(StateCorruptError, match="newer q2google"):
        SessionState.from_dict({**data, "schema_version": SCHEMA_VERSION + 1})
    with pytest.raises(StateCorruptError, match="not a JSON object"):
        SessionState.from_dict([])  # type: ignore[arg-type]
    with pytest.raises(StateCorruptError, match="must be lists"):
        SessionState.from_dict({**data, "items": {}})
    with pytest.raises(StateCorruptError, match="duplicate"):
        SessionState.from_dict({**data, "items": data["items"] + data["items"][:1]})
    with pytest.raises(StateCorruptError, match=r"invalid session: session_id"):
        SessionState.from_dict({**data, "session_id": "../up"})


def test_mark_all_dirty_writes_everything_again() -> None:
    state = sample_session(items=4)
    state.mark_clean()
    state.mark_all_dirty()
    with state.pending_changes() as changes:
        assert len(changes.items) == 4
        assert len(changes.batches) == 2
        assert changes.meta is not None


def test_in_place_batch_edits_are_saved_once_marked() -> None:
    state = sample_session(items=4)
    state.mark_clean()
    assert state.batches[0].responses is not None
    state.batches[0].responses[0]["status"]["message"] = "edited in place"
    assert not state.has_pending_changes
    state.mark_batch_dirty(0)
    with state.pending_changes() as changes:
        assert [index for index, _ in changes.batches] == [0]
        assert changes.batches[0][1]["responses"][0]["status"]["message"] == "edited in place"
