"""Exactly once against a Google Photos that never merges identical uploads: lost answers,
kill -9 inside create, files refused for good, full storage, full and deleted albums."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from q2google.sandbox import Sandbox, SandboxLibrary
from q2google.sessions import summarize
from tests.cli import q2google
from tests.kills import kill_after_sandbox_sees
from tests.test_sync import assert_exactly_once, run_sync, stored_state

LIBRARY = SandboxLibrary.generated(
    photos=40, videos=3, chaptered=1, bursts=1, photo_size=80 * 1024, video_size=512 * 1024, seed=31
)
KILLED = SandboxLibrary.generated(
    photos=100, videos=4, chaptered=2, photo_size=200 * 1024, video_size=300 * 1024, seed=32
)
"""Files are sent largest first, and every run here is killed early: videos not much larger
than photos, so that the first files land within the first killed runs, and more files than
ten short runs finish."""
WINDOW = ("--start", "2023-01-01", "--end", "2024-12-31")
SMALL_BATCHES = {"Q2GOOGLE_PHOTOS_LIBRARY_BATCH_SIZE": "5"}


def items_of(sandbox: Sandbox) -> list[dict[str, object]]:
    items: list[dict[str, object]] = sandbox.snapshot()["mediaItems"]
    return items


@pytest.mark.sandbox(library=LIBRARY, faults="lost-create=0.5,seed=3")
async def test_half_the_create_answers_lost_every_file_once_within_three_runs(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    for _ in range(3):
        await run_sync(sandbox, tmp_path)
        if summarize(stored_state(tmp_path)).status == "completed":
            break
    assert summarize(stored_state(tmp_path)).status == "completed"
    assert sandbox.stats.faults["lost_create"] >= 2, "answers were lost"
    assert_exactly_once(sandbox)
    assert all(item["createCalls"] == 1 for item in items_of(sandbox))


@pytest.mark.slow
@pytest.mark.sandbox(library=KILLED, faults="bandwidth=1MiB,slow-create=0.4")
def test_ten_kill_9_some_inside_create_then_one_clean_run(sandbox: Sandbox, tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        **sandbox.environment(sandbox.write_token_file(tmp_path / "token.json")),
        "Q2GOOGLE_STATE_DIR": str(tmp_path / "state"),
        "PYTHONPATH": str(repo),
        **SMALL_BATCHES,
    }
    command = [sys.executable, "-m", "tests.sync_child"]
    rng = random.Random(20261201)
    for run in range(10):
        child = subprocess.Popen(
            command, env=env, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Killed by what the sandbox sees, not by the clock (a loaded machine starts slowly):
        # most runs die inside a batchCreate (Google commits it 0.4 s after it arrives, the
        # client gone or not), the others during an upload.
        inside_create = run % 3 != 2
        kill_after_sandbox_sees(
            sandbox,
            child,
            "batchCreate" if inside_create else "upload",
            delay=rng.uniform(0.0, 0.35 if inside_create else 0.2),
        )
    partial = len(items_of(sandbox))
    sandbox.set_faults("")
    final = subprocess.run(
        command, env=env, cwd=repo, capture_output=True, text=True, timeout=300, check=False
    )
    assert final.returncode == 0, final.stderr[-2000:]
    assert 0 < partial < len(KILLED.deliverables()), "the kills landed mid-run"
    assert_exactly_once(sandbox)
    sent = sandbox.stats.upload_bytes_received
    print(f"10 kills then a clean run: {sent / KILLED.total_bytes:.2f} x the library's bytes")
    assert sent <= 1.3 * KILLED.total_bytes


REFUSED = sorted(
    asset.file_name for _, _, asset in LIBRARY.deliverables() if asset.file_name.endswith(".MP4")
)[:2]


@pytest.mark.sandbox(library=LIBRARY, faults="refuse=" + "|".join(REFUSED))
def test_two_files_refused_for_good_fail_with_googles_words_and_are_not_sent_again(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    assert len(REFUSED) == 2
    for _ in range(2):
        run = q2google("sync", *WINDOW, "--session", "r", env=user_env, cwd=tmp_path)
        assert run.returncode == 1, run.stdout + run.stderr
        assert "There was an error while trying to create this media item" in run.stdout
        for name in REFUSED:
            assert f"failed: {name}" in run.stdout
    stored = Counter(item["sha256"] for item in items_of(sandbox))
    expected = Counter(
        asset.sha256() for _, _, asset in LIBRARY.deliverables() if asset.file_name not in REFUSED
    )
    assert stored == expected
    assert sandbox.stats.upload_bytes_received <= 1.3 * LIBRARY.total_bytes


@pytest.mark.sandbox(library=LIBRARY, faults="bandwidth=4MiB")
def test_full_storage_midway_stops_with_one_line_and_the_same_command_finishes(
    sandbox: Sandbox, user_env: dict[str, str], tmp_path: Path
) -> None:
    env = {**user_env, **SMALL_BATCHES}

    def fill_the_storage_once_something_is_in() -> None:
        deadline = time.monotonic() + 60
        while not items_of(sandbox) and time.monotonic() < deadline:
            time.sleep(0.02)
        sandbox.set_faults("storage-full=1,bandwidth=4MiB")

    watcher = threading.Thread(target=fill_the_storage_once_something_is_in)
    watcher.start()
    full = q2google("sync", *WINDOW, "--session", "f", "--json", env=env, cwd=tmp_path)
    watcher.join()
    assert full.returncode == 75, full.stdout + full.stderr
    errors = [line for line in full.stderr.splitlines() if line.startswith("q2google: error")]
    assert len(errors) == 1
    assert "storage is full" in errors[0]
    assert 0 < len(items_of(sandbox)) < len(LIBRARY.deliverables())
    shown = json.loads(q2google("sessions", "show", "f", "--json", env=env).stdout)
    assert shown["by_status"]["failed"] == 0, "no file failed for it"

    sandbox.set_faults("")
    again = q2google("sync", "--session", "f", env=env, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_exactly_once(sandbox)


@pytest.mark.sandbox(library=LIBRARY, faults="album-cap=10")
async def test_a_capped_album_overflows_into_the_next_and_nothing_lands_outside(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    await run_sync(sandbox, tmp_path, album="Trip")
    assert summarize(stored_state(tmp_path)).status == "completed"
    library = assert_exactly_once(sandbox)
    albums = {album["title"]: album["mediaItemIds"] for album in library["albums"]}
    count = len(LIBRARY.deliverables())
    parts = -(-count // 10)
    assert set(albums) == {"Trip"} | {f"Trip ({part})" for part in range(2, parts + 1)}
    assert [len(albums["Trip"])] + [len(albums[f"Trip ({n})"]) for n in range(2, parts)] == [10] * (
        parts - 1
    ), "each album filled to its last place before the next"
    in_albums = sorted(item_id for ids in albums.values() for item_id in ids)
    assert in_albums == sorted(str(item["id"]) for item in library["mediaItems"])


UNREADY = SandboxLibrary.generated(photos=8, unready=2, photo_size=64 * 1024, seed=5)


@pytest.mark.sandbox(library=UNREADY)
async def test_an_album_deleted_between_runs_is_made_again_and_new_files_land_in_it(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    await run_sync(sandbox, tmp_path, album="Trip")
    first = stored_state(tmp_path)
    waiting = {item.media_id for item in first.items.values() if item.exclusion is not None}
    assert waiting, "some media wait for the GoPro cloud"
    sandbox.delete_album(str(first.album_id))
    for media_id in waiting:
        sandbox.set_ready(media_id)
    before = {str(item["id"]) for item in items_of(sandbox)}
    await run_sync(sandbox, tmp_path, album="Trip")
    library = assert_exactly_once(sandbox)
    albums = library["albums"]
    assert [album["title"] for album in albums] == ["Trip"], "made again, once"
    new = {str(item["id"]) for item in library["mediaItems"]} - before
    assert new
    assert new <= set(albums[0]["mediaItemIds"])
    assert stored_state(tmp_path).album_id == albums[0]["id"]


@pytest.mark.sandbox(library=LIBRARY, faults="bandwidth=8MiB")
async def test_two_sessions_over_one_window_at_once_upload_each_file_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    import asyncio

    await asyncio.gather(
        run_sync(sandbox, tmp_path, session="a"), run_sync(sandbox, tmp_path, session="b")
    )
    assert_exactly_once(sandbox)  # never merged: a file sent by both would be there twice
    for session in ("a", "b"):  # what one waited for, the other delivered: a rerun settles it
        await run_sync(sandbox, tmp_path, session=session)
        assert summarize(stored_state(tmp_path, session)).status == "completed"
    assert_exactly_once(sandbox)
    assert sandbox.stats.upload_bytes_received <= 1.2 * LIBRARY.total_bytes
