"""Transfer: stream each file from the GoPro CDN straight into a Google upload.

No temporary files and no whole file in memory. ``transfer_concurrency`` items are in flight.
Files up to ``Q2GOOGLE_RAW_UPLOAD_MAX_BYTES`` go in one raw request, sent again whole after a
break. Larger ones use the resumable protocol: the session URL and the offset Google confirmed
are checkpointed as they advance, so a new process continues an upload a killed one started,
and a body cut midway reopens with a ``Range`` request from the confirmed offset. CDN URLs are
resolved right before each download and again when one has expired.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx

from q2google.errors import Q2GoogleError, StorageFullError
from q2google.gopro import GoProAnswerError, GoProFile, GoProSource, MediaGoneError, Verdict
from q2google.gopro.shapes import GONE_REASON
from q2google.gphotos.answers import is_storage_full
from q2google.gphotos.limits import mime_type, refusal
from q2google.gphotos.models import GoogleAPIError
from q2google.photos import GooglePhotoLibraryPort
from q2google.retry import (
    DEFAULT_POLICY,
    RETRYABLE_STATUSES,
    RetryableStatusError,
    RetryPolicy,
    is_transient,
    parse_retry_after,
)
from q2google.stages.metrics import SyncTransferMetrics
from q2google.state import ErrorRecord, ItemState, SessionState, StageName, StageStatus
from q2google.state.base import ExclusionKind, utc_now_iso

logger = logging.getLogger(__name__)

Persist = Callable[[SessionState], Awaitable[None]]
OnUploaded = Callable[[ItemState], Awaitable[None]]
Claim = Callable[[ItemState], Awaitable[bool]]
"""Whether this run may transfer a file now; it records why not on the item itself."""
URL_REFRESHES = 3


class CdnUrlExpiredError(Exception):
    """The CDN refused a signed URL (expired): resolve a new one through the GoPro API."""


class IncompleteBodyError(ConnectionError):
    """The CDN closed the body before ``Content-Length`` bytes: transient, read again."""


class PermanentItemError(Exception):
    """This item cannot be transferred (refused by Google, unreadable on the CDN)."""


class SetAsideError(Exception):
    """This item is held back on purpose: skipped, deferred or gone (not a failure).

    Attributes:
        kind: Skipped, deferred or gone.
        reason: One line for a person.
    """

    def __init__(self, kind: ExclusionKind, reason: str) -> None:
        super().__init__(reason)
        self.kind, self.reason = kind, reason


class TransferStage:
    """Move the bytes of every pending item from the GoPro CDN to Google.

    Args:
        source: The GoPro cloud (to resolve fresh CDN URLs).
        photos: Google Photos.
        persist: Saves a checkpoint.
        cdn: HTTP client for the CDN.
        concurrency: Items in flight.
        policy: Retry policy of CDN size checks.
    """

    def __init__(
        self,
        source: GoProSource,
        photos: GooglePhotoLibraryPort,
        persist: Persist,
        cdn: httpx.AsyncClient,
        *,
        concurrency: int = 4,
        policy: RetryPolicy = DEFAULT_POLICY,
    ) -> None:
        self.source = source
        self.photos = photos
        self.persist = persist
        self.cdn = cdn
        self.concurrency = concurrency
        self.policy = policy

    async def run(
        self,
        state: SessionState,
        *,
        fail_fast: bool,
        on_uploaded: OnUploaded,
        metrics: SyncTransferMetrics | None = None,
        claim: Claim | None = None,
    ) -> None:
        """Transfer every item whose bytes are not yet in Google; hand each to ``on_uploaded``.

        ``claim`` is asked before a file is transferred whether this run may send it now (the
        cross-session ledger: another session may hold it, or have delivered it).

        Raises:
            Q2GoogleError: The run cannot go on now (a quota, a refused token, a cloud that
                keeps failing); the items in flight are saved as still to do.
            PermanentItemError: With ``fail_fast``, the first item that failed for good.
        """
        metrics = metrics or SyncTransferMetrics()
        started = time.monotonic()
        pending = [item for item in state.items.values() if _needs_transfer(item)]
        state.set_stage(StageName.TRANSFER, StageStatus.RUNNING)
        await self.persist(state)
        queue: asyncio.Queue[ItemState] = asyncio.Queue()
        for item in pending:
            queue.put_nowait(item)

        async def worker() -> None:
            while not queue.empty():
                item = queue.get_nowait()
                if claim is not None and not await claim(item):
                    await self.persist(state)
                    continue
                ok = await self._transfer(state, item, metrics)
                if ok:
                    await on_uploaded(item)
                elif fail_fast and item.transfer_status is StageStatus.FAILED:
                    reason = item.errors[StageName.TRANSFER].message
                    raise PermanentItemError(f"{item.file_name}: {reason}")

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(min(self.concurrency, max(1, len(pending)))):
                    group.create_task(worker())
        except* (Q2GoogleError, PermanentItemError) as errors:  # quota, auth, state
            raise errors.exceptions[0] from None
        finally:
            metrics.seconds_transfer_wall += time.monotonic() - started
        failed = any(item.transfer_status is StageStatus.FAILED for item in state.items.values())
        state.set_stage(StageName.TRANSFER, StageStatus.FAILED if failed else StageStatus.COMPLETED)
        await self.persist(state)

    async def _transfer(
        self, state: SessionState, item: ItemState, metrics: SyncTransferMetrics
    ) -> bool:
        """Upload one item; return whether it now has an upload token."""
        if item.transfer_status is StageStatus.FAILED:  # counted as failed until it is not
            metrics.files_failed -= 1
        item.transfer_status = StageStatus.RUNNING  # saved with the item's next checkpoint
        item.attempts += 1
        metrics.in_flight[item.item_key] = item.file_name
        try:
            return await self._transfer_once(state, item, metrics)
        finally:
            metrics.in_flight.pop(item.item_key, None)

    async def _transfer_once(
        self, state: SessionState, item: ItemState, metrics: SyncTransferMetrics
    ) -> bool:
        try:
            for refresh in range(URL_REFRESHES + 1):
                try:
                    await self._upload(state, item, fresh_url=refresh > 0, metrics=metrics)
                    break
                except CdnUrlExpiredError:
                    if refresh == URL_REFRESHES:
                        raise PermanentItemError("the CDN keeps refusing fresh URLs") from None
                    logger.debug("CDN URL of %s expired; resolving it again", item.item_key)
        except SetAsideError as aside:
            item.exclude(aside.kind, aside.reason)
            metrics.count_aside(aside.kind)
            await self.persist(state)
            logger.info("%s: %s (%s)", item.file_name, aside.kind.value, aside.reason)
            return False
        except (
            PermanentItemError,
            GoogleAPIError,
            RetryableStatusError,
            httpx.HTTPError,
            OSError,
            ValueError,
        ) as error:
            if isinstance(error, GoogleAPIError) and is_storage_full(
                error.error.code, error.error.message
            ):
                item.transfer_status = StageStatus.PENDING
                await self.persist(state)
                raise StorageFullError() from None
            item.transfer_status = StageStatus.FAILED
            metrics.files_failed += 1
            transient = is_transient(error)
            item.record_error(
                ErrorRecord(stage=StageName.TRANSFER, message=_one_line(error), retryable=transient)
            )
            await self.persist(state)
            return False
        except (Q2GoogleError, asyncio.CancelledError):
            item.transfer_status = StageStatus.PENDING  # the run stops: this is still to do
            await asyncio.shield(self.persist(state))
            raise
        item.clear_error(StageName.TRANSFER)
        item.transfer_status = StageStatus.COMPLETED
        metrics.files_sent += 1
        await self.persist(state)
        return True

    async def _upload(
        self, state: SessionState, item: ItemState, *, fresh_url: bool, metrics: SyncTransferMetrics
    ) -> None:
        if fresh_url or item.size_bytes is None:  # right before the download: URLs expire
            await self._resolve(item)
        assert item.download_url is not None
        assert item.size_bytes is not None
        size = item.size_bytes

        async def source(offset: int) -> AsyncIterator[bytes]:
            waited = time.monotonic()
            got = await self._open(item, offset)
            try:
                metrics.seconds_downloading += time.monotonic() - waited
                expected, received = size - offset, 0
                async for piece in got.aiter_bytes():
                    received += len(piece)
                    metrics.bytes_downloaded += len(piece)
                    yield piece
                if received < expected:
                    raise IncompleteBodyError(f"CDN body ended after {received} of {expected}")
            finally:
                await got.aclose()

        async def progress(upload_url: str, offset: int) -> None:
            if item.upload_url != upload_url or item.upload_offset != offset:
                item.upload_url, item.upload_offset = upload_url, offset
                if offset < size:  # the last one is saved with the upload token, just after
                    await self.persist(state)

        started = time.monotonic()
        token = await self.photos.upload(
            source,
            size=item.size_bytes,
            file_name=item.file_name,
            mime_type=mime_type(item.file_name),
            upload_url=item.upload_url,
            on_progress=progress,
        )
        metrics.seconds_uploading += time.monotonic() - started
        metrics.bytes_uploaded += item.size_bytes
        item.upload_token = token
        item.upload_token_created_at = utc_now_iso()

    async def _open(self, item: ItemState, offset: int) -> httpx.Response:
        """GET the item's bytes from ``offset``, resolving a fresh URL once if it expired."""
        for attempt in range(2):
            assert item.download_url is not None
            request = self.cdn.build_request(
                "GET", item.download_url, headers={"Range": f"bytes={offset}-"}
            )
            got = await self.cdn.send(request, stream=True)
            if got.status_code == 403 and attempt == 0:
                await got.aclose()
                logger.debug("CDN URL of %s expired; resolving it again", item.item_key)
                await self._resolve(item)
                continue
            if got.status_code in (200, 206):
                if offset and got.status_code == 200:
                    await got.aclose()
                    raise PermanentItemError("the CDN ignores Range requests")
                return got
            await got.aclose()
            if got.status_code == 403:
                raise CdnUrlExpiredError
            if got.status_code == 404:
                await self._resolve(item)  # gone from the cloud: set aside as such
                raise PermanentItemError("the GoPro CDN no longer has the file")
            if got.status_code in RETRYABLE_STATUSES:
                raise RetryableStatusError(
                    "CDN download",
                    got.status_code,
                    parse_retry_after(got.headers.get("Retry-After")),
                )
            raise PermanentItemError(f"HTTP {got.status_code} from the CDN")
        raise CdnUrlExpiredError  # pragma: no cover - the loop returns or raises

    async def _resolve(self, item: ItemState) -> None:
        """Fetch a fresh signed URL for the item and its size; set it aside if it must be.

        Raises:
            SetAsideError: The media is gone, not ready, or over Google's limits.
            PermanentItemError: The cloud no longer describes this file as deliverable.
        """
        try:
            files = await self.source.files(item.media_id, item.media_type)
        except MediaGoneError:
            raise SetAsideError(ExclusionKind.GONE, GONE_REASON) from None
        except GoProAnswerError as error:
            raise PermanentItemError(str(error)) from None
        entry = _same_file(files, item)
        if entry is None:
            raise SetAsideError(ExclusionKind.GONE, "the GoPro cloud no longer lists this file")
        if entry.verdict is Verdict.DEFER:
            raise SetAsideError(ExclusionKind.DEFERRED, entry.reason or "not ready yet")
        if entry.verdict is not Verdict.DELIVER or entry.url is None:
            raise PermanentItemError(entry.reason or "no longer deliverable")
        size = await cdn_file_size(self.cdn, entry.url, self.policy)
        refused = refusal(item.file_name, size)
        if refused is not None:  # found before a byte moves
            raise SetAsideError(ExclusionKind.SKIPPED, refused)
        item.size_bytes = size
        item.download_url = entry.url


async def cdn_file_size(cdn: httpx.AsyncClient, url: str, policy: RetryPolicy) -> int:
    """A CDN file's size, from a HEAD request, retried under ``policy``.

    Raises:
        CdnUrlExpiredError: The CDN refused the signed URL.
    """

    async def head() -> int:
        answer = await cdn.head(url)
        if answer.status_code == 403:
            raise CdnUrlExpiredError
        if answer.status_code in RETRYABLE_STATUSES:
            raise RetryableStatusError(
                "CDN size check",
                answer.status_code,
                parse_retry_after(answer.headers.get("Retry-After")),
            )
        if answer.status_code == 404:
            raise PermanentItemError("the GoPro CDN no longer has the file")
        answer.raise_for_status()
        try:
            return int(answer.headers["Content-Length"])
        except (KeyError, ValueError):
            raise PermanentItemError("the GoPro CDN gave no size for the file") from None

    size: int = await policy.call("CDN size check", head)
    return size


def _same_file(files: list[GoProFile], item: ItemState) -> GoProFile | None:
    """The item's file in a fresh answer: by name (a chapter left out of the answer shifts
    the positions of the next ones), else by position."""
    named = [entry for entry in files if entry.file_name == item.file_name]
    if len(named) == 1:
        return named[0]
    return next((entry for entry in files if entry.file_index == item.file_index), None)


def _needs_transfer(item: ItemState) -> bool:
    return (
        item.exclusion is None
        and item.discovery_status is StageStatus.COMPLETED
        and item.create_status is not StageStatus.COMPLETED
        and item.transfer_status not in (StageStatus.COMPLETED, StageStatus.SKIPPED)
    )


def _one_line(error: BaseException) -> str:
    """A one-line cause for the state, without URLs (CDN URLs are signed)."""
    if isinstance(error, httpx.HTTPStatusError):
        return f"HTTP {error.response.status_code} from the CDN"
    if isinstance(error, httpx.HTTPError):
        return f"{type(error).__name__} talking to the CDN"
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
