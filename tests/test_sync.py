"""GoProToPhotosSync end to end against the sandbox: exactly once, whatever happens."""

from __future__ import annotations

import asyncio
import gc
import weakref
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from q2google.config import Q2GoogleSettings
from q2google.gopro import GoProCloudClient, GoProLibrary, SearchPage
from q2google.photos import GooglePhotosClient
from q2google.retry import RetryPolicy
from q2google.sandbox import Sandbox, SandboxLibrary
from q2google.state import LEDGER_SESSION_ID, ItemState, SessionState, StageName, StageStatus
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


async def expect_crash(run: Any) -> None:
    """Await ``run`` and require that it died by :class:`Crash` (in a task group or not)."""
    crashed = False
    try:
        await run
    except* Crash:
        crashed = True
    assert crashed, "the run was expected to crash"


class CrashAfterUpload(GooglePhotosClient):
    """Google finalized an upload (the token exists), then the process died."""

    async def upload(self, *args: Any, **kwargs: Any) -> str:
        await super().upload(*args, **kwargs)
        raise Crash


async def run_sync(
    sandbox: Sandbox,
    tmp_path: Path,
    *,
    session: str = "s1",
    window: tuple[datetime, datetime] = WINDOW,
    photos_class: type[GooglePhotosClient] = GooglePhotosClient,
    album: str | None = "GoPro",
    concurrency: int = 4,
    prepare: Any = None,
    backend: Any = None,
    raw_upload_max_bytes: int | None = None,
    return_responses: bool = True,
    on_stage_complete: Any = None,
) -> Any:
    raw: dict[str, Any] = {}
    if raw_upload_max_bytes is not None:
        raw["raw_upload_max_bytes"] = raw_upload_max_bytes
    settings = Q2GoogleSettings(
        gopro_api_url=sandbox.url,
        photos_api_url=sandbox.url,
        state_dir=tmp_path / "state",
        google_token_file=sandbox.write_token_file(tmp_path / "token.json"),
        upload_chunk_size_bytes=1024 * 1024,
        transfer_concurrency=concurrency,
        **raw,
    )
    async with GoProCloudClient.from_settings(settings, access_token=sandbox.gopro_token) as gp:
        photos = photos_class.from_settings(settings)
        photos.policy = photos.api.policy = FAST
        async with photos:
            store = backend or JsonFileBackend(settings.state_dir)
            sync = GoProToPhotosSync(GoProLibrary(gp, policy=FAST), photos, store, settings)
            if prepare is not None:
                prepare(sync)
            return await sync.sync_date_range(
                *window,
                session_id=session,
                album_title=album,
                return_responses=return_responses,
                on_stage_complete=on_stage_complete,
            )


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
    syncs: list[GoProToPhotosSync] = []
    responses = await run_sync(sandbox, tmp_path, prepare=syncs.append)
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
    held = syncs[0].last_state
    assert held is not None
    assert not held.items, "a run holds only what it still has to do"
    assert set(held.settled) == set(state.items)
    assert not held.batches

    sent = sandbox.stats.upload_bytes_received
    assert await run_sync(sandbox, tmp_path) == []
    assert sandbox.stats.upload_bytes_received == sent, "a finished session sends nothing"


class WatchesItems(JsonFileBackend):
    """JSON files that keep a weak reference to every file of a session they save."""

    def __init__(self, state_dir: Path) -> None:
        super().__init__(state_dir)
        self.seen: dict[str, weakref.ref[ItemState]] = {}

    def save(self, state: SessionState) -> None:
        super().save(state)
        if state.session_id != LEDGER_SESSION_ID:
            self.seen.update((key, weakref.ref(item)) for key, item in state.items.items())


@pytest.mark.sandbox(library=MIXED)
async def test_a_run_lets_go_of_each_file_once_it_is_delivered(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    backend = WatchesItems(tmp_path / "state")
    held: list[set[str]] = []

    async def after(stage: str, state: SessionState, *_: Any) -> None:
        if stage == "transfer":  # the stages are still alive: what do they hold?
            gc.collect()
            alive = {key for key, ref in backend.seen.items() if ref() is not None}
            held.append(alive - set(state.items))

    await run_sync(sandbox, tmp_path, backend=backend, on_stage_complete=after)
    assert_exactly_once(sandbox)
    assert held == [set()], "nothing holds a file delivered"
    assert len(backend.seen) == len(MIXED.deliverables())


@pytest.mark.sandbox(library=MIXED)
async def test_a_run_may_do_without_its_responses(sandbox: Sandbox, tmp_path: Path) -> None:
    assert await run_sync(sandbox, tmp_path, return_responses=False) == []
    assert_exactly_once(sandbox)


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
    await expect_crash(run_sync(sandbox, tmp_path, photos_class=CrashAfterCreate))
    state = stored_state(tmp_path)
    assert any(batch.status is StageStatus.RUNNING for batch in state.batches.values())
    created_before = len(sandbox.snapshot()["mediaItems"])
    assert created_before > 0, "Google did create the first batch"

    await run_sync(sandbox, tmp_path)
    library = assert_exactly_once(sandbox)  # the sandbox never merges identical uploads
    assert all(item["createCalls"] == 1 for item in library["mediaItems"]), (
        "the lost batch's items were found by their markers, not created again"
    )
    calls = sandbox.stats.google_calls
    assert calls["mediaItems.list"] + calls["mediaItems.search"] >= 1, "looked for, not resent"


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
        if not first_half[0] <= media.captured_at < first_half[1]
    )
    assert new_bytes == expected_new, "not one byte of an already delivered file is sent again"


async def test_the_ledger_id_is_not_a_session_id(sandbox: Sandbox, tmp_path: Path) -> None:
    from q2google.errors import InvalidSessionIdError

    with pytest.raises(InvalidSessionIdError, match="reserved"):
        await run_sync(sandbox, tmp_path, session="q2google-ledger")


KILL_LIBRARY = SandboxLibrary.generated(
    photos=30,
    videos=16,
    bursts=2,
    timelapses=1,
    frames=6,
    photo_size=600 * 1024,
    video_size=2 * 1024 * 1024,
    seed=13,
)
"""Files are sent largest first: videos of a few chunks each, so that the first ones land
within the first killed runs (four of 8 MiB held every run's workers for 8 s)."""


@pytest.mark.slow
@pytest.mark.sandbox(library=KILL_LIBRARY, faults="bandwidth=1MiB")
def test_twelve_kill_9_at_random_moments_then_a_final_run(sandbox: Sandbox, tmp_path: Path) -> None:
    import os
    import random
    import subprocess
    import sys

    from tests.kills import kill_after_sandbox_sees

    repo = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        **sandbox.environment(sandbox.write_token_file(tmp_path / "token.json")),
        "Q2GOOGLE_STATE_DIR": str(tmp_path / "state"),
        "Q2GOOGLE_UPLOAD_CHUNK_SIZE_BYTES": str(1024 * 1024),
        "Q2GOOGLE_RAW_UPLOAD_MAX_BYTES": "0",  # about continuing resumable sessions
        "Q2GOOGLE_PHOTOS_LIBRARY_BATCH_SIZE": "10",
        "PYTHONPATH": str(repo),
    }
    command = [sys.executable, "-m", "tests.sync_child"]
    rng = random.Random(20261123)
    for run in range(12):
        child = subprocess.Popen(
            command, env=env, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        # Moments chosen by what the sandbox sees (a loaded machine starts slowly): after
        # some upload requests, mostly mid-file, and every fourth run at a batchCreate.
        if run % 4 == 3:
            kill_after_sandbox_sees(sandbox, child, "batchCreate", delay=rng.uniform(0, 0.05))
        else:
            count, delay = rng.randint(1, 6), rng.uniform(0, 0.5)
            kill_after_sandbox_sees(sandbox, child, "upload", count=count, delay=delay)
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


@pytest.mark.sandbox(library=MIXED)
async def test_crash_after_an_upload_finalized_before_its_token_was_saved(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # About recovering a finalized resumable session's token: every file goes resumable.
    crashing = run_sync(
        sandbox, tmp_path, photos_class=CrashAfterUpload, concurrency=1, raw_upload_max_bytes=0
    )
    await expect_crash(crashing)
    state = stored_state(tmp_path)
    (uploaded,) = [item for item in state.items.values() if item.upload_url]
    assert uploaded.upload_token is None, "the token was lost with the process"
    sent_before = sandbox.stats.upload_bytes_received
    assert sent_before >= (uploaded.size_bytes or 0) > 0

    await run_sync(sandbox, tmp_path)
    assert_exactly_once(sandbox)
    assert sandbox.stats.upload_bytes_received - sent_before == MIXED.total_bytes - sent_before, (
        "the finalized upload was recovered from its session, not sent again"
    )


@pytest.mark.sandbox(library=MIXED)
async def test_crash_during_discovery_resumes_at_its_cursor(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    asked: list[tuple[datetime, int]] = []

    def small_pages_crash_on_call_2(sync: GoProToPhotosSync) -> None:
        library = sync.gopro
        assert isinstance(library, GoProLibrary)
        library.per_page = 5
        real = library.search

        async def search(start: datetime, end: datetime, number: int) -> SearchPage:
            asked.append((end, number))
            if len(asked) == 2:
                raise Crash
            return await real(start, end, number)

        library.search = search  # type: ignore[method-assign,assignment]

    await expect_crash(run_sync(sandbox, tmp_path, prepare=small_pages_crash_on_call_2))
    cursor = stored_state(tmp_path).discovery_cursor
    assert cursor is not None
    await run_sync(sandbox, tmp_path, prepare=small_pages_crash_on_call_2)
    assert asked[2][0] == datetime.fromisoformat(cursor.captured_at) + timedelta(seconds=1), (
        "the resume asks below the cursor, not from the window's end"
    )
    assert all(number == 1 for _, number in asked), "never by page number"
    assert_exactly_once(sandbox)


class RefusesOneFile(GooglePhotosClient):
    """Google refuses one file for good (say, an unsupported format)."""

    async def upload(self, *args: Any, **kwargs: Any) -> str:
        if kwargs["file_name"] == REFUSED:
            from q2google.gphotos.models import GoogleAPIError, GoogleErrorBody

            raise GoogleAPIError(
                "upload",
                GoogleErrorBody(code=400, status="INVALID_ARGUMENT", message="unsupported file"),
            )
        return await super().upload(*args, **kwargs)


REFUSED = next(media.filename for media in MIXED.media if media.type == "Video")


@pytest.mark.sandbox(library=MIXED)
async def test_a_permanent_failure_is_recorded_and_the_rest_completes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    await run_sync(sandbox, tmp_path, photos_class=RefusesOneFile)
    state = stored_state(tmp_path)
    failed = [item for item in state.items.values() if item.transfer_status is StageStatus.FAILED]
    assert [item.file_name for item in failed] == [REFUSED]
    error = failed[0].errors[StageName.TRANSFER]
    assert "unsupported file" in error.message
    assert not error.retryable
    done = [item for item in state.items.values() if item.create_status is StageStatus.COMPLETED]
    assert len(done) == len(state.items) - 1
    assert state.stages[StageName.CREATE] is StageStatus.FAILED


@pytest.mark.sandbox(library=MIXED)
async def test_fail_fast_stops_at_the_first_permanent_failure(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    from q2google.stages.transfer import PermanentItemError

    def fail_fast(sync: GoProToPhotosSync) -> None:
        sync.settings.fail_fast = True

    with pytest.raises(PermanentItemError, match="unsupported file"):
        await run_sync(
            sandbox, tmp_path, photos_class=RefusesOneFile, concurrency=1, prepare=fail_fast
        )
    state = stored_state(tmp_path)
    pending = [item for item in state.items.values() if item.transfer_status is StageStatus.PENDING]
    assert pending, "the run stopped instead of going on"
