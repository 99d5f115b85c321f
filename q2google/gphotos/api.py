"""Low-level HTTP for the Photos Library API v1: authorization, errors, retries.

One ``httpx.AsyncClient`` (keep-alive pool, explicit timeouts) per :class:`GooglePhotosAPI`.
Its ``transport`` is the seam tests use to swap the network.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import httpx

from q2google.gphotos.answers import error_body, is_daily_quota
from q2google.gphotos.models import (
    Album,
    BatchCreateRequest,
    CreateOutcomeUnknownError,
    GoogleAPIError,
    GoogleAuthError,
    MediaItem,
    MediaItemBatchCreateResponse,
)
from q2google.gphotos.quota import RequestMeter, request_kind
from q2google.http_transport import AiohttpTransport, http_client
from q2google.retry import (
    DEFAULT_POLICY,
    RETRYABLE_STATUSES,
    QuotaExhaustedError,
    RetryableStatusError,
    RetryPolicy,
    parse_retry_after,
)

DEFAULT_TIMEOUT = httpx.Timeout(connect=15.0, read=300.0, write=300.0, pool=120.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=32, max_keepalive_connections=16)
_ENDPOINTS_KEPT = 64
"""API paths kept parsed (:meth:`GooglePhotosAPI._endpoint`)."""


class TokenProvider(Protocol):
    """Where access tokens come from (:class:`~q2google.gphotos.oauth.GooglePhotosOAuth`)."""

    async def access_token(self) -> str: ...

    async def refresh(self, rejected: str | None = None) -> str: ...


def _refuse_credentials(operation: str, response: httpx.Response) -> None:
    """Raise when Google refused the token itself (a refresh did not help) or its scopes.

    Raises:
        GoogleAuthError: One line, with the command that fixes it.
    """
    if response.status_code == 401 or _missing_scope(response):
        raise GoogleAuthError(
            f"Google Photos refused the credentials for {operation} "
            f"({error_body(response).status or response.status_code}): run "
            "`q2google auth google` to sign in again"
        )


def _missing_scope(response: httpx.Response) -> bool:
    if response.status_code != 403:
        return False
    body = error_body(response)
    return "scope" in body.message.lower() or body.status == "UNAUTHENTICATED"


def raise_for_status(operation: str, response: httpx.Response) -> None:
    """Turn an error response into the exception the retry policy expects.

    Raises:
        QuotaExhaustedError: A daily quota is used up (not retried).
        RetryableStatusError: 408, 429 or 5xx (retried, honouring ``Retry-After``).
        GoogleAPIError: Any other error status (not retried).
    """
    status = response.status_code
    if status < 400:
        return
    if status == 429:
        body = error_body(response)
        if is_daily_quota(body):
            raise QuotaExhaustedError(
                "Google Photos' daily request quota is used up; everything done so far is "
                "saved: run the same command again after the quota resets (midnight, "
                "Pacific time)"
            )
    if status in RETRYABLE_STATUSES:
        raise RetryableStatusError(
            operation, status, parse_retry_after(response.headers.get("Retry-After"))
        )
    raise GoogleAPIError(operation, error_body(response))


class GooglePhotosAPI:
    """Authorized, retried calls to the Library API.

    Args:
        base_url: API origin (``Q2GOOGLE_PHOTOS_API_URL``).
        tokens: Source of access tokens.
        policy: Retry policy for every call that can be repeated.
        transport: httpx transport (tests pass a mock one); aiohttp's by default
            (:mod:`q2google.http_transport`).
        timeout: httpx timeouts.
        meter: Counts every request against Google's daily quota and refuses past it (a
            meter of this process with Google's default limit when ``None``).
    """

    def __init__(
        self,
        base_url: str,
        tokens: TokenProvider,
        *,
        policy: RetryPolicy = DEFAULT_POLICY,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        meter: RequestMeter | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.policy = policy
        self.meter = meter or RequestMeter()
        self._tokens = tokens
        self._endpoints: dict[str, httpx.URL] = {}
        self._client = http_client(
            base_url=self.base_url,
            timeout=timeout,
            transport=transport or AiohttpTransport(DEFAULT_LIMITS),
        )

    def __repr__(self) -> str:
        return f"GooglePhotosAPI({self.base_url!r})"

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    async def __aenter__(self) -> GooglePhotosAPI:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- requests --------------------------------------------------------------------------

    async def send(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        content: AsyncIterator[bytes] | bytes | None = None,
    ) -> httpx.Response:
        """Send one authorized request, once (a 401 refreshes the token and resends a bodyless
        or JSON request; a streamed body cannot be resent and the 401 is returned instead).

        Every request is counted by the :attr:`meter` first.

        Returns:
            The response, whatever its status.

        Raises:
            QuotaExhaustedError: The day's quota is used up: nothing was sent.
        """
        kind, target = request_kind(url), self._endpoint(url)

        async def attempt(token: str) -> httpx.Response:
            await self.meter.admit(kind)
            response = await self._client.request(
                method,
                target,
                json=json,
                params=params,
                content=content,
                headers={**(headers or {}), "Authorization": f"Bearer {token}"},
            )
            self.meter.answered(kind, response)
            return response

        token = await self._tokens.access_token()
        response = await attempt(token)
        if response.status_code == 401:
            token = await self._tokens.refresh(token)
            if not isinstance(content, AsyncIterator):  # a streamed body was consumed
                response = await attempt(token)
        return response

    def _endpoint(self, url: str) -> httpx.URL | str:
        """An API path as an absolute URL, parsed once (httpx parses a string and joins it to
        the base URL at every request); any other URL as it is."""
        if not url.startswith("/"):
            return url
        endpoint = self._endpoints.get(url)
        if endpoint is None:
            if len(self._endpoints) >= _ENDPOINTS_KEPT:  # paths with ids: keep a few
                self._endpoints.clear()
            endpoint = self._endpoints[url] = httpx.URL(self.base_url + url)
        return endpoint

    async def call(
        self,
        operation: str,
        method: str,
        url: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send a repeatable request under the retry policy and check its status.

        Raises:
            QuotaExhaustedError, GoogleAPIError: See :func:`raise_for_status`.
        """

        async def once() -> httpx.Response:
            response = await self.send(method, url, json=json, params=params)
            _refuse_credentials(operation, response)
            raise_for_status(operation, response)
            return response

        result: httpx.Response = await self.policy.call(operation, once)
        return result

    # -- endpoints -------------------------------------------------------------------------

    async def batch_create(self, request: BatchCreateRequest) -> MediaItemBatchCreateResponse:
        """``POST /v1/mediaItems:batchCreate`` (200, or 207 when some items failed).

        Retried only where Google cannot have committed anything: a 429 (refused before any
        work) and a connection that failed before the request went out. Anything else that
        leaves the outcome open is raised, never sent again.

        Raises:
            CreateOutcomeUnknownError: The request went out and its answer was lost.
            QuotaExhaustedError, GoogleAPIError, GoogleAuthError: Refused.
        """

        async def once() -> httpx.Response:
            try:
                response = await self.send(
                    "POST", "/v1/mediaItems:batchCreate", json=request.to_api()
                )
            except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
                raise  # never sent: the policy retries it
            except httpx.TransportError as error:
                raise CreateOutcomeUnknownError(
                    f"batchCreate: {type(error).__name__} after the request was sent"
                ) from None
            if response.status_code == 408 or response.status_code >= 500:
                raise CreateOutcomeUnknownError(f"batchCreate: HTTP {response.status_code}")
            _refuse_credentials("batchCreate", response)
            raise_for_status("batchCreate", response)
            return response

        response: httpx.Response = await self.policy.call("batchCreate", once)
        return MediaItemBatchCreateResponse.model_validate(response.json())

    async def list_media_items(
        self, page_token: str | None = None, *, album_id: str | None = None
    ) -> tuple[list[MediaItem], str | None]:
        """One page (100) of the media items this app created, or of an album's
        (``mediaItems:search``), and the next page's token."""
        if album_id is None:
            params = {"pageSize": "100"} | ({"pageToken": page_token} if page_token else {})
            response = await self.call("mediaItems.list", "GET", "/v1/mediaItems", params=params)
        else:
            query: dict[str, Any] = {"albumId": album_id, "pageSize": 100}
            if page_token:
                query["pageToken"] = page_token
            response = await self.call(
                "mediaItems.search", "POST", "/v1/mediaItems:search", json=query
            )
        body = response.json()
        items = [MediaItem.model_validate(item) for item in body.get("mediaItems", [])]
        return items, body.get("nextPageToken")

    async def list_albums(self, page_token: str | None = None) -> tuple[list[Album], str | None]:
        """One page of app-created albums, and the next page's token."""
        params = {"pageSize": "50", "excludeNonAppCreatedData": "true"}
        if page_token:
            params["pageToken"] = page_token
        body = (await self.call("albums.list", "GET", "/v1/albums", params=params)).json()
        albums = [Album.model_validate(album) for album in body.get("albums", [])]
        return albums, body.get("nextPageToken")

    async def create_album(self, title: str) -> Album:
        """``POST /v1/albums``."""
        response = await self.call(
            "albums.create", "POST", "/v1/albums", json={"album": {"title": title}}
        )
        return Album.model_validate(response.json())

    async def add_to_album(self, album_id: str, media_item_ids: list[str]) -> None:
        """``POST /v1/albums/{id}:batchAddMediaItems``: at most 50 app-created items.

        Raises:
            GoogleAPIError: Refused (a deleted album, a full one: see ``album_refusal``).
        """
        await self.call(
            "albums.batchAddMediaItems",
            "POST",
            f"/v1/albums/{album_id}:batchAddMediaItems",
            json={"mediaItemIds": media_item_ids},
        )
