"""The Google Photos side as the pipeline sees it: stream bytes in, register media items.

:class:`GooglePhotosClient` implements :class:`GooglePhotoLibraryPort` over
:mod:`q2google.gphotos`. Uploads use Google's resumable protocol and stream: bytes come from a
:data:`ByteSource` (a function giving the file's bytes from an offset, such as a CDN ``Range``
request) and go out as they arrive, so memory stays a few blocks per upload whatever the file
size. After a dropped connection or a 5xx the session is queried and the upload continues from
the offset Google confirmed; the session URL and that offset are reported through a callback,
so that another process can continue an upload a killed one started.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import mimetypes
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import quote

import httpx

from q2google.gphotos.api import GooglePhotosAPI, error_body, raise_for_status
from q2google.gphotos.models import (
    BatchCreateRequest,
    GoogleAPIError,
    MediaItem,
    NewMediaItem,
    NewMediaItemResult,
    SimpleMediaItem,
    Status,
)
from q2google.gphotos.oauth import GooglePhotosOAuth
from q2google.retry import DEFAULT_POLICY, RetryableStatusError, RetryPolicy

if TYPE_CHECKING:
    from q2google.config import Q2GoogleSettings

logger = logging.getLogger(__name__)

ByteSource = Callable[[int], AsyncIterator[bytes]]
"""Gives a file's bytes from an offset to the end, in pieces of any size."""
ProgressCallback = Callable[[str, int], Awaitable[None] | None]
"""Called with the upload session URL and the offset Google has confirmed."""

GRANULARITY = 256 * 1024
MAX_BATCH = 50
ITEM_RETRY_ROUNDS = 5
_READ_BLOCK = 1024 * 1024


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


class UploadSessionLostError(Exception):
    """Google no longer knows the upload session (404): the upload starts over."""


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


def header_file_name(file_name: str) -> str:
    """The file name as an HTTP header can carry it: ASCII as it is, anything else
    percent-encoded as UTF-8 (headers are ASCII; the exact name goes in batchCreate's
    ``fileName``)."""
    printable = file_name.isascii() and file_name.isprintable()
    return file_name if printable else quote(file_name, safe=" !#$&'()+,-.;=@[]^_`{}~")


class _Cursor:
    """Reads a :data:`ByteSource` sequentially, reopening it at another offset on demand."""

    def __init__(self, source: ByteSource) -> None:
        self._source = source
        self._stream: AsyncIterator[bytes] | None = None
        self._position = 0
        self._leftover = b""

    async def take(self, offset: int, length: int) -> AsyncIterator[bytes]:
        """Yield exactly ``length`` bytes starting at ``offset``."""
        if self._stream is None or self._position != offset:
            await self.close()
            self._stream = aiter(self._source(offset))
            self._position, self._leftover = offset, b""
        remaining = length
        while remaining:
            piece, self._leftover = self._leftover, b""
            if not piece:
                try:
                    piece = await anext(self._stream)
                except StopAsyncIteration:
                    self._stream = None
                    raise ValueError(
                        f"the source ended at byte {self._position}, before the announced size"
                    ) from None
                except BaseException:
                    self._stream = None  # a failed stream is never read again: reopen it
                    raise
            if len(piece) > remaining:
                piece, self._leftover = piece[:remaining], piece[remaining:]
            for start in range(0, len(piece), _READ_BLOCK):
                block = piece[start : start + _READ_BLOCK]
                self._position += len(block)
                remaining -= len(block)
                yield block

    async def close(self) -> None:
        """Close the current stream (a CDN response, say), if any."""
        stream, self._stream = self._stream, None
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


@dataclass
class _Upload:
    url: str | None
    offset: int = 0
    synced: bool = False
    token: str | None = None
    unit: int = GRANULARITY  # the session's X-Goog-Upload-Chunk-Granularity
    confirmed: int = 0  # the last offset Google confirmed to this process


class GooglePhotosClient:
    """Resumable streaming uploads, batched media item creation, and albums.

    Args:
        api: The low-level API.
        chunk_size: Bytes per upload request (rounded down to the server's granularity);
            every request counts against Google's daily quota, so keep it large: memory does
            not grow with it.
        policy: Retry policy for each upload step.
    """

    def __init__(
        self,
        api: GooglePhotosAPI,
        *,
        chunk_size: int = 64 * 1024 * 1024,
        policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        self.api = api
        self.chunk_size = chunk_size
        self.policy = policy
        self._create_lock = asyncio.Lock()
        self._albums: dict[str, str] = {}
        self._album_lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls, settings: Q2GoogleSettings, *, transport: httpx.AsyncBaseTransport | None = None
    ) -> GooglePhotosClient:
        """Build the client (and its OAuth and HTTP layers) from settings."""
        api = GooglePhotosAPI(
            settings.photos_api_url, GooglePhotosOAuth.from_settings(settings), transport=transport
        )
        return cls(api, chunk_size=settings.upload_chunk_size_bytes)

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

        Args:
            source: The file's bytes from any offset.
            size: Total bytes.
            file_name: Name given to Google.
            mime_type: The file's MIME type.
            upload_url: A session URL from an earlier, interrupted attempt, to continue.
            on_progress: Told the session URL once it exists and each confirmed offset.

        Raises:
            GoogleAPIError: Google refused the upload for good.
            QuotaExhaustedError: The daily quota is used up.
        """
        state = _Upload(upload_url, synced=upload_url is None)
        cursor = _Cursor(source)
        try:
            while True:  # each step (one chunk) gets the policy's full budget of retries
                await self.policy.call(
                    f"upload of {file_name}",
                    lambda: self._step(
                        state,
                        cursor,
                        size=size,
                        file_name=file_name,
                        mime_type=mime_type,
                        on_progress=on_progress,
                    ),
                )
                if state.token is not None:
                    return state.token
        finally:
            await cursor.close()

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
                while block := await asyncio.to_thread(handle.read, _READ_BLOCK):
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

    async def _step(
        self,
        state: _Upload,
        cursor: _Cursor,
        *,
        size: int,
        file_name: str,
        mime_type: str,
        on_progress: ProgressCallback | None,
    ) -> None:
        """Make one step of progress: (re)sync with the server if needed, send one chunk."""
        if state.url is None:
            state.url, state.unit = await self._start(size, file_name, mime_type)
            state.offset = state.confirmed = 0
            state.synced = True
            await _notify(on_progress, state.url, 0)
        if not state.synced:
            try:
                await self._query(state)
            except UploadSessionLostError:
                logger.debug("upload session of %s expired; starting over", file_name)
                state.url, state.offset = None, 0
                return
            await _notify(on_progress, state.url, state.offset)
            if state.token is not None or state.offset > state.confirmed:
                state.confirmed = state.offset  # progress: the next chunk gets a fresh budget
                return
        state.synced = False  # until this chunk is answered, the server's offset is unknown
        chunk = max(state.unit, self.chunk_size // state.unit * state.unit)
        length = min(chunk, size - state.offset)
        final = state.offset + length >= size
        headers = {
            "X-Goog-Upload-Command": "upload, finalize" if final else "upload",
            "X-Goog-Upload-Offset": str(state.offset),
            "Content-Length": str(length),
        }
        try:
            response = await self.api.send(
                "POST", state.url, content=cursor.take(state.offset, length), headers=headers
            )
        except BaseException:
            await cursor.close()  # what was read is unconfirmed: reopen after the query
            raise
        if response.status_code == 404:
            state.url, state.offset = None, 0
            raise RetryableStatusError(f"upload of {file_name} (session lost)", 404)
        if response.status_code == 401:
            raise RetryableStatusError(f"upload of {file_name} (token refreshed)", 401)
        if response.status_code == 400 and "X-Goog-Upload-Size-Received" in response.headers:
            raise RetryableStatusError(f"upload of {file_name} (offset mismatch)", 400)
        raise_for_status(f"upload of {file_name}", response)
        state.offset += length
        state.confirmed = state.offset
        state.synced = True
        if final:
            state.token = response.text.strip()
            if not state.token:
                raise GoogleAPIError(f"upload of {file_name}", error_body(response))
        await _notify(on_progress, state.url, state.offset)

    async def _start(self, size: int, file_name: str, mime_type: str) -> tuple[str, int]:
        response = await self._start_request(size, file_name, mime_type)
        url: str | None = response.headers.get("X-Goog-Upload-URL")
        if not url:
            raise GoogleAPIError("upload start", error_body(response))
        try:
            unit = int(response.headers.get("X-Goog-Upload-Chunk-Granularity", GRANULARITY))
        except ValueError:
            unit = GRANULARITY
        return url, max(GRANULARITY, unit)

    async def _start_request(self, size: int, file_name: str, mime_type: str) -> httpx.Response:
        headers = {
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Content-Type": mime_type,
            "X-Goog-Upload-Raw-Size": str(size),
            "X-Goog-Upload-File-Name": header_file_name(file_name),
            "Content-Length": "0",
        }
        response = await self.api.send("POST", "/v1/uploads", headers=headers)
        raise_for_status("upload start", response)
        return response

    async def _query(self, state: _Upload) -> None:
        """Ask where the session stands; set the offset (or the token if it is final)."""
        assert state.url is not None
        response = await self.api.send(
            "POST", state.url, headers={"X-Goog-Upload-Command": "query"}
        )
        if response.status_code == 404:
            raise UploadSessionLostError
        raise_for_status("upload query", response)
        received = response.headers.get("X-Goog-Upload-Size-Received")
        if response.headers.get("X-Goog-Upload-Status") == "final":
            state.token = response.text.strip() or None
        if received is not None:
            state.offset = int(received)
        state.synced = True

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


async def _notify(callback: ProgressCallback | None, url: str, offset: int) -> None:
    if callback is None:
        return
    outcome = callback(url, offset)
    if inspect.isawaitable(outcome):
        await outcome
