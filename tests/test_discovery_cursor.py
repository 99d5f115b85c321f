"""Discovery's cursor over a library that changes while it is listed: nothing is skipped."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from q2google.gopro import GoProFile, MediaGoneError, MediaRow, SearchPage
from q2google.stages.discovery import DiscoveryStage
from q2google.state import SessionState, StageName, StageStatus, new_session
from q2google.state.base import DiscoveryCursor

START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2024, 2, 1, tzinfo=UTC)


class Killed(BaseException):
    """The process dying at a chosen search call."""


@dataclass
class ChangingLibrary:
    """A GoPro search in memory, newest first, paged by number like the cloud's.

    ``before_search`` runs before each search with the call's number (from 1): it may change
    the library, or raise :class:`Killed`.
    """

    per_page: int = 3
    media: dict[str, datetime] = field(default_factory=dict)
    calls: list[tuple[datetime, datetime, int]] = field(default_factory=list)
    before_search: Callable[[int], None] | None = None
    rounding: timedelta = timedelta()  # the cloud widens the range it is asked for

    def add(self, media_id: str, captured_at: datetime) -> None:
        self.media[media_id] = captured_at

    async def search(self, start: datetime, end: datetime, page: int) -> SearchPage:
        self.calls.append((start, end, page))
        if self.before_search is not None:
            self.before_search(len(self.calls))
        matches = sorted(
            (
                (moment, media_id)
                for media_id, moment in self.media.items()
                if start - self.rounding <= moment < end + self.rounding
            ),
            reverse=True,
        )
        rows = tuple(
            MediaRow(media_id, "Photo", f"{media_id}.JPG", captured_at=moment)
            for moment, media_id in matches[(page - 1) * self.per_page : page * self.per_page]
        )
        pages = -(-len(matches) // self.per_page)
        return SearchPage(rows, pages, len(matches))

    async def files(self, media_id: str, media_type: str | None) -> list[GoProFile]:
        if media_id not in self.media:
            raise MediaGoneError(media_id)
        return [GoProFile(media_id, 0, f"{media_id}.JPG", f"https://cdn/{media_id}")]


def session() -> SessionState:
    return new_session(
        "s", start_date_iso=START.isoformat(), end_date_iso=END.isoformat(), batch_size=50
    )


def spaced(count: int, *, prefix: str = "m", hours: int = 1) -> dict[str, datetime]:
    return {f"{prefix}{n:03d}": START + timedelta(hours=hours * n) for n in range(count)}


async def discover(source: ChangingLibrary, state: SessionState) -> list[DiscoveryCursor | None]:
    cursors: list[DiscoveryCursor | None] = []

    async def checkpoint(saved: SessionState) -> None:
        cursors.append(saved.discovery_cursor)

    await DiscoveryStage(source, checkpoint).run(state)
    return cursors


def recorded(state: SessionState) -> set[str]:
    return {item.media_id for item in state.items.values()}


async def test_a_kill_then_deletions_above_the_cursor_skip_nothing() -> None:
    library = ChangingLibrary(media=spaced(20))

    def kill_at_fourth(call: int) -> None:
        if call == 4:
            raise Killed

    library.before_search = kill_at_fourth
    state = session()
    with pytest.raises(Killed):
        await discover(library, state)
    assert len(state.items) == 7, "three pages of three, each but the first re-reading one"
    assert state.discovery_cursor is not None
    for media_id in sorted(library.media)[-6:]:  # the six newest go
        del library.media[media_id]
    library.before_search = None
    del library.calls[:]

    await discover(library, state)
    assert recorded(state) == set(spaced(20)), "every media, the deleted ones as found then"
    assert library.calls[0][1] == datetime.fromisoformat("2024-01-01T13:00:01+00:00"), (
        "the resume asks below the cursor (plus the overlap), not for page 4"
    )
    assert state.discovery_cursor is None
    assert state.stages[StageName.DISCOVERY] is StageStatus.COMPLETED


async def test_media_added_behind_the_cursor_are_found_by_the_reconciliation() -> None:
    library = ChangingLibrary(media=spaced(10))

    def add_newer_midway(call: int) -> None:
        if call == 2:
            library.add("late", START + timedelta(days=20))  # above the cursor already

    library.before_search = add_newer_midway
    state = session()
    await discover(library, state)
    assert recorded(state) == set(spaced(10)) | {"late"}
    assert state.listing_new == 11
    assert state.listings == 1


async def test_one_instant_holding_more_than_a_page_is_paged_through() -> None:
    crowded = START + timedelta(days=3)
    library = ChangingLibrary(per_page=3, media={f"c{n}": crowded for n in range(8)})
    library.media.update(spaced(4, prefix="o"))
    state = session()
    await discover(library, state)
    assert recorded(state) == set(library.media)
    assert len(library.calls) < 20


async def test_rows_outside_the_exact_window_are_left_out() -> None:
    library = ChangingLibrary(rounding=timedelta(days=1))
    library.add("before", START - timedelta(hours=2))
    library.add("first", START)
    library.add("last", END - timedelta(seconds=1))
    library.add("after", END)
    state = session()
    await discover(library, state)
    assert recorded(state) == {"first", "last"}


async def test_a_second_run_lists_again_and_counts_only_what_is_new() -> None:
    library = ChangingLibrary(media=spaced(7))
    state = session()
    await discover(library, state)
    assert state.listing_new == 7
    calls_before = len(library.calls)

    library.add("new1", START + timedelta(days=10))
    library.add("new2", START + timedelta(minutes=30))
    await discover(library, state)
    assert recorded(state) == set(spaced(7)) | {"new1", "new2"}
    assert state.listing_new == 2
    assert state.listings == 2
    pages = -(-9 // (library.per_page - 1))  # each page re-reads the cursor's media
    assert len(library.calls) - calls_before <= 2 * pages + 2, "two walks, no more"

    await discover(library, state)
    assert state.listing_new == 0, "nothing new: one walk, which proves it"


@dataclass
class DayRoundingLibrary(ChangingLibrary):
    """A cloud that reads only the dates of ``captured_range`` (end day exclusive), or that
    sorts oldest first: the cursor alone would skip media; the count check pages through."""

    oldest_first: bool = False

    async def search(self, start: datetime, end: datetime, page: int) -> SearchPage:
        day_start = start.replace(hour=0, minute=0, second=0, microsecond=0)
        day_end = end.replace(hour=0, minute=0, second=0, microsecond=0)
        answer = await super().search(day_start, day_end, page)
        if self.oldest_first:
            ordered = sorted(
                (
                    (moment, media_id)
                    for media_id, moment in self.media.items()
                    if day_start <= moment < day_end
                ),
            )
            rows = tuple(
                MediaRow(media_id, "Photo", f"{media_id}.JPG", captured_at=moment)
                for moment, media_id in ordered[(page - 1) * self.per_page : page * self.per_page]
            )
            return SearchPage(rows, answer.total_pages, answer.total_items)
        return answer


@pytest.mark.parametrize("oldest_first", [False, True])
async def test_a_cloud_that_rounds_or_sorts_otherwise_still_loses_nothing(
    oldest_first: bool,
) -> None:
    source = DayRoundingLibrary(oldest_first=oldest_first)
    source.media.update(spaced(40, hours=2))  # several media a day, three a page
    state = session()
    await discover(source, state)
    assert {item.media_id for item in state.items.values()} == set(source.media)
