"""Discovery: list every media of the window, one item per deliverable file.

Checkpointed per page (``SessionState.discovery_next_page``), so a crash resumes at the next
page, not at page one. CDN URLs are resolved here only to learn each media's files; transfer
resolves them again right before downloading, since they expire.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from q2google.gopro import GoProFile, GoProLibrary
from q2google.state import ErrorRecord, ItemState, SessionState, StageName, StageStatus
from q2google.state.base import make_item_key

logger = logging.getLogger(__name__)

Persist = Callable[[SessionState], Awaitable[None]]
RESOLVE_CONCURRENCY = 8


class DiscoveryStage:
    """Fill a session with the items of its capture window.

    Args:
        library: The GoPro cloud.
        persist: Saves a checkpoint of the state.
    """

    def __init__(self, library: GoProLibrary, persist: Persist) -> None:
        self.library = library
        self.persist = persist

    async def run(self, state: SessionState) -> None:
        """Discover from ``state.discovery_next_page`` to the last page; mark the stage done.

        Then resolve again the media of items put back to pending (``q2google sessions
        retry``), so a media whose files could not be described gets another chance.
        """
        if state.stages[StageName.DISCOVERY] is not StageStatus.COMPLETED:
            await self._page_through(state)
        await self._rediscover(state)

    async def _page_through(self, state: SessionState) -> None:
        start = datetime.fromisoformat(state.start_date_iso)
        end = datetime.fromisoformat(state.end_date_iso)
        state.set_stage(StageName.DISCOVERY, StageStatus.RUNNING)
        await self.persist(state)
        limit = asyncio.Semaphore(RESOLVE_CONCURRENCY)
        while True:
            rows, total_pages = await self.library.page(start, end, state.discovery_next_page)
            if not rows:
                break
            resolved = await asyncio.gather(*(self._resolve(str(row.id), limit) for row in rows))
            for row, files in zip(rows, resolved, strict=True):
                self._add_items(state, row, files)
            state.discovery_next_page += 1
            await self.persist(state)
            logger.info(
                "discovered page %d of %d (%d items so far)",
                state.discovery_next_page - 1,
                total_pages,
                len(state.items),
            )
            if state.discovery_next_page > total_pages:
                break
        state.set_stage(StageName.DISCOVERY, StageStatus.COMPLETED)
        await self.persist(state)

    async def _resolve(
        self, media_id: str, limit: asyncio.Semaphore
    ) -> list[GoProFile] | Exception:
        async with limit:
            try:
                return await self.library.files(media_id)
            except Exception as error:  # recorded on the item, not fatal to discovery
                return error

    async def _rediscover(self, state: SessionState) -> None:
        """Describe again the media of items whose discovery is pending after a retry."""
        waiting: dict[str, list[ItemState]] = {}
        for item in state.items.values():
            if item.discovery_status is StageStatus.PENDING:
                waiting.setdefault(item.media_id, []).append(item)
        if not waiting:
            return
        limit = asyncio.Semaphore(RESOLVE_CONCURRENCY)
        resolved = await asyncio.gather(*(self._resolve(media, limit) for media in waiting))
        for (media_id, items), files in zip(waiting.items(), resolved, strict=True):
            if isinstance(files, Exception) or not files:
                for item in items:
                    _fail(item, _reason(files))
                continue
            for entry in files:
                known = state.items.get(make_item_key(media_id, entry.file_index))
                if known is None:
                    state.add_item(
                        _described(
                            entry, media_type=items[0].media_type, captured_at=items[0].captured_at
                        )
                    )
                elif known.discovery_status is StageStatus.PENDING:
                    known.file_name, known.download_url = entry.file_name, entry.url
                    known.discovery_status = StageStatus.COMPLETED
                    known.clear_error(StageName.DISCOVERY)
            for item in items:
                if item.discovery_status is StageStatus.PENDING:  # not offered any more
                    _fail(item, "no longer offered by the GoPro cloud")
        await self.persist(state)
        logger.info("described again the files of %d media", len(waiting))

    @staticmethod
    def _add_items(state: SessionState, row: Any, files: list[GoProFile] | Exception) -> None:
        media_id = str(row.id)
        captured = getattr(row, "captured_at", None)
        common = {
            "media_type": getattr(row, "type", None),
            "captured_at": captured.isoformat() if captured else None,
        }
        if isinstance(files, Exception) or not files:
            key = make_item_key(media_id, 0)
            if key in state.items:
                return
            item = ItemState(
                media_id=media_id, file_name=str(getattr(row, "filename", "") or media_id), **common
            )
            _fail(item, _reason(files))
            state.add_item(item)
            return
        for entry in files:
            key = make_item_key(media_id, entry.file_index)
            if key in state.items:  # a page re-read after a crash
                continue
            state.add_item(_described(entry, **common))


def _described(entry: GoProFile, *, media_type: str | None, captured_at: str | None) -> ItemState:
    """A new item for one deliverable file, its discovery done."""
    return ItemState(
        media_id=entry.media_id,
        file_index=entry.file_index,
        file_name=entry.file_name,
        download_url=entry.url,
        discovery_status=StageStatus.COMPLETED,
        media_type=media_type,
        captured_at=captured_at,
    )


def _reason(files: list[GoProFile] | Exception) -> str:
    """Why a media yielded no item to transfer."""
    if isinstance(files, Exception):
        return f"download metadata: {type(files).__name__}"
    return "no downloadable file"


def _fail(item: ItemState, reason: str) -> None:
    """Mark an item's discovery failed (nothing to transfer or create) and say why."""
    item.discovery_status = StageStatus.FAILED
    item.transfer_status = item.create_status = StageStatus.SKIPPED
    item.record_error(ErrorRecord(stage=StageName.DISCOVERY, message=reason))
