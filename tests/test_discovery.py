"""Discovery over an injected GoProSource: deferred media come back, nothing gets stuck."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from q2google.gopro import GoProFile, MediaGoneError, MediaRow, SearchPage, Verdict
from q2google.sessions import item_outcome
from q2google.stages.discovery import DiscoveryStage
from q2google.state import SessionState, StageName, StageStatus, new_session

CAPTURED = datetime(2024, 6, 1, 0, 30, tzinfo=UTC)


@dataclass
class FakeSource:
    """A GoPro cloud in memory: rows by id, files by id, and what the day search hides."""

    rows: dict[str, MediaRow] = field(default_factory=dict)
    files_of: dict[str, list[GoProFile]] = field(default_factory=dict)
    hidden_from_search: set[str] = field(default_factory=set)

    async def search(self, start: datetime, end: datetime, page: int) -> SearchPage:
        rows = tuple(
            row
            for media_id, row in self.rows.items()
            if media_id not in self.hidden_from_search and page == 1
        )
        return SearchPage(rows, 1, len(rows))

    async def files(self, media_id: str, media_type: str | None) -> list[GoProFile]:
        if media_id not in self.files_of:
            raise MediaGoneError(media_id)
        return self.files_of[media_id]


def session() -> SessionState:
    return new_session(
        "s",
        start_date_iso="2024-01-01T00:00:00+00:00",
        end_date_iso="2025-01-01T00:00:00+00:00",
        batch_size=50,
    )


async def discover(source: FakeSource, state: SessionState) -> None:
    async def keep(_: SessionState) -> None:
        return None

    await DiscoveryStage(source, keep).run(state)


def chapters(*verdicts: Verdict) -> list[GoProFile]:
    return [
        GoProFile("m", index, f"GX0{index + 1}0001.MP4", f"https://cdn/{index}", verdict=verdict)
        for index, verdict in enumerate(verdicts)
    ]


async def test_a_deferred_media_is_delivered_once_ready_even_if_the_search_misses_it() -> None:
    source = FakeSource(
        rows={"m": MediaRow("m", "Video", "GX010001.MP4", CAPTURED, ready_to_view="uploading")}
    )
    state = session()
    await discover(source, state)
    assert [item_outcome(item) for item in state.items.values()] == ["deferred"]

    source.hidden_from_search.add("m")  # say, the page boundary moved
    source.files_of["m"] = chapters(Verdict.DELIVER, Verdict.DELIVER)
    await discover(source, state)
    assert [item_outcome(item) for item in state.items.values()] == ["pending", "pending"]
    assert {item.transfer_status for item in state.items.values()} == {StageStatus.PENDING}
    assert state.stages[StageName.DISCOVERY] is StageStatus.COMPLETED


async def test_a_media_gone_while_deferred_is_gone_and_a_returning_one_is_not_stuck() -> None:
    source = FakeSource(
        rows={"m": MediaRow("m", "Video", "GX010001.MP4", CAPTURED, ready_to_view="transcoding")}
    )
    state = session()
    await discover(source, state)
    source.rows.clear()
    await discover(source, state)
    assert [item_outcome(item) for item in state.items.values()] == ["gone"]


async def test_a_verdict_on_the_whole_media_reaches_every_pending_file() -> None:
    source = FakeSource(
        rows={"m": MediaRow("m", "Video", "GX010001.MP4", CAPTURED, ready_to_view="ready")},
        files_of={"m": chapters(Verdict.DELIVER, Verdict.DEFER, Verdict.DEFER)},
    )
    state = session()
    await discover(source, state)
    assert [item_outcome(item) for item in state.items.values()] == [
        "pending",
        "deferred",
        "deferred",
    ]
    source.files_of["m"] = [
        GoProFile("m", 0, "GX010001.MP4", verdict=Verdict.FAIL, reason="no original")
    ]
    await discover(source, state)
    assert [item_outcome(item) for item in state.items.values()] == [
        "pending",
        "failed",
        "failed",
    ], "chapter 1 stays as described; the deferred chapters hear the media's verdict"
