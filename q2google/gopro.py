"""gopro-api's ``AsyncGoProClient``, pointed at the origin q2google is configured with.

gopro-api hard-codes ``https://api.gopro.com`` as a property of its low-level API class. This
module is the one place that adapts it, by subclassing, so that ``Q2GOOGLE_GOPRO_API_URL``
(the sandbox, a proxy) is honoured without patching the library.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from gopro_api import AsyncGoProAPI, AsyncGoProClient

from q2google.retry import DEFAULT_POLICY, RetryPolicy

if TYPE_CHECKING:
    from q2google.config import Q2GoogleSettings

DEFAULT_TIMEOUT_SECONDS = 30.0


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


@dataclass(frozen=True)
class GoProFile:
    """One deliverable file of a GoPro media, with a freshly signed CDN URL.

    Attributes:
        media_id: GoPro media id.
        file_index: Position among the media's deliverable files.
        file_name: Name to give Google (frames of a burst get ``-001``, ``-002``...).
        url: Signed CDN URL (expires).
        width: Pixel width.
        height: Pixel height.
    """

    media_id: str
    file_index: int
    file_name: str
    url: str
    width: int
    height: int


def deliverable_files(media_id: str, download: Any) -> list[GoProFile]:
    """Pick what a sync delivers from ``/media/{id}/download`` metadata.

    Every file of a photo, burst or time-lapse; for a video, the ``source`` variation when
    offered, else the largest one (never a downscaled proxy when the original exists).
    """
    name: str = download.filename
    files = sorted(download.embedded.files, key=lambda f: f.item_number)
    chosen: list[Any]
    if files:
        chosen = files
    elif download.embedded.variations:
        variations = download.embedded.variations
        sources = [v for v in variations if v.label == "source"]
        chosen = sources[:1] or [max(variations, key=lambda v: (v.height * v.width, v.height))]
    else:
        chosen = []
    stem, dot, extension = name.rpartition(".")
    return [
        GoProFile(
            media_id=media_id,
            file_index=index,
            file_name=name
            if len(chosen) == 1 or not dot
            else f"{stem}-{index + 1:03d}.{extension}",
            url=entry.url,
            width=entry.width,
            height=entry.height,
        )
        for index, entry in enumerate(chosen)
    ]


class GoProLibrary:
    """The GoPro cloud as the pipeline uses it: pages of a window, files of a media.

    Every call goes through the shared retry policy.

    Args:
        client: An entered :class:`GoProCloudClient`.
        policy: Retry policy.
        per_page: Media per search page.
    """

    def __init__(
        self, client: GoProCloudClient, *, policy: RetryPolicy = DEFAULT_POLICY, per_page: int = 100
    ) -> None:
        self.client = client
        self.policy = policy
        self.per_page = per_page

    async def page(self, start: datetime, end: datetime, number: int) -> tuple[list[Any], int]:
        """Return the media rows of page ``number`` (1-based) and the total page count."""
        from gopro_api import CapturedRange, GoProMediaSearchParams

        params = GoProMediaSearchParams(
            captured_range=CapturedRange(start=start, end=end), page=number, per_page=self.per_page
        )
        response = await self.policy.call("GoPro media search", lambda: self.client.search(params))
        return list(response.embedded.media), int(response.pages.total_pages)

    async def files(self, media_id: str) -> list[GoProFile]:
        """Resolve the deliverable files of a media, with fresh CDN URLs."""
        download = await self.policy.call(
            "GoPro download metadata", lambda: self.client.download(media_id)
        )
        return deliverable_files(media_id, download)
