"""JsonFileBackend: the contract suite, plus what only a directory of files can show."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from q2google.config import Q2GoogleSettings
from q2google.errors import (
    EXIT_BAD_INPUT,
    EXIT_TRY_LATER,
    InvalidSessionIdError,
    StateCorruptError,
    StateError,
    StateUnavailableError,
    StateWriteError,
    UnknownBackendError,
)
from q2google.state import (
    ItemState,
    SessionState,
    StageName,
    StageStatus,
    SyncStateBackend,
    new_session,
)
from q2google.state.local import JsonFileBackend
from q2google.testing import BackendSpec, SyncStateBackendContract, sample_session


class TestJsonFileBackendContract(SyncStateBackendContract):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> SyncStateBackend:
        return JsonFileBackend(tmp_path / "state")

    @pytest.fixture
    def reopen_backend(self, tmp_path: Path) -> Callable[[], SyncStateBackend]:
        return lambda: JsonFileBackend(tmp_path / "state")

    @pytest.fixture
    def backend_spec(self, tmp_path: Path) -> BackendSpec:
        return BackendSpec(
            "q2google.state.local:JsonFileBackend", {"state_dir": str(tmp_path / "state")}
        )

    @pytest.fixture
    def drop_summary(self, tmp_path: Path) -> Callable[[str], None]:
        return lambda session_id: (tmp_path / "state" / session_id / "summary.json").unlink()


@pytest.fixture
def backend(tmp_path: Path) -> JsonFileBackend:
    return JsonFileBackend(tmp_path / "state")


def _snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    """Map each file under ``directory`` to (inode, mtime_ns): what a rewrite changes."""
    return {
        str(path.relative_to(directory)): (path.stat().st_ino, path.stat().st_mtime_ns)
        for path in directory.rglob("*")
        if path.is_file()
    }


def _journal_lines(backend: JsonFileBackend, session_id: str) -> list[dict[str, Any]]:
    path = backend.state_dir / session_id / "journal.jsonl"
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def test_layout_is_one_journal_per_session(backend: JsonFileBackend) -> None:
    state = sample_session("trip", items=4)
    backend.save(state)
    directory = backend.state_dir / "trip"
    assert sorted(path.name for path in directory.iterdir()) == [
        "journal.jsonl",
        "meta.json",
        "summary.json",
    ], "no temporary file left behind, no directory per kind of record"
    meta = json.loads((directory / "meta.json").read_text())
    assert meta["session_id"] == "trip"
    assert meta["schema_version"] == 3, "the journal layout: refused by older versions"
    assert "items" not in meta
    lines = _journal_lines(backend, "trip")
    assert [next(iter(line)) for line in lines] == ["meta", "batch", "batch"] + ["item"] * 4 + [
        "commit"
    ]
    assert lines[-1] == {"commit": 7}
    assert lines[0]["meta"] == state.meta_dict()
    assert lines[3]["item"] == state.items["burst0-0"].to_dict()


def test_a_checkpoint_appends_what_changed_and_rewrites_no_file(backend: JsonFileBackend) -> None:
    state = sample_session("trip", items=50)
    backend.save(state)
    before = _snapshot(backend.state_dir)
    size = (backend.state_dir / "trip" / "journal.jsonl").stat().st_size

    state.items["media000010-0"].upload_offset = 1_048_576
    backend.save(state)
    after = _snapshot(backend.state_dir)

    changed = {name for name in after if after[name] != before.get(name)}
    assert changed == {"trip/journal.jsonl"}
    assert after["trip/journal.jsonl"][0] == before["trip/journal.jsonl"][0], "appended to"
    appended = (backend.state_dir / "trip" / "journal.jsonl").read_bytes()[size:]
    assert [json.loads(line) for line in appended.splitlines()] == [
        {"item": state.items["media000010-0"].to_dict()},
        {"commit": 1},
    ]


def test_meta_is_rewritten_only_when_it_changes(backend: JsonFileBackend) -> None:
    state = sample_session("trip")
    backend.save(state)
    meta = backend.state_dir / "trip" / "meta.json"
    inode = meta.stat().st_ino
    backend.save(state)
    assert meta.stat().st_ino == inode
    state.set_stage(StageName.CREATE, StageStatus.RUNNING)
    backend.save(state)
    assert meta.stat().st_ino != inode
    stored = backend.load("trip")
    assert stored is not None
    assert stored.stages[StageName.CREATE] is StageStatus.RUNNING


def test_in_place_mutation_needs_mark_item_dirty(backend: JsonFileBackend) -> None:
    state = sample_session("trip")
    backend.save(state)
    item = state.items["burst0-0"]
    item.errors.clear()  # in place: invisible to tracking until marked
    state.mark_item_dirty(item.item_key)
    backend.save(state)
    stored = backend.load("trip")
    assert stored is not None
    assert stored.items["burst0-0"].errors == {}


@pytest.mark.parametrize("bad_id", ["../escape", "a/b", ".hidden", "", "x" * 129, "a b", "é"])
def test_bad_session_ids_are_refused_before_any_path_is_built(
    backend: JsonFileBackend, bad_id: str
) -> None:
    with pytest.raises(InvalidSessionIdError):
        backend.load(bad_id)
    with pytest.raises(InvalidSessionIdError):
        new_session(bad_id, start_date_iso="2024-01-01", end_date_iso="2024-01-02", batch_size=1)
    assert not backend.state_dir.exists()


def test_corrupt_files_are_named_and_left_untouched(backend: JsonFileBackend) -> None:
    backend.save(sample_session("trip"))
    victim = backend.state_dir / "trip" / "journal.jsonl"
    lines = victim.read_bytes().splitlines(keepends=True)
    lines[4] = b'{"item": {"item_key": "burst0-1", "media_id": \n'
    torn = b"".join(lines)
    victim.write_bytes(torn)
    with pytest.raises(StateCorruptError, match=r"journal\.jsonl: line 5: not valid") as caught:
        backend.load("trip")
    assert str(victim) in str(caught.value)
    assert "\n" not in str(caught.value)
    assert victim.read_bytes() == torn


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"[1, 2]", "not a JSON object"),
        (None, "batch_size: Input should be greater than or equal to 1"),
        (b'{"session_id": "\xc3\x28"}', "not UTF-8"),
        (b'{"session_id": "trip", "schema_version": 99}', "newer q2google"),
    ],
)
def test_corrupt_meta_is_a_one_line_error(
    backend: JsonFileBackend, payload: bytes | None, message: str
) -> None:
    backend.save(sample_session("trip"))
    meta = backend.state_dir / "trip" / "meta.json"
    if payload is None:
        payload = json.dumps({**json.loads(meta.read_text()), "batch_size": 0}).encode()
    meta.write_bytes(payload)
    with pytest.raises(StateCorruptError, match=message) as caught:
        backend.load("trip")
    assert str(meta) in str(caught.value)
    assert meta.read_bytes() == payload


def test_invalid_item_field_names_the_file_line_and_field(backend: JsonFileBackend) -> None:
    backend.save(sample_session("trip"))
    path = backend.state_dir / "trip" / "journal.jsonl"
    lines = path.read_bytes().splitlines()
    data = json.loads(lines[5])
    assert data["item"]["item_key"] == "burst0-2"
    data["item"]["transfer_status"] = "exploded"
    lines[5] = json.dumps(data).encode()
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(StateCorruptError, match=r"journal\.jsonl: line 6: .*transfer_status"):
        backend.load("trip")


def test_a_failed_save_keeps_the_previous_checkpoint_and_the_next_save_completes(
    backend: JsonFileBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = sample_session("trip", items=10)
    backend.save(state)
    previous = state.to_dict()
    for item in state.items.values():
        item.create_status = StageStatus.COMPLETED
    state.set_stage(StageName.CREATE, StageStatus.COMPLETED)

    real_pwrite = os.pwrite

    def half_then_full_disk(fd: int, data: bytes, offset: int) -> int:
        real_pwrite(fd, bytes(data)[: len(data) // 2], offset)  # torn midway through a line
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "pwrite", half_then_full_disk)
    impatient = JsonFileBackend(backend.state_dir, retry_seconds=0)  # one try, no retry
    with pytest.raises(StateUnavailableError, match="No space left on device") as caught:
        impatient.save(state)
    assert caught.value.exit_code == EXIT_TRY_LATER
    assert "progress up to the last checkpoint is saved" in str(caught.value)
    monkeypatch.setattr(os, "pwrite", real_pwrite)

    torn = backend.load("trip")
    assert torn is not None, "the previous checkpoint must stay loadable"
    assert torn.to_dict() == SessionState.from_dict(previous).to_dict(), "and be exactly it"
    assert not list(backend.state_dir.rglob(".*.tmp")), "temporary file left behind"

    impatient.save(state)  # the same backend, the changes still pending
    stored = backend.load("trip")
    assert stored is not None
    assert stored.to_dict() == state.to_dict()


def test_a_full_disk_is_retried_and_the_save_completes(
    backend: JsonFileBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = sample_session("full", items=4)
    real_replace, failures = os.replace, [28, 5]  # disk full, then an I/O error, then room

    def full_then_free(src: str, dst: str) -> None:
        if failures:
            raise OSError(failures.pop(0), "transient")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full_then_free)
    backend.save(state)
    assert not failures
    stored = backend.load("full")
    assert stored is not None
    assert stored.to_dict() == state.to_dict()


def test_a_corrupt_state_is_not_retried_and_stays_exit_2(backend: JsonFileBackend) -> None:
    backend.save(sample_session("bad"))
    (backend.state_dir / "bad" / "meta.json").write_text("{ torn")
    with pytest.raises(StateCorruptError) as caught:
        backend.load("bad")
    assert caught.value.exit_code == EXIT_BAD_INPUT


def test_unfinished_first_save_is_not_a_session_and_is_cleared(backend: JsonFileBackend) -> None:
    items_dir = backend.state_dir / "trip" / "items"
    items_dir.mkdir(parents=True)
    (items_dir / "stale.0000000000.json").write_text('{"junk": true}')
    assert backend.load("trip") is None
    state = sample_session("trip", items=2)
    backend.save(state)
    stored = backend.load("trip")
    assert stored is not None
    assert stored.to_dict() == state.to_dict()


def test_state_files_are_private(backend: JsonFileBackend) -> None:
    backend.save(sample_session("trip"))
    files = [path for path in backend.state_dir.rglob("*") if path.is_file()]
    assert {path.name for path in files} >= {"journal.jsonl", "meta.json", "summary.json"}
    assert {path.stat().st_mode & 0o777 for path in files} == {0o600}


ORIGINAL_FORM = {  # as the original q2google (schema 1) wrote it: items keyed by file name
    "schema_version": 1,
    "session_id": "old-run",
    "created_at": "2025-06-01T10:00:00+00:00",
    "updated_at": "2025-06-01T11:00:00+00:00",
    "start_date_iso": "2023-06-01T00:00:00",
    "end_date_iso": "2023-06-30T00:00:00",
    "batch_size": 20,
    "stages": {"discovery": "completed", "transfer": "completed", "create": "running"},
    "items": {
        "GOPR0001.JPG": {
            "file_name": "GOPR0001.JPG",
            "media_id": "m1",
            "download_url": "https://cdn/1",
            "discovery_status": "completed",
            "transfer_status": "completed",
            "create_status": "completed",
            "upload_token": "t1",
            "media_type": "photo",
            "errors": {},
        },
        "GOPR0002.JPG": {
            "file_name": "GOPR0002.JPG",
            "media_id": "m1",
            "discovery_status": "completed",
            "transfer_status": "failed",
            "create_status": "pending",
            "upload_token": None,
            "media_type": "photo",
            "errors": {
                "transfer": {
                    "error_type": "TimeoutError",
                    "message": "timeout",
                    "attempt": 2,
                    "updated_at": "2025-06-01T11:00:00+00:00",
                }
            },
        },
    },
    "batches": {
        "0": {
            "batch_index": 0,
            "file_names": ["GOPR0001.JPG"],
            "status": "completed",
            "responses_json": ['{"uploadToken": "t1"}'],
            "error": None,
        }
    },
}


def _check_migrated(state: SessionState | None) -> SessionState:
    assert state is not None
    assert list(state.items) == ["m1-0", "m1-1"]
    assert state.items["m1-1"].errors[StageName.TRANSFER].message == "timeout"
    assert state.items["m1-0"].upload_token == "t1"
    assert state.batches[0].item_keys == ("m1-0",)
    assert state.batches[0].responses == ({"uploadToken": "t1"},)
    assert state.created_at == "2025-06-01T10:00:00+00:00"
    return state


def test_original_flat_session_is_read_and_migrated_on_save(backend: JsonFileBackend) -> None:
    backend.state_dir.mkdir()
    flat = backend.state_dir / "old-run.json"
    flat.write_text(json.dumps(ORIGINAL_FORM))

    state = _check_migrated(backend.load("old-run"))
    assert flat.read_text() == json.dumps(ORIGINAL_FORM), "loading must not change anything"

    backend.save(state)
    assert not flat.exists()
    assert (backend.state_dir / "old-run.json.migrated").is_file()
    again = backend.load("old-run")
    assert again is not None
    assert again.to_dict() == state.to_dict()


def _write_original_directory(root: Path) -> Path:
    directory = root / "old-run"
    (directory / "items").mkdir(parents=True)
    (directory / "batches").mkdir()
    meta = {key: value for key, value in ORIGINAL_FORM.items() if key not in ("items", "batches")}
    (directory / "meta.json").write_text(json.dumps(meta))
    for name, item in ORIGINAL_FORM["items"].items():  # type: ignore[attr-defined]
        (directory / "items" / f"{name}.json").write_text(json.dumps(item))
    (directory / "batches" / "0.json").write_text(json.dumps(ORIGINAL_FORM["batches"]["0"]))  # type: ignore[index]
    return directory


def test_original_directory_layout_is_read_and_migrated_on_save(
    backend: JsonFileBackend,
) -> None:
    directory = _write_original_directory(backend.state_dir)
    state = _check_migrated(backend.load("old-run"))
    backend.save(state)
    assert sorted(path.name for path in directory.iterdir()) == [
        "journal.jsonl",
        "meta.json",
        "summary.json",
    ], "the original layout's directories are gone"
    again = JsonFileBackend(backend.state_dir).load("old-run")
    assert again is not None
    assert again.to_dict() == state.to_dict()
    assert not again.has_pending_changes


def test_migration_cut_before_meta_still_reads_the_original(
    backend: JsonFileBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_original_directory(backend.state_dir)
    state = _check_migrated(backend.load("old-run"))
    real_write = JsonFileBackend._write_file

    def die_on_meta(self: JsonFileBackend, path: Path, data: dict[str, object]) -> None:
        if path.name == "meta.json":
            raise OSError(5, "Input/output error")
        real_write(self, path, data)

    monkeypatch.setattr(JsonFileBackend, "_write_file", die_on_meta)
    with pytest.raises(StateUnavailableError):
        JsonFileBackend(backend.state_dir, retry_seconds=0).save(state)
    monkeypatch.setattr(JsonFileBackend, "_write_file", real_write)
    _check_migrated(backend.load("old-run"))  # new files beside the old ones change nothing
    backend.save(state)
    again = backend.load("old-run")
    assert again is not None
    assert again.to_dict() == state.to_dict()


def test_a_new_session_never_merges_into_a_stored_one(backend: JsonFileBackend) -> None:
    backend.save(sample_session("trip", items=3))
    fresh = new_session(
        "trip", start_date_iso="2024-01-01", end_date_iso="2024-01-02", batch_size=5
    )
    fresh.add_item(ItemState(media_id="new", file_name="x.JPG"))
    with pytest.raises(StateError, match="already exists"):
        backend.save(fresh)
    stored = backend.load("trip")
    assert stored is not None
    assert "new-0" not in stored.items
    assert len(stored.items) == 3


def test_current_form_in_a_flat_file_is_read_too(backend: JsonFileBackend) -> None:
    state = sample_session("flat")
    backend.state_dir.mkdir()
    (backend.state_dir / "flat.json").write_text(json.dumps(state.to_dict()))
    loaded = backend.load("flat")
    assert loaded is not None
    assert loaded.to_dict() == state.to_dict()


def test_session_ids_lists_both_layouts(backend: JsonFileBackend) -> None:
    backend.save(sample_session("b-dir"))
    (backend.state_dir / "a-flat.json").write_text("{}")
    (backend.state_dir / "c-unfinished" / "items").mkdir(parents=True)
    assert backend.session_ids() == ["a-flat", "b-dir"]


def test_item_file_names_cannot_escape_or_collide() -> None:
    names = {
        JsonFileBackend.item_file_name(key)
        for key in ["../x-0", "a/b-0", "AbC-0", "abc-0", "é-0", "x" * 500 + "-0"]
    }
    assert len(names) == 6
    assert all("/" not in name and not name.startswith(".") for name in names)
    assert all(len(name.encode()) < 200 for name in names)


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        (None, "default-dir"),
        ("file:///srv/q2google", "/srv/q2google"),
        ("file://localhost/srv/x", "/srv/x"),
        ("file:", "default-dir"),
    ],
)
def test_from_settings(uri: str | None, expected: str) -> None:
    settings = Q2GoogleSettings(state_dir=Path("default-dir"), state_uri=uri)
    assert JsonFileBackend.from_settings(settings).state_dir == Path(expected)


def test_file_uri_with_a_host_is_refused() -> None:
    settings = Q2GoogleSettings(state_uri="file://nas/share")
    with pytest.raises(UnknownBackendError, match="file:///absolute/path"):
        JsonFileBackend.from_settings(settings)


def test_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    with pytest.raises(StateWriteError, match="cannot write session 'trip'"):
        JsonFileBackend(blocker / "state").save(sample_session("trip"))


def test_keys_with_one_item_per_file_index(backend: JsonFileBackend) -> None:
    state = new_session(
        "burst", start_date_iso="2024-01-01", end_date_iso="2024-01-02", batch_size=5
    )
    for index in range(30):
        state.add_item(ItemState(media_id="B1", file_index=index, file_name="GOPR0001.JPG"))
    backend.save(state)
    loaded = backend.load("burst")
    assert loaded is not None
    assert len(loaded.items) == 30
    assert [item.file_index for item in loaded.items.values()] == list(range(30))
