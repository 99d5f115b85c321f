"""The Google Photos side as the pipeline sees it: stream bytes in, register media items.

:class:`GooglePhotosClient` implements :class:`GooglePhotoLibraryPort` over
:mod:`q2google.gphotos`. Uploads stream (memory stays a few blocks per upload whatever the
file size) by one of the protocols of :mod:`q2google.gphotos.uploads`: a file up to
``raw_upload_max_bytes`` goes in one raw request (one request against Google's daily quota,
resent whole after a break); a larger one, or one whose resumable session an earlier process
started, by the resumable protocol, which continues from the offset Google confirmed and
reports the session URL and that offset so that another process can continue it.
"""

from __future__ import annotations

import asyncio
import logging
import mimetypes
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import httpx

from q2google.clock import SYSTEM_CLOCK, Clock
from q2google.config import DEFAULT_RAW_UPLOAD_MAX_BYTES
from q2google.gphotos.api import GooglePhotosAPI
from q2google.gphotos.limits import MAX_BATCH_CREATE_ITEMS
from q2google.gphotos.models import (
    BatchCreateRequest,
    MediaItem,
    NewMediaItem,
    NewMediaItemResult,
    SimpleMediaItem,
    Status,
)
from q2google.gphotos.oauth import GooglePhotosOAuth
from q2google.gphotos.quota import RequestMeter, project_counter
from q2google.gphotos.uploads import (
    READ_BLOCK,
    ByteSource,
    MediaUpload,
    ProgressCallback,
    RawUpload,
    ResumableUpload,
    UploadSessionLostError,
    header_file_name,
)
from q2google.retry import DEFAULT_POLICY, RetryPolicy

if TYPE_CHECKING:
    from q2google.config import Q2GoogleSettings
    from q2google.state.request_counts import RequestCounts

__all__ = [
    "ByteSource",
    "GooglePhotoLibraryPort",
    "GooglePhotosClient",
    "NewItemSpec",
    "ProgressCallback",
    "UploadSessionLostError",
    "header_file_name",
]

logger = logging.getLogger(__name__)

MAX_BATCH = MAX_BATCH_CREATE_ITEMS
ITEM_RETRY_ROUNDS = 5


@dataclass(frozen=True)
class NewItemSpec:
    """An uploaded file to register as a media item.

    Attributes:
        upload_token: Token from the finished upload.
        file_name: Name shown in Google Photos.
        description: Optional description (at most 1000 characters).
    """

    upload_token: str
    file_name: str
    description: str | None = None


class GooglePhotoLibraryPort(Protocol):
    """What the sync pipeline needs from Google Photos."""

    async def upload(
        self,
        source: ByteSource,
        *,
        size: int,
        file_name: str,
        mime_type: str,
        upload_url: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> str:
        """Upload ``size`` bytes from ``source``; return the upload token."""
        ...

    async def create_media_items(
        self, items: Sequence[NewItemSpec], *, album_id: str | None = None
    ) -> list[NewMediaItemResult]:
        """Register uploads as media items; one result per item, in order."""
        ...

    async def find_or_create_album(self, title: str, *, fresh: bool = False) -> str:
        """Return the id of the app-created album titled ``title``, creating it if needed.

        ``fresh`` asks Google again instead of trusting what was found before (the album may
        have been deleted by the user since).
        """
        ...

    def app_created_items(self, album_id: str | None = None) -> AsyncIterator[MediaItem]:
        """Every media item this app created, or those of one of its albums, page by page
        (to find what a lost answer did)."""
        ...

    async def add_to_album(self, album_id: str, media_item_ids: Sequence[str]) -> None:
        """Add existing media items (this app's) to an album, at most 50 per call."""
        ...


class GooglePhotosClient:
    """Streaming uploads (raw or resumable), batched media item creation, and albums.

    Args:
        api: The low-level API.
        chunk_size: Bytes per resumable upload request (rounded down to the server's
            granularity); every request counts against Google's daily quota, so keep it
            large: memory does not grow with it.
        policy: Retry policy for each upload step.
        raw_max_bytes: Files up to this size go by one raw request; larger ones (and any
            with a resumable session to continue) by the resumable protocol. 0: always
            resumable.
    """

    def __init__(
        self,
        api: GooglePhotosAPI,
        *,
        chunk_size: int = 64 * 1024 * 1024,
        policy: RetryPolicy = DEFAULT_POLICY,
        raw_max_bytes: int = DEFAULT_RAW_UPLOAD_MAX_BYTES,
    ) -> None:
        self.api = api
        self.chunk_size = chunk_size
        self.policy = policy
        self.raw_max_bytes = raw_max_bytes
        self._create_lock = asyncio.Lock()
        self._albums: dict[str, str] = {}
        self._album_lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls,
        settings: Q2GoogleSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        counts: RequestCounts | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> GooglePhotosClient:
        """Build the client (and its OAuth, HTTP and quota layers) from settings.

        Args:
            settings: Settings.
            transport: httpx transport (tests swap the network here).
            counts: Where requests are counted against the daily limit (the state backend,
                shared by every session using it); this process only when ``None``.
            clock: Tells the quota day, and times the retries' backoff.
        """
        oauth = GooglePhotosOAuth.from_settings(settings)
        meter = RequestMeter(
            limit=settings.daily_request_limit or None,
            counts=counts,
            counter=project_counter(oauth.client_id()),
            clock=clock,
        )
        policy = replace(DEFAULT_POLICY, sleep=clock.sleep)
        api = GooglePhotosAPI(
            settings.photos_api_url, oauth, transport=transport, meter=meter, policy=policy
        )
        return cls(
            api,
            chunk_size=settings.upload_chunk_size_bytes,
            raw_max_bytes=settings.raw_upload_max_bytes,
            policy=policy,
        )

    @property
    def meter(self) -> RequestMeter:
        """What counts this client's requests against Google's daily quota."""
        return self.api.meter

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.api.aclose()

    async def __aenter__(self) -> GooglePhotosClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- uploads ---------------------------------------------------------------------------

    async def upload(
        self,
        source: ByteSource,
        *,
        size: int,
        file_name: str,
        mime_type: str,
        upload_url: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> str:
        """Upload ``size`` bytes read from ``source`` and return the upload token.

        Raw (one request) when ``size`` is at most ``raw_max_bytes`` and there is no session
        to continue; resumable otherwise.

        Args:
            source: The file's bytes from any offset.
            size: Total bytes.
            file_name: Name given to Google.
            mime_type: The file's MIME type.
            upload_url: A session URL from an earlier, interrupted attempt, to continue.
            on_progress: Told the session URL once it exists and each confirmed offset
                (resumable uploads only: a raw one has no session to continue).

        Returns:
            The upload token.

        Raises:
            GoogleAPIError: Google refused the upload for good.
            QuotaExhaustedError: The daily quota is used up.
        """
        if upload_url is None and 0 < size <= self.raw_max_bytes:
            raw: MediaUpload = RawUpload(self.api, policy=self.policy)
            return await raw.upload(source, size=size, file_name=file_name, mime_type=mime_type)
        resumable = ResumableUpload(self.api, policy=self.policy, chunk_size=self.chunk_size)
        return await resumable.upload(
            source,
            size=size,
            file_name=file_name,
            mime_type=mime_type,
            on_progress=on_progress,
            upload_url=upload_url,
        )

    async def upload_file_path(
        self,
        path: str | Path,
        *,
        mime_type: str | None = None,
        upload_url: str | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> str:
        """Upload a local file, streamed from disk; return the upload token."""
        path = Path(path)
        size = path.stat().st_size
        kind = mime_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"

        async def read_from(offset: int) -> AsyncIterator[bytes]:
            handle = await asyncio.to_thread(path.open, "rb")
            try:
                await asyncio.to_thread(handle.seek, offset)
                while block := await asyncio.to_thread(handle.read, READ_BLOCK):
                    yield block
            finally:
                handle.close()

        return await self.upload(
            read_from,
            size=size,
            file_name=path.name,
            mime_type=kind,
            upload_url=upload_url,
            on_progress=on_progress,
        )

    # -- media items -----------------------------------------------------------------------

    async def create_media_items(
        self, items: Sequence[NewItemSpec], *, album_id: str | None = None
    ) -> list[NewMediaItemResult]:
        """Register uploads as media items, 50 per call, one call at a time.

        Items that fail with a transient code are sent again (up to five rounds, with
        backoff); permanent failures are returned in their result, not raised.

        Returns:
            One result per item, in the order given.

        Note:
            A batchCreate call cannot be sent twice safely: if its answer is lost and it is
            retried, Google answers code 3 (token used) for items it did create. Callers that
            need exactly once (the pipeline) send one batch per call, checkpoint around it,
            and upload again what answers code 3: identical bytes yield the existing item.

        Raises:
            GoogleAPIError: A whole call was refused (a bad album id, say).
            QuotaExhaustedError: The daily quota is used up.
        """
        results: dict[int, NewMediaItemResult] = {}
        pending = list(range(len(items)))
        for round_number in range(ITEM_RETRY_ROUNDS):
            if not pending:
                break
            if round_number:
                await self.policy.sleep(min(30.0, 2.0**round_number))
            retry_next: list[int] = []
            for start in range(0, len(pending), MAX_BATCH):
                batch = pending[start : start + MAX_BATCH]
                request = BatchCreateRequest(
                    album_id=album_id,
                    new_media_items=[
                        NewMediaItem(
                            description=items[index].description,
                            simple_media_item=SimpleMediaItem(
                                upload_token=items[index].upload_token,
                                file_name=items[index].file_name,
                            ),
                        )
                        for index in batch
                    ],
                )
                async with self._create_lock:  # Google: creates serially, uploads in parallel
                    response = await self.api.batch_create(request)
                by_token = {
                    result.upload_token: result for result in response.new_media_item_results
                }
                last_round = round_number == ITEM_RETRY_ROUNDS - 1
                for index in batch:
                    result = by_token.get(items[index].upload_token) or NewMediaItemResult(
                        upload_token=items[index].upload_token,
                        status=Status(code=13, message="no result returned for this item"),
                    )
                    if result.transient and not last_round:
                        retry_next.append(index)
                    else:
                        results[index] = result
            pending = retry_next
        return [results[index] for index in range(len(items))]

    async def find_or_create_album(self, title: str, *, fresh: bool = False) -> str:
        """Return the id of the app-created album ``title``, creating it if there is none.

        Safe across processes: when two create the same title at once, both then choose the
        same one of the two (the smallest id), so their files end in one album.
        """
        async with self._album_lock:  # two callers here must not both create it
            if fresh or title not in self._albums:
                self._albums[title] = await self._find_or_create_album(title)
            return self._albums[title]

    async def _find_or_create_album(self, title: str) -> str:
        found = await self._albums_titled(title)
        if not found:
            created = await self.api.create_album(title)
            found = await self._albums_titled(title) or [created.id]
        return min(found)

    async def _albums_titled(self, title: str) -> list[str]:
        ids: list[str] = []
        page_token: str | None = None
        while True:
            albums, page_token = await self.api.list_albums(page_token)
            ids += [album.id for album in albums if album.title == title]
            if not page_token:
                return ids

    async def app_created_items(self, album_id: str | None = None) -> AsyncIterator[MediaItem]:
        """Every media item this app created (``mediaItems.list``), or those of one of its
        albums (``mediaItems:search``), page by page."""
        page_token: str | None = None
        while True:
            items, page_token = await self.api.list_media_items(page_token, album_id=album_id)
            for item in items:
                yield item
            if not page_token:
                return

    async def add_to_album(self, album_id: str, media_item_ids: Sequence[str]) -> None:
        """``albums.batchAddMediaItems``, 50 ids per call.

        Raises:
            GoogleAPIError: Refused (a deleted or full album: see ``album_refusal``).
        """
        for start in range(0, len(media_item_ids), MAX_BATCH):
            await self.api.add_to_album(album_id, list(media_item_ids[start : start + MAX_BATCH]))
