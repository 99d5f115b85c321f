"""Which files of a GoPro media are delivered, and under which names: pinned on real shapes.

The answers below follow what the GoPro cloud really sends (see docs/gopro.md): a video's
``files`` entry is a proxy, chapters are numbered ``source`` variations, a burst's lone
``source`` is a cover, edits offer only ``baked_source``, sidecars carry fractional ``fps``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from q2google.gopro import GoProAnswerError, MediaRow, Verdict
from q2google.gopro.shapes import (
    EDIT_REASON,
    NO_ORIGINAL,
    PROCESSING_FAILED,
    SEARCH_TYPES,
    chapter_name,
    deliverable_files,
    frame_name,
    media_row,
    row_verdict,
    search_page,
)
from q2google.gphotos.limits import MAX_PHOTO_BYTES, MAX_VIDEO_BYTES, mime_type, refusal
from q2google.photos import header_file_name

CDN = "https://cdn.example/{}?Expires=1&Signature=x"
GPMF = {"url": CDN.format("gpmf"), "head": "", "label": "gpmf", "type": "1.mp4", "fps": 29.97003}
SPRITE = {
    "fps": 29.97003,
    "frame": {"count": 10, "height": 56, "width": 100},
    "heights": [],
    "width": 1000,
    "type": "jpg",
    "heads": [],
    "urls": [CDN.format("sprite")],
    "total_count": 1,
}


def answer(
    filename: str,
    files: list[dict[str, Any]] = (),  # type: ignore[assignment]
    variations: list[dict[str, Any]] = (),  # type: ignore[assignment]
) -> dict[str, Any]:
    return {
        "filename": filename,
        "_embedded": {
            "files": list(files),
            "variations": list(variations),
            "sprites": [SPRITE],
            "sidecar_files": [GPMF],
        },
    }


def file(name: str, number: int = 1, **extra: Any) -> dict[str, Any]:
    entry = {"url": CDN.format(name), "head": "", "camera_position": "default"}
    return {**entry, "item_number": number, "width": 1920, "height": 1080, **extra}


def variation(name: str, label: str, number: int | None = None, **extra: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "url": CDN.format(name),
        "head": "",
        "label": label,
        "type": name.rsplit(".", maxsplit=1)[-1],
    }
    entry |= {"quality": "2160p", "width": 3840, "height": 2160, "available": True}
    if number is not None:
        entry |= {"item_number": number, "camera_position": "default"}
    return {**entry, **extra}


PROXIES = [variation("hi.mp4", "high_res_proxy_mp4"), variation("low.mp4", "mp4_low")]

CASES: list[tuple[str, str, dict[str, Any], list[tuple[str, str, Verdict]]]] = [
    (
        "photo: files and source are the same original",
        "Photo",
        answer("GOPR0001.JPG", [file("p.jpg")], [variation("p.jpg", "source")]),
        [("GOPR0001.JPG", "p.jpg", Verdict.DELIVER)],
    ),
    (
        "video: the proxy in files is never taken; the source is",
        "Video",
        answer("GX010042.MP4", [file("proxy.mp4")], [*PROXIES, variation("src.mp4", "source")]),
        [("GX010042.MP4", "src.mp4", Verdict.DELIVER)],
    ),
    (
        "chaptered recording: every chapter in item_number order, named as the camera did",
        "Video",
        answer(
            "GX010639.MP4",
            [file("proxy.mp4")],
            [
                variation("concat.mp4", "concat"),
                variation("c3.mp4", "source", 3),
                *PROXIES,
                variation("c1.mp4", "source", 1),
                variation("c2.mp4", "source", 2),
            ],
        ),
        [
            ("GX010639.MP4", "c1.mp4", Verdict.DELIVER),
            ("GX020639.MP4", "c2.mp4", Verdict.DELIVER),
            ("GX030639.MP4", "c3.mp4", Verdict.DELIVER),
        ],
    ),
    (
        "burst: every frame from files; the lone source is only a cover",
        "Burst",
        answer(
            "G0010001.JPG",
            [file("f2.jpg", 2), file("f1.jpg", 1), file("f3.jpg", 3)],
            [variation("cover.jpg", "source"), variation("tl.mp4", "timelapse_video")],
        ),
        [
            ("G0010001.JPG", "f1.jpg", Verdict.DELIVER),
            ("G0010002.JPG", "f2.jpg", Verdict.DELIVER),
            ("G0010003.JPG", "f3.jpg", Verdict.DELIVER),
        ],
    ),
    (
        "time-lapse series as numbered sources",
        "TimeLapse",
        answer(
            "G0022366.JPG",
            [file("cover.jpg")],
            [variation("t1.jpg", "source", 1), variation("t2.jpg", "source", 2)],
        ),
        [
            ("G0022366.JPG", "t1.jpg", Verdict.DELIVER),
            ("G0022367.JPG", "t2.jpg", Verdict.DELIVER),
        ],
    ),
    (
        "edit project: skipped, nothing fetched",
        "MultiClipEdit",
        answer("", [file("edit.json")], [variation("render.mp4", "baked_source"), *PROXIES]),
        [("m1", "", Verdict.SKIP)],
    ),
    (
        "video without a source: failed, never a proxy instead",
        "Video",
        answer("GX010007.MP4", [file("proxy.mp4")], PROXIES),
        [("GX010007.MP4", "", Verdict.FAIL)],
    ),
    (
        "an original still uploading: deferred",
        "Video",
        answer(
            "GX010008.MP4",
            [file("proxy.mp4")],
            [variation("src.mp4", "source", available=False), *PROXIES],
        ),
        [("GX010008.MP4", "src.mp4", Verdict.DEFER)],
    ),
    (
        "a renamed media keeps its owner's name, in any script",
        "Photo",
        answer("海边日落.JPG", [file("p.jpg")], [variation("p.jpg", "source")]),
        [("海边日落.JPG", "p.jpg", Verdict.DELIVER)],
    ),
    (
        "a renamed chaptered recording: its chapters numbered after the new name",
        "Video",
        answer(
            "Ρόδος.MP4",
            [file("proxy.mp4")],
            [variation("c1.mp4", "source", 1), variation("c2.mp4", "source", 2)],
        ),
        [("Ρόδος.MP4", "c1.mp4", Verdict.DELIVER), ("Ρόδος-02.MP4", "c2.mp4", Verdict.DELIVER)],
    ),
    (
        "a name without an extension gets the real one",
        "Video",
        answer("Sommerfest Zürich", [file("proxy.mp4")], [variation("src.mp4", "source")]),
        [("Sommerfest Zürich.mp4", "src.mp4", Verdict.DELIVER)],
    ),
    (
        "an empty name falls back to the media id",
        "Photo",
        answer("", [file("p.jpg")], [variation("p.jpg", "source")]),
        [("m1.jpg", "p.jpg", Verdict.DELIVER)],
    ),
    (
        "a MAX 360 original is delivered as found (Google's limits decide later)",
        "Video",
        answer("GS010001.360", [file("proxy.mp4")], [variation("src.360", "source")]),
        [("GS010001.360", "src.360", Verdict.DELIVER)],
    ),
]


@pytest.mark.parametrize(
    ("media_type", "download", "expected"), [case[1:] for case in CASES], ids=[c[0] for c in CASES]
)
def test_the_originals_of_a_media_and_their_names(
    media_type: str, download: dict[str, Any], expected: list[tuple[str, str, Verdict]]
) -> None:
    files = deliverable_files("m1", media_type, download)
    assert [(entry.file_name, entry.verdict) for entry in files] == [
        (name, verdict) for name, _, verdict in expected
    ]
    assert [entry.url for entry in files] == [
        CDN.format(asset) if asset else None for _, asset, _ in expected
    ]
    assert [entry.file_index for entry in files] == list(range(len(files)))


def test_reasons_say_why_in_words() -> None:
    edit = deliverable_files(
        "m", "Edit", answer("My edit", [], [variation("r.mp4", "baked_source")])
    )
    assert edit[0].reason == EDIT_REASON
    broken = deliverable_files("m", "Video", answer("GX010001.MP4", [file("p.mp4")], PROXIES))
    assert broken[0].reason == NO_ORIGINAL == "no original available in the GoPro cloud"


def test_an_answer_without_embedded_files_is_an_answer_error() -> None:
    with pytest.raises(GoProAnswerError):
        deliverable_files("m", "Photo", {"filename": "x.jpg"})


@pytest.mark.parametrize(
    ("media_type", "ready", "verdict"),
    [
        ("Photo", "ready", Verdict.DELIVER),
        ("Video", None, Verdict.DELIVER),
        ("Video", "uploading", Verdict.DEFER),
        ("Video", "transcoding", Verdict.DEFER),
        ("TimeLapse", "processing", Verdict.DEFER),
        ("Video", "failure", Verdict.FAIL),
        ("MultiClipEdit", "ready", Verdict.SKIP),
        ("Edit", "uploading", Verdict.SKIP),
        ("Audio", "ready", Verdict.SKIP),
        ("SomethingNew", "ready", Verdict.DELIVER),
    ],
)
def test_the_search_row_decides_first(media_type: str, ready: str | None, verdict: Verdict) -> None:
    row = MediaRow("m", media_type, "x", ready_to_view=ready)
    got, reason = row_verdict(row)
    assert got is verdict
    assert (reason is None) == (verdict is Verdict.DELIVER)
    if verdict is Verdict.FAIL:
        assert reason == PROCESSING_FAILED


def test_every_kind_that_holds_originals_is_searched_for() -> None:
    for kind in ("Photo", "Video", "Burst", "TimeLapse", "TimeLapseVideo", "Continuous"):
        assert kind in SEARCH_TYPES
    for kind in ("Chaptered", "ExternalVideo", "Livestream", "Looped", "Session", "Audio"):
        assert kind in SEARCH_TYPES  # left out by gopro-api's default filter


_PAGES = {"total_items": 1, "total_pages": 1}


def test_search_rows_parse_from_json_and_from_models() -> None:
    row = media_row(
        {
            "id": "abc",
            "type": "Video",
            "filename": "GX010001.MP4",
            "captured_at": "2024-03-01T10:00:00Z",
            "file_size": 12,
            "item_count": 3,
            "ready_to_view": "transcoding",
        }
    )
    assert (row.media_id, row.file_size, row.item_count, row.ready_to_view) == (
        "abc",
        12,
        3,
        "transcoding",
    )
    assert row.captured_at is not None
    assert row.captured_at.utcoffset() is not None
    assert media_row({"id": "x", "filename": ""}).filename == "x"


def test_a_search_answer_reads_as_a_page() -> None:
    answer = {
        "_embedded": {
            "media": [{"id": "a", "type": "Photo", "captured_at": "2024-03-01T10:00:00Z"}]
        },
        "_pages": {"current_page": 1, "per_page": 200, "total_items": 1, "total_pages": 1},
    }
    page = search_page(answer)
    assert (page.total_pages, page.total_items) == (1, 1)
    assert [row.media_id for row in page.rows] == ["a"]
    assert page.rows[0].captured_at == datetime(2024, 3, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ([], "no _embedded.media"),
        ({"_embedded": {"media": []}}, "no _embedded.media or _pages"),
        ({"_embedded": {"media": {}}, "_pages": {}}, "no _embedded.media"),
        ({"_embedded": {"media": []}, "_pages": {"total_pages": "1"}}, "without total_pages"),
        ({"_embedded": {"media": [{"type": "Photo"}]}, "_pages": _PAGES}, "without an id"),
        ({"_embedded": {"media": ["a"]}, "_pages": _PAGES}, "without an id"),
        (
            {"_embedded": {"media": [{"id": "a", "captured_at": "yesterday"}]}, "_pages": _PAGES},
            "does not parse",
        ),
    ],
)
def test_a_search_answer_without_its_shape_is_refused(answer: Any, problem: str) -> None:
    with pytest.raises(GoProAnswerError, match=problem):
        search_page(answer)


@pytest.mark.parametrize(
    ("first", "number", "expected"),
    [
        ("GX010042.MP4", 2, "GX020042.MP4"),
        ("GH010042.MP4", 12, "GH120042.MP4"),
        ("GOPR0042.MP4", 2, "GP010042.MP4"),
        ("GOPR0042.MP4", 3, "GP020042.MP4"),
        ("GXAA3591.MP4", 2, "GXAA3592.MP4"),
        ("Ride.MP4", 2, "Ride-02.MP4"),
        ("GX010042.MP4", 1, "GX010042.MP4"),
    ],
)
def test_chapter_names(first: str, number: int, expected: str) -> None:
    assert chapter_name(first, number) == expected


@pytest.mark.parametrize(
    ("first", "number", "expected"),
    [
        ("G0010001.JPG", 2, "G0010002.JPG"),
        ("G0019999.JPG", 2, "G0010000.JPG"),
        ("Jump.JPG", 3, "Jump-003.JPG"),
    ],
)
def test_frame_names(first: str, number: int, expected: str) -> None:
    assert frame_name(first, number) == expected


@pytest.mark.parametrize(
    ("name", "size", "refused"),
    [
        ("GOPR0001.JPG", 5_000_000, None),
        ("GOPR0001.JPG", MAX_PHOTO_BYTES + 1, "over Google Photos' 200 MB limit for a photo"),
        ("GX010001.MP4", MAX_VIDEO_BYTES, None),
        ("GX010001.MP4", MAX_VIDEO_BYTES + 1, "over Google Photos' 20 GB limit for a video"),
        ("GS010001.360", 10, "Google Photos does not accept .360 files"),
        ("edit.json", None, "Google Photos does not accept .json files"),
        ("GL010001.LRV", None, "Google Photos does not accept .lrv files"),
        ("GOPR0001.THM", None, "Google Photos does not accept .thm files"),
        ("README", None, "Google Photos does not accept files without an extension"),
    ],
)
def test_google_limits(name: str, size: int | None, refused: str | None) -> None:
    got = refusal(name, size)
    assert (got is None) == (refused is None)
    assert refused is None or (got is not None and refused in got)


def test_mime_types_come_from_the_real_extension() -> None:
    assert mime_type("GX010001.MP4") == "video/mp4"
    assert mime_type("海边日落.JPG") == "image/jpeg"
    assert mime_type("clip.mov") == "video/quicktime"


@pytest.mark.parametrize(
    "name", ["Sommerfest_Zürich.JPG", "海边日落.JPG", "Ρόδος.MP4", "Ski 🎿.JPG"]
)
def test_upload_headers_carry_any_name_as_ascii(name: str) -> None:
    from urllib.parse import unquote

    header = header_file_name(name)
    assert header.isascii()
    assert unquote(header) == name
    assert header_file_name("GOPR0001.JPG") == "GOPR0001.JPG"
