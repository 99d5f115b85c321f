"""JsonFileBackend: a kill at every instant of a save leaves the previous checkpoint or the new
one (real files; each disk call of a save is made to die in turn, a write halfway through)."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

from q2google.sessions import SessionSummary, summarize
from q2google.state import (
    BatchState,
    ItemState,
    SessionState,
    StageName,
    StageStatus,
    local_compaction,
)
from q2google.state.local import JsonFileBackend
from q2google.state.local_journal import read_journal
from q2google.state.local_writing import replace_derived
from q2google.state.records import utc_now_iso
from q2google.testing import sample_session
from tests.test_state_journal import JOURNAL, journal_lines, loaded_from, write_schema_2


@pytest.fixture
def backend(tmp_path: Path) -> JsonFileBackend:
    return JsonFileBackend(tmp_path / "state")


class Clock:
    """What saves stamp ``updated_at`` with: one second later each time, from where it is set
    (so that the same saves write the same checkpoints)."""

    def __init__(self) -> None:
        self.seconds = 0

    def now(self) -> str:
        self.seconds += 1
        return f"2025-01-01T00:{self.seconds // 60:02d}:{self.seconds % 60:02d}+00:00"


@pytest.fixture(autouse=True)
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """Stamp saves with a :class:`Clock`, wherever ``utc_now_iso`` was imported to."""
    clock = Clock()
    for name, module in list(sys.modules.items()):
        if name.startswith("q2google.") and getattr(module, "utc_now_iso", None) is utc_now_iso:
            monkeypatch.setattr(module, "utc_now_iso", clock.now)
    return clock


# -- a kill at every instant of a save ---------------------------------------------------------


class Killed(BaseException):
    """The process died here (nothing it does afterwards reaches the disk)."""


_DISK_CALLS = ("pwrite", "fsync", "replace", "ftruncate", "unlink", "rmdir", "link")


@contextmanager
def killed_at(call: int, *, torn: bool) -> Iterator[list[str]]:
    """Die at the ``call``-th call that changes the disk; with ``torn``, a write dies halfway
    through its data. Yields the calls made (to know when a save made fewer)."""
    made: list[str] = []
    patch = pytest.MonkeyPatch()

    def wrap(name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def disk_call(*args: Any, **kwargs: Any) -> Any:
            if len(made) >= call:
                raise Killed
            made.append(name)
            if len(made) < call:
                return real(*args, **kwargs)
            if torn and name == "pwrite":
                fd, data, offset = args
                real(fd, bytes(data)[: len(data) // 2], offset)
            raise Killed

        return disk_call

    for name in _DISK_CALLS:
        patch.setattr(os, name, wrap(name, getattr(os, name)))
    try:
        yield made
    finally:
        patch.undo()


Change = Callable[[SessionState | None], SessionState]


def _more_of_everything(state: SessionState | None) -> SessionState:
    assert state is not None
    for key in list(state.items)[:3]:
        state.items[key].create_status = StageStatus.COMPLETED
    state.set_stage(StageName.CREATE, StageStatus.RUNNING)
    state.listings += 1
    state.add_item(ItemState(media_id="new", file_name="GOPR0100.JPG"))
    state.add_batch(BatchState(batch_index=state.next_batch_index(), item_keys=("new-0",)))
    return state


def _one_offset(state: SessionState | None) -> SessionState:
    assert state is not None
    state.items["media000004-0"].upload_offset = 7 * 262_144
    return state


_NEW_SESSION = sample_session("trip", items=6).to_dict()  # one set of timestamps


def _new_session(state: SessionState | None) -> SessionState:
    assert state is None
    return SessionState.from_dict(_NEW_SESSION)


def _smaller_copy(state: SessionState | None) -> SessionState:
    assert state is not None
    data = state.to_dict()
    data["items"] = data["items"][1:]
    data["album_title"] = "Copied"
    copy = SessionState.from_dict(data)
    copy.mark_all_dirty()
    return copy


def _stored_json(root: Path) -> None:
    JsonFileBackend(root).save(sample_session("trip", items=6))


def _stored_schema_2(root: Path) -> None:
    write_schema_2(root / "trip", sample_session("trip", items=6))


def _stored_due_for_compaction(root: Path) -> None:
    backend = JsonFileBackend(root)
    state = sample_session("trip", items=6)
    backend.save(state)
    for number in range(3):  # 10 lines, then 2 per checkpoint: 16, the most for 8 records
        state.items["burst0-0"].attempts = number
        backend.save(state)


@pytest.mark.parametrize(
    ("stored", "change"),
    [
        pytest.param(_stored_json, _more_of_everything, id="records-and-metadata"),
        pytest.param(_stored_json, _one_offset, id="one-record"),
        pytest.param(None, _new_session, id="first-save"),
        pytest.param(_stored_json, _smaller_copy, id="whole-save"),
        pytest.param(_stored_schema_2, _one_offset, id="move-from-schema-2"),
        pytest.param(_stored_due_for_compaction, _more_of_everything, id="compaction"),
    ],
)
def test_a_kill_at_any_instant_of_a_save_leaves_the_old_or_the_new_checkpoint(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    clock: Clock,
    stored: Callable[[Path], None] | None,
    change: Change,
) -> None:
    monkeypatch.setattr(local_compaction, "COMPACT_SLACK_LINES", 0)
    pristine = tmp_path / "pristine"
    pristine.mkdir()
    if stored is not None:
        stored(pristine)
    old = JsonFileBackend(pristine).load("trip")
    old_data = old.to_dict() if old is not None else None
    root = tmp_path / "state"

    def attempt(call: int, *, torn: bool) -> list[str]:
        """Save the change over a copy of the stored session, killed at disk call ``call``;
        return the disk calls made (fewer than ``call``: the save completed)."""
        shutil.rmtree(root, ignore_errors=True)
        shutil.copytree(pristine, root)
        clock.seconds = 1_000
        backend = JsonFileBackend(root, retry_seconds=0)
        state = change(backend.load("trip"))
        with killed_at(call, torn=torn) as made:
            try:
                backend.save(state)
            except Killed:
                assert len(made) == call
        return made

    assert len(attempt(10_000, torn=False)) < 10_000, "a save without a kill"
    new_data = loaded_from(root).to_dict()
    assert new_data != old_data
    if stored is _stored_due_for_compaction:
        assert len(journal_lines(root / "trip" / JOURNAL)) == 1 + 3 + 7 + 1, "rewritten"
    call, kills = 1, 0
    while len(made := attempt(call, torn=False)) == call:
        for torn in (False, True) if made[-1] == "pwrite" else (False,):
            if torn:
                attempt(call, torn=True)
            kills += 1
            where = f"killed at disk call {call} ({made[-1]}{', torn' if torn else ''})"
            after = JsonFileBackend(root)
            state = after.load("trip")
            assert (state.to_dict() if state else None) in (old_data, new_data), where
            if state is None:
                continue
            stored_summary = after.session_summary("trip")
            assert stored_summary is None or (
                SessionSummary.from_stored(stored_summary).to_dict() == summarize(state).to_dict()
            ), f"{where}: a summary that does not count the stored checkpoint is trusted"
            state.items["burst0-1"].attempts = 77  # and the next save completes
            after.save(state)
            assert loaded_from(root).to_dict() == state.to_dict(), where
            journal = root / "trip" / JOURNAL
            assert read_journal(journal).mark.end == journal.stat().st_size, where
        call += 1
    assert kills >= 2, "the save made a few disk calls"


def test_a_kill_between_meta_json_and_the_journal_is_put_right_by_the_next_save(
    backend: JsonFileBackend,
) -> None:
    state = sample_session("trip", items=4)
    backend.save(state)
    meta_path = backend.state_dir / "trip" / "meta.json"
    state.set_stage(StageName.CREATE, StageStatus.RUNNING)
    with killed_at(3, torn=False) as made, pytest.raises(Killed):
        backend.save(state)  # meta.json: fsync, replace, then killed at fsync of the directory
    assert made == ["fsync", "replace", "fsync"]
    resumed_backend = JsonFileBackend(backend.state_dir)
    assert resumed_backend.session_summary("trip") is None, "meta.json is ahead: not trusted"
    resumed = resumed_backend.load("trip")
    assert resumed is not None
    assert resumed.stages[StageName.CREATE] is not StageStatus.RUNNING, "the old checkpoint"
    assert json.loads(meta_path.read_text())["stages"]["create"] == "running", "ahead"
    resumed_backend.save(resumed)  # nothing changed: meta.json is written again
    stored_meta = json.loads(meta_path.read_text())
    assert stored_meta == {**resumed.meta_dict(), "schema_version": 3}
    summary = JsonFileBackend(backend.state_dir).session_summary("trip")
    assert summary is not None
    assert SessionSummary.from_stored(summary).to_dict() == summarize(resumed).to_dict()


def test_a_summary_replacement_cut_anywhere_leaves_the_old_or_the_new_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "summary.json"
    for number in range(3):  # two inodes taking turns: the spare exists
        replace_derived(path, b'{"files": %d}' % number)
    old = path.read_bytes()
    new = b'{"files": 3, "failures": ["a longer file than the spare holds"]}'
    call = 1
    while True:
        with killed_at(call, torn=True) as made, suppress(Killed):
            replace_derived(path, new)
        assert path.read_bytes() in (old, new), f"killed at disk call {call}"
        replace_derived(path, b'{"files": 4}')  # and the next replacement completes
        assert path.read_bytes() == b'{"files": 4}'
        assert {leftover.name for leftover in tmp_path.iterdir()} <= {
            "summary.json",
            ".summary.json.spare",
        }
        replace_derived(path, old)
        if len(made) < call:
            break
        call += 1
    assert call > 4
