"""Sessions that keep up with a library that changes, against the sandbox: discovery that
skips nothing, runs that deliver only what is new, albums that hold the whole window."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from q2google.gopro import GoProLibrary, SearchPage
from q2google.sandbox import Sandbox, SandboxLibrary
from q2google.sandbox.library import KIB
from q2google.sessions import summarize
from q2google.state import StageName, StageStatus
from q2google.sync import GoProToPhotosSync
from tests.test_sync import Crash, assert_exactly_once, expect_crash, run_sync, stored_state

FOUR_HUNDRED = SandboxLibrary.generated(photos=400, photo_size=KIB, seed=41)
TWENTY = SandboxLibrary.generated(photos=20, photo_size=2 * KIB, seed=42)


def pages_of(size: int, *, crash_on_call: int | None = None) -> Any:
    """A ``prepare`` for :func:`run_sync`: search pages of ``size``; die at a search call."""

    def prepare(sync: GoProToPhotosSync) -> None:
        library = sync.gopro
        assert isinstance(library, GoProLibrary)
        library.per_page = size
        real = library.search
        calls = 0

        async def search(start: datetime, end: datetime, number: int) -> SearchPage:
            nonlocal calls
            calls += 1
            if calls == crash_on_call:
                raise Crash
            return await real(start, end, number)

        library.search = search  # type: ignore[method-assign,assignment]

    return prepare


def newcomers(count: int, seed: int) -> SandboxLibrary:
    return SandboxLibrary.generated(photos=count, photo_size=2 * KIB, seed=seed)


def album_titled(sandbox: Sandbox, title: str) -> dict[str, Any]:
    (album,) = [album for album in sandbox.snapshot()["albums"] if album["title"] == title]
    return dict(album)


@pytest.mark.sandbox(library=FOUR_HUNDRED)
async def test_killed_after_three_pages_then_six_newest_deleted_skips_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    await expect_crash(run_sync(sandbox, tmp_path, prepare=pages_of(50, crash_on_call=4)))
    killed = stored_state(tmp_path)
    assert killed.discovery_cursor is not None, "the cursor was checkpointed per page"
    assert killed.stages[StageName.DISCOVERY] is StageStatus.RUNNING
    newest = sorted(sandbox.library.media, key=lambda media: media.captured_at)[-6:]
    for media in newest:
        sandbox.delete_media(media.media_id)

    await run_sync(sandbox, tmp_path, prepare=pages_of(50))
    library = assert_exactly_once(sandbox)  # every media still there, once; none missing
    assert len(library["mediaItems"]) == 394
    state = stored_state(tmp_path)
    assert summarize(state).status in ("completed", "failed")
    assert state.discovery_cursor is None
    gone = {item.media_id for item in state.items.values() if item.exclusion is not None}
    assert gone == {media.media_id for media in newest}


@pytest.mark.sandbox(library=TWENTY)
async def test_a_deleted_album_and_five_new_media_next_run(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    await run_sync(sandbox, tmp_path, album="A")
    first = stored_state(tmp_path)
    assert first.album_id is not None
    sent = sandbox.stats.upload_bytes_received
    sandbox.delete_album(first.album_id)
    new = newcomers(5, seed=43)
    for media in new.media:
        sandbox.add_media(media)

    await run_sync(sandbox, tmp_path, album="A")
    library = assert_exactly_once(sandbox)
    assert all(item["createCalls"] == 1 for item in library["mediaItems"])
    assert sandbox.stats.upload_bytes_received - sent == new.total_bytes, "old ones not resent"
    state = stored_state(tmp_path)
    assert state.listing_new == 5
    assert state.listings == 2
    new_ids = {item.media_item_id for item in state.items.values() if item.media_id in new._by_id}
    assert new_ids <= set(album_titled(sandbox, "A")["mediaItemIds"])
    assert summarize(state).status == "completed"


@pytest.mark.sandbox(library=TWENTY)
async def test_a_file_another_session_delivered_joins_this_sessions_album(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    early = min(media.captured_at for media in TWENTY.media)
    x_window = (early, early.replace(hour=23, minute=59, second=59))
    await run_sync(sandbox, tmp_path, session="x", window=x_window, album="X")
    x = stored_state(tmp_path, "x")
    assert len(x.items) >= 1

    await run_sync(sandbox, tmp_path, session="y", album="Y")
    library = assert_exactly_once(sandbox)  # uploaded once in total
    assert all(item["createCalls"] == 1 for item in library["mediaItems"])
    y_album = set(album_titled(sandbox, "Y")["mediaItemIds"])
    assert {item.media_item_id for item in x.items.values()} <= y_album
    assert len(y_album) == len(TWENTY.deliverables()), "the album holds the whole window"
    y = stored_state(tmp_path, "y")
    added = [item for item in y.items.values() if item.added_to_album]
    assert {item.item_key for item in added} == set(x.items)

    calls = sandbox.stats.google_calls["albums.batchAddMediaItems"]
    await run_sync(sandbox, tmp_path, session="y", album="Y")
    assert sandbox.stats.google_calls["albums.batchAddMediaItems"] == calls, "not added again"
