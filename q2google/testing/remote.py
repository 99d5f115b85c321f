"""Conformance suites for the two clouds' ports, run against the sandbox or the real services.

:class:`GoProSourceContract` checks a :class:`~q2google.gopro.GoProSource`;
:class:`GooglePhotosPortContract` checks a :class:`~q2google.photos.GooglePhotoLibraryPort`.
q2google's own tests run both against the sandbox; with ``Q2GOOGLE_LIVE=1`` and real
credentials the same tests run against the GoPro cloud and Google Photos (as rclone runs its
backend tests with ``-remote``). See docs/testing.md.

Subclass and provide the fixtures each class names. Test methods are ``async``: run them
with pytest-asyncio in auto mode.
"""

from __future__ import annotations

import secrets
import struct
from datetime import datetime
from typing import Any

import httpx
import pytest

from q2google.errors import GoProAuthError
from q2google.file_names import extension
from q2google.gopro import GoProFile, GoProSource, MediaGoneError, Verdict
from q2google.gopro.shapes import MEDIA_KINDS, Originals
from q2google.gphotos.limits import PHOTO_TYPES, VIDEO_TYPES
from q2google.photos import GooglePhotoLibraryPort, NewItemSpec

MEDIA_CHECKED = 12
"""Media of the first search page whose files are described and fetched."""
PROBE_BYTES = 4096


class GoProSourceContract:
    """What every GoPro source must do.

    Fixtures to provide:
        ``gopro_source``: an entered :class:`~q2google.gopro.GoProSource`.
        ``gopro_window``: ``(start, end)`` of a capture window holding a few media.
        ``refused_gopro_source``: the same source with a token the cloud refuses.
        ``cdn``: an :class:`httpx.AsyncClient` for CDN URLs.
    """

    async def test_a_search_page_lists_media_of_the_window(
        self, gopro_source: GoProSource, gopro_window: tuple[datetime, datetime]
    ) -> None:
        page = await gopro_source.search(*gopro_window, 1)
        assert page.rows, "the window holds no media: choose one that does"
        assert page.total_pages >= 1
        assert page.total_items >= len(page.rows)
        ids = [row.media_id for row in page.rows]
        assert all(ids)
        start, end = gopro_window
        for row in page.rows:
            assert row.type, f"media {row.media_id} has no type"
            if row.captured_at is not None:  # the search is by day: allow the day around
                assert start.date() <= row.captured_at.date() <= end.date()

    async def test_files_are_originals_with_fetchable_urls(
        self,
        gopro_source: GoProSource,
        gopro_window: tuple[datetime, datetime],
        cdn: httpx.AsyncClient,
    ) -> None:
        page = await gopro_source.search(*gopro_window, 1)
        delivered = 0
        for row in page.rows[:MEDIA_CHECKED]:
            files = await gopro_source.files(row.media_id, row.type)
            assert files, f"media {row.media_id} yields no entry"
            assert [entry.file_index for entry in files] == list(range(len(files)))
            for entry in files:
                _check_entry(row.type, entry)
                if entry.verdict is Verdict.DELIVER:
                    assert entry.url is not None
                    await _probe(cdn, entry.url)
                    delivered += 1
        assert delivered, "no deliverable file among the first media"

    async def test_an_unknown_media_is_gone(self, gopro_source: GoProSource) -> None:
        with pytest.raises(MediaGoneError):
            await gopro_source.files("q2google0contract0unknown", "Photo")

    async def test_a_refused_token_is_one_clear_error(
        self, refused_gopro_source: GoProSource, gopro_window: tuple[datetime, datetime]
    ) -> None:
        with pytest.raises(GoProAuthError, match="GP_ACCESS_TOKEN"):
            await refused_gopro_source.search(*gopro_window, 1)


def _check_entry(media_type: str, entry: GoProFile) -> None:
    """A delivered file has a name of the kind its media is (no proxy of another kind)."""
    if entry.verdict is not Verdict.DELIVER:
        assert entry.reason, f"{entry.file_name}: held back without a reason"
        return
    kind = MEDIA_KINDS.get(media_type)
    ext = extension(entry.file_name)
    if kind is not None and kind.originals is Originals.SOURCE:
        assert ext not in PHOTO_TYPES, f"{entry.file_name}: a video delivered as a picture"
    if media_type == "Photo":
        assert ext not in VIDEO_TYPES, f"{entry.file_name}: a photo delivered as a video"


async def _probe(cdn: httpx.AsyncClient, url: str) -> None:
    """The URL serves bytes from the start, by ``Range`` (at most a few KiB are read)."""
    async with cdn.stream("GET", url, headers={"Range": f"bytes=0-{PROBE_BYTES - 1}"}) as got:
        assert got.status_code in (200, 206), f"HTTP {got.status_code} from the CDN"
        received = 0
        async for piece in got.aiter_bytes():
            received += len(piece)
            if received >= PROBE_BYTES:
                break
        assert received > 0


class GooglePhotosPortContract:
    """What every Google Photos port must do.

    Against real Google Photos this creates one tiny picture (a 1x1 JPEG) and one album in
    the library; its description says it came from this suite.

    Fixtures to provide:
        ``photos``: an entered :class:`~q2google.photos.GooglePhotoLibraryPort`.
        ``album_title``: a title for the album the suite finds or creates.
    """

    async def test_an_upload_is_created_as_a_media_item_once(
        self, photos: GooglePhotoLibraryPort, album_title: str
    ) -> None:
        picture = tiny_jpeg()
        file_name = f"q2google-contract-{secrets.token_hex(4)}.jpg"

        async def source(offset: int) -> Any:
            yield picture[offset:]

        token = await photos.upload(
            source, size=len(picture), file_name=file_name, mime_type="image/jpeg"
        )
        assert token
        album = await photos.find_or_create_album(album_title)
        results = await photos.create_media_items(
            [NewItemSpec(token, file_name, "q2google conformance test")], album_id=album
        )
        assert len(results) == 1
        assert results[0].ok, results[0].status.message
        assert results[0].media_item is not None
        assert results[0].media_item.id

    async def test_an_album_is_found_again_not_made_twice(
        self, photos: GooglePhotoLibraryPort, album_title: str
    ) -> None:
        first = await photos.find_or_create_album(album_title)
        assert first == await photos.find_or_create_album(album_title)

    async def test_a_non_ascii_name_is_kept(
        self, photos: GooglePhotoLibraryPort, album_title: str
    ) -> None:
        picture = tiny_jpeg()
        file_name = f"Sommerfest_Zürich_海边_{secrets.token_hex(2)}.jpg"

        async def source(offset: int) -> Any:
            yield picture[offset:]

        token = await photos.upload(
            source, size=len(picture), file_name=file_name, mime_type="image/jpeg"
        )
        results = await photos.create_media_items([NewItemSpec(token, file_name, None)])
        assert results[0].ok, results[0].status.message
        assert results[0].media_item is not None
        assert results[0].media_item.filename in ("", file_name)


_JPEG_1X1 = bytes.fromhex(
    "ffd8ffe000104a46494600010100000100010000ffdb004300080606070605080707070909080a0c140d0c0b"
    "0b0c1912130f141d1a1f1e1d1a1c1c20242e2720222c231c1c2837292c30313434341f27393d38323c2e3334"
    "32ffc0000b080001000101011100ffc4001f0000010501010101010100000000000000000102030405060708"
    "090a0bffc400b5100002010303020403050504040000017d01020300041105122131410613516107227114"
    "328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748"
    "494a535455565758595a636465666768696a737475767778797a838485868788898a92939495969798999a"
    "a2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7"
    "e8e9eaf1f2f3f4f5f6f7f8f9faffda0008010100003f00fbd3ffd9"
)


def tiny_jpeg() -> bytes:
    """A valid 1x1 JPEG, made unique by a random comment (Google keys uploads by content)."""
    comment = b"q2google conformance " + secrets.token_hex(8).encode()
    segment = b"\xff\xfe" + struct.pack(">H", len(comment) + 2) + comment
    return _JPEG_1X1[:2] + segment + _JPEG_1X1[2:]
