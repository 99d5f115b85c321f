"""Transfer: stream each file from the GoPro CDN straight into a Google upload.

No temporary files and no whole file in memory. ``transfer_concurrency`` workers take files
largest first (a long video does not start last and end the run alone); an
:class:`~q2google.throttle.AdaptiveLimit` caps how many transfer at once. Files up to
``Q2GOOGLE_RAW_UPLOAD_MAX_BYTES`` go in one raw request, sent again whole after a break.
Larger ones use the resumable protocol: the session URL and the offset Google confirmed are
checkpointed as they advance, so a new process continues an upload a killed one started, and a
body cut midway reopens with a ``Range`` request from the confirmed offset.

GoPro calls are spent sparingly (:mod:`q2google.stages.download`): a photo described by its
search row gets its CDN URL (one download-metadata call) right before its download; any other
file uses the URL discovery stored. A URL is resolved again only when the CDN refuses it
(expired), once for all the files of its media. A file's size comes from the CDN's answer to
the GET that starts its download (no HEAD): Google's limits are checked then, before a byte is
sent.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import httpx

from q2google.checkpoints import uninterrupted
from q2google.clock import SYSTEM_CLOCK, Clock
from q2google.errors import Q2GoogleError, StorageFullError
from q2google.gopro import GoProSource
from q2google.gphotos.answers import is_storage_full
from q2google.gphotos.limits import mime_type, refusal
from q2google.gphotos.models import GoogleAPIError
from q2google.photos import GooglePhotoLibraryPort
from q2google.retry import DEFAULT_POLICY, RetryableStatusError, RetryPolicy, is_transient
from q2google.stages.download import (
    CdnFiles,
    CdnUrlExpiredError,
    DescribedError,
    IncompleteBodyError,
    PermanentItemError,
    SetAsideError,
    cdn_file_size,
)
from q2google.stages.metrics import SyncTransferMetrics
from q2google.stages.sizes import bytes_to_send, largest_first
from q2google.state import ErrorRecord, ItemState, SessionState, StageName, StageStatus
from q2google.state.base import ExclusionKind
from q2google.throttle import AdaptiveLimit

__all__ = [
    "CdnUrlExpiredError",
    "Claim",
    "IncompleteBodyError",
    "PermanentItemError",
    "SetAsideError",
    "TransferStage",
    "cdn_file_size",
]

logger = logging.getLogger(__name__)

Persist = Callable[[SessionState], Awaitable[None]]
OnUploaded = Callable[[ItemState], Awaitable[None]]
Claim = Callable[[Sequence[ItemState]], Awaitable[set[str]]]
"""Which of these files this run may transfer now (their keys); it records why not on each
other item itself."""
SMALL_FILE_BYTES = 1024 * 1024
"""Files up to this size are claimed several at a time, and go on once uploaded without
waiting for their checkpoint (``persist_soon``: one save for several, see
:data:`q2google.checkpoints.SOON_EVERY`): a crash before it costs their upload again, never a
duplicate (nothing is created before a checkpoint holds its token). For thousands of small
photos, a claim and a save each cost more than the transfer."""
CLAIM_AHEAD = 16
"""Small files claimed together, the next in line (a large file is claimed alone, when its
turn comes: another session may want it meanwhile)."""
URL_REFRESHES = 3


class TransferStage:
    """Move the bytes of every pending item from the GoPro CDN to Google.

    Args:
        source: The GoPro cloud (to resolve fresh CDN URLs).
        photos: Google Photos.
        persist: Saves a checkpoint.
        cdn: HTTP client for the CDN.
        concurrency: Workers, each transferring one file at a time.
        policy: Retry policy of the GET that starts a download.
        limit: Caps the files transferring at once below ``concurrency`` when Google asks to
            slow down; each file's transfer holds one of its slots.
        clock: Stamps upload tokens (their age decides their fate) and times the metrics.
        persist_soon: Asks for a checkpoint without waiting for it, after a small file's
            upload of so many bytes (see :data:`SMALL_FILE_BYTES`); without it, every
            checkpoint is waited for.
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
        limit: AdaptiveLimit | None = None,
        clock: Clock = SYSTEM_CLOCK,
        persist_soon: Callable[[SessionState, int], None] | None = None,
    ) -> None:
        self.source = source
        self.clock = clock
        self.persist_soon = persist_soon
        self.photos = photos
        self.persist = persist
        self.cdn = cdn
        self.concurrency = concurrency
        self.policy = policy
        self.limit = limit
        self.cdn_files = CdnFiles(source, cdn)

    async def run(
        self,
        state: SessionState,
        *,
        fail_fast: bool,
        on_uploaded: OnUploaded,
        metrics: SyncTransferMetrics | None = None,
        claim: Claim | None = None,
    ) -> None:
        """Transfer every item whose bytes are not yet in Google, largest first; hand each to
        ``on_uploaded``.

        ``claim`` is asked before a file is transferred whether this run may send it now (the
        cross-session ledger: another session may hold it, or have delivered it).

        Raises:
            Q2GoogleError: The run cannot go on now (a quota, a refused token, a cloud that
                keeps failing); the items in flight are saved as still to do.
            PermanentItemError: With ``fail_fast``, the first item that failed for good.
        """
        metrics = metrics or SyncTransferMetrics()
        started = self.clock.monotonic()
        queue, workers = self._queue(state, metrics)
        metrics.uploads_allowed = self.concurrency if self.limit is None else self.limit.current
        state.set_stage(StageName.TRANSFER, StageStatus.RUNNING)
        await self.persist(state)

        claims: dict[str, asyncio.Future[set[str]]] = {}

        async def admitted(item: ItemState) -> bool:
            if claim is None:
                return True
            if item.item_key not in claims:  # claim it with the next small files in line
                ahead = itertools.takewhile(_small, queue) if _small(item) else iter(())
                fresh = (other for other in ahead if other.item_key not in claims)
                group = [item, *itertools.islice(fresh, CLAIM_AHEAD - 1)]
                asked = asyncio.ensure_future(claim(group))
                claims.update((member.item_key, asked) for member in group)
            return item.item_key in await claims.pop(item.item_key)

        async def worker() -> None:
            while queue:
                async with self._slot(metrics):
                    if not queue:
                        break
                    item = queue.popleft()
                    if not await admitted(item):
                        self.cdn_files.forget(item)
                        await self.persist(state)
                        continue
                    ok = await self._transfer(state, item, metrics)
                    self.cdn_files.forget(item)
                if ok:
                    await on_uploaded(item)
                elif fail_fast and item.transfer_status is StageStatus.FAILED:
                    reason = item.errors[StageName.TRANSFER].message
                    raise PermanentItemError(f"{item.file_name}: {reason}")

        try:
            async with asyncio.TaskGroup() as group:
                for _ in range(workers):
                    group.create_task(worker())
        except* (Q2GoogleError, PermanentItemError) as errors:  # quota, auth, state
            raise errors.exceptions[0] from None
        finally:
            metrics.seconds_transfer_wall += self.clock.monotonic() - started
            unfinished = set(claims.values())  # claims of files the run stopped before:
            if unfinished:  # ended first, so that the run lets them go (what one raised
                await uninterrupted(  # reached the workers that waited for it)
                    asyncio.gather(*unfinished, return_exceptions=True)
                )
        failed = any(item.transfer_status is StageStatus.FAILED for item in state.items.values())
        state.set_stage(StageName.TRANSFER, StageStatus.FAILED if failed else StageStatus.COMPLETED)
        await self.persist(state)

    def _queue(
        self, state: SessionState, metrics: SyncTransferMetrics
    ) -> tuple[deque[ItemState], int]:
        """The files to transfer, largest first, in a queue the CDN side adds to (a media's
        files found late), and how many workers they need. Nothing else holds them: a file
        done is let go."""
        pending = largest_first(
            state, [item for item in state.items.values() if _needs_transfer(item)]
        )
        metrics.bytes_to_send = bytes_to_send(state, pending)
        queue = deque(pending)
        self.cdn_files.begin(pending, lambda added: queue.extend(filter(_needs_transfer, added)))
        return queue, min(self.concurrency, max(1, len(pending)))

    @asynccontextmanager
    async def _slot(self, metrics: SyncTransferMetrics) -> AsyncIterator[None]:
        """Hold one of the limit's slots (when there is a limit), telling ``metrics``."""
        if self.limit is None:
            yield
            return
        async with self.limit.slot():
            metrics.uploads_allowed = self.limit.current
            yield
        metrics.uploads_allowed = self.limit.current

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
        except DescribedError:
            if item.exclusion is not None:
                metrics.count_aside(item.exclusion.kind)
            else:
                metrics.files_failed += 1
            await self.persist(state)
            logger.info("%s: %s", item.file_name, _held_back(item))
            return False
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
        if self.persist_soon is not None and _small(item):
            self.persist_soon(state, item.size_bytes or 0)
        else:
            await self.persist(state)
        return True

    async def _upload(
        self, state: SessionState, item: ItemState, *, fresh_url: bool, metrics: SyncTransferMetrics
    ) -> None:
        if fresh_url or item.download_url is None:  # a photo's URL: right before its download
            await self.cdn_files.refresh(state, item, None)
        first: httpx.Response | None = None  # the GET that told the size, read from byte 0
        if item.upload_url is None or item.size_bytes is None:
            first = await self._start_download(state, item, metrics)
        assert item.size_bytes is not None
        size = item.size_bytes

        async def source(offset: int) -> AsyncIterator[bytes]:
            nonlocal first
            got, first = first, None
            waited = self.clock.monotonic()
            if got is None or offset:
                if got is not None:
                    await got.aclose()
                got = await self.cdn_files.open(state, item, offset)
            try:
                metrics.seconds_downloading += self.clock.monotonic() - waited
                expected, received = size - offset, 0
                pieces = got.aiter_bytes()
                async for piece in pieces:
                    received += len(piece)
                    metrics.bytes_downloaded += len(piece)
                    if received >= expected:  # the last piece: read the answer's end first,
                        async for extra in pieces:  # so its connection goes back to the pool
                            received += len(extra)  # (the upload stops asking at the size)
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

        started = self.clock.monotonic()
        try:
            token = await self.photos.upload(
                source,
                size=size,
                file_name=item.file_name,
                mime_type=mime_type(item.file_name),
                upload_url=item.upload_url,
                on_progress=progress,
            )
        finally:
            if first is not None:  # never read: the upload failed before its first byte
                await first.aclose()
        metrics.seconds_uploading += self.clock.monotonic() - started
        metrics.bytes_uploaded += size
        item.upload_token = token
        item.upload_token_created_at = self.clock.now().isoformat(timespec="milliseconds")

    async def _start_download(
        self, state: SessionState, item: ItemState, metrics: SyncTransferMetrics
    ) -> httpx.Response:
        """GET the file from byte 0 and take its size from the answer (no HEAD first).

        Raises:
            SetAsideError: Google Photos would refuse a file of this size (nothing is sent).
            PermanentItemError: The CDN did not tell the size.
        """
        waited = self.clock.monotonic()
        got, size = await self.cdn_files.first_bytes(state, item, self.policy)
        metrics.seconds_downloading += self.clock.monotonic() - waited
        refused = refusal(item.file_name, size)
        if refused is not None:  # found before a byte is sent
            await got.aclose()
            raise SetAsideError(ExclusionKind.SKIPPED, refused)
        item.size_bytes = size
        return got


def _held_back(item: ItemState) -> str:
    if item.exclusion is not None:
        return f"{item.exclusion.kind.value} ({item.exclusion.reason})"
    error = item.errors.get(StageName.DISCOVERY)
    return f"failed ({error.message if error else 'cannot be described'})"


def _small(item: ItemState) -> bool:
    """Whether a file is small (:data:`SMALL_FILE_BYTES`); a file of unknown size is not."""
    return item.size_bytes is not None and item.size_bytes <= SMALL_FILE_BYTES


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
