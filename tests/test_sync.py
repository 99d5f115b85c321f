"""GoProToPhotosSync end to end against the sandbox: exactly once, whatever happens."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from q2google.config import Q2GoogleSettings
from q2google.gopro import GoProCloudClient
from q2google.photos import GooglePhotosClient
from q2google.retry import RetryPolicy
from q2google.sandbox import Sandbox, SandboxLibrary
from q2google.state import StageName, StageStatus
from q2google.state.local import JsonFileBackend
from q2google.sync import GoProToPhotosSync

WINDOW = (datetime(2023, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))
FAST = RetryPolicy(attempts=10, initial_seconds=0.05, max_seconds=0.5, jitter_seconds=0.05)
MIXED = SandboxLibrary.generated(
    photos=12,
    videos=3,
    bursts=2,
    timelapses=1,
    frames=5,
    photo_size=200 * 1024,
    video_size=3 * 1024 * 1024,
    seed=9,
)


class Crash(BaseException):
    """Stands for the process dying (kill -9) at a chosen instant."""


class CrashAfterCreate(GooglePhotosClient):
    """Google created the items, then the process died before the checkpoint."""

    async def create_media_items(self, *args: Any, **kwargs: Any) -> Any:
        await super().create_media_items(*args, **kwargs)
        raise Crash


async def run_sync(
    sandbox: Sandbox,
    tmp_path: Path,
    *,
    session: str = "s1",
    window: tuple[datetime, datetime] = WINDOW,
    photos_class: type[GooglePhotosClient] = GooglePhotosClient,
    album: str | None = "GoPro",
) -> Any:
    settings = Q2GoogleSettings(
        gopro_api_url=sandbox.url,
        photos_api_url=sandbox.url,
        state_dir=tmp_path / "state",
        google_token_file=sandbox.write_token_file(tmp_path / "token.json"),
        upload_chunk_size_bytes=1024 * 1024,
        transfer_concurrency=4,
    )
    async with GoProCloudClient.from_settings(settings, access_token=sandbox.gopro_token) as gp:
        photos = photos_class.from_settings(settings)
        photos.policy = photos.api.policy = FAST
        async with photos:
            sync = GoProToPhotosSync(gp, photos, JsonFileBackend(settings.state_dir), settings)
            sync._library.policy = FAST
            return await sync.sync_date_range(*window, session_id=session, album_title=album)


def assert_exactly_once(sandbox: Sandbox) -> dict[str, Any]:
    library = sandbox.snapshot()
    stored = Counter(item["sha256"] for item in library["mediaItems"])
    expected = Counter(asset.sha256() for _, _, asset in sandbox.library.deliverables())
    assert stored == expected, "every file in the library once, none missing"
    return library


def stored_state(tmp_path: Path, session: str = "s1") -> Any:
    state = JsonFileBackend(tmp_path / "state").load(session)
    assert state is not None
    return state


@pytest.mark.sandbox(library=MIXED)
async def test_a_mixed_library_lands_exactly_once(sandbox: Sandbox, tmp_path: Path) -> None:
    responses = await run_sync(sandbox, tmp_path)
    library = assert_exactly_once(sandbox)
    assert len(library["albums"]) == 1
    assert len(library["albums"][0]["mediaItemIds"]) == len(MIXED.deliverables())
    assert sum(len(r.new_media_item_results) for r in responses) == len(MIXED.deliverables())
    state = stored_state(tmp_path)
    assert {item.create_status for item in state.items.values()} == {StageStatus.COMPLETED}
    assert set(state.stages.values()) == {StageStatus.COMPLETED}
    assert all(item.media_item_id for item in state.items.values())
    assert not any(item.upload_token for item in state.items.values())
    names = Counter(item.file_name for item in state.items.values())
    assert max(names.values()) > 1, "colliding GoPro file names stay separate items"

    sent = sandbox.stats.upload_bytes_received
    assert await run_sync(sandbox, tmp_path) == []
    assert sandbox.stats.upload_bytes_received == sent, "a finished session sends nothing"


@pytest.mark.slow
@pytest.mark.sandbox(
    library=MIXED,
    faults="5xx=0.1,429=0.05,reset=0.05,url-ttl=2,token-ttl=3,item-failure=0.1,"
    "retry-after=0,seed=21",
)
async def test_every_fault_at_once_exactly_once_within_three_runs(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    for _ in range(3):
        await run_sync(sandbox, tmp_path)
        state = stored_state(tmp_path)
        if all(item.create_status is StageStatus.COMPLETED for item in state.items.values()):
            break
    assert_exactly_once(sandbox)
    fired = sandbox.stats.faults
    assert fired["5xx"], fired
    assert fired["429"], fired


@pytest.mark.sandbox(library=MIXED)
async def test_crash_after_batch_create_before_the_checkpoint(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    with pytest.raises(Crash):
        await run_sync(sandbox, tmp_path, photos_class=CrashAfterCreate)
    state = stored_state(tmp_path)
    assert any(batch.status is StageStatus.RUNNING for batch in state.batches.values())
    created_before = len(sandbox.snapshot()["mediaItems"])
    assert created_before > 0, "Google did create the first batch"

    await run_sync(sandbox, tmp_path)
    library = assert_exactly_once(sandbox)
    assert any(item["createCalls"] > 1 for item in library["mediaItems"]), (
        "the items of the lost batch were sent again and matched to the existing ones"
    )


@pytest.mark.sandbox(library=MIXED, faults="bandwidth=4MiB")
async def test_an_interrupted_run_resumes_without_doubling(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    task = asyncio.ensure_future(run_sync(sandbox, tmp_path))
    # The counter lives on the sandbox's thread: poll it (an asyncio.Event cannot see it).
    while sandbox.stats.upload_bytes_received < 3 * 1024 * 1024 and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    assert not task.done(), "the run must still be transferring when it is interrupted"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    sandbox.set_faults("")
    await run_sync(sandbox, tmp_path)
    assert_exactly_once(sandbox)
    assert sandbox.stats.upload_bytes_received <= 1.3 * MIXED.total_bytes


async def test_an_empty_window_is_a_clean_empty_session(sandbox: Sandbox, tmp_path: Path) -> None:
    empty = (datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 2, 1, tzinfo=UTC))
    assert await run_sync(sandbox, tmp_path, window=empty, album=None) == []
    state = stored_state(tmp_path)
    assert len(state.items) == 0
    assert state.stages[StageName.DISCOVERY] is StageStatus.COMPLETED
    assert state.stages[StageName.CREATE] is StageStatus.COMPLETED
    assert sandbox.snapshot()["mediaItems"] == []


async def test_on_resume_the_stored_window_wins(sandbox: Sandbox, tmp_path: Path) -> None:
    await run_sync(sandbox, tmp_path)
    first = stored_state(tmp_path)
    later = (datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 2, 1, tzinfo=UTC))
    await run_sync(sandbox, tmp_path, window=later)
    again = stored_state(tmp_path)
    assert again.start_date_iso == first.start_date_iso
    assert again.end_date_iso == first.end_date_iso


@pytest.mark.sandbox(library=MIXED)
async def test_an_overlapping_second_session_sends_nothing_already_delivered(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    first_half = (datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 15, tzinfo=UTC))
    await run_sync(sandbox, tmp_path, session="first", window=first_half)
    first = stored_state(tmp_path, "first")
    delivered_bytes = sandbox.stats.upload_bytes_received
    assert 0 < len(first.items) < len(MIXED.deliverables())

    await run_sync(sandbox, tmp_path, session="second")  # the whole window, overlapping
    second = stored_state(tmp_path, "second")
    assert_exactly_once(sandbox)
    skipped = [
        item for item in second.items.values() if item.transfer_status is StageStatus.SKIPPED
    ]
    assert {item.item_key for item in skipped} == set(first.items)
    assert all(item.media_item_id == first.items[item.item_key].media_item_id for item in skipped)
    new_bytes = sandbox.stats.upload_bytes_received - delivered_bytes
    expected_new = sum(
        asset.size
        for media, _, asset in MIXED.deliverables()
        if not first_half[0] <= media.captured_at < first_half[1].replace(day=16)
    )
    assert new_bytes == expected_new, "not one byte of an already delivered file is sent again"


async def test_the_ledger_id_is_not_a_session_id(sandbox: Sandbox, tmp_path: Path) -> None:
    from q2google.errors import InvalidSessionIdError

    with pytest.raises(InvalidSessionIdError, match="reserved"):
        await run_sync(sandbox, tmp_path, session="q2google-ledger")


KILL_LIBRARY = SandboxLibrary.generated(
    photos=30,
    videos=4,
    bursts=2,
    timelapses=1,
    frames=6,
    photo_size=600 * 1024,
    video_size=8 * 1024 * 1024,
    seed=13,
)


@pytest.mark.slow
@pytest.mark.sandbox(library=KILL_LIBRARY, faults="bandwidth=1MiB")
def test_twelve_kill_9_at_random_moments_then_a_final_run(sandbox: Sandbox, tmp_path: Path) -> None:
    import os
    import random
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        **sandbox.environment(sandbox.write_token_file(tmp_path / "token.json")),
        "Q2GOOGLE_STATE_DIR": str(tmp_path / "state"),
        "Q2GOOGLE_UPLOAD_CHUNK_SIZE_BYTES": str(1024 * 1024),
        "Q2GOOGLE_PHOTOS_LIBRARY_BATCH_SIZE": "10",
        "PYTHONPATH": str(repo),
    }
    command = [sys.executable, "-m", "tests.sync_child"]
    rng = random.Random(20261123)
    for _ in range(12):
        child = subprocess.Popen(
            command, env=env, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.8, 3.5))  # start-up takes ~0.7 s: most kills hit transfer
        child.kill()
        child.wait()
    partial = len(sandbox.snapshot()["mediaItems"])
    sandbox.set_faults("")
    final = subprocess.run(
        command, env=env, cwd=repo, capture_output=True, text=True, timeout=300, check=False
    )
    assert final.returncode == 0, final.stderr[-2000:]
    assert_exactly_once(sandbox)
    assert 0 < partial < len(KILL_LIBRARY.deliverables()), "the kills landed mid-run"
    sent = sandbox.stats.upload_bytes_received
    print(
        f"12 kills, then a final run: {partial} of {len(KILL_LIBRARY.deliverables())} items "
        f"were in the library before it; bytes sent {sent / KILL_LIBRARY.total_bytes:.3f} x "
        f"the library ({KILL_LIBRARY.total_bytes / 1024**2:.1f} MiB)"
    )
    assert sent <= 1.3 * KILL_LIBRARY.total_bytes, (
        f"sent {sent / KILL_LIBRARY.total_bytes:.2f} x the library"
    )
