"""Google's two upload protocols behind one interface: raw (one request) and resumable.

Both stream: bytes come from a :data:`ByteSource` (a function giving the file's bytes from an
offset, such as a CDN ``Range`` request) and go out as they arrive, so memory stays a few blocks
per upload whatever the file size.

- :class:`RawUpload`: one ``X-Goog-Upload-Protocol: raw`` request carrying the whole body, one
  request against the daily quota. After a break (5xx, 408, 429, a dropped connection, a
  timeout) the whole body is sent again from byte 0, so it suits files small enough to resend.
- :class:`ResumableUpload`: a session (``start``), then the whole file in one request when the
  chunk size allows; after a break the session is queried and the upload continues from the
  offset Google confirmed. The session URL and that offset are reported through a callback, so
  that another process can continue an upload a killed one started.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import quote

import httpx

from q2google.gphotos.answers import error_body
from q2google.gphotos.api import GooglePhotosAPI, raise_for_status
from q2google.gphotos.limits import UPLOAD_GRANULARITY_BYTES, UPLOADS_PATH
from q2google.gphotos.models import GoogleAPIError
from q2google.retry import RetryableStatusError, RetryPolicy

logger = logging.getLogger(__name__)

ByteSource = Callable[[int], AsyncIterator[bytes]]
"""Gives a file's bytes from an offset to the end, in pieces of any size."""
ProgressCallback = Callable[[str, int], Awaitable[None] | None]
"""Called with the upload session URL and the offset Google has confirmed."""

READ_BLOCK = 1024 * 1024
"""Largest block handed to the HTTP layer at once."""


class UploadSessionLostError(Exception):
    """Google no longer knows the upload session (404): the upload starts over."""


class MediaUpload(Protocol):
    """One way of turning a file's bytes into an upload token."""

    async def upload(
        self,
        source: ByteSource,
        *,
        size: int,
        file_name: str,
        mime_type: str,
        on_progress: ProgressCallback | None = None,
    ) -> str:
        """Upload ``size`` bytes from ``source``.

        Args:
            source: The file's bytes from any offset.
            size: Total bytes.
            file_name: Name given to Google.
            mime_type: The file's MIME type.
            on_progress: Told the session URL and each confirmed offset (resumable only).

        Returns:
            The upload token.

        Raises:
            GoogleAPIError: Google refused the upload for good.
            QuotaExhaustedError: The daily quota is used up.
        """
        ...


def header_file_name(file_name: str) -> str:
    """The file name as an HTTP header can carry it.

    Args:
        file_name: The exact name (it goes unchanged in batchCreate's ``fileName``).

    Returns:
        ASCII as it is, anything else percent-encoded as UTF-8 (headers are ASCII).
    """
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
            for start in range(0, len(piece), READ_BLOCK):
                block = piece[start : start + READ_BLOCK]
                self._position += len(block)
                remaining -= len(block)
                yield block

    async def close(self) -> None:
        """Close the current stream (a CDN response, say), if any."""
        stream, self._stream = self._stream, None
        close = getattr(stream, "aclose", None)
        if close is not None:
            await close()


def _check_response(operation: str, response: httpx.Response) -> str:
    """Raise for an error status; return the upload token of a final answer.

    Raises:
        RetryableStatusError: A 401 (the token was refreshed: send again) or 408/429/5xx.
        QuotaExhaustedError: The daily quota is used up.
        GoogleAPIError: Any other refusal, or a success without a token.
    """
    if response.status_code == 401:
        raise RetryableStatusError(f"{operation} (token refreshed)", 401)
    raise_for_status(operation, response)
    token = response.text.strip()
    if not token:
        raise GoogleAPIError(operation, error_body(response))
    return token


class RawUpload:
    """``X-Goog-Upload-Protocol: raw``: the whole file in one request, one quota request.

    A transient failure sends the whole body again from byte 0, under the retry policy.

    Args:
        api: The HTTP layer.
        policy: Retry policy for the request.
    """

    def __init__(self, api: GooglePhotosAPI, *, policy: RetryPolicy) -> None:
        self.api = api
        self.policy = policy

    async def upload(
        self,
        source: ByteSource,
        *,
        size: int,
        file_name: str,
        mime_type: str,
        on_progress: ProgressCallback | None = None,
    ) -> str:
        """Send ``size`` bytes from ``source(0)`` in one request (see :class:`MediaUpload`).

        ``on_progress`` is never called: there is no session to continue.

        Returns:
            The upload token.

        Raises:
            GoogleAPIError: Google refused the upload for good.
            QuotaExhaustedError: The daily quota is used up.
        """
        cursor = _Cursor(source)
        operation = f"upload of {file_name}"
        headers = {
            "Content-Type": "application/octet-stream",
            "Content-Length": str(size),
            "X-Goog-Upload-Content-Type": mime_type,
            "X-Goog-Upload-Protocol": "raw",
            "X-Goog-Upload-File-Name": header_file_name(file_name),
        }

        async def once() -> str:
            try:
                response = await self.api.send(
                    "POST", UPLOADS_PATH, content=cursor.take(0, size), headers=headers
                )
            finally:
                await cursor.close()  # the next attempt reads again from byte 0
            return _check_response(operation, response)

        token: str = await self.policy.call(operation, once)
        return token


@dataclass
class _Session:
    url: str | None
    offset: int = 0
    synced: bool = False
    token: str | None = None
    unit: int = UPLOAD_GRANULARITY_BYTES  # the session's X-Goog-Upload-Chunk-Granularity
    confirmed: int = 0  # the last offset Google confirmed to this process


class ResumableUpload:
    """``X-Goog-Upload-Protocol: resumable``: a session, then chunks of ``chunk_size``.

    With a chunk at least the file's size (the default 64 MiB, say) the file goes in one
    request after the start. After a break the session is queried and the upload continues
    from the offset Google confirmed; each step of progress gets the policy's full budget.

    Args:
        api: The HTTP layer.
        policy: Retry policy for each step.
        chunk_size: Bytes per request, rounded down to the session's granularity.
    """

    def __init__(self, api: GooglePhotosAPI, *, policy: RetryPolicy, chunk_size: int) -> None:
        self.api = api
        self.policy = policy
        self.chunk_size = chunk_size

    async def upload(
        self,
        source: ByteSource,
        *,
        size: int,
        file_name: str,
        mime_type: str,
        on_progress: ProgressCallback | None = None,
        upload_url: str | None = None,
    ) -> str:
        """Upload ``size`` bytes from ``source`` (see :class:`MediaUpload`).

        Args:
            source: The file's bytes from any offset.
            size: Total bytes.
            file_name: Name given to Google.
            mime_type: The file's MIME type.
            on_progress: Told the session URL once it exists and each confirmed offset.
            upload_url: A session URL from an earlier, interrupted attempt, to continue.

        Returns:
            The upload token.

        Raises:
            GoogleAPIError: Google refused the upload for good.
            QuotaExhaustedError: The daily quota is used up.
        """
        state = _Session(upload_url, synced=upload_url is None)
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

    async def _step(
        self,
        state: _Session,
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
        if response.status_code == 400 and "X-Goog-Upload-Size-Received" in response.headers:
            raise RetryableStatusError(f"upload of {file_name} (offset mismatch)", 400)
        if final:
            state.token = _check_response(f"upload of {file_name}", response)
        else:
            if response.status_code == 401:
                raise RetryableStatusError(f"upload of {file_name} (token refreshed)", 401)
            raise_for_status(f"upload of {file_name}", response)
        state.offset += length
        state.confirmed = state.offset
        state.synced = True
        await _notify(on_progress, state.url, state.offset)

    async def _start(self, size: int, file_name: str, mime_type: str) -> tuple[str, int]:
        """Open a session; return its URL and granularity."""
        headers = {
            "X-Goog-Upload-Command": "start",
            "X-Goog-Upload-Protocol": "resumable",
            "X-Goog-Upload-Content-Type": mime_type,
            "X-Goog-Upload-Raw-Size": str(size),
            "X-Goog-Upload-File-Name": header_file_name(file_name),
            "Content-Length": "0",
        }
        response = await self.api.send("POST", UPLOADS_PATH, headers=headers)
        raise_for_status("upload start", response)
        url: str | None = response.headers.get("X-Goog-Upload-URL")
        if not url:
            raise GoogleAPIError("upload start", error_body(response))
        try:
            unit = int(response.headers.get("X-Goog-Upload-Chunk-Granularity", 0))
        except ValueError:
            unit = 0
        return url, max(UPLOAD_GRANULARITY_BYTES, unit)

    async def _query(self, state: _Session) -> None:
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


async def _notify(callback: ProgressCallback | None, url: str, offset: int) -> None:
    """Tell ``callback`` (sync or async) the session URL and confirmed offset."""
    if callback is None:
        return
    outcome = callback(url, offset)
    if inspect.isawaitable(outcome):
        await outcome
