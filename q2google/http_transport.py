"""An httpx transport over aiohttp: httpx's API above, aiohttp's HTTP/1.1 on the wire.

httpx's own transport (httpcore, h11 and anyio, all pure Python) cost a small photo about
twice the CPU of everything else q2google does for it: on 2,000 photos of 64 KiB, the
streaming reference of ``benchmarks/speed.py`` takes 7.7 s over it and 3.8 s over aiohttp,
whose parser is compiled. aiohttp comes with gopro-api, which q2google already uses for the
GoPro API.

Not `httpx-aiohttp`_: its exception table turns a server that drops the connection after the
request went out into ``httpx.ConnectTimeout``, which says *never sent*. q2google retries
what was never sent, so a ``batchCreate`` that Google had committed would be sent again. Here
only what cannot have reached the server is a connect error (:func:`translated`), an error
raised by a streamed request body reaches the caller as it was raised, as with httpx's own
transport, and a streamed body that the server stops taking fails with
``httpx.WriteTimeout`` (aiohttp has no write timeout).

.. _httpx-aiohttp: https://pypi.org/project/httpx-aiohttp/
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections.abc import AsyncIterable, AsyncIterator
from http.cookiejar import CookieJar
from typing import Any

import aiohttp
import httpx
import yarl

DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)
"""httpx's own defaults."""
_NOT_ADDED = frozenset({"Content-Type"})
"""Headers aiohttp would add that httpx does not (a body's type is the caller's to say)."""
CookieTypes = httpx.Cookies | CookieJar | dict[str, str] | list[tuple[str, str]]
"""What httpx takes as cookies."""
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)


def http_client(
    *, transport: httpx.AsyncBaseTransport | None = None, **options: Any
) -> httpx.AsyncClient:
    """An httpx client over :class:`AiohttpTransport` (or ``transport``) that reads cookies
    only from answers that set one.

    Args:
        transport: Another transport (tests pass a mock one).
        options: ``httpx.AsyncClient``'s other arguments.
    """
    return _Client(transport=transport or AiohttpTransport(), **options)


class _CookiesWhenSet(httpx.Cookies):
    """httpx's cookies, looked for only in an answer that has a ``Set-Cookie`` header: httpx
    builds urllib's views of every answer to look, several percent of a small photo's CPU
    (neither Google's API nor the CDN sets cookies)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        if "set-cookie" in response.headers:
            super().extract_cookies(response)


class _Client(httpx.AsyncClient):
    """:func:`http_client`'s client: its cookies are :class:`_CookiesWhenSet`."""

    def __init__(self, *, cookies: CookieTypes | None = None, **options: Any) -> None:
        super().__init__(**options)
        self._kept_cookies = _CookiesWhenSet(cookies)

    @property
    def cookies(self) -> httpx.Cookies:
        return self._kept_cookies

    @cookies.setter
    def cookies(self, cookies: CookieTypes) -> None:
        self._kept_cookies = _CookiesWhenSet(cookies)


class AiohttpTransport(httpx.AsyncBaseTransport):
    """Send httpx requests through one aiohttp session (made on first use, in the loop).

    Cookies, redirects, authentication and content decoding stay httpx's; the session keeps
    no cookies and decompresses nothing. Proxies come from the environment, as with httpx's
    own transport (httpx does not read them for a transport it is given). Timeouts come from
    each request (httpx's ``timeout``): ``connect`` and ``pool`` bound getting a connection,
    ``read`` each wait for the answer, ``write`` each chunk of a streamed body.

    Args:
        limits: ``max_connections`` and ``keepalive_expiry`` (aiohttp keeps every idle
            connection up to the first).
    """

    def __init__(self, limits: httpx.Limits = DEFAULT_LIMITS) -> None:
        self._limits = limits
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[tuple[str, str], str | None] = {}

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                limit=self._limits.max_connections or 0,
                keepalive_timeout=self._limits.keepalive_expiry,
                ssl=httpx.create_ssl_context(),  # certifi and SSL_CERT_FILE, as httpx
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send ``request``; the answer's body streams from the connection.

        Raises:
            httpx.TransportError: See :func:`translated`.
            Exception: What a streamed request body raised, unchanged.
        """
        session = self._open()
        timeout: dict[str, float | None] = request.extensions.get("timeout", {})
        headers = [(k, v) for k, v in request.headers.multi_items() if k != "transfer-encoding"]
        pacing = _Pacing(timeout.get("write"))
        body: bytes | aiohttp.payload.Payload | None
        try:
            body = request.content or None
        except httpx.RequestNotRead:  # streamed: aiohttp chunks it unless Content-Length says
            stream = request.stream
            assert isinstance(stream, httpx.AsyncByteStream), "an async client's request"
            body = aiohttp.payload.AsyncIterablePayload(pacing.body(stream))
        try:
            async with asyncio.timeout(None) as deadline:
                pacing.deadline = deadline
                answer = await session.request(
                    request.method,
                    yarl.URL(str(request.url), encoded=True),  # as httpx sends it: a signed
                    # URL's escapes are part of its signature
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                    compress=False,
                    skip_auto_headers=_NOT_ADDED,
                    proxy=self._proxy(request.url),
                    timeout=_client_timeout(timeout),
                )
        except BaseException as error:
            await pacing.settle()  # the body's source is the caller's again
            if not isinstance(error, aiohttp.ClientError | OSError | TimeoutError):
                raise
            if pacing.failed is not None:
                raise pacing.failed from None
            if deadline.expired():
                raise httpx.WriteTimeout("the server stopped taking the request body") from None
            raise translated(error) from None
        finally:
            pacing.deadline = None
        extensions: dict[str, Any] = {"http_version": b"HTTP/1.1"}
        if answer.reason:
            extensions["reason_phrase"] = answer.reason.encode("ascii", "replace")
        return httpx.Response(
            answer.status,
            headers=answer.raw_headers,
            stream=_AnswerStream(answer, pacing),
            extensions=extensions,
        )

    def _proxy(self, url: httpx.URL) -> str | None:
        """The proxy of the environment for ``url`` (``HTTPS_PROXY``, ``NO_PROXY``...), read
        once per origin. Not aiohttp's ``trust_env``: it also sends ``~/.netrc`` credentials,
        which a signed CDN URL must not carry."""
        origin = (url.scheme, url.host)
        if origin not in self._proxies:
            proxy = urllib.request.getproxies().get(url.scheme)
            bypassed = proxy is not None and urllib.request.proxy_bypass(url.host)
            self._proxies[origin] = None if bypassed else proxy
        return self._proxies[origin]

    async def aclose(self) -> None:
        """Close the session and its connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def translated(error: BaseException) -> httpx.TransportError:
    """The httpx error for an aiohttp one; only what cannot have reached the server is a
    connect error (``ConnectError``, ``ConnectTimeout``), the errors q2google retries as never
    sent. The message names no URL (signed CDN URLs and upload sessions are secrets)."""
    text = _URL.sub("<url>", " ".join(str(error).split())) or type(error).__name__
    if isinstance(error, aiohttp.ClientConnectorError):  # DNS, refused, TLS: before a byte
        return httpx.ConnectError(text)
    if isinstance(error, aiohttp.ConnectionTimeoutError):  # no connection in time (or pool)
        return httpx.ConnectTimeout(text)
    if isinstance(error, TimeoutError):  # sock_read; every aiohttp timeout is one
        return httpx.ReadTimeout(text)
    if isinstance(error, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        return httpx.RemoteProtocolError(text)
    if isinstance(error, aiohttp.InvalidURL | aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(text)
    return httpx.ReadError(text)  # a reset or a broken pipe: the request may have gone out


def _client_timeout(timeout: dict[str, float | None]) -> aiohttp.ClientTimeout:
    pool, connect = timeout.get("pool"), timeout.get("connect")
    waiting = None if pool is None or connect is None else pool + connect
    return aiohttp.ClientTimeout(
        connect=waiting, sock_connect=connect, sock_read=timeout.get("read")
    )


class _Pacing:
    """The write timeout aiohttp lacks, and the errors a streamed body raises.

    aiohttp takes the next chunk once the socket took the last one, so each chunk has
    ``seconds`` from the moment it is handed over; the time the body's own source takes (a
    CDN download) does not count.

    aiohttp reads the body in a task of its own, which it cancels without waiting when the
    request fails or its answer is closed; :meth:`settle` waits for it, so that the caller
    can close the body's source (an async generator cannot be closed while it runs).

    Attributes:
        deadline: Cancels the request when a chunk is not taken in time.
        failed: What the body raised (aiohttp wraps it; the caller gets it as raised).
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.deadline: asyncio.Timeout | None = None
        self.failed: BaseException | None = None
        self._reader: asyncio.Task[Any] | None = None

    async def body(self, stream: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
        """``stream``, each chunk timed."""
        self._reader = asyncio.current_task()
        try:
            async for chunk in stream:
                self._arm(self.seconds)
                yield chunk
                self._arm(None)
        except Exception as error:
            self.failed = error
            raise

    async def settle(self) -> None:
        """Stop reading the body, and wait until it is no longer being read."""
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.cancel()
            await asyncio.wait([reader])

    def _arm(self, seconds: float | None) -> None:
        if self.deadline is not None and not self.deadline.expired():
            when = None if seconds is None else asyncio.get_running_loop().time() + seconds
            self.deadline.reschedule(when)


class _AnswerStream(httpx.AsyncByteStream):
    """An aiohttp answer's body as httpx reads it, errors translated."""

    def __init__(self, answer: aiohttp.ClientResponse, pacing: _Pacing) -> None:
        self._answer = answer
        self._pacing = pacing

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._answer.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise translated(error) from None

    async def aclose(self) -> None:
        """Give the connection back (closed unless both bodies went to the end)."""
        self._answer.release()
        await self._pacing.settle()
