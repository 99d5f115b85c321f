"""The progress display driven by a ManualClock and hand-filled metrics: no sleeping, no races."""

from __future__ import annotations

import asyncio
import io
from datetime import UTC, datetime, timedelta

import pytest

from q2google.progress import ProgressDisplay, ProgressMode
from q2google.stages.metrics import SyncTransferMetrics
from q2google.testing import ManualClock

MIB = 1024**2
LABEL = "q2google: session t: "


def plain(
    metrics: SyncTransferMetrics, clock: ManualClock, *, interval: float = 10.0
) -> tuple[ProgressDisplay, io.StringIO]:
    """A plain display writing to a buffer, on ``clock``, times shown in UTC."""
    out = io.StringIO()
    display = ProgressDisplay(
        metrics,
        mode=ProgressMode.PLAIN,
        label="session t",
        interval=interval,
        stream=out,
        clock=clock,
        tz=UTC,
    )
    return display, out


def lines(out: io.StringIO) -> list[str]:
    """What was printed, without the ``q2google: session t: `` prefix every line has."""
    printed = out.getvalue().splitlines()
    assert all(line.startswith(LABEL) for line in printed), printed
    return [line.removeprefix(LABEL) for line in printed]


def transferring() -> SyncTransferMetrics:
    """Metrics midway through a transfer: 5 of 10 files sent, 100 MiB to send in all."""
    return SyncTransferMetrics(
        stage="transfer",
        files_total=10,
        files_sent=5,
        files_done=3,
        bytes_to_send=100 * MIB,
        in_flight={"a": "GX010002.MP4", "b": "GOPR0001.JPG"},
    )


async def test_every_stage_is_announced_in_order_however_short() -> None:
    metrics, clock = SyncTransferMetrics(), ManualClock()
    display, out = plain(metrics, clock)
    async with display:
        # No tick in between: a display that polled the stage would see only "done".
        metrics.stage = "discovery"
        metrics.stage = "transfer"
        metrics.files_total = metrics.files_done = 2
        metrics.bytes_to_send = metrics.bytes_downloaded = 3 * MIB
        metrics.stage = "done"
    assert lines(out) == [
        "discovery…",
        "transfer…",
        "2/2 files in Google Photos, 3.0 MiB sent of 3.0 MiB (0 B/s)",
    ]
    assert type(metrics) is SyncTransferMetrics, "the metrics are given back as they were"


async def test_stage_lines_come_as_the_loop_ticks_and_the_loop_sleeps_on_the_clock() -> None:
    metrics, clock = SyncTransferMetrics(), ManualClock()
    display, out = plain(metrics, clock)
    async with display:
        metrics.stage = "discovery"
        metrics.stage = "transfer"
        await clock.sleep(0)  # one turn of the event loop: one tick of the display
        assert lines(out) == ["discovery…", "transfer…"]
        while clock.monotonic() < 25:  # noqa: ASYNC110 - the display's own sleeps move the clock
            await asyncio.sleep(0)
    assert set(clock.slept) == {0, 0.25}
    periodic = lines(out)[2:]
    assert len(periodic) == 2, "one line at 10 s and one at 20 s of manual time"
    assert all(line.startswith("0/0 files") for line in periodic)


async def test_a_run_that_fails_keeps_its_stage_lines_and_has_no_summary_line() -> None:
    metrics, clock = SyncTransferMetrics(), ManualClock()
    display, out = plain(metrics, clock)

    async def run() -> None:
        async with display:
            metrics.stage = "discovery"
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await run()
    assert lines(out) == ["discovery…"]


def test_the_metrics_keep_every_stage_entered_in_order() -> None:
    metrics = SyncTransferMetrics()
    metrics.stage = "discovery"
    metrics.stage = "discovery"  # the same again: no change
    metrics.files_total = 3
    metrics.stage = "transfer"
    metrics.stage = "done"
    assert metrics.stages_entered == ["discovery", "transfer", "done"]
    assert type(metrics) is SyncTransferMetrics


def test_a_periodic_line_has_files_bytes_of_the_total_rate_eta_and_files_in_flight() -> None:
    metrics, clock = transferring(), ManualClock()
    display, out = plain(metrics, clock)
    display.refresh()
    assert lines(out) == [], "the first periodic line comes one interval in"
    clock.advance(10)
    metrics.bytes_downloaded = 20 * MIB
    display.refresh()
    # 80 MiB left at 2 MiB/s: 40 s (from the files it would be 10 s: half done in 10 s).
    assert lines(out) == [
        "5/10 files uploaded, 3 in Google Photos, 20.0 MiB sent of 100.0 MiB (2.0 MiB/s), "
        "ETA 40s, now: GOPR0001.JPG, GX010002.MP4"
    ]
    clock.advance(9)
    display.refresh()
    assert len(lines(out)) == 1, "not before the interval is over"


def test_the_eta_follows_the_recent_throughput_not_the_average() -> None:
    metrics, clock = transferring(), ManualClock()
    display, out = plain(metrics, clock, interval=3600)
    display.refresh()
    clock.advance(10)
    metrics.bytes_downloaded = 50 * MIB  # 5 MiB/s at first
    display.refresh()
    for _ in range(10):  # then 1 MiB/s for 10 s
        clock.advance(1)
        metrics.bytes_downloaded += MIB
        display.refresh()
    assert display.rate == MIB
    assert display.eta() == 40.0  # 40 MiB left at 1 MiB/s (the average, 3 MiB/s, says 13 s)
    assert "60.0 MiB sent of 100.0 MiB (1.0 MiB/s), ETA 40s" in display.line()
    assert lines(out) == []
    metrics.bytes_downloaded = 100 * MIB - 1000
    assert display.eta() == 1, "a part of a second left: 1 s, not 0 s"


def test_no_eta_while_the_total_is_unknown_or_nothing_moves() -> None:
    metrics, clock = transferring(), ManualClock()
    display, _ = plain(metrics, clock)
    display.refresh()
    clock.advance(10)
    display.refresh()
    assert "0 B sent of 100.0 MiB (0 B/s), now: " in display.line(), "stalled: no ETA"
    metrics.bytes_to_send = 0
    metrics.bytes_downloaded = 10 * MIB
    clock.advance(10)
    display.refresh()
    assert "10.0 MiB sent (1.0 MiB/s), now: " in display.line(), "no total: no ETA"


def test_googles_quota_shows_when_metered() -> None:
    metrics, clock = transferring(), ManualClock()
    display, _ = plain(metrics, clock)
    assert "Google requests" not in display.line(), "not metered"
    metrics.google_requests_today = 1234
    metrics.google_request_limit = 10_000
    metrics.google_quota_resets_at = clock.now() + timedelta(hours=5, minutes=12, seconds=30)
    metrics.google_requests_needed = 2100
    assert (
        ", Google requests today 1,234/10,000 (resets in 5h12m), about 2,100 needed, now: "
        in display.line()
    )
    metrics.google_request_limit = metrics.google_quota_resets_at = None
    metrics.google_requests_needed = 0  # nothing left to do: not worth saying
    assert ", Google requests today 1,234, now: " in display.line()
    metrics.google_requests_needed = 12  # an estimate; once every file is in, none is needed
    metrics.stage, metrics.files_done = "done", metrics.files_total
    assert display.line().endswith(", Google requests today 1,234, now: GOPR0001.JPG, GX010002.MP4")


def test_fewer_uploads_allowed_shows_once_google_asked_to_slow_down() -> None:
    metrics, clock = transferring(), ManualClock()
    display, _ = plain(metrics, clock)
    metrics.uploads_allowed = 4
    display.refresh()
    assert "allowed" not in display.line()
    metrics.uploads_allowed = 2
    display.refresh()
    assert ", 2 uploads in flight allowed (down from 4), " in display.line()
    metrics.uploads_allowed = 4
    display.refresh()
    assert "allowed" not in display.line()


def test_a_wait_for_the_quota_is_a_countdown_at_once_then_every_five_minutes() -> None:
    metrics, clock = transferring(), ManualClock(datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    display, out = plain(metrics, clock, interval=10)
    metrics.waiting_until = datetime(2026, 1, 15, 17, 12, tzinfo=UTC)
    display.refresh()
    assert lines(out) == ["waiting for Google's daily quota: goes on at 17:12 (in 5h12m)"]
    clock.advance(299)
    display.refresh()
    assert len(lines(out)) == 1, "hours of waiting: not a line every 10 s"
    clock.advance(1)
    display.refresh()
    assert lines(out)[1:] == ["waiting for Google's daily quota: goes on at 17:12 (in 5h07m)"]
    metrics.waiting_until = None  # the quota reset: back to progress lines
    clock.advance(10)
    display.refresh()
    assert lines(out)[2].startswith("5/10 files uploaded, ")
    metrics.waiting_until = datetime(2026, 1, 16, 8, 5, tzinfo=UTC)  # a new wait: said at once
    display.refresh()
    assert lines(out)[3:] == [
        "waiting for Google's daily quota: goes on at 2026-01-16 08:05 (in 19h59m)"
    ]


async def test_off_shows_nothing_and_leaves_the_metrics_alone() -> None:
    metrics, clock = SyncTransferMetrics(), ManualClock()
    out = io.StringIO()
    display = ProgressDisplay(
        metrics, mode=ProgressMode.OFF, label="session t", stream=out, clock=clock
    )
    async with display:
        assert type(metrics) is SyncTransferMetrics
        metrics.stage = "done"
        await clock.sleep(1)
    assert out.getvalue() == ""


async def test_the_rich_view_shows_bytes_eta_quota_and_the_wait(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    metrics, clock = transferring(), ManualClock(datetime(2026, 1, 15, 12, 0, tzinfo=UTC))
    out = io.StringIO()
    display = ProgressDisplay(
        metrics, mode=ProgressMode.RICH, label="session t", stream=out, clock=clock, tz=UTC
    )
    async with display:
        display.refresh()
        clock.advance(10)
        metrics.bytes_downloaded = 20 * MIB
        metrics.google_requests_today, metrics.google_request_limit = 1234, 10_000
        metrics.waiting_until = datetime(2026, 1, 15, 17, 12, 10, tzinfo=UTC)
    shown = out.getvalue()
    assert "waiting" in shown
    assert "5/10 files uploaded 20.0 MiB sent of 100.0 MiB 2.0 MiB/s ETA 40s" in shown
    assert "Google requests today 1,234/10,000" in shown
    assert "waiting for Google's daily quota: goes on at 17:12 (in 5h12m)" in shown
    assert "q2google: session t" not in shown, "no plain lines in the Rich view"
