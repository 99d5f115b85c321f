"""Discovery: list every media of the window, one item per file, each with its fate decided.

A media's search row decides first: an edit project is skipped, a media still uploading or
processing in the GoPro cloud is deferred, one whose processing failed is failed. A photo
(one file) is then described by its row alone: its name and size are there, and the transfer
asks for its URL right before its download, its one download-metadata call. Any other media's
download metadata gives its originals (:mod:`q2google.gopro.shapes`): chapters, frames. Google's
limits (:mod:`q2google.gphotos.limits`) skip what Google Photos would refuse, before any byte
moves.

The window is walked with a cursor by capture time (:mod:`q2google.stages.cursor`),
checkpointed per page, so media added or deleted meanwhile (or between a kill and its resume)
shift nothing, and a resume goes on from the cursor. Each listing ends with a walk from the
top that must find nothing new. Every later run of the session lists its window again and
adds only what it does not know. Items left pending (deferred, or put back by ``q2google
sessions retry``) are described again on every later run; a deferred media is looked up again
by its capture day, so its readiness is read fresh.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from q2google.gopro import GoProAnswerError, GoProFile, GoProSource, MediaGoneError, MediaRow
from q2google.gopro.shapes import GONE_REASON, row_file, row_verdict
from q2google.gopro.source import Verdict
from q2google.gphotos.limits import refusal
from q2google.stages.cursor import WindowWalk, media_in_window, page_walk
from q2google.state import ErrorRecord, ItemState, SessionState, StageName, StageStatus
from q2google.state.base import ExclusionKind, make_item_key
from q2google.window import window_bounds

logger = logging.getLogger(__name__)

Persist = Callable[[SessionState], Awaitable[None]]
RESOLVE_CONCURRENCY = 8
RECONCILE_ROUNDS = 3
"""Walks from the top after a listing, at most, until one finds nothing new."""
EXCLUSIONS: dict[Verdict, tuple[ExclusionKind, str]] = {
    Verdict.SKIP: (ExclusionKind.SKIPPED, "skipped"),
    Verdict.DEFER: (ExclusionKind.DEFERRED, "not ready in the GoPro cloud yet"),
    Verdict.GONE: (ExclusionKind.GONE, GONE_REASON),
}
"""How each verdict that holds a file back is recorded, and its reason when none is given."""
T = TypeVar("T")


class DiscoveryStage:
    """Fill a session with the items of its capture window.

    Args:
        source: The GoPro cloud (or another :class:`~q2google.gopro.GoProSource`).
        persist: Saves a checkpoint of the state.
    """

    def __init__(self, source: GoProSource, persist: Persist) -> None:
        self.source = source
        self.persist = persist
        self._limit = asyncio.Semaphore(RESOLVE_CONCURRENCY)

    async def run(self, state: SessionState) -> None:
        """List the session's window, then mark the stage done.

        A session listed before is listed again (its deferred media described again first):
        only media it does not know are described and added, and
        ``state.listing_new`` counts their files. A listing cut short resumes at its cursor.
        Every listing ends with a walk from the top that must find nothing new.

        Raises:
            GoProAuthError: The GoPro token was refused (the state is saved).
            TryLaterError: The GoPro cloud kept failing (the state is saved).
        """
        if state.stages[StageName.DISCOVERY] is StageStatus.COMPLETED:
            await self._rediscover(state)  # before the listing: what it defers is fresh
            state.discovery_cursor, state.listing_new = None, 0
        await self._list_window(state)

    async def _list_window(self, state: SessionState) -> None:
        start, end = window_bounds(state)
        state.set_stage(StageName.DISCOVERY, StageStatus.RUNNING)
        await self.persist(state)

        async def record(rows: Sequence[MediaRow]) -> int:
            before = len(state.items)
            described = await all_of(self._describe(row) for row in rows)
            for row, files in zip(rows, described, strict=True):
                merge(state, row, files)
            state.listing_new += len(state.items) - before
            return len(state.items) - before

        async def checkpoint() -> None:
            await self.persist(state)

        from_top = state.discovery_cursor is None
        walk = await WindowWalk(
            self.source, state, start=start, end=end, record=record, checkpoint=checkpoint
        ).run()
        walks = 1
        while not (from_top and not walk.new_media):  # proof: a walk from the top, nothing new
            if walks > RECONCILE_ROUNDS:
                logger.warning(
                    "the GoPro library kept changing while it was listed: %d new media in the "
                    "last walk; the next run lists it again",
                    walk.new_media,
                )
                break
            walk = await WindowWalk(
                self.source, state, start=start, end=end, record=record, checkpoint=checkpoint
            ).run()
            walks, from_top = walks + 1, True
        known = media_in_window(state, start, end)
        if walk.total_items is not None and known < walk.total_items:
            # The cloud counts more than the cursor found: it may round the range (to days, say)
            # or order otherwise. Page through the whole window too; nothing known is redone.
            logger.warning(
                "the cursor found %d media of the %d the GoPro cloud counts: paging through",
                known,
                walk.total_items,
            )
            await page_walk(self.source, state, start, end, record=record, checkpoint=checkpoint)
        logger.info(
            "listed the window: %s media in it now, %d files in the session, %d new",
            walk.total_items,
            len(state.items) + len(state.settled),
            state.listing_new,
        )
        state.listings += 1
        state.set_stage(StageName.DISCOVERY, StageStatus.COMPLETED)
        await self.persist(state)

    async def _describe(self, row: MediaRow) -> list[GoProFile] | str:
        """The media's files, each with its verdict, or why it cannot be described.

        GoPro's token being refused, or the cloud failing past every retry, stops the stage.
        """
        verdict, reason = row_verdict(row)
        if verdict is not Verdict.DELIVER:
            return [GoProFile(row.media_id, 0, row.filename, verdict=verdict, reason=reason)]
        photo = row_file(row)
        if photo is not None:  # its URL is asked for right before its transfer
            return [_within_google_limits(photo, row.file_size)]
        async with self._limit:
            try:
                files = await self.source.files(row.media_id, row.type)
            except MediaGoneError:
                return [GoProFile(row.media_id, 0, row.filename, verdict=Verdict.GONE)]
            except GoProAnswerError as error:
                return str(error)
        single = len(files) == 1
        return [_within_google_limits(entry, row.file_size if single else None) for entry in files]

    async def _rediscover(self, state: SessionState) -> None:
        """Describe again the media whose items are pending discovery."""
        waiting: dict[str, list[ItemState]] = {}
        for item in state.items.values():
            if item.discovery_status is StageStatus.PENDING:
                waiting.setdefault(item.media_id, []).append(item)
        if not waiting:
            return
        rows = await self._fresh_rows(waiting.values())
        for media_id, items in waiting.items():  # not in its day's search: ask for it by id
            first = items[0]
            rows.setdefault(media_id, MediaRow(media_id, first.media_type or "", first.file_name))
        described = await all_of(self._describe(rows[media_id]) for media_id in waiting)
        for media_id, files in zip(waiting, described, strict=True):
            merge(state, rows[media_id], files)
        await self.persist(state)
        logger.info("described again the files of %d media", len(waiting))

    async def _fresh_rows(self, waiting: Iterable[list[ItemState]]) -> dict[str, MediaRow]:
        """Search rows of the waiting media, read again from the cloud (readiness changes).

        Each capture day (UTC) of a waiting media is searched once; a media not found there
        is asked for by id (which tells whether it is gone).
        """
        rows: dict[str, MediaRow] = {}
        days: set[datetime] = set()
        for items in waiting:
            if items[0].captured_at:
                moment = datetime.fromisoformat(items[0].captured_at).astimezone(UTC)
                days.add(moment.replace(hour=0, minute=0, second=0, microsecond=0))
        for day in sorted(days):
            number, pages = 1, 1
            while number <= pages:
                page = await self.source.search(day, day + timedelta(days=1), number)
                rows.update((row.media_id, row) for row in page.rows)
                number, pages = number + 1, page.total_pages
        return rows


def merge(state: SessionState, row: MediaRow, files: list[GoProFile] | str) -> None:
    """Record a described media in the session.

    New files become items; items still pending discovery take what was learnt; items
    already described are left as they are (a page read again after a crash).

    Args:
        state: The session.
        row: The media's search row.
        files: Its files with their verdicts, or why it could not be described.
    """
    media_type = sys.intern(row.type) if row.type else None  # one "Photo" for 100,000 files
    captured_at = row.captured_at.isoformat() if row.captured_at else None
    if isinstance(files, str):
        files = [GoProFile(row.media_id, 0, row.filename, verdict=Verdict.FAIL, reason=files)]
    one_file = len(files) == 1 and (files[0].url is not None or row_file(row) is not None)
    size = row.file_size if one_file else None  # the row sizes the media: its one file too
    if len(files) == 1 and files[0].url is None and files[0].verdict is not Verdict.DELIVER:
        whole = files[0]  # said of the whole media: every file of it still pending hears it
        index = 1
        while state.knows(key := make_item_key(row.media_id, index)):
            known = state.items.get(key)  # settled files are not pending
            if known is not None and _pending(known):
                _describe_item(known, replace(whole, file_name=known.file_name), None)
                known.media_size_bytes = row.file_size
            index += 1
    for entry in files:
        key = make_item_key(entry.media_id, entry.file_index)
        item = state.items.get(key)
        if item is None and key in state.settled:
            continue  # delivered, nothing left to do
        if item is None:
            item = state.add_item(
                ItemState(
                    media_id=entry.media_id,
                    file_index=entry.file_index,
                    file_name=entry.file_name,
                    media_type=media_type,
                    captured_at=captured_at,
                )
            )
        elif not _pending(item):
            continue
        _describe_item(item, entry, size)
        item.media_size_bytes = row.file_size


def describe_late(
    state: SessionState, item: ItemState, files: list[GoProFile] | str
) -> list[ItemState]:
    """Describe a file discovery took from its search row alone (a photo), now that the
    transfer has its download metadata: exactly as discovery would have described it.

    Its name, verdict and URL become the answer's; a verdict other than deliver is recorded
    as discovery would have recorded it (skipped, deferred, gone, failed).

    Args:
        state: The session.
        item: The file, described by its row, its transfer under way.
        files: The media's files from its download answer, or why it could not be read.

    Returns:
        Files of the media its row did not tell of, added to the session (to transfer too).
    """
    captured = datetime.fromisoformat(item.captured_at) if item.captured_at else None
    row = MediaRow(
        item.media_id,
        item.media_type or "",
        item.file_name,
        captured_at=captured,
        file_size=item.media_size_bytes,
    )
    if not isinstance(files, str):
        single = len(files) == 1
        files = [_within_google_limits(entry, row.file_size if single else None) for entry in files]
    keys = (
        [make_item_key(item.media_id, 0)]
        if isinstance(files, str)
        else [make_item_key(entry.media_id, entry.file_index) for entry in files]
    )  # what merge may add (never a pass over the session: this runs for every file)
    before = {key for key in keys if state.knows(key)}
    item.discovery_status = StageStatus.PENDING  # described again below, as discovery would
    merge(state, row, files)
    return [state.items[key] for key in keys if key not in before and key in state.items]


def _pending(item: ItemState) -> bool:
    return item.discovery_status is StageStatus.PENDING


def _describe_item(item: ItemState, entry: GoProFile, size: int | None) -> None:
    """Bring an item pending discovery up to what the cloud says of its file (``size``:
    its bytes, when the search row tells them)."""
    item.file_name = entry.file_name
    item.download_url = entry.url
    item.size_bytes = size
    if entry.verdict is Verdict.DELIVER:
        item.exclusion = None
        item.discovery_status = StageStatus.COMPLETED
        item.clear_error(StageName.DISCOVERY)
        if item.transfer_status is StageStatus.SKIPPED:  # held back before: to do again
            item.transfer_status = item.create_status = StageStatus.PENDING
    elif entry.verdict in EXCLUSIONS:
        kind, default_reason = EXCLUSIONS[entry.verdict]
        if kind is not ExclusionKind.DEFERRED:
            item.discovery_status = StageStatus.COMPLETED
        item.exclude(kind, entry.reason or default_reason)
    else:
        item.exclusion = None
        item.discovery_status = StageStatus.FAILED
        item.transfer_status = item.create_status = StageStatus.SKIPPED
        item.record_error(
            ErrorRecord(stage=StageName.DISCOVERY, message=entry.reason or "cannot be described")
        )


def _within_google_limits(entry: GoProFile, size: int | None) -> GoProFile:
    """Turn a deliverable file Google Photos would refuse into a skipped one."""
    if entry.verdict is not Verdict.DELIVER:
        return entry
    refused = refusal(entry.file_name, size)
    return entry if refused is None else replace(entry, verdict=Verdict.SKIP, reason=refused)


async def all_of(work: Iterable[Coroutine[Any, Any, T]]) -> list[T]:
    """Await every coroutine concurrently; the first to raise cancels the others and its
    exception is raised as it is (not in an ``ExceptionGroup``)."""
    tasks: list[asyncio.Task[T]] = []
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(coroutine) for coroutine in work]
    except BaseExceptionGroup as errors:
        raise errors.exceptions[0] from None
    return [task.result() for task in tasks]
