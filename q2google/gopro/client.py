"""gopro-api's ``AsyncGoProClient``, pointed at the origin q2google is configured with.

gopro-api hard-codes ``https://api.gopro.com`` as a property of its low-level API class. This
module is the one place that adapts it, by subclassing, so that ``Q2GOOGLE_GOPRO_API_URL``
(the sandbox, a proxy) is honoured without patching the library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pydantic_core
from gopro_api import AsyncGoProAPI, AsyncGoProClient

if TYPE_CHECKING:
    from q2google.config import Q2GoogleSettings

DEFAULT_TIMEOUT_SECONDS = 30.0
DOWNLOAD_ACCEPT = "application/vnd.gopro.jk.media+json; version=2.0.0"
SEARCH_ACCEPT = "application/vnd.gopro.jk.media.search+json; version=2.0.0"


class ConfigurableGoProAPI(AsyncGoProAPI):  # type: ignore[misc]
    """gopro-api's async API whose origin is a constructor argument."""

    def __init__(
        self,
        base_url: str,
        access_token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        super().__init__(access_token=access_token, timeout=timeout)
        self._origin = base_url.rstrip("/")

    @property
    def base_url(self) -> str:
        """The configured origin instead of ``https://api.gopro.com``."""
        return self._origin

    async def search_answer(self, params: Any) -> Any:
        """``GET /media/search`` as plain JSON, the request gopro-api's ``search`` makes.

        A large library is hundreds of pages, walked again by every run: reading them
        through gopro-api's model and its attributes took twice as long as the request
        (:func:`q2google.gopro.shapes.search_page` reads the JSON instead).

        Raises:
            aiohttp.ClientResponseError: The cloud answered with an error status.
            ValueError: The body is not JSON.
        """
        session = self._session_or_raise()
        async with session.get(
            "/media/search", headers=self.get_headers(SEARCH_ACCEPT), params=params.model_dump()
        ) as response:
            response.raise_for_status()
            body = await response.read()
        return pydantic_core.from_json(body, cache_strings="keys")  # json.loads' speed x1.5

    async def download_answer(self, media_id: str) -> dict[str, Any]:
        """``GET /media/{id}/download`` as plain JSON, the request gopro-api's ``download`` makes.

        gopro-api's model of this answer is stricter than the cloud: it declares a sidecar's
        ``fps`` an integer where the cloud sends 29.97003, and requires fields the cloud leaves
        out. :mod:`q2google.gopro.shapes` reads the JSON instead.

        Raises:
            aiohttp.ClientResponseError: The cloud answered with an error status.
        """
        session = self._session_or_raise()
        async with session.get(
            f"/media/{media_id}/download", headers=self.get_headers(DOWNLOAD_ACCEPT)
        ) as response:
            response.raise_for_status()
            answer = await response.json(content_type=None)
        if not isinstance(answer, dict):
            raise ValueError("the download answer is not a JSON object")  # noqa: TRY004
        return answer


class GoProCloudClient(AsyncGoProClient):  # type: ignore[misc]
    """gopro-api's high-level async client, talking to ``base_url``.

    Args:
        base_url: Origin of the GoPro cloud API.
        access_token: ``gp_access_token``; gopro-api reads ``GP_ACCESS_TOKEN`` when ``None``.
        timeout: Total timeout of each API request, in seconds.
        **kwargs: Passed to ``AsyncGoProClient`` (``page_size``, ``max_items``...).
    """

    def __init__(
        self,
        base_url: str,
        access_token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        **kwargs: Any,
    ) -> None:
        super().__init__(access_token=access_token, timeout=timeout, **kwargs)
        self._api = ConfigurableGoProAPI(base_url, access_token=access_token, timeout=timeout)

    @classmethod
    def from_settings(
        cls, settings: Q2GoogleSettings, *, access_token: str | None = None, **kwargs: Any
    ) -> GoProCloudClient:
        """Build the client for ``settings.gopro_api_url``."""
        return cls(settings.gopro_api_url, access_token=access_token, **kwargs)

    async def search_answer(self, params: Any) -> Any:
        """A search page as plain JSON (``ConfigurableGoProAPI.search_answer``)."""
        return await self._api.search_answer(params)

    async def download_answer(self, media_id: str) -> dict[str, Any]:
        """A media's download metadata as plain JSON (``ConfigurableGoProAPI.download_answer``)."""
        answer: dict[str, Any] = await self._api.download_answer(media_id)
        return answer
