"""Raw uploads over a mocked network (respx): one request, the whole body again after a break."""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
import respx

from q2google.gphotos.models import GoogleAPIError
from q2google.retry import QuotaExhaustedError
from tests.test_google_client import BASE, SESSION, Harness, session_route, started

RAW_MAX = 1024 * 1024
DAILY = {
    "error": {
        "code": 429,
        "status": "RESOURCE_EXHAUSTED",
        "message": "Quota exceeded for quota metric 'All requests' and limit 'All requests per "
        "day' of service 'photoslibrary.googleapis.com'.",
    }
}


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


def raw_harness() -> Harness:
    harness = Harness()
    harness.client.raw_max_bytes = RAW_MAX
    return harness


def raw_route(router: respx.MockRouter) -> respx.Route:
    return router.post("/v1/uploads", headers={"X-Goog-Upload-Protocol": "raw"})


async def test_a_small_file_goes_in_one_raw_request(mock: respx.MockRouter) -> None:
    harness, data = raw_harness(), os.urandom(700_000)
    route = raw_route(mock).respond(200, text="TOKEN\n")
    assert await harness.upload(data) == "TOKEN"
    assert route.call_count == 1
    sent = route.calls.last.request
    assert sent.content == data
    assert sent.headers["Content-Type"] == "application/octet-stream"
    assert sent.headers["Content-Length"] == str(len(data))
    assert sent.headers["X-Goog-Upload-Content-Type"] == "image/jpeg"
    assert sent.headers["X-Goog-Upload-File-Name"] == "GOPR0001.JPG"
    assert sent.headers["Authorization"] == "Bearer tok-1"
    assert "X-Goog-Upload-Command" not in sent.headers
    assert harness.progress == [], "no session: nothing to checkpoint"
    assert harness.opened_at == [0]


async def test_a_503_sends_the_whole_body_again_from_zero(mock: respx.MockRouter) -> None:
    harness, data = raw_harness(), os.urandom(RAW_MAX)
    route = raw_route(mock)
    route.side_effect = [httpx.Response(503), httpx.Response(200, text="TOKEN")]
    assert await harness.upload(data) == "TOKEN"
    assert route.call_count == 2
    assert route.calls[1].request.content == data
    assert route.calls[1].request.headers["Content-Length"] == str(len(data))
    assert harness.opened_at == [0, 0]
    assert len(harness.delays) == 1


async def test_a_connection_reset_midway_sends_it_all_again(mock: respx.MockRouter) -> None:
    harness, data = raw_harness(), os.urandom(900_000)
    seen: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        if len(seen) == 1:
            raise httpx.RemoteProtocolError("peer closed connection midway", request=request)
        return httpx.Response(200, text="TOKEN")

    raw_route(mock).side_effect = answer
    assert await harness.upload(data) == "TOKEN"
    assert seen == [data, data]
    assert harness.opened_at == [0, 0]


async def test_a_source_failing_midway_is_read_again_from_zero(mock: respx.MockRouter) -> None:
    harness, data = raw_harness(), os.urandom(600_000)
    opened: list[int] = []

    async def flaky(offset: int):  # type: ignore[no-untyped-def]
        opened.append(offset)
        yield data[offset : offset + 100_000]
        if len(opened) == 1:
            raise httpx.ReadError("CDN dropped")
        yield data[offset + 100_000 :]

    route = raw_route(mock).respond(200, text="TOKEN")
    token = await harness.client.upload(
        flaky, size=len(data), file_name="GOPR0001.JPG", mime_type="image/jpeg"
    )
    assert token == "TOKEN"
    assert opened == [0, 0]
    assert route.calls.last.request.content == data


async def test_a_400_is_refused_for_good(mock: respx.MockRouter) -> None:
    harness = raw_harness()
    route = raw_route(mock).respond(
        400, json={"error": {"code": 400, "status": "INVALID_ARGUMENT", "message": "bad"}}
    )
    with pytest.raises(GoogleAPIError, match="HTTP 400 INVALID_ARGUMENT"):
        await harness.upload(os.urandom(1000))
    assert route.call_count == 1
    assert harness.delays == []


async def test_the_daily_quota_429_stops_without_retrying(mock: respx.MockRouter) -> None:
    harness = raw_harness()
    route = raw_route(mock).respond(429, json=DAILY)
    with pytest.raises(QuotaExhaustedError, match="run the same command again"):
        await harness.upload(os.urandom(1000))
    assert route.call_count == 1


async def test_a_per_minute_429_is_retried_after_retry_after(mock: respx.MockRouter) -> None:
    harness, data = raw_harness(), os.urandom(1000)
    route = raw_route(mock)
    route.side_effect = [
        httpx.Response(429, headers={"Retry-After": "3"}, json={"error": {"code": 429}}),
        httpx.Response(200, text="TOKEN"),
    ]
    assert await harness.upload(data) == "TOKEN"
    assert harness.delays == [3.0]
    assert route.calls[1].request.content == data


async def test_a_401_refreshes_the_token_and_sends_the_body_again(
    mock: respx.MockRouter,
) -> None:
    harness, data = raw_harness(), os.urandom(5000)
    route = raw_route(mock)
    route.side_effect = [httpx.Response(401), httpx.Response(200, text="TOKEN")]
    assert await harness.upload(data) == "TOKEN"
    assert route.calls[1].request.headers["Authorization"] == "Bearer tok-2"
    assert route.calls[1].request.content == data


async def test_an_empty_answer_is_an_error(mock: respx.MockRouter) -> None:
    harness = raw_harness()
    raw_route(mock).respond(200, text="")
    with pytest.raises(GoogleAPIError):
        await harness.upload(os.urandom(10))


async def test_larger_files_and_sessions_to_continue_go_resumable(
    mock: respx.MockRouter,
) -> None:
    harness, data = raw_harness(), os.urandom(RAW_MAX + 1)
    raw = raw_route(mock).respond(200, text="RAW")
    start = started(mock)
    session_route(mock, "upload, finalize").respond(200, text="RESUMABLE")
    assert await harness.upload(data) == "RESUMABLE"
    assert start.call_count == 1
    session_route(mock, "query").respond(
        200, headers={"X-Goog-Upload-Status": "active", "X-Goog-Upload-Size-Received": "0"}
    )
    small = os.urandom(10)
    assert await harness.upload(small, upload_url=SESSION) == "RESUMABLE", "continued"
    assert await harness.upload(small) == "RAW"
    assert raw.call_count == 1
    assert start.call_count == 1
