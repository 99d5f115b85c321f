"""GooglePhotosClient over a mocked network (respx): every branch of the protocols."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import respx

from q2google.gphotos.api import GooglePhotosAPI
from q2google.gphotos.models import GoogleAPIError
from q2google.photos import GooglePhotosClient, NewItemSpec
from q2google.retry import QuotaExhaustedError, RetryableStatusError, RetryPolicy, parse_retry_after

BASE = "https://photos.test"
SESSION = f"{BASE}/v1/uploads?upload_id=abc&upload_protocol=resumable"
G = 256 * 1024


class FakeTokens:
    """Access tokens tok-1, tok-2, ...: each refresh issues the next one."""

    def __init__(self) -> None:
        self.number, self.refreshes = 1, 0

    async def access_token(self) -> str:
        return f"tok-{self.number}"

    async def refresh(self, rejected: str | None = None) -> str:
        self.refreshes += 1
        self.number += 1
        return f"tok-{self.number}"


class Harness:
    def __init__(self, chunk_size: int = 64 * 1024 * 1024) -> None:
        self.delays: list[float] = []

        async def sleep(seconds: float) -> None:
            self.delays.append(seconds)

        self.policy = RetryPolicy(attempts=4, sleep=sleep, jitter_seconds=0)
        self.tokens = FakeTokens()
        self.api = GooglePhotosAPI(  # respx answers for httpx's own transport (httpcore)
            BASE, self.tokens, policy=self.policy, transport=httpx.AsyncHTTPTransport()
        )
        self.client = GooglePhotosClient(  # these tests are about the resumable protocol
            self.api, chunk_size=chunk_size, policy=self.policy, raw_max_bytes=0
        )
        self.opened_at: list[int] = []
        self.progress: list[tuple[str, int]] = []

    def source(self, data: bytes) -> object:
        async def read(offset: int) -> AsyncIterator[bytes]:
            self.opened_at.append(offset)
            for start in range(offset, len(data), 100_000):
                yield data[start : start + 100_000]

        return read

    async def upload(self, data: bytes, upload_url: str | None = None) -> str:
        return await self.client.upload(
            self.source(data),  # type: ignore[arg-type]
            size=len(data),
            file_name="GOPR0001.JPG",
            mime_type="image/jpeg",
            upload_url=upload_url,
            on_progress=lambda url, offset: self.progress.append((url, offset)),
        )


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def started(router: respx.MockRouter) -> respx.Route:
    return router.post("/v1/uploads", headers={"X-Goog-Upload-Command": "start"}).respond(
        200,
        headers={
            "X-Goog-Upload-URL": SESSION,
            "X-Goog-Upload-Chunk-Granularity": str(G),
            "X-Goog-Upload-Status": "active",
        },
    )


def session_route(router: respx.MockRouter, command: str) -> respx.Route:
    return router.post(SESSION, headers={"X-Goog-Upload-Command": command})


def query_answer(received: int, status: str = "active", token: str = "") -> httpx.Response:
    return httpx.Response(
        200,
        text=token,
        headers={"X-Goog-Upload-Status": status, "X-Goog-Upload-Size-Received": str(received)},
    )


async def test_start_then_one_streamed_upload_finalize(mock: respx.MockRouter) -> None:
    harness, data = Harness(), os.urandom(700_000)
    start = started(mock)
    finalize = session_route(mock, "upload, finalize").respond(200, text="TOKEN")
    assert await harness.upload(data) == "TOKEN"
    start_headers = start.calls.last.request.headers
    assert start_headers["X-Goog-Upload-Protocol"] == "resumable"
    assert start_headers["X-Goog-Upload-Raw-Size"] == str(len(data))
    assert start_headers["X-Goog-Upload-Content-Type"] == "image/jpeg"
    sent = finalize.calls.last.request
    assert sent.headers["X-Goog-Upload-Offset"] == "0"
    assert sent.headers["Content-Length"] == str(len(data))
    assert sent.content == data
    assert harness.progress == [(SESSION, 0), (SESSION, len(data))]


async def test_chunks_are_granular_and_the_last_finalizes(mock: respx.MockRouter) -> None:
    harness, data = Harness(chunk_size=G + 1000), os.urandom(2 * G + 5)
    started(mock)
    chunk = session_route(mock, "upload").respond(200, headers={"X-Goog-Upload-Status": "active"})
    finalize = session_route(mock, "upload, finalize").respond(200, text="TOKEN")
    assert await harness.upload(data) == "TOKEN"
    offsets = [call.request.headers["X-Goog-Upload-Offset"] for call in chunk.calls]
    assert offsets == ["0", str(G)]
    assert all(len(call.request.content) == G for call in chunk.calls)
    assert finalize.calls.last.request.content == data[2 * G :]
    assert harness.opened_at == [0], "one pass over the source, no re-reads"
    assert [offset for _, offset in harness.progress] == [0, G, 2 * G, len(data)]


async def test_dropped_connection_queries_and_resumes_from_the_confirmed_offset(
    mock: respx.MockRouter,
) -> None:
    harness, data = Harness(), os.urandom(3 * G)
    started(mock)
    finalize = session_route(mock, "upload, finalize")
    finalize.side_effect = [httpx.ReadError("connection reset"), httpx.Response(200, text="TOKEN")]
    query = session_route(mock, "query").mock(return_value=query_answer(G))
    assert await harness.upload(data) == "TOKEN"
    assert query.call_count == 1
    resumed = finalize.calls.last.request
    assert resumed.headers["X-Goog-Upload-Offset"] == str(G)
    assert resumed.content == data[G:]
    assert harness.opened_at == [0, G], "the source is reopened at the confirmed offset"
    assert len(harness.delays) == 1


async def test_a_5xx_mid_upload_also_resumes(mock: respx.MockRouter) -> None:
    harness, data = Harness(), os.urandom(G + 10)
    started(mock)
    finalize = session_route(mock, "upload, finalize")
    finalize.side_effect = [httpx.Response(503), httpx.Response(200, text="TOKEN")]
    session_route(mock, "query").mock(return_value=query_answer(0))
    assert await harness.upload(data) == "TOKEN"
    assert finalize.calls.last.request.content == data


async def test_another_process_continues_an_upload_from_its_session_url(
    mock: respx.MockRouter,
) -> None:
    harness, data = Harness(), os.urandom(2 * G)
    start = started(mock)
    session_route(mock, "query").mock(return_value=query_answer(G))
    finalize = session_route(mock, "upload, finalize").respond(200, text="TOKEN")
    assert await harness.upload(data, upload_url=SESSION) == "TOKEN"
    assert start.call_count == 0
    assert finalize.calls.last.request.content == data[G:]
    assert harness.opened_at == [G]


async def test_a_finished_upload_is_not_sent_again(mock: respx.MockRouter) -> None:
    harness = Harness()
    session_route(mock, "query").mock(return_value=query_answer(10, "final", "TOKEN"))
    finalize = session_route(mock, "upload, finalize")
    assert await harness.upload(os.urandom(10), upload_url=SESSION) == "TOKEN"
    assert finalize.call_count == 0
    assert harness.opened_at == []


async def test_a_session_google_forgot_starts_over(mock: respx.MockRouter) -> None:
    harness, data = Harness(), os.urandom(G)
    session_route(mock, "query").respond(404)
    start = started(mock)
    finalize = session_route(mock, "upload, finalize").respond(200, text="TOKEN")
    assert await harness.upload(data, upload_url=SESSION) == "TOKEN"
    assert start.call_count == 1
    assert finalize.calls.last.request.content == data


async def test_404_on_a_chunk_starts_over(mock: respx.MockRouter) -> None:
    harness, data = Harness(), os.urandom(G)
    start = started(mock)
    finalize = session_route(mock, "upload, finalize")
    finalize.side_effect = [httpx.Response(404), httpx.Response(200, text="TOKEN")]
    assert await harness.upload(data) == "TOKEN"
    assert start.call_count == 2


async def test_offset_mismatch_uses_the_size_received(mock: respx.MockRouter) -> None:
    harness, data = Harness(chunk_size=G), os.urandom(3 * G)
    started(mock)
    chunk = session_route(mock, "upload")
    chunk.side_effect = [
        httpx.Response(
            400,
            headers={"X-Goog-Upload-Size-Received": str(2 * G)},
            json={"error": {"code": 400, "message": "offset", "status": "INVALID"}},
        ),
    ]
    session_route(mock, "query").mock(return_value=query_answer(2 * G))
    finalize = session_route(mock, "upload, finalize").respond(200, text="TOKEN")
    assert await harness.upload(data) == "TOKEN"
    assert finalize.calls.last.request.headers["X-Goog-Upload-Offset"] == str(2 * G)
    assert finalize.calls.last.request.content == data[2 * G :]


async def test_401_refreshes_the_token_and_resends(mock: respx.MockRouter) -> None:
    harness = Harness()
    route = mock.post("/v1/mediaItems:batchCreate")
    route.side_effect = [
        httpx.Response(401, json={"error": {"code": 401, "status": "UNAUTHENTICATED"}}),
        httpx.Response(
            200,
            json={
                "newMediaItemResults": [
                    {"uploadToken": "t", "status": {"message": "Success"}, "mediaItem": {"id": "m"}}
                ]
            },
        ),
    ]
    (result,) = await harness.client.create_media_items([NewItemSpec("t", "a.jpg")])
    assert result.ok
    tokens = [call.request.headers["Authorization"] for call in route.calls]
    assert tokens == ["Bearer tok-1", "Bearer tok-2"]
    assert harness.tokens.refreshes == 1


async def test_401_during_a_streamed_chunk_refreshes_then_resumes(mock: respx.MockRouter) -> None:
    harness, data = Harness(), os.urandom(G)
    started(mock)
    finalize = session_route(mock, "upload, finalize")
    finalize.side_effect = [httpx.Response(401), httpx.Response(200, text="TOKEN")]
    session_route(mock, "query").mock(return_value=query_answer(0))
    assert await harness.upload(data) == "TOKEN"
    assert finalize.calls.last.request.headers["Authorization"] == "Bearer tok-2"


async def test_429_waits_exactly_retry_after(mock: respx.MockRouter) -> None:
    harness = Harness()
    route = mock.post("/v1/mediaItems:batchCreate")
    route.side_effect = [
        httpx.Response(
            429,
            headers={"Retry-After": "7"},
            json={
                "error": {
                    "code": 429,
                    "status": "RESOURCE_EXHAUSTED",
                    "message": "Quota exceeded for 'Write requests' per minute per user",
                }
            },
        ),
        httpx.Response(
            200,
            json={
                "newMediaItemResults": [
                    {"uploadToken": "t", "status": {}, "mediaItem": {"id": "m"}}
                ]
            },
        ),
    ]
    (result,) = await harness.client.create_media_items([NewItemSpec("t", "a.jpg")])
    assert result.ok
    assert harness.delays == [7.0]


async def test_daily_quota_stops_without_retrying(mock: respx.MockRouter) -> None:
    harness = Harness()
    route = mock.post("/v1/mediaItems:batchCreate").respond(
        429,
        json={
            "error": {
                "code": 429,
                "status": "RESOURCE_EXHAUSTED",
                "message": "Quota exceeded for 'All requests' and limit 'All requests per "
                "day' of service 'photoslibrary.googleapis.com'.",
            }
        },
    )
    with pytest.raises(QuotaExhaustedError, match="run the same command again") as caught:
        await harness.client.create_media_items([NewItemSpec("t", "a.jpg")])
    assert route.call_count == 1
    assert caught.value.exit_code == 75


async def test_other_4xx_are_never_retried(mock: respx.MockRouter) -> None:
    harness = Harness()
    route = mock.post("/v1/mediaItems:batchCreate").respond(
        400,
        json={
            "error": {
                "code": 400,
                "status": "INVALID_ARGUMENT",
                "message": "Request contains an invalid\nargument.",
            }
        },
    )
    with pytest.raises(GoogleAPIError, match="HTTP 400 INVALID_ARGUMENT") as caught:
        await harness.client.create_media_items([NewItemSpec("t", "a.jpg")])
    assert route.call_count == 1
    assert "\n" not in str(caught.value)


async def test_5xx_retries_are_bounded(mock: respx.MockRouter) -> None:
    harness = Harness()
    route = mock.get("/v1/albums").respond(503)
    with pytest.raises(RetryableStatusError):
        await harness.client.find_or_create_album("x")
    assert route.call_count == harness.policy.attempts
    assert len(harness.delays) == harness.policy.attempts - 1


async def test_per_item_failures_transient_retried_permanent_returned(
    mock: respx.MockRouter,
) -> None:
    harness = Harness()
    route = mock.post("/v1/mediaItems:batchCreate")
    route.side_effect = [
        httpx.Response(
            207,
            json={
                "newMediaItemResults": [
                    {
                        "uploadToken": "a",
                        "status": {"message": "Success"},
                        "mediaItem": {"id": "A"},
                    },
                    {"uploadToken": "b", "status": {"code": 13, "message": "Internal error"}},
                    {"uploadToken": "c", "status": {"code": 3, "message": "invalid token"}},
                ]
            },
        ),
        httpx.Response(
            200,
            json={
                "newMediaItemResults": [
                    {"uploadToken": "b", "status": {"message": "Success"}, "mediaItem": {"id": "B"}}
                ]
            },
        ),
    ]
    results = await harness.client.create_media_items(
        [NewItemSpec("a", "a.jpg"), NewItemSpec("b", "b.jpg", "desc"), NewItemSpec("c", "c.jpg")]
    )
    assert [r.ok for r in results] == [True, True, False]
    assert results[2].status.code == 3
    second = route.calls.last.request
    assert b'"uploadToken":"b"' in second.content
    assert b'"uploadToken":"a"' not in second.content


async def test_batches_hold_at_most_50(mock: respx.MockRouter) -> None:
    harness = Harness()

    def echo(request: httpx.Request) -> httpx.Response:
        items = json.loads(request.content)["newMediaItems"]
        return httpx.Response(
            200,
            json={
                "newMediaItemResults": [
                    {
                        "uploadToken": item["simpleMediaItem"]["uploadToken"],
                        "status": {},
                        "mediaItem": {"id": item["simpleMediaItem"]["uploadToken"]},
                    }
                    for item in items
                ]
            },
        )

    route = mock.post("/v1/mediaItems:batchCreate").mock(side_effect=echo)
    results = await harness.client.create_media_items(
        [NewItemSpec(f"t{n}", f"{n}.jpg") for n in range(120)], album_id="ALBUM"
    )
    assert [r.media_item.id for r in results if r.media_item] == [f"t{n}" for n in range(120)]
    sizes = [len(__import__("json").loads(c.request.content)["newMediaItems"]) for c in route.calls]
    assert sizes == [50, 50, 20]
    assert all(b'"albumId":"ALBUM"' in call.request.content for call in route.calls)


async def test_find_or_create_album_pages_then_creates_once(mock: respx.MockRouter) -> None:
    harness = Harness()
    listing = mock.get("/v1/albums")
    listing.side_effect = [
        httpx.Response(
            200, json={"albums": [{"id": "1", "title": "Other"}], "nextPageToken": "p2"}
        ),
        httpx.Response(200, json={"albums": [{"id": "2", "title": "Also other"}]}),
        # listed again after creating: another process made one at the same instant
        httpx.Response(
            200,
            json={"albums": [{"id": "NEW", "title": "Trips"}, {"id": "ALSO", "title": "Trips"}]},
        ),
    ]
    create = mock.post("/v1/albums").respond(200, json={"id": "NEW", "title": "Trips"})
    assert await harness.client.find_or_create_album("Trips") == "ALSO", "both choose one"
    assert await harness.client.find_or_create_album("Trips") == "ALSO"
    assert create.call_count == 1
    assert listing.calls[1].request.url.params["pageToken"] == "p2"
    assert listing.calls[0].request.url.params["excludeNonAppCreatedData"] == "true"


def test_retry_after_forms() -> None:
    assert parse_retry_after("12") == 12.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_upload_file_path_streams_from_disk(mock: respx.MockRouter, tmp_path: Path) -> None:
    path = tmp_path / "GOPR0001.JPG"
    data = os.urandom(3 * G + 7)
    path.write_bytes(data)
    harness = Harness(chunk_size=G)
    started(mock)
    session_route(mock, "upload").respond(200)
    finalize = session_route(mock, "upload, finalize").respond(200, text="TOKEN")
    assert await harness.client.upload_file_path(path) == "TOKEN"
    assert finalize.calls.last.request.content == data[3 * G :]


async def test_a_source_failing_mid_chunk_never_shifts_bytes(mock: respx.MockRouter) -> None:
    # 4 MiB source pieces, sent in 1 MiB blocks; the source dies after its first piece once.
    harness, data = Harness(), os.urandom(12 * 1024 * 1024)
    failed = False

    async def source(offset: int) -> AsyncIterator[bytes]:
        nonlocal failed
        harness.opened_at.append(offset)
        for start in range(offset, len(data), 4 * 1024 * 1024):
            yield data[start : start + 4 * 1024 * 1024]
            if not failed:
                failed = True
                raise httpx.ReadError("CDN dropped")

    received = bytearray()

    def google(request: httpx.Request) -> httpx.Response:
        offset = int(request.headers["X-Goog-Upload-Offset"])
        try:
            body = request.read()
        except httpx.ReadError:
            return httpx.Response(500)
        assert offset == len(received), "bytes must arrive in order, none skipped"
        received.extend(body)
        return httpx.Response(200, text="TOKEN")

    started(mock)
    session_route(mock, "upload, finalize").mock(side_effect=google)
    session_route(mock, "query").mock(side_effect=lambda _: query_answer(len(received)))
    token = await harness.client.upload(
        source, size=len(data), file_name="v.mp4", mime_type="video/mp4"
    )
    assert token == "TOKEN"
    assert bytes(received) == data


async def test_the_session_granularity_sizes_the_chunks(mock: respx.MockRouter) -> None:
    unit = 8 * 1024 * 1024
    harness, data = Harness(chunk_size=4 * 1024 * 1024), os.urandom(2 * unit + 5)
    mock.post("/v1/uploads", headers={"X-Goog-Upload-Command": "start"}).respond(
        200, headers={"X-Goog-Upload-URL": SESSION, "X-Goog-Upload-Chunk-Granularity": str(unit)}
    )
    chunk = session_route(mock, "upload").respond(200)
    session_route(mock, "upload, finalize").respond(200, text="TOKEN")
    assert await harness.upload(data) == "TOKEN"
    assert [len(call.request.content) for call in chunk.calls] == [unit, unit]
    assert harness.client.chunk_size == 4 * 1024 * 1024, "the shared setting is left alone"


async def test_progress_gives_the_next_step_a_fresh_retry_budget(mock: respx.MockRouter) -> None:
    harness, data = Harness(), os.urandom(8 * G)  # policy: 4 attempts per step
    started(mock)
    confirmed = [0]

    def drop_after_progress(request: httpx.Request) -> httpx.Response:
        offset = int(request.headers["X-Goog-Upload-Offset"])
        if offset + G < len(data):  # Google keeps one more granule each time, then drops
            confirmed[0] = offset + G
            raise httpx.ReadError("dropped")
        return httpx.Response(200, text="TOKEN")

    session_route(mock, "upload, finalize").mock(side_effect=drop_after_progress)
    session_route(mock, "query").mock(side_effect=lambda _: query_answer(confirmed[0]))
    assert await harness.upload(data) == "TOKEN"  # 7 drops, more than one step's 4 attempts


async def test_a_401_that_survives_refresh_names_the_fix(mock: respx.MockRouter) -> None:
    from q2google.gphotos.models import GoogleAuthError

    harness = Harness()
    mock.get("/v1/albums").respond(401, json={"error": {"code": 401, "status": "UNAUTHENTICATED"}})
    with pytest.raises(GoogleAuthError, match="q2google auth google"):
        await harness.client.find_or_create_album("x")


async def test_a_token_file_that_is_not_an_object(tmp_path: Path) -> None:
    from q2google.gphotos.models import GoogleAuthError
    from q2google.gphotos.oauth import GooglePhotosOAuth

    (tmp_path / "t.json").write_text("[]")
    with pytest.raises(GoogleAuthError, match="not an object"):
        await GooglePhotosOAuth(tmp_path / "t.json").access_token()
