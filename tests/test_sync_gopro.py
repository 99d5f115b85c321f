"""A sync against a GoPro cloud as unkind as the real one: proxies, chapters, any name,
edits, media still processing, media deleted midway, files Google would refuse."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from q2google.config import Q2GoogleSettings
from q2google.gopro import GoProCloudClient, GoProLibrary
from q2google.photos import GooglePhotosClient
from q2google.sandbox import Sandbox, SandboxLibrary
from q2google.sessions import summarize
from q2google.state import SessionState
from q2google.state.base import ExclusionKind
from q2google.state.local import JsonFileBackend
from q2google.sync import GoProToPhotosSync
from tests.test_sync import FAST, WINDOW

MIB = 1024**2
REAL_SHAPES = SandboxLibrary.generated(
    photos=3,
    videos=2,
    chaptered=2,
    chapters=3,
    renamed=4,
    bursts=1,
    photo_size=96 * 1024,
    video_size=MIB,
    frames=4,
    seed=13,
)
HELD_BACK = SandboxLibrary.generated(
    photos=4,
    videos=1,
    edits=2,
    unready=2,
    no_source=1,
    unsupported=1,
    oversize_photos=1,
    oversize_videos=1,
    photo_size=64 * 1024,
    video_size=MIB,
    seed=17,
)
PROXY_LABELS = {"high_res_proxy_mp4", "mp4_low", "concat", "cover", "baked_source", "proxy"}


async def sync(
    sandbox: Sandbox, tmp_path: Path, *, token: str | None = None, **kwargs: Any
) -> SessionState:
    """Run (or resume) session ``s1`` over the whole window; return its stored state."""
    settings = Q2GoogleSettings(
        gopro_api_url=sandbox.url,
        photos_api_url=sandbox.url,
        state_dir=tmp_path / "state",
        google_token_file=sandbox.write_token_file(tmp_path / "token.json"),
    )
    backend = JsonFileBackend(settings.state_dir)
    access = token or sandbox.gopro_token
    async with (
        GoProCloudClient.from_settings(settings, access_token=access) as client,
        GooglePhotosClient.from_settings(settings) as photos,
    ):
        photos.policy = photos.api.policy = FAST
        source = GoProLibrary(client, policy=FAST)
        await GoProToPhotosSync(source, photos, backend, settings).sync_date_range(
            *WINDOW, session_id="s1", album_title="GoPro", **kwargs
        )
    state = backend.load("s1")
    assert state is not None
    return state


def google_items(sandbox: Sandbox) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = sandbox.snapshot()["mediaItems"]
    return items


def assert_every_original_once(sandbox: Sandbox, library: SandboxLibrary) -> None:
    stored = Counter(item["sha256"] for item in google_items(sandbox))
    expected = Counter(asset.sha256() for _, _, asset in library.deliverables())
    assert stored == expected, "every original once, nothing else"


def proxy_bytes(sandbox: Sandbox) -> int:
    by_label: Counter[str] = sandbox.stats.cdn_bytes_by_label
    return sum(count for label, count in by_label.items() if label in PROXY_LABELS)


@pytest.mark.sandbox(library=REAL_SHAPES)
async def test_originals_only_every_chapter_and_names_kept_exactly(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state = await sync(sandbox, tmp_path)
    assert_every_original_once(sandbox, REAL_SHAPES)
    assert proxy_bytes(sandbox) == 0, "not one byte of a proxy, cover or concat was fetched"
    names = Counter(item["filename"] for item in google_items(sandbox))
    expected = Counter(asset.file_name for _, _, asset in REAL_SHAPES.deliverables())
    assert names == expected, "chapters named as the camera did, renamed media as the owner did"
    assert any(not name.isascii() for name in names), "the library has non-ASCII names"
    chapters = [name for name in names if name[:2] in ("GX", "GH") and name[2:4] != "01"]
    assert len(chapters) >= 4, "two recordings of three chapters: chapters 2 and 3 of each"
    summary = summarize(state)
    assert summary.status == "completed"
    assert summary.by_status["completed"] == len(REAL_SHAPES.deliverables())


@pytest.mark.sandbox(library=HELD_BACK)
async def test_edits_unready_broken_refused_files_each_end_with_their_reason(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    state = await sync(sandbox, tmp_path)
    assert_every_original_once(sandbox, HELD_BACK)
    by_outcome = Counter(item.exclusion.kind for item in state.items.values() if item.exclusion)
    assert by_outcome[ExclusionKind.SKIPPED] == 2 + 1 + 2, "edits, a .360, two over-size"
    assert by_outcome[ExclusionKind.DEFERRED] == 2
    reasons = {item.exclusion.reason for item in state.items.values() if item.exclusion}
    assert "an edit made in the GoPro app, not a camera original" in reasons
    assert "Google Photos does not accept .360 files" in reasons
    assert any("200 MB limit for a photo" in reason for reason in reasons)
    assert any("20 GB limit for a video" in reason for reason in reasons)
    assert any(reason.startswith("still ") for reason in reasons)
    failed = [item for item in state.items.values() if item.errors]
    assert [item.errors[next(iter(item.errors))].message for item in failed] == [
        "no original available in the GoPro cloud"
    ]
    for media in HELD_BACK.media:
        for asset in media.assets():
            if asset.size > 200 * MIB:
                assert sandbox.stats.cdn_bytes_by_asset[asset.asset_id] == 0, asset.file_name
    assert proxy_bytes(sandbox) == 0
    summary = summarize(state)
    assert summary.status == "failed"
    assert len(summary.held_back) == 7


@pytest.mark.sandbox(library=HELD_BACK)
async def test_deferred_media_are_delivered_by_a_later_run_once_ready(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    first = await sync(sandbox, tmp_path)
    deferred = {
        item.media_id
        for item in first.items.values()
        if item.exclusion and item.exclusion.kind is ExclusionKind.DEFERRED
    }
    assert len(deferred) == 2
    created = len(google_items(sandbox))
    for media_id in deferred:
        sandbox.set_ready(media_id)
    second = await sync(sandbox, tmp_path)
    delivered = [item for item in second.items.values() if item.media_id in deferred]
    assert delivered
    assert all(item.create_status.value == "completed" for item in delivered)
    assert len(google_items(sandbox)) == created + len(delivered)


@pytest.mark.sandbox(library=REAL_SHAPES)
async def test_media_deleted_after_discovery_are_gone_and_the_rest_is_delivered(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    doomed = [media.media_id for media in REAL_SHAPES.media[::4]]

    async def delete_after_discovery(stage: str, *_: Any) -> None:
        if stage == "discovery":
            for media_id in doomed:
                sandbox.delete_media(media_id)

    state = await sync(sandbox, tmp_path, on_stage_complete=delete_after_discovery)
    gone = {
        item.media_id
        for item in state.items.values()
        if item.exclusion and item.exclusion.kind is ExclusionKind.GONE
    }
    assert gone == set(doomed)
    stored = Counter(item["sha256"] for item in google_items(sandbox))
    expected = Counter(
        asset.sha256()
        for media, _, asset in REAL_SHAPES.deliverables()
        if media.media_id not in doomed
    )
    assert stored == expected
    assert summarize(state).status == "completed"


@pytest.mark.sandbox(library=REAL_SHAPES)
async def test_a_refused_gopro_token_stops_the_run_and_a_fresh_one_finishes_it(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    from q2google.errors import GoProAuthError

    async def revoke_when_transfer_starts(stage: str) -> None:
        if stage == "transfer":  # a photo's CDN URL is asked for at its transfer: refused
            sandbox.revoke_gopro_token()

    with pytest.raises(GoProAuthError, match="GP_ACCESS_TOKEN"):
        await sync(sandbox, tmp_path, on_stage_start=revoke_when_transfer_starts)
    stopped = JsonFileBackend(tmp_path / "state").load("s1")
    assert stopped is not None
    assert not [item for item in stopped.items.values() if item.errors], "nothing failed"
    fresh = sandbox.issue_gopro_token()
    await sync(sandbox, tmp_path, token=fresh)
    assert_every_original_once(sandbox, REAL_SHAPES)


def test_the_window_is_wide_enough() -> None:
    for library in (REAL_SHAPES, HELD_BACK):
        for media in library.media:
            assert WINDOW[0] <= media.captured_at < WINDOW[1]
    assert WINDOW[0] == datetime(2023, 1, 1, tzinfo=UTC)
