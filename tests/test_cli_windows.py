"""Windows as people write them, sessions that keep up, and resumes that must match, through
the real console script; and sessions stored before windows were exact still load."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from q2google.sandbox import Sandbox, SandboxLibrary
from q2google.sandbox.library import KIB
from q2google.state import SessionState
from q2google.state.local import JsonFileBackend
from q2google.window import WindowRequest, differences, window_bounds
from tests.cli import q2google, state_snapshot

NOON_PLUS_TWO = datetime(2024, 3, 1, 10, 0, tzinfo=UTC)  # 12:00 at +02:00


def _around_noon() -> SandboxLibrary:
    photos = SandboxLibrary.generated(photos=4, photo_size=KIB, seed=51).media
    moments = [
        NOON_PLUS_TWO - timedelta(hours=1),
        NOON_PLUS_TWO - timedelta(seconds=1),
        NOON_PLUS_TWO,
        NOON_PLUS_TWO + timedelta(hours=3),
    ]
    return SandboxLibrary(
        [
            dataclasses.replace(media, captured_at=at)
            for media, at in zip(photos, moments, strict=True)
        ]
    )


AROUND_NOON = _around_noon()
SMALL = SandboxLibrary.generated(photos=6, photo_size=KIB, seed=52)


@pytest.mark.sandbox(library=AROUND_NOON)
def test_a_start_with_an_offset_keeps_media_from_that_instant(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    window = ("--start", "2024-03-01T12:00:00+02:00", "--end", "2024-03-02", "--tz", "UTC")
    result = q2google("sync", "--session", "noon", *window, "--json", env=user_env, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["files"] == 2, "from 10:00 UTC on, not from midnight"
    taken = {item.media_id for item in _state(tmp_path, "noon").items.values()}
    assert taken == {m.media_id for m in AROUND_NOON.media if m.captured_at >= NOON_PLUS_TWO}
    state = _state(tmp_path, "noon")
    assert window_bounds(state) == (NOON_PLUS_TWO, datetime(2024, 3, 2, tzinfo=UTC))


@pytest.mark.sandbox(library=SMALL)
def test_an_open_window_run_again_delivers_and_reports_only_what_is_new(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    first = q2google(
        "sync", "--session", "nightly", "--start", "2024-01-01", "--json", env=user_env
    )
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout)["window"]["end"] == "now"
    sent = sandbox.stats.upload_bytes_received
    new = SandboxLibrary.generated(photos=2, photo_size=KIB, seed=53)
    for media in new.media:
        sandbox.add_media(media)

    again = q2google("sync", "--session", "nightly", env=user_env)
    assert again.returncode == 0, again.stderr
    assert "2 new since last run" in again.stdout
    assert sandbox.stats.upload_bytes_received - sent == new.total_bytes

    quiet = q2google("sync", "--session", "nightly", "--json", env=user_env)
    assert quiet.returncode == 0, quiet.stderr
    assert json.loads(quiet.stdout)["new_since_last_run"] == 0
    assert len(sandbox.snapshot()["mediaItems"]) == len(SMALL.media) + 2


@pytest.mark.sandbox(library=SMALL)
def test_resuming_with_another_window_or_album_is_refused_unless_widened(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    window = ("--start", "2024-01-05", "--end", "2024-02-01", "--tz", "UTC")
    made = q2google("sync", "--session", "w", *window, "--album", "A", env=user_env)
    assert made.returncode == 0, made.stderr
    before = state_snapshot(tmp_path / "sessions")

    for change, named in [
        (["--start", "2024-01-01", "--end", "2024-02-01"], "--start 2024-01-01"),
        (["--album", "B"], "--album 'B'"),
        (["--end", "2024-01-20"], "--end 2024-01-20"),
    ]:
        refused = q2google("sync", "--session", "w", "--tz", "UTC", *change, env=user_env)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr.count("\n") == 1, refused.stderr
        assert named in refused.stderr
        assert "--widen" in refused.stderr
        assert state_snapshot(tmp_path / "sessions") == before, "state untouched"

    narrower = q2google("sync", "--session", "w", "--end", "2024-01-20", "--widen", env=user_env)
    assert narrower.returncode == 2
    assert "only widens" in narrower.stderr

    widened = q2google(
        "sync", "--session", "w", "--start", "2024-01-01", "--tz", "UTC", "--widen", env=user_env
    )
    assert widened.returncode == 0, widened.stderr
    assert window_bounds(_state(tmp_path, "w"))[0] == datetime(2024, 1, 1, tzinfo=UTC)
    assert len(sandbox.snapshot()["mediaItems"]) == len(SMALL.media)


def test_a_session_stored_before_exact_windows_loads_and_resumes_as_it_was() -> None:
    old = {
        "schema_version": 2,
        "session_id": "old",
        "created_at": "2024-05-01T00:00:00.000+00:00",
        "updated_at": "2024-05-01T00:00:00.000+00:00",
        "start_date_iso": "2024-01-01T00:00:00+00:00",
        "end_date_iso": "2024-12-31T00:00:00+00:00",
        "batch_size": 50,
        "stages": {"discovery": "running", "transfer": "pending", "create": "pending"},
        "discovery_next_page": 3,
        "album_title": None,
        "album_id": None,
        "album_part": 1,
        "items": [],
        "batches": [],
    }
    state = SessionState.from_dict(old)
    assert state.discovery_cursor is None
    assert not state.window_exact
    assert window_bounds(state) == (
        datetime(2024, 1, 1, tzinfo=UTC),
        datetime(2025, 1, 1, tzinfo=UTC),  # the end's day included, as it was searched
    )
    same = WindowRequest(
        start=datetime(2024, 1, 1).astimezone(),
        end=datetime(2024, 12, 31).astimezone(),
        written_start="2024-01-01",
        written_end="2024-12-31",
    )
    assert differences(state, same) == [], "the old command resumes it"


def _state(tmp_path: Path, session: str) -> SessionState:
    state = JsonFileBackend(tmp_path / "sessions").load(session)
    assert state is not None
    return state
