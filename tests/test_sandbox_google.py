"""The Google emulator: OAuth refresh, resumable and raw uploads, batchCreate, albums."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from q2google.sandbox import FaultConfig, Sandbox
from q2google.sandbox.google import GRANULARITY, SCOPES

KIB = 1024


def start_upload(http: httpx.Client, bearer: dict[str, str], size: int) -> str:
    response = http.post(
        "/v1/uploads",
        headers={
            **bearer,
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Content-Type": "image/jpeg",
            "X-Goog-Upload-Raw-Size": str(size),
            "X-Goog-Upload-File-Name": "GOPR0001.JPG",
        },
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-Goog-Upload-Chunk-Granularity"] == str(GRANULARITY)
    assert response.headers["X-Goog-Upload-Status"] == "active"
    return response.headers["X-Goog-Upload-URL"]


def send(
    http: httpx.Client, url: str, data: bytes, offset: int, *, finalize: bool = False
) -> httpx.Response:
    command = "upload, finalize" if finalize else "upload"
    return http.post(
        url,
        content=data,
        headers={"X-Goog-Upload-Command": command, "X-Goog-Upload-Offset": str(offset)},
    )


def query(http: httpx.Client, url: str) -> httpx.Response:
    return http.post(url, headers={"X-Goog-Upload-Command": "query"})


def create(
    http: httpx.Client, bearer: dict[str, str], *tokens: str, album_id: str | None = None
) -> httpx.Response:
    body: dict[str, object] = {
        "newMediaItems": [
            {
                "description": f"item {n}",
                "simpleMediaItem": {"uploadToken": token, "fileName": f"F{n}.JPG"},
            }
            for n, token in enumerate(tokens)
        ]
    }
    if album_id:
        body["albumId"] = album_id
    return http.post("/v1/mediaItems:batchCreate", json=body, headers=bearer)


def raw_upload(http: httpx.Client, bearer: dict[str, str], data: bytes) -> str:
    response = http.post(
        "/v1/uploads",
        content=data,
        headers={
            **bearer,
            "X-Goog-Upload-Protocol": "raw",
            "X-Goog-Upload-Content-Type": "image/jpeg",
            "Content-Type": "application/octet-stream",
        },
    )
    assert response.status_code == 200, response.text
    return response.text


def test_refresh_token_grant(sandbox: Sandbox, http: httpx.Client) -> None:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": sandbox.refresh_token,
        "client_id": "sandbox-client.apps.googleusercontent.com",
        "client_secret": sandbox.client_secret,
    }
    granted = http.post("/token", data=form)
    assert granted.status_code == 200
    body = granted.json()
    assert body["token_type"] == "Bearer"
    assert body["scope"].split() == list(SCOPES)
    assert (
        http.get(
            "/v1/albums", headers={"Authorization": f"Bearer {body['access_token']}"}
        ).status_code
        == 200
    )

    bad = http.post("/token", data={**form, "refresh_token": "1//revoked"})
    assert bad.status_code == 400
    assert bad.json()["error"] == "invalid_grant"
    assert http.post("/token", data={**form, "client_secret": "x"}).status_code == 401
    sandbox.call(sandbox.google.revoke_refresh_tokens)
    assert http.post("/token", data=form).json()["error"] == "invalid_grant"


def test_photos_api_needs_a_valid_bearer(http: httpx.Client) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}):
        response = http.get("/v1/mediaItems", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["status"] == "UNAUTHENTICATED"


def test_resumable_upload_in_chunks_then_create(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    data = os.urandom(2 * GRANULARITY + 1234)
    url = start_upload(http, bearer, len(data))
    first = send(http, url, data[:GRANULARITY], 0)
    assert first.status_code == 200
    assert first.headers["X-Goog-Upload-Size-Received"] == str(GRANULARITY)
    status = query(http, url)
    assert status.headers["X-Goog-Upload-Status"] == "active"
    assert status.headers["X-Goog-Upload-Size-Received"] == str(GRANULARITY)
    final = send(http, url, data[GRANULARITY:], GRANULARITY, finalize=True)
    assert final.status_code == 200
    assert final.headers["X-Goog-Upload-Status"] == "final"
    token = final.text
    assert query(http, url).headers["X-Goog-Upload-Status"] == "final"

    created = create(http, bearer, token)
    assert created.status_code == 200
    result = created.json()["newMediaItemResults"][0]
    assert result["status"]["message"] == "Success"
    assert result["mediaItem"]["filename"] == "F0.JPG"
    (item,) = sandbox.snapshot()["mediaItems"]
    assert item["sha256"] == hashlib.sha256(data).hexdigest()
    assert item["size"] == len(data)

    reused = create(http, bearer, token)
    assert reused.status_code == 207
    assert reused.json()["newMediaItemResults"][0]["status"]["code"] == 3


def test_offset_mismatch_is_answered_with_the_size_received(
    http: httpx.Client, bearer: dict[str, str]
) -> None:
    data = os.urandom(3 * GRANULARITY)
    url = start_upload(http, bearer, len(data))
    send(http, url, data[:GRANULARITY], 0)
    wrong = send(http, url, data[2 * GRANULARITY :], 2 * GRANULARITY, finalize=True)
    assert wrong.status_code == 400
    assert wrong.headers["X-Goog-Upload-Size-Received"] == str(GRANULARITY)
    assert send(http, url, data[GRANULARITY:], GRANULARITY, finalize=True).status_code == 200


def test_chunks_must_be_granular_and_sizes_must_add_up(
    http: httpx.Client, bearer: dict[str, str]
) -> None:
    data = os.urandom(GRANULARITY + 10)
    url = start_upload(http, bearer, len(data))
    ragged = send(http, url, data[:1000], 0)
    assert ragged.status_code == 400
    assert ragged.headers["X-Goog-Upload-Size-Received"] == "0"
    short = send(http, url, data[:GRANULARITY], 0, finalize=True)
    assert short.status_code == 400
    assert query(http, url).headers["X-Goog-Upload-Size-Received"] == "0"
    assert send(http, url, data, 0, finalize=True).status_code == 200


def test_cancelled_or_unknown_session_is_404(http: httpx.Client, bearer: dict[str, str]) -> None:
    url = start_upload(http, bearer, 10)
    assert http.post(url, headers={"X-Goog-Upload-Command": "cancel"}).status_code == 200
    assert query(http, url).status_code == 404
    assert query(http, url.replace("upload_id=", "upload_id=x")).status_code == 404


def test_identical_bytes_make_two_items_by_default(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    data = os.urandom(100 * KIB)
    first = create(http, bearer, raw_upload(http, bearer, data)).json()
    second = create(http, bearer, raw_upload(http, bearer, data)).json()
    ids = {
        r["mediaItem"]["id"] for r in first["newMediaItemResults"] + second["newMediaItemResults"]
    }
    assert len(ids) == 2, "Google keeps duplicates: no test passes by luck"
    items = sandbox.snapshot()["mediaItems"]
    assert [item["createCalls"] for item in items] == [1, 1]
    assert items[0]["sha256"] == items[1]["sha256"] == hashlib.sha256(data).hexdigest()
    assert sandbox.stats.created_per_create == [1, 1]


@pytest.mark.sandbox(faults="merge-identical=1")
def test_identical_bytes_are_one_item_when_merging(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    data = os.urandom(100 * KIB)
    first = create(http, bearer, raw_upload(http, bearer, data)).json()
    second = create(http, bearer, raw_upload(http, bearer, data)).json()
    ids = {
        r["mediaItem"]["id"] for r in first["newMediaItemResults"] + second["newMediaItemResults"]
    }
    assert len(ids) == 1
    (item,) = sandbox.snapshot()["mediaItems"]
    assert item["createCalls"] == 2
    assert sandbox.stats.created_per_create == [1, 0]


@pytest.mark.parametrize("name", ["Ski 🎿.JPG", "海边日落.JPG", "GOPR0001.JPG"])
def test_upload_file_names_are_percent_decoded(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str], name: str
) -> None:
    response = http.post(
        "/v1/uploads",
        content=b"bytes of " + name.encode(),
        headers={
            **bearer,
            "X-Goog-Upload-Protocol": "raw",
            "X-Goog-Upload-Content-Type": "image/jpeg",
            "X-Goog-Upload-File-Name": quote(name),
        },
    )
    body = {"newMediaItems": [{"simpleMediaItem": {"uploadToken": response.text}}]}
    created = http.post("/v1/mediaItems:batchCreate", json=body, headers=bearer)
    assert created.status_code == 200, created.text
    (item,) = sandbox.snapshot()["mediaItems"]
    assert item["filename"] == name


def test_batch_create_takes_1_to_50_items(http: httpx.Client, bearer: dict[str, str]) -> None:
    assert create(http, bearer).status_code == 400
    too_many = create(http, bearer, *(f"t{n}" for n in range(51)))
    assert too_many.status_code == 400
    assert too_many.json()["error"]["status"] == "INVALID_ARGUMENT"
    good = raw_upload(http, bearer, b"x" * 10)
    mixed = create(http, bearer, good, "not-a-token")
    assert mixed.status_code == 207
    statuses = [r["status"] for r in mixed.json()["newMediaItemResults"]]
    assert statuses[0] == {"message": "Success"}
    assert statuses[1]["code"] == 3


def test_list_media_items_pages(http: httpx.Client, bearer: dict[str, str]) -> None:
    tokens = [raw_upload(http, bearer, os.urandom(64)) for _ in range(7)]
    assert create(http, bearer, *tokens).status_code == 200
    seen, page_token = [], None
    while True:
        params = {"pageSize": "3", **({"pageToken": page_token} if page_token else {})}
        body = http.get("/v1/mediaItems", params=params, headers=bearer).json()
        seen += [item["id"] for item in body["mediaItems"]]
        page_token = body.get("nextPageToken")
        if not page_token:
            break
    assert len(set(seen)) == 7


def test_albums(sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]) -> None:
    album = http.post("/v1/albums", json={"album": {"title": "Trips 2024"}}, headers=bearer).json()
    assert album["title"] == "Trips 2024"
    assert album["isWriteable"] is True
    listed = http.get(
        "/v1/albums", params={"excludeNonAppCreatedData": "true"}, headers=bearer
    ).json()
    assert [a["id"] for a in listed["albums"]] == [album["id"]]
    assert http.get(f"/v1/albums/{album['id']}", headers=bearer).json()["title"] == "Trips 2024"

    into = create(http, bearer, raw_upload(http, bearer, b"a" * 10), album_id=album["id"])
    assert into.status_code == 200
    loose = create(http, bearer, raw_upload(http, bearer, b"b" * 10)).json()
    loose_id = loose["newMediaItemResults"][0]["mediaItem"]["id"]
    added = http.post(
        f"/v1/albums/{album['id']}:batchAddMediaItems",
        json={"mediaItemIds": [loose_id]},
        headers=bearer,
    )
    assert added.status_code == 200
    snapshot = sandbox.snapshot()
    assert len(snapshot["albums"][0]["mediaItemIds"]) == 2
    assert http.get(f"/v1/albums/{album['id']}", headers=bearer).json()["mediaItemsCount"] == "2"
    missing = http.post(
        "/v1/albums/nope:batchAddMediaItems", json={"mediaItemIds": [loose_id]}, headers=bearer
    )
    assert missing.status_code == 400
    assert missing.json()["error"]["message"] == "The provided ID does not match any albums."
    assert create(http, bearer, "t", album_id="nope").status_code == 400


def test_token_file_is_authorized_user_json_written_0600(sandbox: Sandbox, tmp_path: Path) -> None:
    path = sandbox.write_token_file(tmp_path / "nested" / "token.json")
    assert path.stat().st_mode & 0o777 == 0o600
    data = json.loads(path.read_text())
    assert set(data) >= {
        "token",
        "refresh_token",
        "token_uri",
        "client_id",
        "client_secret",
        "scopes",
        "expiry",
    }
    assert data["token_uri"] == f"{sandbox.url}/token"
    env = sandbox.environment(path)
    assert env["Q2GOOGLE_PHOTOS_API_URL"] == env["Q2GOOGLE_GOPRO_API_URL"] == sandbox.url
    assert "export GP_ACCESS_TOKEN=" in sandbox.export_lines(path)


@pytest.mark.parametrize("size", [0, 1, GRANULARITY, GRANULARITY + 1])
def test_single_request_upload_of_any_size(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str], size: int
) -> None:
    data = os.urandom(size)
    url = start_upload(http, bearer, size)
    final = send(http, url, data, 0, finalize=True)
    assert final.status_code == 200, final.text
    assert create(http, bearer, final.text).status_code == 200
    assert sandbox.snapshot()["mediaItems"][0]["sha256"] == hashlib.sha256(data).hexdigest()


def test_two_chunks_at_the_same_offset_cannot_both_land(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    data = os.urandom(2 * GRANULARITY)
    url = start_upload(http, bearer, len(data))
    sandbox.set_faults("bandwidth=1MiB")  # slow enough for both to be in flight together

    def racer(_: int) -> int:
        with httpx.Client(timeout=30) as own:
            return send(own, url, data[:GRANULARITY], 0).status_code

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(racer, range(2)))
    assert sorted(answers) == [200, 400]
    sandbox.set_faults(FaultConfig())
    final = send(http, url, data[GRANULARITY:], GRANULARITY, finalize=True)
    assert create(http, bearer, final.text).status_code == 200
    assert sandbox.snapshot()["mediaItems"][0]["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_body_cut_short_keeps_its_whole_granules(
    sandbox: Sandbox, http: httpx.Client, bearer: dict[str, str]
) -> None:
    import socket
    from urllib.parse import urlsplit

    data = os.urandom(4 * GRANULARITY)
    url = start_upload(http, bearer, len(data))
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port)) as raw:  # a client killed midway
        raw.sendall(
            f"POST {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"X-Goog-Upload-Command: upload, finalize\r\nX-Goog-Upload-Offset: 0\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode()
            + data[: 2 * GRANULARITY + 100]
        )
        time.sleep(0.3)
    for _ in range(50):
        received = int(query(http, url).headers["X-Goog-Upload-Size-Received"])
        if received:
            break
        time.sleep(0.05)
    assert received == 2 * GRANULARITY
    final = send(http, url, data[received:], received, finalize=True)
    assert create(http, bearer, final.text).status_code == 200
    assert sandbox.snapshot()["mediaItems"][0]["sha256"] == hashlib.sha256(data).hexdigest()
