"""Create: register uploaded files as media items, in batches of at most 50.

Batches go out as soon as their tokens are ready, while transfer is still running, so no
token nears its one-day lifetime. Before a call, the batch and its items are checkpointed as
``running``; after it, each item's result. If a run dies in between, the next one finds the
batch ``running`` and sends it again: items Google already created answer that their token
was used, and are uploaded once more. Google deduplicates identical bytes into the existing
item, so that second upload yields the same media item id, never a second copy. An expired
token is handled the same way.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence

from q2google.gphotos.models import MediaItemBatchCreateResponse, NewMediaItemResult
from q2google.photos import MAX_BATCH, GooglePhotoLibraryPort, NewItemSpec
from q2google.state import (
    BatchState,
    ErrorRecord,
    ItemState,
    SessionState,
    StageName,
    StageStatus,
)

logger = logging.getLogger(__name__)

Persist = Callable[[SessionState], Awaitable[None]]
OnCreated = Callable[[list[ItemState]], Awaitable[None]]
TOKEN_INVALID = 3
"""INVALID_ARGUMENT: the token is unknown, used or expired; the bytes must be sent again."""


class CreateStage:
    """Turn upload tokens into media items.

    Args:
        photos: Google Photos.
        persist: Saves a checkpoint.
        library_batch_size: Items per batchCreate call (1 to 50).
        on_created: Awaited with the items each batch created (after its checkpoint).
    """

    def __init__(
        self,
        photos: GooglePhotoLibraryPort,
        persist: Persist,
        *,
        library_batch_size: int = MAX_BATCH,
        on_created: OnCreated | None = None,
    ) -> None:
        self.photos = photos
        self.persist = persist
        self.on_created = on_created
        self.batch_size = max(1, min(MAX_BATCH, library_batch_size))
        self._ready: list[ItemState] = []
        self._lock = asyncio.Lock()
        self.responses: list[MediaItemBatchCreateResponse] = []
        self.resend: list[ItemState] = []

    def ready_items(self, state: SessionState) -> list[ItemState]:
        """Items with a token that still need creating (after a restart too)."""
        return [
            item
            for item in state.items.values()
            if item.transfer_status is StageStatus.COMPLETED
            and item.create_status is not StageStatus.COMPLETED
            and item.upload_token
        ]

    async def add(self, state: SessionState, item: ItemState) -> None:
        """Queue an uploaded item; send a batch as soon as one is full."""
        self._ready.append(item)
        if len(self._ready) >= self.batch_size:
            await self.flush(state, whole_batches_only=True)

    async def flush(self, state: SessionState, *, whole_batches_only: bool = False) -> None:
        """Send the queued items (only full batches unless told otherwise)."""
        async with self._lock:  # one batchCreate at a time
            while self._ready and (len(self._ready) >= self.batch_size or not whole_batches_only):
                batch_items, self._ready = (
                    self._ready[: self.batch_size],
                    self._ready[self.batch_size :],
                )
                await self._create(state, batch_items)

    async def _create(self, state: SessionState, items: Sequence[ItemState]) -> None:
        album_id = state.album_id
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
                f"GoPro {item.media_type or 'media'} {item.media_id}"
                + (f" #{item.file_index + 1}" if item.file_index else ""),
            )
            for item in items
        ]
        results = await self.photos.create_media_items(specs, album_id=album_id)
        self.responses.append(MediaItemBatchCreateResponse(new_media_item_results=results))
        for item, result in zip(items, results, strict=True):
            self._record(item, result)
        batch.responses = tuple(result.to_api() for result in results)
        batch.status = (
            StageStatus.COMPLETED if all(result.ok for result in results) else StageStatus.FAILED
        )
        await self.persist(state)
        if self.on_created is not None:
            created = [item for item in items if item.create_status is StageStatus.COMPLETED]
            await self.on_created(created)

    def _record(self, item: ItemState, result: NewMediaItemResult) -> None:
        if result.ok and result.media_item is not None:
            item.media_item_id = result.media_item.id
            item.create_status = StageStatus.COMPLETED
            item.upload_token = None
            item.clear_error(StageName.CREATE)
            return
        if result.status.code == TOKEN_INVALID:
            # Used (maybe by a run that died before its checkpoint) or expired: send the bytes
            # again; Google answers identical bytes with the item it already has.
            item.upload_token = item.upload_url = None
            item.upload_offset = 0
            item.transfer_status = StageStatus.PENDING
            item.create_status = StageStatus.PENDING
            self.resend.append(item)
            return
        item.create_status = StageStatus.FAILED
        item.record_error(
            ErrorRecord(
                stage=StageName.CREATE,
                message=result.status.message,
                code=str(result.status.code),
                retryable=result.transient,
            )
        )

    async def recover(self, state: SessionState) -> None:
        """Send again batches a dead run left ``running``, before anything else."""
        stuck = [item for item in state.items.values() if item.create_status is StageStatus.RUNNING]
        for batch in state.batches.values():
            if batch.status is StageStatus.RUNNING:
                batch.status = StageStatus.FAILED
                batch.error = ErrorRecord(
                    stage=StageName.CREATE,
                    message="interrupted; its items were sent again",
                    retryable=True,
                )
        for item in stuck:
            item.create_status = StageStatus.PENDING
        if stuck:
            await self.persist(state)
            logger.info("re-sending %d items of batches an earlier run left unfinished", len(stuck))
