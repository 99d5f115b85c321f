"""The GoPro cloud as a :class:`~q2google.gopro.source.GoProSource`, over gopro-api.

This is the one place where gopro-api's and aiohttp's exceptions become q2google's: a refused
token (401, 403) is :class:`~q2google.errors.GoProAuthError`, a deleted media (404)
:class:`~q2google.gopro.source.MediaGoneError`, an answer that does not parse
:class:`~q2google.gopro.source.GoProAnswerError`, and a cloud that keeps failing after every
retry :class:`~q2google.errors.TryLaterError`. Nothing else leaves this module.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import ValidationError

from q2google.errors import GOPRO_TOKEN_HELP, GoProAuthError, TryLaterError
from q2google.gopro.shapes import (
    SEARCH_FIELDS,
    SEARCH_PROCESSING_STATES,
    SEARCH_TYPES,
    deliverable_files,
    media_row,
    search_page,
)
from q2google.gopro.source import (
    GoProAnswerError,
    GoProFile,
    MediaGoneError,
    SearchPage,
)
from q2google.retry import DEFAULT_POLICY, RetryPolicy, describe, is_transient

T = TypeVar("T")
MAX_PER_PAGE = 200
"""The largest page the GoPro search honours (it caps larger ones silently)."""
REFUSED_TOKEN = frozenset({401, 403})
GONE = frozenset({404, 410})


class GoProLibrary:
    """The GoPro cloud as the pipeline uses it: pages of a window, files of a media.

    Every call goes through the shared retry policy, then through :func:`translate_errors`.

    Args:
        client: An entered gopro-api ``AsyncGoProClient`` (such as
            :class:`~q2google.gopro.client.GoProCloudClient`).
        policy: Retry policy.
        per_page: Media per search page.
    """

    def __init__(
        self, client: Any, *, policy: RetryPolicy = DEFAULT_POLICY, per_page: int = MAX_PER_PAGE
    ):
        self.client = client
        self.policy = policy
        self.per_page = per_page

    async def search(self, start: datetime, end: datetime, page: int) -> SearchPage:
        """Return page ``page`` (1-based) of the media captured in ``[start, end)``, newest
        first (``order_by=captured_at``); the range is sent to the second, not by days."""
        params = search_params(start, end, page, self.per_page)
        try:
            return await self._call("GoPro media search", lambda: self._page(params))
        except (GoProAnswerError, MediaGoneError) as error:  # no page: nothing to go on with
            raise TryLaterError(
                f"the GoPro cloud's search answer could not be used ({error}); progress is "
                "saved: run the same command again later"
            ) from None

    async def _page(self, params: Any) -> SearchPage:
        """A search page from the JSON; through gopro-api's model for a plain client."""
        raw = getattr(self.client, "search_answer", None)
        if raw is not None:
            return search_page(await raw(params))
        response = await self.client.search(params)
        return SearchPage(
            rows=tuple(media_row(row) for row in response.embedded.media),
            total_pages=int(response.pages.total_pages),
            total_items=int(response.pages.total_items),
        )

    async def files(self, media_id: str, media_type: str | None) -> list[GoProFile]:
        """Return the files of a media, each with its verdict, with fresh CDN URLs."""
        answer = await self._call("GoPro download metadata", lambda: self._answer(media_id))
        return deliverable_files(media_id, media_type, answer)

    async def _answer(self, media_id: str) -> Mapping[str, Any]:
        """The download answer as JSON; through gopro-api's model for a plain client."""
        raw = getattr(self.client, "download_answer", None)
        if raw is not None:
            answer: Mapping[str, Any] = await raw(media_id)
            return answer
        model = await self.client.download(media_id)
        dumped: Mapping[str, Any] = model.model_dump(by_alias=True)
        return dumped

    async def _call(self, operation: str, function: Callable[[], Awaitable[T]]) -> T:
        result: T = await translate_errors(operation, lambda: self.policy.call(operation, function))
        return result


def search_params(start: datetime, end: datetime, page: int, per_page: int) -> Any:
    """gopro-api's search parameters, with an exact ``captured_range`` and ``order_by``.

    gopro-api's ``CapturedRange`` sends whole days (and the day after the end); the
    parameters built here send ``start,end`` to the millisecond in UTC, half-open, as the
    cloud reads it.
    """
    return _exact_params_class()(
        processing_states=list(SEARCH_PROCESSING_STATES),
        fields=list(SEARCH_FIELDS),
        type=list(SEARCH_TYPES),
        captured_range={"start": start, "end": end},
        page=page,
        per_page=min(per_page, MAX_PER_PAGE),
    )


@functools.cache
def _exact_params_class() -> Any:
    """gopro-api's ``GoProMediaSearchParams``, sending the range exactly and ``order_by``."""
    from gopro_api import GoProMediaSearchParams
    from pydantic import field_serializer

    class ExactSearchParams(GoProMediaSearchParams):  # type: ignore[misc]
        order_by: str = "captured_at"

        @field_serializer("captured_range")
        def _exact_range(self, value: Any) -> str:
            return f"{_wire_time(value.start)},{_wire_time(value.end)}"

    return ExactSearchParams


def _wire_time(moment: datetime) -> str:
    """``2024-03-01T10:00:00.000Z``: the cloud's form of a time, in UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


async def translate_errors(operation: str, call: Callable[[], Awaitable[T]]) -> T:
    """Await ``call``, turning gopro-api's and aiohttp's exceptions into q2google's.

    Raises:
        GoProAuthError: The cloud refused the token (401 or 403).
        MediaGoneError: The media is not there (404 or 410).
        GoProAnswerError: The answer does not have the expected shape.
        TryLaterError: The cloud kept failing (5xx, 429, timeouts) after every retry.
    """
    try:
        return await call()
    except ValidationError as error:
        first = error.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"])
        raise GoProAnswerError(
            f"{operation}: unexpected answer ({where}: {first['msg']})"
        ) from None
    except Exception as error:
        status = getattr(error, "status", None)
        if status in REFUSED_TOKEN:
            raise GoProAuthError(
                f"the GoPro cloud refused GP_ACCESS_TOKEN (HTTP {status}: expired or revoked; "
                f"it lasts a few hours): {GOPRO_TOKEN_HELP}"
            ) from None
        if status in GONE:
            raise MediaGoneError(f"{operation}: HTTP {status}") from None
        if is_transient(error):
            raise TryLaterError(
                f"the GoPro cloud kept failing ({operation}: {describe(error)}); progress is "
                "saved: run the same command again later"
            ) from None
        if _is_library_error(error):
            raise GoProAnswerError(f"{operation}: {describe(error)}") from None
        raise


def _is_library_error(error: Exception) -> bool:
    """Whether ``error`` comes from the HTTP stack under gopro-api (aiohttp) or from JSON."""
    import aiohttp

    return isinstance(error, aiohttp.ClientError | ValueError)
