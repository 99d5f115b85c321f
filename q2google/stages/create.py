"""Create: register uploaded files as media items, 50 at a time, never blindly twice.

Google Photos does not reliably merge a second create of the same bytes into the first item,
so a batch whose outcome is unknown is never sent again as it is. Before a call the batch and
its items are checkpointed ``running``. If the answer is lost (a 5xx, a timeout, a dropped
connection), or the process dies before the next checkpoint, the batch stays ``running``
until :meth:`CreateStage.settle` (after this run's uploads, or at the next run's start) lists
the items this app created and finds each file by the marker in its description
(:mod:`q2google.stages.marker`): what exists is delivered; only what is missing is created
again, with its token while the token is young, else uploaded again.

Google's answer is read per item: success; ``ALREADY_EXISTS`` (6): delivered; ``INVALID_ARGUMENT``
(3) for a token that was sent before or is old: uploaded again (at most twice per file per
run); 3 for a fresh token: Google refuses the file for good, recorded ``failed`` with its own
message. A whole batch refused because the user deleted the album, or because the album is
full, goes to the album found again (or made again), or to the next one, "Title (2)".
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from q2google.checkpoints import uninterrupted
from q2google.errors import QuotaExhaustedError, StorageFullError
from q2google.gphotos.answers import album_refusal, is_storage_full
from q2google.gphotos.limits import MAX_BATCH_CREATE_ITEMS
from q2google.gphotos.models import (
    CreateOutcomeUnknownError,
    GoogleAPIError,
    MediaItemBatchCreateResponse,
    NewMediaItemResult,
    Status,
)
from q2google.photos import GooglePhotoLibraryPort, NewItemSpec
from q2google.stages.album import ALBUM_SWITCHES, switch_album
from q2google.stages.marker import description_for, item_key_in
from q2google.state import (
    BatchState,
    ErrorRecord,
    ItemState,
    SessionState,
    StageName,
    StageStatus,
)
from q2google.state.ledger import ledger_entry

logger = logging.getLogger(__name__)

Persist = Callable[[SessionState], Awaitable[None]]
OnCreated = Callable[[list[ItemState]], Awaitable[None]]
Clock = Callable[[], datetime]

TOKEN_INVALID = 3
"""INVALID_ARGUMENT: the token is used or expired, or Google cannot make an item of the file."""
ALREADY_EXISTS = 6
"""The token was already turned into a media item: the file is there."""
TOKEN_FLUSH_AGE = timedelta(hours=1)
"""A partial batch waits no longer for company (tokens live a day)."""
TOKEN_REUSE_AGE = timedelta(hours=12)
"""An older token is not trusted: the file is uploaded again instead."""
RESENDS_PER_RUN = 2
"""Uploads of one file again in a run, after Google said its token was used or expired."""


def utc_now() -> datetime:
    """The current time, in UTC."""
    return datetime.now(UTC)


class CreateStage:
    """Turn upload tokens into media items.

    Args:
        photos: Google Photos.
        persist: Saves a checkpoint.
        library_batch_size: Items per batchCreate call (1 to 50).
        on_created: Awaited with detached copies of the items each batch created (their
            media item ids set) before any item of the session is marked created: the
            delivery ledger records them first, so a crash in between leaves them recorded,
            and the next run finds them there.
        clock: The time now (tests move it).
        keep_responses: Keep each batch's answer in :attr:`responses`.
    """

    def __init__(
        self,
        photos: GooglePhotoLibraryPort,
        persist: Persist,
        *,
        library_batch_size: int = MAX_BATCH_CREATE_ITEMS,
        on_created: OnCreated | None = None,
        clock: Clock = utc_now,
        keep_responses: bool = True,
    ) -> None:
        self.photos = photos
        self.keep_responses = keep_responses
        self.persist = persist
        self.on_created = on_created
        self.clock = clock
        self.batch_size = max(1, min(MAX_BATCH_CREATE_ITEMS, library_batch_size))
        self._ready: list[ItemState] = []
        self._queued: set[str] = set()  # the keys of _ready (thousands wait behind a slow call)
        self._lock = asyncio.Lock()
        self._sending: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._sent_before: set[str] = set()  # item keys whose token went out in a lost call
        self._resends: Counter[str] = Counter()
        self._rechecked: Counter[str] = Counter()
        self.responses: list[MediaItemBatchCreateResponse] = []
        self.resend: list[ItemState] = []

    def ready_items(self, state: SessionState) -> list[ItemState]:
        """Items with a token that still need creating (after a restart too)."""
        return [
            item
            for item in state.items.values()
            if item.transfer_status is StageStatus.COMPLETED
            and item.upload_token
            and item.exclusion is None
            and (item.create_status is StageStatus.PENDING or _failed_for_now(item))
        ]

    def queue_ready(self, state: SessionState) -> None:
        """Queue every item of ``state`` with a token still to create (one whose upload ended
        as the run was stopping may not have been handed over)."""
        for item in self.ready_items(state):
            self._queue(item)

    async def add(self, state: SessionState, item: ItemState) -> None:
        """Queue an uploaded item; a batch is sent as soon as one is full, or old, while the
        uploads go on (its checkpoints, batchCreate and ledger entries took a small file's
        worker 200 ms). What the last batch sent raised is raised here, or by :meth:`drain`.
        """
        sending = self._sending
        if sending is not None and sending.done():
            self._sending = None
            self._failure = sending.exception()
        if self._failure is not None:  # no batch starts after one failed: the run stops
            raise self._failure
        self._queue(item)
        full = len(self._ready) >= self.batch_size
        if self._sending is None and (full or self._oldest_token_age() > TOKEN_FLUSH_AGE):
            self._sending = asyncio.create_task(self.flush(state, whole_batches_only=full))

    async def drain(self) -> None:
        """Wait for the batches :meth:`add` is sending (to their end, even when cancelled);
        raise what they raised."""
        sending, self._sending = self._sending, None
        if sending is not None:
            await uninterrupted(sending)
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _queue(self, item: ItemState) -> None:
        if item.item_key not in self._queued:
            self._queued.add(item.item_key)
            self._ready.append(item)

    async def flush(self, state: SessionState, *, whole_batches_only: bool = False) -> None:
        """Send the queued items (only full batches unless told otherwise)."""
        async with self._lock:  # one batchCreate at a time, as Google asks
            while self._ready and (len(self._ready) >= self.batch_size or not whole_batches_only):
                batch_items, self._ready = (
                    self._ready[: self.batch_size],
                    self._ready[self.batch_size :],
                )
                self._queued.difference_update(item.item_key for item in batch_items)
                await self._create(state, batch_items)

    async def settle(self, state: SessionState) -> None:
        """Find out what batches with a lost answer did; queue again only what is missing.

        Lists the items this app created (stopping as soon as every file sought is found) and
        matches their markers. Found: delivered. Missing: created again with its token while
        the token is young, else handed back for upload (in :attr:`resend`).
        """
        async with self._lock:  # no batch is in flight while its items are sought
            await self._settle(state)

    async def _settle(self, state: SessionState) -> None:
        uncertain = [b for b in state.batches.values() if b.status is StageStatus.RUNNING]
        sought = {
            item.item_key: item
            for item in state.items.values()
            if item.create_status is StageStatus.RUNNING
        }
        found = await self._find(set(sought), state.album_id)
        delivered = [delivery(item, found[key]) for key, item in sought.items() if key in found]
        await self._tell_created(delivered)  # before any item of the session says so
        for batch in uncertain:
            batch.status = StageStatus.COMPLETED
            if batch.error is None and any(key in sought for key in batch.item_keys):
                batch.error = ErrorRecord(stage=StageName.CREATE, message="answer lost")
        for key, item in sought.items():
            if key in found:
                self._created(item, found[key])
            else:
                item.create_status = StageStatus.PENDING
                self._sent_before.add(key)
                if self._token_is_young(item):
                    self._queue(item)
                else:
                    self._upload_again(item)
        await self.persist(state)
        if sought:
            logger.info(
                "after lost answers: %d files were in Google Photos, %d are sent again",
                len(found),
                len(sought) - len(found),
            )

    async def _find(self, sought: set[str], album_id: str | None) -> dict[str, str]:
        """The media item ids of the files ``sought`` (item keys) that are in Google Photos.

        Looks in the session's album first (at most 20,000 items: what went there was created
        into it), then, for what is still missing, through every item the app created; each
        listing stops once every file sought is found.
        """
        found: dict[str, str] = {}
        for scope in ([album_id] if album_id else []) + [None]:
            if len(found) == len(sought):
                break
            async for media_item in self.photos.app_created_items(scope):
                key = item_key_in(media_item.description)
                if key in sought and key not in found:
                    found[key] = media_item.id
                    if len(found) == len(sought):
                        break
        return found

    # -- one batch -------------------------------------------------------------------------

    async def _create(self, state: SessionState, items: Sequence[ItemState]) -> None:
        batch = state.add_batch(
            BatchState(
                batch_index=state.next_batch_index(),
                item_keys=tuple(item.item_key for item in items),
                status=StageStatus.RUNNING,
                attempts=1,
            )
        )
        for item in items:
            item.create_status = StageStatus.RUNNING
            item.batch_index = batch.batch_index
        await self.persist(state)  # before the call: a crash now means "maybe created"
        specs = [
            NewItemSpec(
                str(item.upload_token),
                item.file_name,
                description_for(item.item_key, item.media_type),
            )
            for item in items
        ]
        try:
            results = await self._send(state, specs)
        except CreateOutcomeUnknownError as lost:
            batch.error = ErrorRecord(
                stage=StageName.CREATE,
                message=f"{lost}; what it did is checked before anything is sent again",
                retryable=True,
            )
            await self.persist(state)
            logger.info("batch %d: the answer was lost; checked later", batch.batch_index)
            return
        except QuotaExhaustedError:  # refused before any work, or never sent: nothing created
            for item in items:
                item.create_status = StageStatus.PENDING
            batch.status = StageStatus.FAILED
            batch.error = ErrorRecord(
                stage=StageName.CREATE, message="not sent: the daily quota is used up"
            )
            await self.persist(state)
            raise
        except GoogleAPIError as refused:  # the whole batch: nothing was created
            for item in items:
                item.create_status = StageStatus.PENDING
            batch.status = StageStatus.FAILED
            batch.error = ErrorRecord(stage=StageName.CREATE, message=str(refused))
            if is_storage_full(refused.error.code, refused.error.message):
                await self.persist(state)
                raise StorageFullError() from None
            for item in items:
                self._fail(item, str(refused), code=refused.error.status)
            await self.persist(state)
            return
        if self.keep_responses:
            self.responses.append(MediaItemBatchCreateResponse(new_media_item_results=results))
        pairs = zip(items, results, strict=True)
        delivered = [delivery(item, id_) for item, r in pairs if (id_ := created_id(r)) is not None]
        await self._tell_created(delivered)  # before any item of the session says so
        storage_full = False
        for item, result in zip(items, results, strict=True):
            storage_full |= self._record(item, result)
        batch.responses = tuple(stored_answer(result) for result in results)
        batch.status = StageStatus.COMPLETED if all(r.ok for r in results) else StageStatus.FAILED
        await self.persist(state)
        if storage_full:
            raise StorageFullError()

    async def _send(
        self, state: SessionState, specs: Sequence[NewItemSpec]
    ) -> list[NewMediaItemResult]:
        """batchCreate into the session's album; into the album found or made again when
        the user deleted it; split in halves when the album is full, and on into the next
        album, "Title (2)", once not one more item fits. A refused call created nothing."""
        for switch in range(ALBUM_SWITCHES + 1):
            try:
                return await self.photos.create_media_items(specs, album_id=state.album_id)
            except GoogleAPIError as refused:
                problem = album_refusal(refused.error) if state.album_title else None
                if problem is None or switch == ALBUM_SWITCHES:
                    raise
                if problem == "full" and len(specs) > 1:  # fill it to the last place
                    half = len(specs) // 2
                    first = await self._send(state, specs[:half])
                    try:
                        rest = await self._send(state, specs[half:])
                    except GoogleAPIError as later:  # the first half exists: answer per item
                        rest = [_refused(spec, later) for spec in specs[half:]]
                    return first + rest
                await switch_album(self.photos, state, problem, self.persist)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- one item --------------------------------------------------------------------------

    async def _tell_created(self, delivered: list[ItemState]) -> None:
        """Hand what Google created to :attr:`on_created` (the delivery ledger records it)
        before the session's items say so: a checkpoint never holds a created file the ledger
        does not (saves of other tasks may run while this one waits)."""
        if delivered and self.on_created is not None:
            await self.on_created(delivered)

    def _record(self, item: ItemState, result: NewMediaItemResult) -> bool:
        """Record Google's answer for one item; return whether it says the storage is full."""
        media_item_id = created_id(result)
        if media_item_id is not None:
            self._created(item, media_item_id)
            return False
        code, message = result.status.code, result.status.message
        if is_storage_full(code, message):
            item.create_status = StageStatus.PENDING  # created once there is room again
            return True
        if code == ALREADY_EXISTS:
            item.create_status = StageStatus.RUNNING  # there: its id is found by settle()
            self._sent_before.add(item.item_key)
        elif (
            code == TOKEN_INVALID
            and item.item_key in self._sent_before
            and (not self._rechecked[item.item_key])
        ):  # used: by the lost call, surely; the listing may have lagged: look once more
            self._rechecked[item.item_key] += 1
            item.create_status = StageStatus.RUNNING
        elif code == TOKEN_INVALID and (
            item.item_key in self._sent_before or not self._token_is_young(item)
        ):
            if self._resends[item.item_key] >= RESENDS_PER_RUN:
                self._fail(item, f"Google keeps refusing its uploads: {message}", code=str(code))
            else:
                self._upload_again(item)
        else:  # a fresh token refused: Google will not take this file; or a transient error
            self._fail(item, message, code=str(code), retryable=result.transient)
        return False

    def _created(self, item: ItemState, media_item_id: str) -> None:
        item.media_item_id = media_item_id
        item.create_status = StageStatus.COMPLETED
        item.upload_token = None
        item.download_url = None  # signed, expiring, of no use now: a third of each record
        item.clear_error(StageName.CREATE)

    def _upload_again(self, item: ItemState) -> None:
        self._resends[item.item_key] += 1
        item.upload_token = item.upload_url = None
        item.upload_offset = 0
        item.transfer_status = item.create_status = StageStatus.PENDING
        self.resend.append(item)

    def _fail(self, item: ItemState, message: str, *, code: str, retryable: bool = False) -> None:
        item.create_status = StageStatus.FAILED
        if not retryable:
            item.upload_token = None  # a later `sessions retry` uploads it again
        item.record_error(
            ErrorRecord(stage=StageName.CREATE, message=message, code=code, retryable=retryable)
        )

    def _token_is_young(self, item: ItemState) -> bool:
        return self._token_age(item) <= TOKEN_REUSE_AGE

    def _token_age(self, item: ItemState) -> timedelta:
        if not item.upload_token_created_at:
            return timedelta.max
        return self.clock() - datetime.fromisoformat(item.upload_token_created_at)

    def _oldest_token_age(self) -> timedelta:
        return max((self._token_age(item) for item in self._ready), default=timedelta())

    async def recover(self, state: SessionState) -> None:
        """Settle the batches a dead run left ``running`` before anything else is sent."""
        await self.settle(state)


def stored_answer(result: NewMediaItemResult) -> dict[str, Any]:
    """What a batch keeps of Google's answer for one file: its status, and the id of the
    media item made, if any (the URLs and metadata are Google's to keep: 1 KB a file, read
    again at every resume)."""
    answer: dict[str, Any] = {"status": result.status.to_api()}
    media_item_id = created_id(result)
    if media_item_id is not None:
        answer["mediaItem"] = {"id": media_item_id}
    return answer


def created_id(result: NewMediaItemResult) -> str | None:
    """The id of the media item a batchCreate answer says exists for its upload, if any."""
    if result.media_item is None:
        return None
    if result.ok or result.status.code == ALREADY_EXISTS:
        return result.media_item.id
    return None


def delivery(item: ItemState, media_item_id: str) -> ItemState:
    """The ledger entry of ``item`` delivered as ``media_item_id``, detached (the session's
    item is not touched: it is marked created only once the delivery is recorded)."""
    entry = ledger_entry(item)
    entry.media_item_id = media_item_id
    return entry


def _refused(spec: NewItemSpec, refused: GoogleAPIError) -> NewMediaItemResult:
    """Google's refusal of a whole call, as the answer for one of its items."""
    status = Status(code=refused.error.code, message=refused.error.message or str(refused))
    return NewMediaItemResult(upload_token=spec.upload_token, status=status)


def _failed_for_now(item: ItemState) -> bool:
    """A create that failed with an error worth trying again (Google's transient codes)."""
    error = item.errors.get(StageName.CREATE)
    return item.create_status is StageStatus.FAILED and error is not None and error.retryable
