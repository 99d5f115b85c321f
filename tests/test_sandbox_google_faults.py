"""The Google emulator as unkind as the real service: duplicates, lost answers, refusals,
full and deleted albums, full storage, and the listing a client reconciles with."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

import httpx
import pytest

from q2google.sandbox import FaultConfig, Sandbox
from q2google.sandbox.google.wire import (
    APPENDONLY,
    EXPIRED_UPLOAD,
    NO_SUCH_ALBUM,
    READONLY_APPCREATED,
    REFUSED_ITEM,
    STORAGE_FULL,
    UNUSABLE_UPLOAD,
)

REFUSED = "GOPR0001.JPG|GX020042.MP4"


def upload(http: httpx.Client, bearer: dict[str, str], data: bytes, name: str | None = None) -> str:
    """A raw upload, named like the camera's file when ``name`` is given; its token."""
    headers = {
        **bearer,
        "X-Goog-Upload-Protocol": "raw",
        "X-Goog-Upload-Content-Type": "image/jpeg",
    }
    if name is not None:
        headers["X-Goog-Upload-File-Name"] = name
    response = http.post("/v1/uploads", content=data, headers=headers)
    assert response.status_code == 200, response.text
    return response.text


def batch_create(
    http: httpx.Client,
    bearer: dict[str, str],
    items: Sequence[tuple[str, str | None, str]],
    album_id: str | None = None,
) -> httpx.Response:
    """batchCreate of ``(token, fileName or None, description)`` items."""
    body: dict[str, Any] = {
        "newMediaItems": [
            {
                "description": description,
                "simpleMediaItem": {"uploadToken": token}
                | ({"fileName": name} if name is not None else {}),
            }
            for token, name, description in items
        ]
    }
    if album_id is not None:
        body["albumId"] = album_id
    return http.post("/v1/mediaItems:batchCreate", json=body, headers=bearer)


def new_album(http: httpx.Client, bearer: dict[str, str], title: str = "Trips") -> str:
    response = http.post("/v1/albums", json={"album": {"title": title}}, headers=bearer)
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def statuses(response: httpx.Response) -> list[dict[str, Any]]:
    return [result["status"] for result in response.json()["newMediaItemResults"]]


def test_the_google_faults_parse_from_a_spec() -> None:
    config = FaultConfig.parse(
        f"merge-identical=true,lost-create=0.5,slow-create=0.2,refuse={REFUSED},"
        "album-cap=10,storage-full=1"
    )
    assert config.merge_identical is True
    assert config.create_answer_loss_rate == 0.5
    assert config.create_delay_seconds == 0.2
    assert config.refused_names == ("GOPR0001.JPG", "GX020042.MP4")
    assert config.album_capacity == 10
    assert config.storage_full is True
    defaults = FaultConfig()
    assert (defaults.merge_identical, defaults.storage_full) == (False, False)
    assert (defaults.album_capacity, defaults.refused_names) == (20_000, ())
    assert FaultConfig.parse("merge-identical=0,storage-full=false") == defaults
    with pytest.raises(ValueError, match="not a switch"):
        FaultConfig.parse("storage-full=maybe")
    with pytest.raises(ValueError, match="not a number"):
        FaultConfig.parse("album-cap=many")


def test_faults_switched_over_http_take_file_lists(http: httpx.Client) -> None:
    answer = http.post("/_sandbox/faults", content=f"refuse={REFUSED},storage-full=1").json()
    assert answer["refused_names"] == ["GOPR0001.JPG", "GX020042.MP4"]
    assert answer["storage_full"] is True


@pytest.mark.sandbox(faults="lost-create=1,seed=3")
def test_lost_answers_come_after_the_commit(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    outcomes, tokens = [], []
    for n in range(8):
        pair = [upload(http, bearer, os.urandom(64)) for _ in range(2)]
        tokens += pair
        try:
            response = batch_create(http, bearer, [(t, f"F{n}.JPG", f"q2g:{n}") for t in pair])
        except httpx.TransportError:
            outcomes.append("dropped")
        else:
            assert response.status_code == 503
            assert response.json()["error"]["status"] == "UNAVAILABLE"
            outcomes.append("503")
    assert set(outcomes) == {"503", "dropped"}
    faults = sandbox.stats.faults
    assert faults["lost_create"] == 8
    assert faults["lost_create:503"] == outcomes.count("503")
    assert faults["lost_create:reset"] == outcomes.count("dropped")
    assert sandbox.stats.created_per_create == [2] * 8, "every lost call committed"
    assert len(sandbox.snapshot()["mediaItems"]) == 16

    sandbox.set_faults(FaultConfig())
    retried = batch_create(http, bearer, [(tokens[0], "F0.JPG", "q2g:0")])
    assert statuses(retried) == [{"code": 3, "message": UNUSABLE_UPLOAD}], "the token was spent"
    assert len(sandbox.snapshot()["mediaItems"]) == 16


@pytest.mark.sandbox(faults="slow-create=0.5")
def test_a_slow_create_commits_after_its_delay_even_if_the_client_left(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    token = upload(http, bearer, b"slow" * 100)
    with (
        httpx.Client(base_url=sandbox.url, timeout=0.1) as impatient,
        pytest.raises(httpx.TimeoutException),
    ):
        batch_create(impatient, bearer, [(token, "SLOW.JPG", "q2g:slow")])
    assert sandbox.snapshot()["mediaItems"] == [], "nothing is created before the delay"
    deadline = time.monotonic() + 5
    while not sandbox.snapshot()["mediaItems"] and time.monotonic() < deadline:
        time.sleep(0.05)
    (item,) = sandbox.snapshot()["mediaItems"]
    assert item["filename"] == "SLOW.JPG"
    assert sandbox.stats.google_calls["batchCreate"] == 1


@pytest.mark.sandbox(faults="slow-create=0.2")
def test_a_slow_create_answers_after_its_delay(http: httpx.Client, bearer: dict[str, str]) -> None:
    token = upload(http, bearer, b"x" * 10)
    started = time.monotonic()
    assert batch_create(http, bearer, [(token, None, "")]).status_code == 200
    assert time.monotonic() - started >= 0.2


@pytest.mark.sandbox(faults=f"refuse={REFUSED}")
def test_refused_files_fail_every_time_and_keep_their_token(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    by_upload_name = upload(http, bearer, b"a" * 1000, "GOPR0001.JPG")
    by_create_name = upload(http, bearer, b"b" * 1000)
    accepted = upload(http, bearer, b"c" * 1000, "GOPR0002.JPG")
    assert sandbox.stats.upload_bytes_received == 3000, "the bytes were taken"
    answer = batch_create(
        http,
        bearer,
        [(by_upload_name, None, ""), (by_create_name, "GX020042.MP4", ""), (accepted, None, "")],
    )
    assert answer.status_code == 207
    refused = {"code": 3, "message": REFUSED_ITEM}
    assert statuses(answer) == [refused, refused, {"message": "Success"}]
    again = batch_create(http, bearer, [(by_upload_name, None, "")])
    assert statuses(again) == [refused], "the token stays unused: refused again, not 'used'"
    assert sandbox.stats.faults["refused"] == 3
    assert [item["filename"] for item in sandbox.snapshot()["mediaItems"]] == ["GOPR0002.JPG"]


def test_the_three_code_3_answers_read_differently(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    used = upload(http, bearer, b"u" * 10)
    assert batch_create(http, bearer, [(used, None, "")]).status_code == 200
    answer = batch_create(http, bearer, [(used, None, ""), ("unknown", None, "")])
    assert statuses(answer) == [{"code": 3, "message": UNUSABLE_UPLOAD}] * 2

    sandbox.set_faults("upload-token-ttl=0")
    expired = upload(http, bearer, b"e" * 10)
    time.sleep(0.01)
    answer = batch_create(http, bearer, [(expired, None, "")])
    assert statuses(answer) == [{"code": 3, "message": EXPIRED_UPLOAD}]

    sandbox.set_faults("refuse=GOPR0001.JPG")
    refused = upload(http, bearer, b"r" * 10, "GOPR0001.JPG")
    answer = batch_create(http, bearer, [(refused, None, "")])
    assert statuses(answer) == [{"code": 3, "message": REFUSED_ITEM}]
    assert len({UNUSABLE_UPLOAD, EXPIRED_UPLOAD, REFUSED_ITEM}) == 3


@pytest.mark.sandbox(faults="album-cap=3")
def test_a_full_album_refuses_the_whole_call(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    album_id = new_album(http, bearer)
    first = [upload(http, bearer, os.urandom(32)) for _ in range(2)]
    assert batch_create(http, bearer, [(t, None, "") for t in first], album_id).status_code == 200
    more = [upload(http, bearer, os.urandom(32)) for _ in range(2)]
    full = batch_create(http, bearer, [(t, None, "") for t in more], album_id)
    assert full.status_code == 400
    error = full.json()["error"]
    assert error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == "The album is full: an album can contain at most 3 media items."
    assert len(sandbox.snapshot()["mediaItems"]) == 2, "nothing was created"
    assert sandbox.stats.created_per_create == [2, 0]

    loose = batch_create(http, bearer, [(t, None, "") for t in more])
    assert loose.status_code == 200, "the tokens were not spent"
    ids = [result["mediaItem"]["id"] for result in loose.json()["newMediaItemResults"]]
    add = f"/v1/albums/{album_id}:batchAddMediaItems"
    too_many = http.post(add, json={"mediaItemIds": ids}, headers=bearer)
    assert too_many.status_code == 400
    assert too_many.json()["error"]["message"] == error["message"]
    assert http.post(add, json={"mediaItemIds": ids[:1]}, headers=bearer).status_code == 200
    assert http.get(f"/v1/albums/{album_id}", headers=bearer).json()["mediaItemsCount"] == "3"
    assert sandbox.stats.faults["album_full"] == 2


def test_an_album_deleted_by_its_user(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    album_id = new_album(http, bearer, "Summer")
    kept = new_album(http, bearer, "Winter")
    token = upload(http, bearer, b"in the album")
    created = batch_create(http, bearer, [(token, "A.JPG", "")], album_id).json()
    item_id = created["newMediaItemResults"][0]["mediaItem"]["id"]

    sandbox.delete_album(album_id)
    assert http.get(f"/v1/albums/{album_id}", headers=bearer).status_code == 404
    listed = http.get("/v1/albums", headers=bearer).json()["albums"]
    assert [album["id"] for album in listed] == [kept]
    refused = batch_create(http, bearer, [(upload(http, bearer, b"next"), None, "")], album_id)
    assert refused.status_code == 400
    assert refused.json()["error"] == {
        "code": 400,
        "message": NO_SUCH_ALBUM,
        "status": "INVALID_ARGUMENT",
    }
    add = http.post(
        f"/v1/albums/{album_id}:batchAddMediaItems",
        json={"mediaItemIds": [item_id]},
        headers=bearer,
    )
    assert add.status_code == 400
    snapshot = sandbox.snapshot()
    (item,) = snapshot["mediaItems"]
    assert (item["id"], item["albumIds"]) == (item_id, []), "its items stay in the library"
    assert snapshot["deletedAlbumIds"] == [album_id]
    assert sandbox.stats.faults["album_deleted"] == 2

    assert http.post(f"/_sandbox/google/albums/{kept}/delete").json() == {"deleted": kept}
    assert http.post(f"/_sandbox/google/albums/{kept}/delete").status_code == 404
    assert http.get("/v1/albums", headers=bearer).json()["albums"] == []
    with pytest.raises(KeyError):
        sandbox.delete_album("nope")


@pytest.mark.sandbox(faults="storage-full=1")
def test_full_storage_takes_the_bytes_but_creates_nothing(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    token = upload(http, bearer, b"too much" * 100, "GOPR0005.JPG")
    full = batch_create(http, bearer, [(token, None, "")])
    assert full.status_code == 400
    assert full.json()["error"] == {
        "code": 400,
        "message": STORAGE_FULL,
        "status": "INVALID_ARGUMENT",
    }
    assert sandbox.snapshot()["mediaItems"] == []
    assert sandbox.stats.faults["storage_full"] == 1
    sandbox.set_faults(FaultConfig())
    assert batch_create(http, bearer, [(token, None, "")]).status_code == 200


def test_listing_is_newest_first_and_stable_across_pages(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    for call in range(3):
        tokens = [upload(http, bearer, os.urandom(16)) for _ in range(3)]
        items = [(t, f"G{call}{n}.JPG", f"q2g:{call}{n}") for n, t in enumerate(tokens)]
        assert batch_create(http, bearer, items).status_code == 200
    first = http.get("/v1/mediaItems", params={"pageSize": "4"}, headers=bearer).json()
    assert [i["filename"] for i in first["mediaItems"]] == [
        "G22.JPG",
        "G21.JPG",
        "G20.JPG",
        "G12.JPG",
    ]
    assert first["mediaItems"][0]["description"] == "q2g:22"
    newer = upload(http, bearer, b"newer")
    assert batch_create(http, bearer, [(newer, "NEW.JPG", "")]).status_code == 200
    rest = http.get(
        "/v1/mediaItems",
        params={"pageSize": "4", "pageToken": first["nextPageToken"]},
        headers=bearer,
    ).json()
    assert [i["filename"] for i in rest["mediaItems"]] == [
        "G11.JPG",
        "G10.JPG",
        "G02.JPG",
        "G01.JPG",
    ]
    last = http.get(
        "/v1/mediaItems",
        params={"pageSize": "4", "pageToken": rest["nextPageToken"]},
        headers=bearer,
    ).json()
    assert [i["filename"] for i in last["mediaItems"]] == ["G00.JPG"]
    assert "nextPageToken" not in last
    capped = http.get("/v1/mediaItems", params={"pageSize": "1000"}, headers=bearer).json()
    assert len(capped["mediaItems"]) == 10
    assert sandbox.stats.google_calls["mediaItems.list"] == 4


def test_search_lists_an_albums_items_in_album_order(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    album_id = new_album(http, bearer)
    tokens = [upload(http, bearer, os.urandom(16)) for _ in range(5)]
    items = [(t, f"H{n}.JPG", f"q2g:{n}") for n, t in enumerate(tokens)]
    assert batch_create(http, bearer, items[:3], album_id).status_code == 200
    assert batch_create(http, bearer, items[3:]).status_code == 200
    seen, page_token = [], None
    while True:
        body: dict[str, Any] = {"albumId": album_id, "pageSize": 2}
        if page_token:
            body["pageToken"] = page_token
        page = http.post("/v1/mediaItems:search", json=body, headers=bearer).json()
        seen += [(i["filename"], i["description"]) for i in page["mediaItems"]]
        page_token = page.get("nextPageToken")
        if not page_token:
            break
    assert seen == [("H0.JPG", "q2g:0"), ("H1.JPG", "q2g:1"), ("H2.JPG", "q2g:2")]
    everything = http.post("/v1/mediaItems:search", json={}, headers=bearer).json()
    assert [i["filename"] for i in everything["mediaItems"]][:2] == ["H4.JPG", "H3.JPG"]
    unknown = http.post("/v1/mediaItems:search", json={"albumId": "nope"}, headers=bearer)
    assert unknown.status_code == 400
    assert sandbox.stats.google_calls["mediaItems.search"] == 4


def test_reading_needs_a_read_scope_and_writing_a_write_scope(
    sandbox: Sandbox, http: httpx.Client
) -> None:
    def bearer_of(*scopes: str) -> dict[str, str]:
        token, _ = sandbox.call(lambda: sandbox.google.issue_access_token(scopes))
        return {"Authorization": f"Bearer {token}"}

    client_token = bearer_of(APPENDONLY, READONLY_APPCREATED)
    token = upload(http, client_token, b"scoped")
    assert batch_create(http, client_token, [(token, None, "")]).status_code == 200
    assert http.get("/v1/mediaItems", headers=client_token).status_code == 200
    assert http.get("/v1/albums", headers=client_token).status_code == 200

    append_only = bearer_of(APPENDONLY)
    denied = http.get("/v1/mediaItems", headers=append_only)
    assert denied.status_code == 403
    assert denied.json()["error"]["status"] == "PERMISSION_DENIED"
    assert "insufficient authentication scopes" in denied.json()["error"]["message"]

    read_only = bearer_of(READONLY_APPCREATED)
    assert http.post("/v1/mediaItems:batchCreate", json={}, headers=read_only).status_code == 403
    assert http.post("/v1/uploads", content=b"x", headers=read_only).status_code == 403
