"""The aiohttp transport against real servers on 127.0.0.1, well and badly behaved.

What matters most: only what cannot have reached the server comes out as a connect error (a
``batchCreate`` is retried on those alone), a streamed body's own error comes out as raised,
and a server that stops taking a body or answering ends the request in time.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from aiohttp import web

from q2google.http_transport import AiohttpTransport, http_client

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
SHORT = httpx.Timeout(connect=5.0, read=0.3, write=0.3, pool=0.3)


@asynccontextmanager
async def raw_server(handle: Handler) -> AsyncIterator[tuple[str, list[int]]]:
    """A TCP server on 127.0.0.1 running ``handle`` per connection; yields its origin and a
    list that counts connections."""
    connections: list[int] = []

    async def counted(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            await handle(reader, writer)
        finally:
            writer.close()

    server = await asyncio.start_server(counted, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", connections
    finally:
        server.close()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    """One request's head and its Content-Length body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.decode().split("\r\n"):
        if line.lower().startswith("content-length:"):
            length = int(line.split(":", 1)[1])
    return head + await reader.readexactly(length)


@asynccontextmanager
async def web_server() -> AsyncIterator[str]:
    """An aiohttp application: ``GET /bytes/{n}``, ``POST /echo`` (what arrived)."""

    async def some_bytes(request: web.Request) -> web.Response:
        size = int(request.match_info["size"])
        answer = web.Response(body=b"x" * size)
        answer.headers.add("X-Many", "one")
        answer.headers.add("X-Many", "two")
        return answer

    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "sha256": hashlib.sha256(body).hexdigest(),
                "size": len(body),
                "chunked": "chunked" in request.headers.get("Transfer-Encoding", ""),
                "content_length": request.headers.get("Content-Length"),
            }
        )

    async def cookie(request: web.Request) -> web.Response:
        answer = web.json_response({"cookie": request.headers.get("Cookie")})
        if "set" in request.query:
            answer.set_cookie("session", request.query["set"])
        return answer

    app = web.Application()
    app.router.add_get("/bytes/{size}", some_bytes)
    app.router.add_get("/cookie", cookie)
    app.router.add_post("/echo", echo)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def client(limits: httpx.Limits | None = None, timeout: httpx.Timeout = SHORT) -> httpx.AsyncClient:
    transport = AiohttpTransport(limits) if limits else AiohttpTransport()
    return httpx.AsyncClient(transport=transport, timeout=timeout)


async def chunks(data: bytes, size: int = 64 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_an_answer_streams_with_its_headers() -> None:
    async with web_server() as origin, client() as http:
        async with http.stream("GET", f"{origin}/bytes/300000") as answer:
            got = b"".join([piece async for piece in answer.aiter_bytes()])
        assert answer.status_code == 200
        assert answer.reason_phrase == "OK"
        assert answer.headers.get_list("X-Many") == ["one", "two"]
        assert got == b"x" * 300_000


async def test_a_streamed_body_with_its_length_goes_whole_and_unchunked() -> None:
    data = os.urandom(1_000_003)
    async with web_server() as origin, client() as http:
        answer = await http.post(
            f"{origin}/echo", content=chunks(data), headers={"Content-Length": str(len(data))}
        )
        unsized = await http.post(f"{origin}/echo", content=chunks(data))
    expected = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    assert answer.json() == {**expected, "chunked": False, "content_length": str(len(data))}
    assert unsized.json() | {"content_length": None} == {
        **expected,
        "chunked": True,
        "content_length": None,
    }


async def test_json_bodies_and_keep_alive() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while not reader.at_eof():
            try:
                request = await read_request(reader)
            except asyncio.IncompleteReadError:
                return
            body = request.split(b"\r\n\r\n", 1)[1]
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()

    async with raw_server(handle) as (origin, connections), client() as http:
        for number in range(3):
            answer = await http.post(origin, json={"n": number})
            assert answer.json() == {"n": number}
    assert len(connections) == 1, "one connection, kept alive"


async def test_the_proxy_of_the_environment_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    """As with httpx's own transport: a NAS or a container may reach out only through one."""
    asked: list[bytes] = []

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append(await read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nproxied")
        await writer.drain()

    async with raw_server(proxy) as (origin, _):
        for name in ("NO_PROXY", "no_proxy", "http_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTP_PROXY", origin)
        async with client() as http:
            answer = await http.get("http://cdn.invalid/GOPR0001.JPG")
    assert answer.text == "proxied"
    assert asked[0].startswith(b"GET http://cdn.invalid/GOPR0001.JPG HTTP/1.1")

    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    async with raw_server(proxy) as (origin, _), web_server() as direct:
        monkeypatch.setenv("HTTP_PROXY", origin)
        async with client() as http:
            answer = await http.get(f"{direct}/bytes/3")
    assert answer.content == b"xxx"
    assert len(asked) == 1, "NO_PROXY's hosts are reached directly"


async def test_a_refused_connection_is_a_connect_error_naming_no_url() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with client() as http:
        with pytest.raises(httpx.ConnectError) as refused:
            await http.get(f"http://127.0.0.1:{port}/file?Signature=SECRET")
    assert "SECRET" not in str(refused.value)


async def test_a_drop_after_the_request_went_out_is_not_a_connect_error() -> None:
    """A batchCreate whose answer is lost may have committed: it must not look unsent."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        received.append(await read_request(reader))  # then close without answering

    async with raw_server(handle) as (origin, _), client() as http:
        with pytest.raises(httpx.TransportError) as dropped:
            await http.post(origin, json={"newMediaItems": []})
    assert received, "the request reached the server"
    assert isinstance(dropped.value, httpx.RemoteProtocolError)
    assert not isinstance(dropped.value, httpx.ConnectError | httpx.ConnectTimeout)


async def test_a_body_cut_short_is_a_protocol_error() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"y" * 10)
        await writer.drain()

    async with (
        raw_server(handle) as (origin, _),
        client() as http,
        http.stream("GET", origin) as answer,
    ):
        with pytest.raises(httpx.RemoteProtocolError):
            await answer.aread()


async def test_a_server_that_never_answers_is_a_read_timeout() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(30)

    async with raw_server(handle) as (origin, _), client() as http:
        with pytest.raises(httpx.ReadTimeout):
            await http.get(origin)


async def test_a_server_that_stops_taking_the_body_is_a_write_timeout() -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)  # reads nothing: the socket's buffers fill

    data = bytes(64 * 1024 * 1024)
    async with raw_server(handle) as (origin, _), client() as http:
        with pytest.raises(httpx.WriteTimeout):
            await http.post(
                origin, content=chunks(data), headers={"Content-Length": str(len(data))}
            )


async def test_a_slow_body_source_is_not_a_write_timeout() -> None:
    """Only the socket's time counts: a body whose source waits (a CDN) is not cut."""

    async def slow() -> AsyncIterator[bytes]:
        for _ in range(3):
            await asyncio.sleep(0.2)  # with the 0.3 s write timeout: 0.6 s in all
            yield b"z" * 1000

    async with web_server() as origin, client() as http:
        answer = await http.post(
            f"{origin}/echo", content=slow(), headers={"Content-Length": "3000"}
        )
    assert answer.json()["size"] == 3000


async def test_an_error_of_the_body_comes_out_as_raised() -> None:
    class SourceFailedError(Exception):
        pass

    async def failing() -> AsyncIterator[bytes]:
        yield b"a" * 1000
        raise SourceFailedError("the CDN body ended early")

    async with web_server() as origin, client() as http:
        with pytest.raises(SourceFailedError, match="ended early"):
            await http.post(f"{origin}/echo", content=failing(), headers={"Content-Length": "5000"})


async def test_no_free_connection_in_time_is_a_connect_timeout() -> None:
    """Waiting for the pool never sends anything: the one error that is safe to resend."""
    requests: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        requests.append(await read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n12345")
        await writer.drain()
        await asyncio.sleep(30)

    async with (
        raw_server(handle) as (origin, _),
        client(httpx.Limits(max_connections=1), httpx.Timeout(0.2)) as http,
        http.stream("GET", origin),  # holds the only connection
    ):
        with pytest.raises(httpx.ConnectTimeout):
            await http.post(origin, json={"newMediaItems": []})
    assert len(requests) == 1


async def test_an_answer_closed_unread_does_not_leave_its_connection_in_the_pool() -> None:
    async with web_server() as origin, client() as http:
        async with http.stream("GET", f"{origin}/bytes/5000000"):
            pass  # closed before its body was read
        again = await http.get(f"{origin}/bytes/10")
    assert again.content == b"x" * 10


async def test_closing_the_client_closes_the_session() -> None:
    transport = AiohttpTransport()
    async with web_server() as origin, httpx.AsyncClient(transport=transport) as http:
        await http.get(f"{origin}/bytes/1")
        assert transport._session is not None
    assert transport._session is None


async def test_the_request_goes_as_httpx_built_it() -> None:
    """A signed URL's escapes are part of its signature; no header httpx would not send."""
    asked: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        asked.append(await read_request(reader))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async with raw_server(handle) as (origin, _), client() as http:
        await http.post(f"{origin}/a%7eb%5b?X-Signature=ab%2Fc%3D", content=b"body")
    head = asked[0].split(b"\r\n\r\n")[0].decode().lower()
    assert head.startswith("post /a%7eb%5b?x-signature=ab%2fc%3d http/1.1")
    assert "content-type" not in head


async def test_cookies_an_answer_sets_are_sent_back_and_others_cost_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``http_client`` looks for cookies only in answers that set one, and keeps those."""
    looked: list[str] = []
    extract = httpx.Cookies.extract_cookies

    def spied(self: httpx.Cookies, response: httpx.Response) -> None:
        looked.append(response.url.path)
        extract(self, response)

    monkeypatch.setattr(httpx.Cookies, "extract_cookies", spied)
    async with web_server() as origin, http_client(timeout=SHORT) as http:
        assert (await http.get(f"{origin}/cookie")).json() == {"cookie": None}
        assert (await http.get(f"{origin}/cookie", params={"set": "abc"})).json() == {
            "cookie": None
        }
        assert (await http.get(f"{origin}/cookie")).json() == {"cookie": "session=abc"}
        assert http.cookies.get("session") == "abc"
    assert looked == ["/cookie"], "only the answer that set one was looked at"
    async with web_server() as origin, http_client(cookies={"given": "1"}) as http:
        assert (await http.get(f"{origin}/cookie")).json() == {"cookie": "given=1"}
