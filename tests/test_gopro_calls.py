"""GoPro calls per media, largest files first, and the adaptive limit on files in flight.

A photo is described by its search row and gets its URL right before its download (one
download-metadata call); other media are described at discovery and their stored URLs are
used, resolved again only when the CDN refuses one. Sizes come from the CDN's GET: no HEAD.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from q2google.config import Q2GoogleSettings
from q2google.gopro import GoProCloudClient, GoProFile, GoProLibrary, MediaRow, SearchPage
from q2google.photos import GooglePhotosClient
from q2google.sandbox import Sandbox, SandboxLibrary
from q2google.sandbox.library import KIB, MIB
from q2google.stages.discovery import DiscoveryStage
from q2google.stages.metrics import SyncTransferMetrics
from q2google.stages.sizes import bytes_to_send, largest_first
from q2google.stages.transfer import TransferStage
from q2google.state import ItemState, SessionState, StageName, StageStatus, new_session
from q2google.state.base import ExclusionKind
from q2google.throttle import AdaptiveLimit
from tests.test_sync import FAST, WINDOW, assert_exactly_once, run_sync
from tests.test_sync_gopro import sync

PHOTO_HEAVY = SandboxLibrary.generated(
    photos=64, chaptered=2, chapters=3, photo_size=300 * KIB, video_size=4 * MIB, seed=16
)
"""70 files: 64 photos of about 300 KiB and two recordings of three chapters."""
SHAPES = SandboxLibrary.generated(
    photos=6, videos=2, chaptered=1, chapters=3, bursts=1, frames=3, renamed=3, seed=5
)
"""Photos (two renamed), videos (one renamed), a recording of three chapters, a burst."""
MIXED_SIZES = SandboxLibrary.generated(
    photos=8, videos=2, chaptered=1, chapters=3, photo_size=200 * KIB, video_size=2 * MIB, seed=8
)


def gopro_api_calls(sandbox: Sandbox) -> int:
    """Every GoPro API request: search pages, download metadata and any other."""
    return sum(sandbox.stats.gopro_calls.values())


def described_at_discovery(library: SandboxLibrary) -> list[str]:
    """Ids of the media whose download metadata discovery asks for (all but photos)."""
    return [media.media_id for media in library.media if media.type != "Photo"]


@pytest.mark.sandbox(library=PHOTO_HEAVY)
async def test_a_photo_heavy_library_costs_at_most_1_1_gopro_calls_per_media(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    await run_sync(sandbox, tmp_path)
    assert_exactly_once(sandbox)
    media, files = len(PHOTO_HEAVY.media), len(PHOTO_HEAVY.deliverables())
    assert (media, files) == (66, 70)
    calls = sandbox.stats.gopro_calls
    assert calls["download"] == media, "one download-metadata call per media"
    assert gopro_api_calls(sandbox) / media <= 1.1, dict(calls)
    assert sandbox.stats.cdn_requests["HEAD"] == 0, "sizes come from the GET"
    assert sandbox.stats.cdn_requests["GET"] == files, "one GET per file"
    assert sandbox.stats.cdn_bytes_sent == PHOTO_HEAVY.total_bytes
    assert sandbox.stats.upload_bytes_received == PHOTO_HEAVY.total_bytes


@pytest.mark.sandbox(library=SHAPES, faults="url-ttl=-1")
async def test_urls_expired_after_discovery_are_resolved_once_per_media(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    async def fresh_urls_from_now(stage: str, *_: Any) -> None:
        if stage == "discovery":  # every URL discovery stored has expired
            sandbox.set_faults("url-ttl=21600")

    state = await sync(sandbox, tmp_path, on_stage_complete=fresh_urls_from_now)
    assert_exactly_once(sandbox)
    again = described_at_discovery(SHAPES)
    assert len(again) == 5, "three videos, a recording of three chapters, a burst"
    assert sandbox.stats.gopro_calls["download"] == len(SHAPES.media) + len(again)
    assert sandbox.stats.faults["cdn_url_expired"] >= len(again)
    assert sandbox.stats.cdn_requests["HEAD"] == 0
    assert all(item.create_status is StageStatus.COMPLETED for item in state.items.values())
    kept = [item.item_key for item in state.items.values() if item.download_url is not None]
    assert kept == [], "a signed URL is not kept once the file is in Google Photos"


class Recorded(GooglePhotosClient):
    """Google Photos that records the name and size of each upload, in order."""

    started: list[tuple[str, int]]

    async def upload(self, *args: Any, **kwargs: Any) -> str:
        self.started.append((kwargs["file_name"], kwargs["size"]))
        return await super().upload(*args, **kwargs)


@pytest.mark.sandbox(library=MIXED_SIZES)
async def test_files_start_largest_first(sandbox: Sandbox, tmp_path: Path) -> None:
    started: list[tuple[str, int]] = []

    def record(sync_: Any) -> None:
        sync_.photos.started = started

    await run_sync(sandbox, tmp_path, photos_class=Recorded, concurrency=1, prepare=record)
    assert_exactly_once(sandbox)
    assert len(started) == len(MIXED_SIZES.deliverables()) == 13
    known: dict[str, int] = {}  # what the transfer knows of each video file before its GET
    for media in MIXED_SIZES.media:
        for asset in media.originals if media.type != "Photo" else ():
            known[asset.file_name] = (media.file_size or 0) // len(media.originals)
    expected = [known.get(name, size) for name, size in started]  # a photo: its row's size
    assert expected == sorted(expected, reverse=True), started
    assert [name[-4:] for name, _ in started[:5]] == [".MP4"] * 5, "the videos first"
    assert started[0][0] == max(known, key=lambda name: known[name]), "the largest first"


class TrackingLimit(AdaptiveLimit):
    """An adaptive limit that knows which tasks hold its slots."""

    def __init__(self, maximum: int) -> None:
        super().__init__(maximum)
        self.holders: set[asyncio.Task[Any] | None] = set()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        async with super().slot():
            task = asyncio.current_task()
            self.holders.add(task)
            try:
                yield
            finally:
                self.holders.discard(task)


class Gated(GooglePhotosClient):
    """Google Photos that holds the first uploads until four are in flight, then has Google
    ask to slow down, and records how many uploads are in flight as each one starts."""

    limit: TrackingLimit
    in_flight: int
    seen_before: list[int]
    seen_after: list[int]
    four: asyncio.Event

    async def upload(self, *args: Any, **kwargs: Any) -> str:
        assert asyncio.current_task() in self.limit.holders, "a transfer holds a slot"
        self.in_flight += 1
        try:
            if not self.four.is_set():
                self.seen_before.append(self.in_flight)
                if self.in_flight == 4:
                    self.limit.slow_down()  # as a per-minute 429 would
                    self.four.set()
                await self.four.wait()
            else:
                self.seen_after.append(self.in_flight)
            return await super().upload(*args, **kwargs)
        finally:
            self.in_flight -= 1


async def discover_and_transfer(
    sandbox: Sandbox, tmp_path: Path, photos: type[GooglePhotosClient], **stage: Any
) -> tuple[SessionState, SyncTransferMetrics, GooglePhotosClient]:
    """Run discovery, then the transfer stage alone (no create), against the sandbox."""
    settings = Q2GoogleSettings(
        gopro_api_url=sandbox.url,
        photos_api_url=sandbox.url,
        state_dir=tmp_path / "state",
        google_token_file=sandbox.write_token_file(tmp_path / "token.json"),
    )
    state = new_session(
        "direct",
        start_date_iso=WINDOW[0].isoformat(),
        end_date_iso=WINDOW[1].isoformat(),
        batch_size=50,
    )
    metrics = SyncTransferMetrics()

    async def keep(_: SessionState) -> None:
        return None

    async def uploaded(_: ItemState) -> None:
        return None

    async with (
        GoProCloudClient.from_settings(settings, access_token=sandbox.gopro_token) as client,
        photos.from_settings(settings) as google,
        httpx.AsyncClient(timeout=30) as cdn,
    ):
        google.policy = google.api.policy = FAST
        source = GoProLibrary(client, policy=FAST)
        await DiscoveryStage(source, keep).run(state)
        for name, value in stage.pop("prepare", {}).items():
            setattr(google, name, value)
        transfer = TransferStage(source, google, keep, cdn, **stage)
        await transfer.run(state, fail_fast=False, on_uploaded=uploaded, metrics=metrics)
    return state, metrics, google


@pytest.mark.sandbox(library=MIXED_SIZES)
async def test_the_adaptive_limit_caps_the_files_in_flight(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    limit = TrackingLimit(4)
    seen_before: list[int] = []
    seen_after: list[int] = []
    gate = {
        "limit": limit,
        "in_flight": 0,
        "seen_before": seen_before,
        "seen_after": seen_after,
        "four": asyncio.Event(),
    }
    state, metrics, _ = await discover_and_transfer(
        sandbox, tmp_path, Gated, concurrency=4, limit=limit, prepare=gate
    )
    assert seen_before == [1, 2, 3, 4], "four files in flight before Google asked to slow down"
    assert limit.current == 2
    assert seen_after, "files went on after the slow-down"
    assert max(seen_after) <= 2, seen_after
    assert metrics.uploads_allowed == 2
    assert all(item.transfer_status is StageStatus.COMPLETED for item in state.items.values())
    assert sandbox.stats.upload_bytes_received == MIXED_SIZES.total_bytes
    chapters = sum(len(media.originals) for media in MIXED_SIZES.media if media.item_count > 1)
    assert abs(metrics.bytes_to_send - MIXED_SIZES.total_bytes) < chapters, (
        "exact sizes of photos and videos, chapters as shares of their recording"
    )


@pytest.mark.sandbox(library=SandboxLibrary.generated(photos=4, photo_size=64 * KIB, seed=3))
async def test_a_photo_no_longer_available_at_transfer_is_deferred_then_delivered(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    doomed = sandbox.library.media[1].media_id

    async def still_uploading(stage: str, *_: Any) -> None:
        if stage == "discovery":  # the row said ready; the download answer will not
            sandbox.set_ready(doomed, "uploading")

    state = await sync(sandbox, tmp_path, on_stage_complete=still_uploading)
    (item,) = [item for item in state.items.values() if item.media_id == doomed]
    assert item.exclusion is not None
    assert item.exclusion.kind is ExclusionKind.DEFERRED
    assert item.exclusion.reason == "not available in the GoPro cloud yet"
    assert item.discovery_status is StageStatus.PENDING, "described again by the next run"
    sandbox.set_ready(doomed)
    await sync(sandbox, tmp_path)
    assert_exactly_once(sandbox)


def test_the_sandbox_counts_gopro_calls_by_kind_and_cdn_requests_by_method(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    bearer = {"Authorization": f"Bearer {sandbox.gopro_token}"}
    media = sandbox.library.media[0]
    answer = http.get(f"/media/{media.media_id}/download", headers=bearer).json()
    url = answer["_embedded"]["files"][0]["url"]
    assert http.head(url).status_code == 200
    assert http.get(url).status_code == 200
    assert http.get("/media/user", headers=bearer).status_code == 404
    stats = http.get("/_sandbox/stats").json()
    assert stats["gopro_calls"] == {"download": 1, "other": 1}
    assert stats["cdn_requests"] == {"HEAD": 1, "GET": 1}


class CountingSource:
    """A GoPro cloud in memory that counts download-metadata calls."""

    def __init__(self, rows: list[MediaRow]) -> None:
        self.rows = rows
        self.files_calls: Counter[str] = Counter()

    async def search(self, start: datetime, end: datetime, page: int) -> SearchPage:
        rows = tuple(self.rows) if page == 1 else ()
        return SearchPage(rows, 1, len(self.rows))

    async def files(self, media_id: str, media_type: str | None) -> list[GoProFile]:
        self.files_calls[media_id] += 1
        return [GoProFile(media_id, 0, "GX010001.MP4", url=f"https://cdn.example/{media_id}")]


async def test_a_photo_is_described_by_its_row_alone_and_sized_from_it() -> None:
    at = datetime(2024, 3, 1, tzinfo=UTC)
    source = CountingSource(
        [
            MediaRow("p", "Photo", "Sommerfest", at, 500, 1, "ready", "JPG"),
            MediaRow("big", "Photo", "GOPR0002.JPG", at, 300 * MIB, 1, "ready", "jpg"),
            MediaRow("v", "Video", "GX010001.MP4", at, 7000, 1, "ready", "mp4"),
            MediaRow("q", "Photo", "GOPR0003.JPG", at, None, 1, "ready", "jpg"),
        ]
    )
    state = new_session(
        "s",
        start_date_iso="2024-01-01T00:00:00+00:00",
        end_date_iso="2025-01-01T00:00:00+00:00",
        batch_size=50,
    )

    async def keep(_: SessionState) -> None:
        return None

    await DiscoveryStage(source, keep).run(state)
    items = {item.media_id: item for item in state.items.values()}
    assert set(source.files_calls) == {"v", "q"}, "a photo of unknown size is described as before"
    assert (items["p"].file_name, items["p"].size_bytes, items["p"].download_url) == (
        "Sommerfest.jpg",
        500,
        None,
    )
    assert items["big"].exclusion is not None
    assert "200 MB limit" in items["big"].exclusion.reason
    assert (items["v"].size_bytes, items["v"].media_size_bytes) == (7000, 7000)
    order = [item.media_id for item in largest_first(state, [items["p"], items["v"], items["q"]])]
    assert order == ["v", "p", "q"], "known sizes largest first, unknown last"
    assert bytes_to_send(state, [items["p"], items["v"], items["q"]]) == 500 + 7000 + 3750


class Body(httpx.AsyncByteStream):
    """A CDN body that remembers whether it was closed."""

    def __init__(self) -> None:
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b"x" * 10

    async def aclose(self) -> None:
        self.closed = True


class OneFile:
    """A GoPro cloud whose every media is one photo at ``https://cdn.example/<id>``."""

    async def search(self, start: datetime, end: datetime, page: int) -> SearchPage:
        return SearchPage((), 1, 0)

    async def files(self, media_id: str, media_type: str | None) -> list[GoProFile]:
        return [GoProFile(media_id, 0, "GOPR0001.JPG", url=f"https://cdn.example/{media_id}")]


class NoUploads:
    """Google Photos that must not be sent anything."""

    async def upload(self, *args: Any, **kwargs: Any) -> str:
        raise AssertionError("nothing may be uploaded")


async def test_a_get_without_size_fails_and_one_over_googles_limit_is_skipped_unsent() -> None:
    bodies: list[Body] = []

    def cdn_answer(request: httpx.Request) -> httpx.Response:
        bodies.append(Body())
        size = {} if request.url.path == "/nosize" else {"Content-Length": str(300 * MIB)}
        return httpx.Response(206, headers=size, stream=bodies[-1])

    state = new_session(
        "s",
        start_date_iso="2024-01-01T00:00:00+00:00",
        end_date_iso="2025-01-01T00:00:00+00:00",
        batch_size=50,
    )
    for media_id in ("nosize", "huge"):  # photos described by a row that said 1,000 bytes
        state.add_item(
            ItemState(
                media_id=media_id,
                file_name="GOPR0001.JPG",
                media_type="Photo",
                size_bytes=1000,
                media_size_bytes=1000,
                discovery_status=StageStatus.COMPLETED,
            )
        )

    async def keep(_: SessionState) -> None:
        return None

    async def uploaded(_: ItemState) -> None:
        raise AssertionError("nothing was uploaded")

    photos: Any = NoUploads()
    async with httpx.AsyncClient(transport=httpx.MockTransport(cdn_answer)) as cdn:
        stage = TransferStage(OneFile(), photos, keep, cdn)
        await stage.run(state, fail_fast=False, on_uploaded=uploaded)
    nosize, huge = state.items.values()
    assert nosize.transfer_status is StageStatus.FAILED
    assert "the GoPro CDN gave no size for the file" in nosize.errors[StageName.TRANSFER].message
    assert huge.exclusion is not None
    assert huge.exclusion.kind is ExclusionKind.SKIPPED
    assert "over Google Photos' 200 MB limit for a photo" in huge.exclusion.reason
    assert len(bodies) == 2
    assert all(body.closed for body in bodies), "each body closed, not read"
