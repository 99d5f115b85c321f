"""The shapes of the GoPro emulator's answers, pinned one media kind at a time.

They follow /work/research/gopro-shapes.md (summarised in docs/sandbox.md): a video's
``files[0]`` is a proxy, chapters are numbered ``source`` variations, a burst's ``source`` is
a cover, edits offer only ``baked_source``, sidecar frame rates are floats.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from q2google.sandbox import Sandbox, SandboxLibrary, SandboxMedia
from q2google.sandbox.library import KIB
from tests.test_sandbox_gopro import asset_id_of, download_json

SHAPES = SandboxLibrary.generated(
    photos=4,
    videos=2,
    chaptered=2,
    chapters=3,
    bursts=1,
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
    frames=3,
    photo_size=16 * KIB,
    video_size=256 * KIB,
    seed=3,
)
pytestmark = pytest.mark.sandbox(library=SHAPES)


def _of(kind: str, test: Any = None) -> list[SandboxMedia]:
    found = [m for m in SHAPES.media if m.type == kind and m.is_ready and (test is None or test(m))]
    assert found, kind
    return found


def _ids(entries: list[dict[str, Any]]) -> list[str]:
    return [asset_id_of(entry["url"]) for entry in entries]


def _sources(answer: dict[str, Any]) -> list[dict[str, Any]]:
    return [v for v in answer["_embedded"]["variations"] if v["label"] == "source"]


def _search(http: httpx.Client, sandbox: Sandbox, **params: str) -> dict[str, Any]:
    cookie = {"Cookie": f"gp_access_token={sandbox.gopro_token}"}
    response = http.get("/media/search", params={"per_page": "200", **params}, headers=cookie)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_photo_files_and_source_are_the_same_jpg(sandbox: Sandbox, http: httpx.Client) -> None:
    raws = 0
    for media in _of("Photo"):
        answer = download_json(http, sandbox, media.media_id)
        (file,) = answer["_embedded"]["files"]
        (source,) = _sources(answer)
        assert file["url"] == source["url"]
        assert file["item_number"] == 1
        assert "item_number" not in source
        assert _ids([file]) == [media.originals[0].asset_id]
        assert source["type"] == "jpg"
        for sidecar in answer["_embedded"]["sidecar_files"]:
            assert sidecar["label"] == "raw_photo"
            assert unquote(sidecar["url"]).endswith('.GPR"')
            raws += 1
    assert raws, "some photos have a RAW sidecar"


@pytest.mark.parametrize("chaptered", [False, True])
def test_video_files_hold_a_proxy_and_variations_list_proxies_first(
    sandbox: Sandbox, http: httpx.Client, chaptered: bool
) -> None:
    tallest_is_wrong = 0
    for media in _of("Video", lambda m: m.originals and (len(m.originals) > 1) == chaptered):
        answer = download_json(http, sandbox, media.media_id)
        embedded = answer["_embedded"]
        originals = [asset.asset_id for asset in media.originals]
        (proxy,) = embedded["files"]
        assert proxy["height"] == 1080
        assert "label" not in proxy
        assert _ids([proxy])[0] not in originals
        labels = [v["label"] for v in embedded["variations"]]
        assert labels[:2] == ["high_res_proxy_mp4", "mp4_low"]
        sources = _sources(answer)
        assert _ids(sources) == originals
        tallest = max(embedded["variations"], key=lambda v: v["height"])
        tallest_is_wrong += _ids([tallest]) != originals  # a proxy, a concat, chapter 1
        for entry in embedded["variations"]:
            assert {"type", "quality", "width", "height", "available"} <= set(entry)
        if chaptered:
            assert [s["item_number"] for s in sources] == [1, 2, 3]
            assert {s["camera_position"] for s in sources} == {"default"}
        else:
            assert "item_number" not in sources[0]
    assert tallest_is_wrong, "taking the tallest variation gets the wrong bytes somewhere"


def test_chapters_are_named_as_the_camera_names_them(sandbox: Sandbox, http: httpx.Client) -> None:
    for media in _of("Video", lambda m: len(m.originals) == 3):
        names = [asset.file_name for asset in media.originals]
        number = names[0][4:8]
        assert names == [f"GX01{number}.MP4", f"GX02{number}.MP4", f"GX03{number}.MP4"]
        answer = download_json(http, sandbox, media.media_id)
        assert answer["filename"] == media.filename == names[0]
        for source, name in zip(_sources(answer), names, strict=True):
            assert f'filename="{name}"' in unquote(source["url"])


def test_a_concat_is_one_unnumbered_full_length_file_never_delivered(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    concats = 0
    for media in _of("Video", lambda m: len(m.originals) > 1):
        answer = download_json(http, sandbox, media.media_id)
        for entry in answer["_embedded"]["variations"]:
            if entry["label"] == "concat":
                concats += 1
                assert "item_number" not in entry
                asset = SHAPES.asset(asset_id_of(entry["url"]))
                assert asset is not None
                assert asset.size == media.file_size
    assert concats == 1
    delivered = {asset.label for _, _, asset in SHAPES.deliverables()}
    assert delivered == {"source"}


@pytest.mark.parametrize("kind", ["Burst", "Continuous"])
def test_series_frames_are_files_and_the_lone_source_is_a_cover(
    sandbox: Sandbox, http: httpx.Client, kind: str
) -> None:
    (media,) = _of(kind)
    answer = download_json(http, sandbox, media.media_id)
    files = answer["_embedded"]["files"]
    assert [f["item_number"] for f in files] == [1, 2, 3]
    assert _ids(files) == [asset.asset_id for asset in media.originals]
    series = media.filename[:4]
    assert [a.file_name for a in media.originals] == [f"{series}000{n}.JPG" for n in (1, 2, 3)]
    (cover,) = _sources(answer)
    assert "item_number" not in cover
    cover_asset = SHAPES.asset(asset_id_of(cover["url"]))
    assert cover_asset is not None
    assert cover_asset.label == "cover"
    assert cover_asset not in media.originals
    assert media.file_size == sum(asset.size for asset in media.originals) != cover_asset.size


def test_time_lapses_come_in_both_real_shapes(sandbox: Sandbox, http: httpx.Client) -> None:
    shapes = set()
    for media in _of("TimeLapse"):
        answer = download_json(http, sandbox, media.media_id)
        sources = _sources(answer)
        originals = [asset.asset_id for asset in media.originals]
        if len(sources) > 1:
            shapes.add("numbered sources")
            assert [s["item_number"] for s in sources] == [1, 2, 3]
            assert _ids(sources) == originals
            assert _ids(answer["_embedded"]["files"]) != originals[:1]
        else:
            shapes.add("burst")
            assert _ids(answer["_embedded"]["files"]) == originals
        (sidecar,) = answer["_embedded"]["sidecar_files"]
        assert sidecar["type"] == "zip"
        assert "timelapse_video" in {v["label"] for v in answer["_embedded"]["variations"]}
    assert shapes == {"numbered sources", "burst"}


def test_edits_offer_only_a_baked_source(sandbox: Sandbox, http: httpx.Client) -> None:
    edits = [m for m in SHAPES.media if m.is_edit]
    assert {m.type for m in edits} == {"MultiClipEdit", "Edit"}
    assert {m.filename for m in edits} == {"Summer highlights", ""}
    rows = {row["id"]: row for row in _search(http, sandbox)["_embedded"]["media"]}
    for media in edits:
        row = rows[media.media_id]
        assert (row["file_extension"], row["file_size"]) == ("json", None)
        answer = download_json(http, sandbox, media.media_id)
        labels = {v["label"] for v in answer["_embedded"]["variations"]}
        assert labels == {"baked_source", "high_res_proxy_mp4", "mp4_low"}
    delivered = {media.media_id for media, _, _ in SHAPES.deliverables()}
    assert not delivered & {m.media_id for m in edits}


def test_sidecars_carry_float_frame_rates_and_sprites_their_real_keys(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    media = _of("Video", lambda m: len(m.originals) > 1)[0]
    answer = download_json(http, sandbox, media.media_id)
    gpmf = [s for s in answer["_embedded"]["sidecar_files"] if s["label"] == "gpmf"]
    assert gpmf
    assert all(isinstance(s["fps"], float) and s["fps"] % 1 for s in gpmf)
    assert [s.get("item_number") for s in gpmf if s["type"] == "1.mp4"] == [1, 2, 3]
    (sprite,) = answer["_embedded"]["sprites"]
    assert set(sprite) == {
        "fps",
        "frame",
        "height",
        "width",
        "type",
        "heads",
        "urls",
        "total_count",
    }
    assert set(sprite["frame"]) == {"count", "height", "width"}
    assert http.get(sprite["urls"][0]).status_code == 200


def test_media_still_processing_are_listed_but_not_deliverable(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    unready = [m for m in SHAPES.media if not m.is_ready]
    assert {m.ready_to_view for m in unready} == {"uploading", "transcoding", "failure"}
    assert {m.media_id for m, _, _ in SHAPES.pending()} == {m.media_id for m in unready}
    assert not {m.media_id for m, _, _ in SHAPES.deliverables()} & {m.media_id for m in unready}
    uploading = next(m for m in unready if m.ready_to_view == "uploading")
    answer = download_json(http, sandbox, uploading.media_id)
    entries = answer["_embedded"]["files"] + answer["_embedded"]["variations"]
    original = uploading.originals[0].asset_id
    flags = {entry["available"] for entry in entries if asset_id_of(entry["url"]) == original}
    assert flags == {False}
    url = next(e["url"] for e in entries if asset_id_of(e["url"]) == original)
    assert http.get(url).status_code == 404


def test_a_video_without_source_offers_only_proxies(sandbox: Sandbox, http: httpx.Client) -> None:
    (broken,) = [m for m in SHAPES.media if m.type == "Video" and not m.originals]
    answer = download_json(http, sandbox, broken.media_id)
    assert answer["filename"] == ""
    assert not _sources(answer)
    assert len(answer["_embedded"]["files"]) == 1
    assert broken.media_id not in {m.media_id for m, _, _ in SHAPES.originals()}


def test_refused_originals_are_originals_but_not_deliverables() -> None:
    refused = SHAPES.refused
    by_id = {asset.asset_id: asset for _, _, asset in SHAPES.originals()}
    assert refused <= set(by_id)
    kinds = sorted(
        "360" if by_id[i].extension == "360" else by_id[i].extension + " oversize" for i in refused
    )
    assert kinds == ["360", "jpg oversize", "mp4 oversize"]
    assert all(by_id[i].size > 200 * 1024**2 for i in refused if by_id[i].extension == "jpg")
    assert all(by_id[i].size > 20 * 1024**3 for i in refused if by_id[i].extension == "mp4")
    assert not refused & {asset.asset_id for _, _, asset in SHAPES.deliverables()}
    assert SHAPES.refusals().keys() == refused


def test_names_renamed_unnamed_and_colliding(sandbox: Sandbox, http: httpx.Client) -> None:
    rows = _search(http, sandbox, fields="filename,file_extension")["_embedded"]["media"]
    names = [row["filename"] for row in rows]
    for name in ("Sommerfest_Zürich.JPG", "海边日落.JPG", "Ρόδος.MP4", "Ski 🎿.JPG"):
        assert names.count(name) == 1, name
    assert names.count("") >= 3  # two unnamed, one broken video, one untitled edit
    assert names.count("GOPR0001.JPG") >= 2
    assert {row["file_extension"] for row in rows} >= {"jpg", "mp4", "360", "json"}
    renamed = next(m for m in SHAPES.media if m.filename == "Ρόδος.MP4")
    assert renamed.originals[0].file_name == "Ρόδος.MP4"


def test_search_rows_report_sizes_counts_and_times(sandbox: Sandbox, http: httpx.Client) -> None:
    rows = _search(http, sandbox)["_embedded"]["media"]
    assert len(rows) == len(SHAPES.media)
    captured = [row["captured_at"] for row in rows]
    assert captured == sorted(captured, reverse=True), "newest first"
    for row in rows:
        media = SHAPES.get(row["id"])
        assert media is not None
        assert row["captured_at"].endswith("Z")
        assert row["file_extension"] == row["file_extension"].lower()
        assert "." not in row["file_extension"]
        assert row["item_count"] == max(1, len(media.originals))
        if media.originals and not media.is_edit:
            assert row["file_size"] == sum(asset.size for asset in media.originals)
        assert re.fullmatch(r"\d+", row["source_duration"])


def test_search_returns_only_the_fields_asked_and_the_always_present_ones(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    rows = _search(http, sandbox, fields="type,captured_at")["_embedded"]["media"]
    always = {"id", "gopro_user_id", "source_gumi", "source_mgumi"}
    assert all(set(row) == always | {"type", "captured_at"} for row in rows)


def test_search_filters_on_processing_states_and_types(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    ready = _search(http, sandbox, processing_states="ready")["_pages"]["total_items"]
    assert ready == sum(1 for m in SHAPES.media if m.is_ready)
    both = _search(http, sandbox, processing_states="uploading,transcoding")["_embedded"]["media"]
    assert {row["ready_to_view"] for row in both} == {"uploading", "transcoding"}
    videos = _search(http, sandbox, type="Burst,TimeLapse")["_embedded"]["media"]
    assert sorted(row["type"] for row in videos) == ["Burst", "TimeLapse", "TimeLapse"]


def test_captured_range_takes_full_timestamps_half_open(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    ordered = sorted(SHAPES.media, key=lambda m: m.captured_at)
    first, last = ordered[3].captured_at, ordered[8].captured_at
    window = f"{first.isoformat().replace('+00:00', '.000Z')},{last.isoformat()}"
    rows = _search(http, sandbox, captured_range=window)["_embedded"]["media"]
    expected = {m.media_id for m in SHAPES.media if first <= m.captured_at < last}
    assert {row["id"] for row in rows} == expected
    assert ordered[3].media_id in expected
    assert ordered[8].media_id not in expected
    bad = http.get(
        "/media/search",
        params={"captured_range": "yesterday"},
        headers={"Cookie": f"gp_access_token={sandbox.gopro_token}"},
    )
    assert bad.status_code == 400


@pytest.mark.sandbox(library=SandboxLibrary.generated(photos=205, photo_size=KIB))
def test_per_page_is_capped_at_200_silently(sandbox: Sandbox, http: httpx.Client) -> None:
    first = _search(http, sandbox, per_page="1000", page="1")
    assert len(first["_embedded"]["media"]) == 200
    assert first["_pages"] == {
        "current_page": 1,
        "per_page": 200,
        "total_items": 205,
        "total_pages": 2,
    }
    second = _search(http, sandbox, per_page="1000", page="2")
    assert len(second["_embedded"]["media"]) == 5


def test_the_demo_library_is_small_and_has_chapters_and_a_non_ascii_name() -> None:
    demo = SandboxLibrary.demo()
    deliverables = demo.deliverables()
    assert len(deliverables) < 30
    assert demo.total_bytes < 40 * 1024**2
    assert any(len(m.originals) == 3 and m.type == "Video" for m in demo.media)
    assert any(not m.filename.isascii() for m in demo.media)
    assert {m.type for m in demo.media} >= {"Photo", "Video", "Burst", "TimeLapse"}
    assert not demo.refused
    assert SandboxLibrary.demo().media == demo.media, "deterministic"


def test_library_specs_take_every_count() -> None:
    library = SandboxLibrary.from_spec(
        "photos=1,chaptered=1,chapters=4,edits=1,unready=1,no_source=1,unsupported=1,"
        "renamed=2,unnamed=1,continuous=1,timelapse_videos=1,oversize_photos=1,"
        "oversize_videos=1,video_size=64KiB,seed=2"
    )
    assert len(library.media) == 13
    assert any(len(m.originals) == 4 for m in library.media)
    assert len(library.refused) == 3
    with pytest.raises(ValueError, match="unknown keys"):
        SandboxLibrary.from_spec("holograms=1")
