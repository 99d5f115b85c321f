"""Walking a capture window with a cursor that added or deleted media cannot shift.

The search is asked for ``[start, cursor + overlap)``, newest first, and always for its
first page: the cursor (:class:`~q2google.state.base.DiscoveryCursor`) is the capture time of
the oldest media fully recorded, with the ids recorded at that instant. A page moves it down
to its own oldest media; it is checkpointed after each page that recorded media, and after
every :data:`IDLE_PAGES_PER_CHECKPOINT` pages that did not. Media already known to the session
(by id) are passed over without a call, so re-reading the overlap, a page that repeats an
item at its boundary, or a second walk costs one search call per page and nothing more. Rows
outside the exact window are left out whatever the cloud answered (it may round the range).

Only when one instant holds more media than a page (the cursor cannot move) are further
pages of the same range asked for by number.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from q2google.gopro import GoProSource, MediaRow
from q2google.state import SessionState
from q2google.state.base import DiscoveryCursor

OVERLAP = timedelta(seconds=1)
"""How far above the cursor each search reaches again (a cloud that rounds times loses
nothing at the cursor's own instant)."""

IDLE_PAGES_PER_CHECKPOINT = 25
"""Pages that found nothing new walked between two checkpoints of the cursor: after a crash
they are searched again (a call each), instead of a checkpoint each (a 100,000-file library
walked again is 500 pages)."""

Record = Callable[[Sequence[MediaRow]], Awaitable[int]]
"""Describes and records the new media of a page; returns how many files it added."""
Checkpoint = Callable[[], Awaitable[None]]


@dataclass
class WalkResult:
    """What one walk of the window did.

    Attributes:
        pages: Search calls made.
        new_media: Media recorded that the session did not know.
        new_files: Files those media added.
        total_items: The window's media as the cloud counted them at the walk's first page.
    """

    pages: int = 0
    new_media: int = 0
    new_files: int = 0
    total_items: int | None = None


class WindowWalk:
    """One walk of ``[start, end)`` from ``state.discovery_cursor`` down to ``start``.

    Args:
        source: Where media come from.
        state: The session; its cursor is moved (and checkpointed) page by page.
        start: Window start (inclusive).
        end: Window end (exclusive).
        record: Records a page's new rows.
        checkpoint: Saves the state.
    """

    def __init__(
        self,
        source: GoProSource,
        state: SessionState,
        *,
        start: datetime,
        end: datetime,
        record: Record,
        checkpoint: Checkpoint,
    ) -> None:
        self.source = source
        self.state = state
        self.start, self.end = start.astimezone(UTC), end.astimezone(UTC)
        self.record = record
        self.checkpoint = checkpoint
        self.known = state.known_media_ids()

    async def run(self) -> WalkResult:
        """Walk down to the window's start; the cursor is ``None`` once it is done."""
        result = WalkResult()
        number = 1  # > 1 only while one instant holds more media than a page
        idle = 0  # pages since the last checkpoint, all of media known already
        while True:
            cursor = self.state.discovery_cursor
            upper = self.end
            if cursor is not None:
                upper = min(self.end, _moment(cursor.captured_at) + OVERLAP)
            if upper <= self.start:
                break
            page = await self.source.search(self.start, upper, number)
            result.pages += 1
            if result.total_items is None:
                result.total_items = page.total_items
            fresh = [row for row in page.rows if self._wanted(row, cursor)]
            if fresh:
                result.new_files += await self.record(fresh)
                result.new_media += len(fresh)
                self.known.update(row.media_id for row in fresh)
            moved = _advance(cursor, page.rows)
            last = not page.rows or number >= page.total_pages
            stuck = moved == cursor or (  # no capture times to move by, or one crowded instant
                moved is not None and cursor is not None and moved.captured_at == cursor.captured_at
            )
            number = number + 1 if stuck and not last else 1  # a crowded instant: page on
            self.state.discovery_cursor = moved
            idle += 0 if fresh else 1
            if fresh or idle >= IDLE_PAGES_PER_CHECKPOINT or last:
                await self.checkpoint()  # pages of known media cost a search each, redone
                idle = 0
            if last:
                break
        self.state.discovery_cursor = None
        return result

    def _wanted(self, row: MediaRow, cursor: DiscoveryCursor | None) -> bool:
        """A row to describe: in the exact window, not known, not behind the cursor."""
        if row.media_id in self.known:
            return False
        if row.captured_at is None:
            return True  # the cloud put it in the window; nothing to check it against
        moment = row.captured_at.astimezone(UTC)
        return self.start <= moment < self.end


def media_in_window(state: SessionState, start: datetime, end: datetime) -> int:
    """How many media of ``[start, end)`` the session knows (of unknown time: counted)."""
    inside = set()
    for item in state.items.values():
        moment = _moment(item.captured_at) if item.captured_at else None
        if moment is None or start <= moment < end:
            inside.add(item.media_id)
    for key, settled in state.settled.items():
        moment = _moment(settled.captured_at) if settled.captured_at else None
        if moment is None or start <= moment < end:
            inside.add(key.rpartition("-")[0])
    return len(inside)


async def page_walk(
    source: GoProSource,
    state: SessionState,
    start: datetime,
    end: datetime,
    *,
    record: Record,
    checkpoint: Checkpoint,
) -> int:
    """The backstop: every page of ``[start, end)`` by number, recording what is unknown.

    Page numbers shift when the library changes meanwhile, which is why the cursor walks
    first; this only runs when the cloud counts more media than the cursor found.

    Returns:
        How many media it added.
    """
    known = state.known_media_ids()
    added, number, pages = 0, 1, 1
    while number <= pages:
        page = await source.search(start, end, number)
        pages = page.total_pages
        fresh = [
            row
            for row in page.rows
            if row.media_id not in known
            and (row.captured_at is None or start <= row.captured_at.astimezone(UTC) < end)
        ]
        if fresh:
            await record(fresh)
            known.update(row.media_id for row in fresh)
            added += len(fresh)
        await checkpoint()
        number += 1
    return added


def _advance(cursor: DiscoveryCursor | None, rows: Sequence[MediaRow]) -> DiscoveryCursor | None:
    """The cursor after ``rows`` (newest first) are recorded: their oldest instant."""
    moments = [row.captured_at.astimezone(UTC) for row in rows if row.captured_at is not None]
    if not moments:
        return cursor
    oldest = min(moments)
    if cursor is not None and oldest > _moment(cursor.captured_at):
        return cursor  # the overlap only: nothing older on the page
    ids = {row.media_id for row in rows if row.captured_at and row.captured_at == oldest}
    if cursor is not None and _moment(cursor.captured_at) == oldest:
        ids |= set(cursor.media_ids)
    return DiscoveryCursor(captured_at=oldest.isoformat(), media_ids=tuple(sorted(ids)))


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
