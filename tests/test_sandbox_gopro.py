"""The GoPro cloud emulator, driven by gopro-api's own AsyncGoProClient, and its CDN."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pydantic
import pytest
from gopro_api.api.models import DEFAULT_PROCESSING_STATES

from q2google.config import Q2GoogleSettings
from q2google.gopro import GoProCloudClient, GoProLibrary, SearchPage
from q2google.sandbox import Sandbox, SandboxLibrary
from q2google.sandbox.library import BLOCK_SIZE, GIB, MIB, SandboxAsset, asset_block
from q2google.testing.memory import peak_rss_mib, reset_peak_rss

WIDE = (datetime(2023, 1, 1, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC))
MIXED = SandboxLibrary.generated(
    photos=23,
    videos=3,
    chaptered=2,
    bursts=2,
    continuous=1,
    timelapses=2,
    timelapse_videos=2,
    renamed=4,
    unnamed=2,
    edits=2,
    unready=3,
    no_source=1,
    unsupported=1,
    oversize_photos=1,
    oversize_videos=1,
    frames=6,
    photo_size=64 * 1024,
    video_size=2 * MIB,
    days=60,
    seed=5,
)


def _client(sandbox: Sandbox, **kwargs: object) -> GoProCloudClient:
    settings = Q2GoogleSettings(gopro_api_url=sandbox.url)
    return GoProCloudClient.from_settings(settings, access_token=sandbox.gopro_token, **kwargs)


def download_json(http: httpx.Client, sandbox: Sandbox, media_id: str) -> dict[str, Any]:
    """The ``/media/{id}/download`` answer as plain JSON, asked with gopro-api's cookie."""
    cookie = {"Cookie": f"gp_access_token={sandbox.gopro_token}"}
    response = http.get(f"/media/{media_id}/download", headers=cookie)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def asset_id_of(url: str) -> str:
    """The sandbox asset a CDN URL serves (``/cdn/<asset_id>/...``)."""
    return urlsplit(url).path.split("/")[2]


def entry_urls(answer: dict[str, Any]) -> dict[str, str]:
    """Every URL of a download answer (files, variations, sidecars, sprites) by asset id."""
    embedded = answer["_embedded"]
    urls = [
        entry["url"] for key in ("files", "variations", "sidecar_files") for entry in embedded[key]
    ]
    urls += [url for sprite in embedded["sprites"] for url in sprite["urls"]]
    return {asset_id_of(url): url for url in urls}


@pytest.mark.sandbox(library=MIXED)
def test_gopro_api_lists_every_media_across_pages_and_every_original_resolves(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    async def collect() -> list[str]:
        async with _client(sandbox, page_size=7, max_items=10_000) as client:
            return [row.id for row in await client.list_media_items(*WIDE)]

    ids = asyncio.run(collect())
    listed = {m.media_id for m in MIXED.media if m.ready_to_view in DEFAULT_PROCESSING_STATES}
    assert sorted(ids) == sorted(listed)
    assert len(listed) < len(MIXED.media), "gopro-api's default states leave uploads out"
    assert sandbox.stats.gopro_calls["search"] >= len(listed) // 7 + 1
    originals = {asset.asset_id for _, _, asset in MIXED.originals()}
    for media in MIXED.media:
        urls = entry_urls(download_json(http, sandbox, media.media_id))
        assert set(urls) == {asset.asset_id for asset in media.assets()}, media.media_id
        for asset in media.assets():
            head = http.head(urls[asset.asset_id])
            expected = 200 if asset.available else 404
            assert head.status_code == expected, (media.type, asset.label)
            if asset.available:
                assert int(head.headers["content-length"]) == asset.size
            if asset.asset_id in originals and asset.size < 64 * MIB:
                got = hashlib.sha256(http.get(urls[asset.asset_id]).content).hexdigest()
                assert got == asset.sha256(), (media.media_id, asset.file_name)
    assert sandbox.stats.gopro_calls["download"] == len(MIXED.media)


@pytest.mark.sandbox(library=MIXED)
def test_search_honours_the_capture_window(sandbox: Sandbox) -> None:
    start, end = datetime(2024, 1, 10, tzinfo=UTC), datetime(2024, 1, 20, tzinfo=UTC)

    async def collect() -> list[str]:
        async with _client(sandbox, page_size=4, max_items=10_000) as client:
            return [row.id for row in await client.list_media_items(start, end)]

    expected = {
        m.media_id
        for m in MIXED.media
        if start <= m.captured_at < end.replace(day=21)  # gopro-api: end day inclusive
        and m.ready_to_view in DEFAULT_PROCESSING_STATES
    }
    assert set(asyncio.run(collect())) == expected
    assert 0 < len(expected) < len(MIXED.media)


def test_gopro_api_parses_search_rows_but_not_real_download_answers(sandbox: Sandbox) -> None:
    """The real cloud sends sidecar fps 29.97003; gopro-api's model wants an integer."""

    async def first() -> tuple[Any, list[Any]]:
        async with _client(sandbox, page_size=100, max_items=100) as client:
            rows = await client.list_media_items(*WIDE)
            video = next(row for row in rows if row.type == "Video")
            with pytest.raises(pydantic.ValidationError, match="fps"):
                await client.download(video.id)
            return video, rows

    video, rows = asyncio.run(first())
    assert video.filename.endswith(".MP4")
    assert all(row.gopro_user_id and row.source_gumi for row in rows)


def test_file_names_collide_across_media_as_with_two_cameras() -> None:
    names = [media.filename for media in MIXED.media if media.type == "Photo"]
    assert len(set(names)) < len(names)


def test_a_wrong_token_is_401(sandbox: Sandbox) -> None:
    async def check() -> object:
        async with GoProCloudClient(sandbox.url, access_token="not-the-token") as client:
            return await client.check_auth()

    status = asyncio.run(check())
    assert status.authenticated is False  # type: ignore[attr-defined]
    assert status.http_status == 401  # type: ignore[attr-defined]


def _first_url(http: httpx.Client, sandbox: Sandbox, media_type: str = "Video") -> str:
    """The URL of the first original of the first media of ``media_type``."""
    media = next(m for m in sandbox.library.media if m.type == media_type and m.originals)
    urls = entry_urls(download_json(http, sandbox, media.media_id))
    return urls[media.originals[0].asset_id]


def test_cdn_serves_ranges(sandbox: Sandbox, http: httpx.Client) -> None:
    url = _first_url(http, sandbox)
    asset = next(m for m in sandbox.library.media if m.type == "Video").originals[0]
    whole = b"".join(asset.read())

    full = http.get(url)
    assert full.status_code == 200
    assert full.headers["accept-ranges"] == "bytes"
    assert int(full.headers["content-length"]) == asset.size == len(full.content)
    assert full.content == whole
    for header, expected, content_range in [
        ("bytes=0-99", whole[:100], f"bytes 0-99/{asset.size}"),
        (
            f"bytes={asset.size - 10}-",
            whole[-10:],
            f"bytes {asset.size - 10}-{asset.size - 1}/{asset.size}",
        ),
        ("bytes=-5", whole[-5:], f"bytes {asset.size - 5}-{asset.size - 1}/{asset.size}"),
        ("bytes=70000-140000", whole[70000:140001], f"bytes 70000-140000/{asset.size}"),
    ]:
        part = http.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == expected, header
        assert part.headers["content-range"] == content_range
    assert http.get(url, headers={"Range": "bytes=500-100"}).status_code == 200  # invalid: ignored
    unsatisfiable = http.get(url, headers={"Range": f"bytes={asset.size}-"})
    assert unsatisfiable.status_code == 416
    assert unsatisfiable.headers["content-range"] == f"bytes */{asset.size}"
    head = http.head(url)
    assert head.status_code == 200
    assert int(head.headers["content-length"]) == asset.size


def test_cdn_refuses_tampered_urls(sandbox: Sandbox, http: httpx.Client) -> None:
    url = _first_url(http, sandbox, "Photo")
    tampered = url.replace("Signature=", "Signature=0")
    assert http.get(tampered).status_code == 403


@pytest.mark.slow
@pytest.mark.sandbox(library=SandboxLibrary.single_video(4 * GIB))
def test_a_4_gib_asset_is_served_by_range_with_flat_memory(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    url = _first_url(http, sandbox)
    asset = sandbox.library.media[0].originals[0]
    for start in (0, 2 * GIB - 100, 4 * GIB - 1000):
        part = http.get(url, headers={"Range": f"bytes={start}-{start + 999}"})
        assert part.status_code == 206
        assert part.content == b"".join(asset.read(start, start + 1000))

    peak_before = reset_peak_rss()  # earlier tests cannot hide growth behind their peak
    digest, expected = hashlib.sha256(), hashlib.sha256()
    start = 4 * GIB - 768 * MIB
    with http.stream("GET", url, headers={"Range": f"bytes={start}-"}) as response:
        assert response.status_code == 206
        assert int(response.headers["content-length"]) == 768 * MIB
        for piece in response.iter_bytes(1024 * 1024):
            digest.update(piece)
    for piece in asset.read(start):
        expected.update(piece)
    grown_mib = peak_rss_mib() - peak_before
    assert digest.hexdigest() == expected.hexdigest()
    assert grown_mib < 64, f"serving 768 MiB raised the peak RSS by {grown_mib:.0f} MiB"


def test_every_block_has_the_block_size_so_ranges_match_whole_reads() -> None:
    # Blocks whose rotation lands in the last 8 bytes once came out longer than a block.
    risky = [i for i in range(70_000) if (i * 2_654_435_761) % BLOCK_SIZE > BLOCK_SIZE - 9]
    assert risky, "the rotation does reach the edge cases"
    assert all(len(asset_block(3, index)) == BLOCK_SIZE for index in risky)
    asset = SandboxAsset("a", "a", (risky[0] + 2) * BLOCK_SIZE, 3, "video/mp4")
    start = risky[0] * BLOCK_SIZE - 1000
    whole_tail = b"".join(asset.read(start - 5000))[5000:]
    assert b"".join(asset.read(start)) == whole_tail


@pytest.mark.sandbox(library=MIXED)
def test_search_pages_read_from_json_as_through_gopro_apis_model(sandbox: Sandbox) -> None:
    """The search walk reads pages as JSON (faster); a plain gopro-api client reads them
    through its model: both give the same pages."""

    class PlainClient:
        """gopro-api's own search only (no ``search_answer``)."""

        def __init__(self, client: GoProCloudClient) -> None:
            self.search = client.search

    async def pages() -> tuple[list[SearchPage], list[SearchPage]]:
        async with _client(sandbox) as client:
            fast, plain = (
                GoProLibrary(client, per_page=7),
                GoProLibrary(PlainClient(client), per_page=7),
            )
            first = [await fast.search(*WIDE, page) for page in (1, 2, 3)]
            second = [await plain.search(*WIDE, page) for page in (1, 2, 3)]
            return first, second

    fast, plain = asyncio.run(pages())
    assert fast == plain
    assert len({row.media_id for page in fast for row in page.rows}) == 21  # 3 pages of 7
    assert all(row.captured_at is not None for page in fast for row in page.rows)
